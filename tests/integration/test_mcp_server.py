"""A repository shaped as Feast's examples/agent_feature_store: its MCP
feature server (``feature_server: type: mcp``): deploy installs the extra it
needs (``feast[mcp]``, resolved with the lock), and the serving feature server
answers MCP on /mcp beside its usual endpoints, whose values stay right. And
its views that cannot or need not be materialized (#24 item 4): an empty
memory source (Feast's file store failed on it: "Invalid comparison between
dtype=datetime64[ns] and datetime"), a view with online=False, and one that
featctl.toml's ``[materialize] skip`` leaves out."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.integration.conftest import Deployed, _deploy
from tests.integration.expected import as_of, latest, load

pytestmark = pytest.mark.integration

MCP = "feature_server:\n  type: mcp\n  enabled: true\n  mcp_enabled: true\n  mcp_server_name: featctl-test\n  mcp_transport: http\n"


@pytest.fixture(scope="module")
def mcp(tmp_path_factory) -> Iterator[Deployed]:
    root = tmp_path_factory.mktemp("mcp")
    shutil.copytree(
        ROOT / "feature_repo", root / "feature_repo", ignore=shutil.ignore_patterns("*.db", "*.parquet", "__pycache__")
    )
    cfg = root / "feature_repo" / "feature_store.yaml"
    cfg.write_text(cfg.read_text() + MCP)
    (root / "feature_repo" / "agent_views.py").write_text(AGENT_VIEWS)
    (root / "feature_repo" / "data").mkdir(exist_ok=True)
    empty_memory().to_parquet(root / "feature_repo" / "data" / "agent_memory.parquet", index=False)
    (root / "featctl.toml").write_text('[materialize]\nskip = ["driver_skipped"]\n')
    yield from _deploy(root)


AGENT_VIEWS = """
from datetime import timedelta

from feast import FeatureView, Field, FileSource
from feast.types import Float32, String

from features import driver, driver_stats_source

memory_source = FileSource(name="agent_memory_source", path="data/agent_memory.parquet", timestamp_field="event_timestamp")
agent_memory = FeatureView(
    name="agent_memory", entities=[driver], ttl=timedelta(days=30),
    schema=[Field(name="last_note", dtype=String)], online=True, source=memory_source,
)
driver_archive = FeatureView(
    name="driver_archive", entities=[driver], ttl=timedelta(days=1),
    schema=[Field(name="conv_rate", dtype=Float32)], online=False, source=driver_stats_source,
)
driver_skipped = FeatureView(
    name="driver_skipped", entities=[driver], ttl=timedelta(days=1),
    schema=[Field(name="acc_rate", dtype=Float32)], online=True, source=driver_stats_source,
)
"""

NOT_MATERIALIZED = (
    "not materialized: agent_memory (empty source: 0 rows), driver_archive (online=False), "
    "driver_skipped ([materialize] skip in featctl.toml)"
)


def empty_memory() -> pd.DataFrame:
    """The agent example's memory file before the agent has written anything."""
    return pd.DataFrame(
        {
            "driver_id": pd.Series([], dtype="int64"),
            "event_timestamp": pd.Series([], dtype="datetime64[ns]"),
            "last_note": pd.Series([], dtype="string"),
        }
    )


def _socket(dep: Deployed) -> str:
    rec = dep.record()
    return str(Path(rec["remote_base_dir"]) / "run" / "s" / str(rec["server_port"]))


