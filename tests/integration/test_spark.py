"""stores = ["redis", "spark"] on the local target: Feast's Spark offline store
and Spark compute engine in local mode on the machine's Java, Redis online.

Values are checked against pandas on the repository's own data files.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, featctl
from tests.integration.conftest import Deployed, processes_under
from tests.integration.expected import as_of, latest, load

pytestmark = pytest.mark.integration

DRIVERS = (1001, 1002, 1003, 1004)


@pytest.fixture(scope="module")
def spark(tmp_path_factory) -> Iterator[Deployed]:
    if shutil.which("java") is None or not Path("/usr/bin/redis-server").exists():
        pytest.fail("these tests need Java 17 and redis-server: run .ci/run or scripts/bootstrap --dev")
    root = tmp_path_factory.mktemp("spark")
    shutil.copytree(
        ROOT / "feature_repo", root / "feature_repo", ignore=shutil.ignore_patterns("*.db", "*.parquet", "__pycache__")
    )
    (root / "featctl.toml").write_text('server_workers = 1\nstores = ["redis", "spark"]\n')
    d = Deployed(root)
    try:
        # A failed first deploy is destroyed too: nothing of it may outlive the module.
        d.first_deploy = featctl("deploy", cwd=root, timeout=1500).ok()
        yield d
    finally:
        if (d.workspace / "deployment.json").exists():
            featctl("destroy", "--yes", cwd=root, timeout=300)


def test_spark_materializes_into_redis_and_online_values_match_the_data(spark: Deployed) -> None:
    assert "writing Spark-readable copies" in spark.first_deploy.stderr
    current = Path(spark.record()["remote_base_dir"]) / "current"
    assert "type: spark" in (current / "feature_store.yaml").read_text()
    assert "SparkSource(" in (current / "features.py").read_text()
    data = load(spark.repo / "data" / "driver_stats.parquet")
    rows = spark.json("online", *[a for x in DRIVERS for a in ("-d", str(x))], "-f", "driver_hourly_stats:conv_rate")
    for r in rows:
        want = latest(data, int(r["driver_id"]))
        assert want is not None and r["conv_rate"] == pytest.approx(float(want["conv_rate"]))


def test_verify_reads_spark_sources_and_finds_a_wrong_value(spark: Deployed) -> None:
    """verify reads a SparkSource through Feast's local engine (Spark's own
    engine writes from its executors): every entity of the data is checked, a
    pushed wrong value is found and repaired."""
    import json

    data = load(spark.repo / "data" / "driver_stats.parquet")
    victim = next(
        v for v in DRIVERS if v != spark.record()["probe"]["views"]["driver_quality_metrics"]["entity"]["driver_id"]
    )
    right = latest(data, victim)
    assert right is not None
    spark.run(
        "push", "--view", "driver_stats_push_source", "-e", f"driver_id={victim}", "--set", "conv_rate=42.0",
        "--set", "acc_rate=42.0", "--at", (right.event_timestamp + pd.Timedelta(seconds=1)).isoformat(),
        "--to", "online",
    ).ok()  # fmt: skip
    fixed = spark.run("verify", "--view", "driver_quality_metrics", "--repair", "--output", "json")
    assert fixed.returncode == 9, fixed.stderr
    rows = json.loads(fixed.stdout)
    assert {(r["entity"], r["feature"], r["online"]) for r in rows} == {
        (f"driver_id={victim}", "conv_rate", 42.0),
        (f"driver_id={victim}", "acc_rate", 42.0),
    }
    assert all(r["repaired"] for r in rows)
    again = spark.run("verify", "--output", "json")
    assert again.returncode == 0 and json.loads(again.stdout) == [], again.stderr
    productivity = load(spark.repo / "data" / "driver_stats_with_productivity.parquet")
    total = 2 * data.driver_id.nunique() + productivity.driver_id.nunique()
    assert f"checked {total} entities (all): 0 wrong" in again.stderr


def test_spark_historical_is_point_in_time_correct(spark: Deployed, tmp_path: Path) -> None:
    data = load(spark.repo / "data" / "driver_stats.parquet")
    ts = data["event_timestamp"].sort_values().iloc[len(data) // 2].floor("h") + pd.Timedelta(minutes=30)
    entities = pd.DataFrame(
        {"driver_id": list(DRIVERS) * 2, "event_timestamp": [ts] * 4 + [ts - pd.Timedelta(hours=5)] * 4}
    )
    path = tmp_path / "entities.parquet"
    entities.to_parquet(path)
    rows = spark.json("historical", "--entities", str(path), "-f", "driver_hourly_stats:conv_rate")
    assert len(rows) == len(entities)  # every entity row kept, in order
    for r, (_, e) in zip(rows, entities.iterrows()):
        want = as_of(data, int(e["driver_id"]), e["event_timestamp"], timedelta(days=1))
        if want is None:
            assert r["conv_rate"] is None
        else:
            assert r["conv_rate"] == pytest.approx(float(want["conv_rate"]))


def test_spark_deployment_destroys_cleanly(spark: Deployed) -> None:
    featctl("destroy", "--yes", cwd=spark.root, timeout=300).ok()
    assert processes_under(spark.workspace) == []
    assert not (spark.workspace / "secrets").exists()