def test_deploy_installs_the_mcp_extra_and_the_server_answers_mcp(mcp: Deployed) -> None:
    assert "extras mcp" in mcp.first_deploy.stderr, mcp.first_deploy.stderr[-2000:]
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    res = subprocess.run(
        ["curl", "-s", "--max-time", "20", "--unix-socket", _socket(mcp), "-o", "-", "-w", "\n%{http_code}",
         "-H", "Content-Type: application/json", "-H", "Accept: application/json, text/event-stream",
         "--data-binary", json.dumps(init), "http://featctl/mcp"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    body, _, code = res.stdout.rpartition("\n")
    assert code not in ("404", "000", ""), (code, body, res.stderr)
    assert "featctl-test" in body, body  # the MCP server's own name, from its initialize answer


def test_the_usual_endpoints_still_serve_right_values(mcp: Deployed) -> None:
    rows = mcp.json("score", "-w", "conv_rate=0.7,acc_rate=0.3", "-d", "1001,1002")
    data = load(mcp.repo / "data" / "driver_stats.parquet")
    for row in rows:
        q = latest(data, row["driver_id"])
        assert row["linear_combination"] == pytest.approx(0.7 * float(q.conv_rate) + 0.3 * float(q.acc_rate), rel=1e-6)


def test_an_unknown_feature_server_type_is_one_line_at_plan(tmp_path: Path) -> None:
    from tests.conftest import featctl

    shutil.copytree(
        ROOT / "feature_repo",
        tmp_path / "feature_repo",
        ignore=shutil.ignore_patterns("*.db", "*.parquet", "__pycache__"),
    )
    cfg = tmp_path / "feature_repo" / "feature_store.yaml"
    cfg.write_text(cfg.read_text() + "feature_server:\n  type: lambda\n")
    res = featctl("plan", cwd=tmp_path, timeout=300)
    assert res.returncode == 2 and "feature_server type 'lambda'" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / ".featctl" / "deployment.json").exists()


def test_views_that_are_not_materialized_do_not_stop_deploy_and_say_why(mcp: Deployed) -> None:
    assert NOT_MATERIALIZED in mcp.first_deploy.stderr, mcp.first_deploy.stderr[-3000:]
    views = {v["view"]: v["last_materialized"] for v in mcp.status()["feature_views"]}
    assert views["agent_memory"] == "not materialized: empty source: 0 rows"
    assert views["driver_archive"] == "not materialized: online=False"
    assert views["driver_skipped"] == "not materialized: [materialize] skip in featctl.toml"
    assert views["driver_hourly_stats"].startswith("20"), views  # the others were loaded
    assert NOT_MATERIALIZED in mcp.run("plan").ok().stderr  # plan notes it

    data = load(mcp.repo / "data" / "driver_stats.parquet")
    rows = mcp.json("online", "-d", "1001", "-f", "driver_skipped:acc_rate,driver_hourly_stats:acc_rate")
    # Two views' namesakes: view__feature columns. The skipped view was never loaded: null, no number.
    assert "driver_skipped__acc_rate" in rows[0] and rows[0]["driver_skipped__acc_rate"] is None, rows
    assert rows[0]["driver_hourly_stats__acc_rate"] == pytest.approx(float(latest(data, 1001).acc_rate), rel=1e-6)

    # online=False is still a view historical reads.
    ts = data.event_timestamp.max() - pd.Timedelta(hours=3)
    hist = mcp.json("historical", "-d", "1002", "--at", ts.isoformat(), "-f", "driver_archive:conv_rate")
    want = as_of(data, 1002, ts, pd.Timedelta(days=1))
    assert hist[0]["conv_rate"] == pytest.approx(float(want.conv_rate), rel=1e-6)


def test_materialize_leaves_them_out_and_refuses_one_named(mcp: Deployed) -> None:
    res = mcp.run("materialize", "--output", "json").ok()
    assert NOT_MATERIALIZED in res.stderr
    assert {d["view"] for d in json.loads(res.stdout)} >= {"driver_hourly_stats"}
    assert not {d["view"] for d in json.loads(res.stdout)} & {"agent_memory", "driver_archive", "driver_skipped"}
    for view, why in (("driver_skipped", "[materialize] skip"), ("driver_archive", "online=False")):
        res = mcp.run("materialize", "--view", view)
        assert res.returncode == 2 and why in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_an_empty_source_that_gets_rows_is_loaded_by_the_next_deploy(mcp: Deployed) -> None:
    data = load(mcp.repo / "data" / "driver_stats.parquet")
    when = data.event_timestamp.max().tz_convert("UTC").tz_localize(None) - pd.Timedelta(hours=1)
    memory = pd.DataFrame({"driver_id": [1003], "event_timestamp": [when], "last_note": ["prefers night shifts"]})
    memory.astype({"last_note": "string"}).to_parquet(mcp.repo / "data" / "agent_memory.parquet", index=False)
    res = mcp.run("deploy").ok()
    left_out = [line for line in res.stderr.splitlines() if "not materialized:" in line]
    assert left_out and all("agent_memory" not in line for line in left_out), res.stderr
    rows = mcp.json("online", "-d", "1003,1004", "-f", "agent_memory:last_note")
    assert rows == [{"driver_id": 1003, "last_note": "prefers night shifts"}, {"driver_id": 1004, "last_note": None}]
