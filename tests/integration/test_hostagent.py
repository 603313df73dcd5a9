"""featctl's host agent against real Feast 0.67, without SSH: the agent runs with a local
Feast interpreter on a copy of feature_repo/ filled with generated data.

The interpreter is FEATCTL_TEST_FEAST_PYTHON, else .venv-feast/bin/python, the
pinned host environment that `scripts/bootstrap --dev` builds.  Each Feast
subprocess costs ~10-20 s, so the expensive steps (apply, materialize, two
historical retrievals, one full-import describe) run once in module fixtures and
the tests only inspect their results.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import agent_command

ROOT = Path(__file__).resolve().parents[2]
REPO_SRC = ROOT / "feature_repo"
FEAST_PYTHON = os.environ.get("FEATCTL_TEST_FEAST_PYTHON") or str(ROOT / ".venv-feast" / "bin" / "python")

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def _feast_python() -> None:
    if not Path(FEAST_PYTHON).exists():
        pytest.fail(
            f"no Feast interpreter at {FEAST_PYTHON}: run scripts/bootstrap --dev or set FEATCTL_TEST_FEAST_PYTHON"
        )


DRIVERS = (1001, 1002, 1003)
UNKNOWN_DRIVER = 9999
T0 = datetime(2025, 8, 1, tzinfo=UTC)
TTL = {
    "driver_hourly_stats": timedelta(days=1),
    "driver_quality_metrics": timedelta(days=2),
    "driver_productivity_metrics": timedelta(days=7),
}
ODFV = "driver_activity_rates_linear_combination_fv"
SERVICE = "driver_activity_rates_linear_combination"
EPOCH_ISO = "1970-01-01T00:00:00+00:00"


# --------------------------------------------------------------------------- helpers


@dataclass
class AgentRun:
    returncode: int
    doc: dict
    stderr: str
    seconds: float


def run_agent(command: str, repo: Path, *args: str, timeout: float = 600) -> AgentRun:
    start = time.monotonic()
    agent, env = agent_command(FEAST_PYTHON)
    proc = subprocess.run(
        [*agent, command, "--repo", str(repo), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=repo.parent,
    )
    seconds = time.monotonic() - start
    # Protocol: stdout is exactly one JSON document, whatever Feast printed.
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, f"stdout must be one JSON line, got:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"
    doc = json.loads(lines[0], parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert isinstance(doc, dict)
    if proc.returncode == 0:
        assert "error" not in doc, doc
    else:
        assert proc.returncode == 1, proc.stderr[-3000:]
        assert set(doc) == {"error", "kind"} and doc["kind"] in ("input", "feast"), doc
        assert "\n" not in doc["error"]
    return AgentRun(proc.returncode, doc, proc.stderr, seconds)


def ok(run: AgentRun) -> dict:
    assert run.returncode == 0, f"{run.doc}\n{run.stderr[-4000:]}"
    return run.doc


def make_data(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hourly stats for 4 days (driver 1003 only for the first day) and a sparser
    productivity file, written with the same Arrow types as the reference data."""
    rng = random.Random(7)
    stats = []
    for driver in DRIVERS:
        hours = 24 if driver == 1003 else 96
        for h in range(hours):
            ts = T0 + timedelta(hours=h)
            stats.append(
                {
                    "event_timestamp": ts,
                    "driver_id": driver,
                    "conv_rate": rng.random(),
                    "acc_rate": rng.random(),
                    "avg_daily_trips": rng.randint(1, 1000),
                    "created": (ts + timedelta(minutes=5)).replace(tzinfo=None),
                }
            )
    prod = [dict(r, productivity=r["conv_rate"] * r["acc_rate"] * r["avg_daily_trips"]) for r in stats[::6]]
    base_fields = [
        pa.field("event_timestamp", pa.timestamp("ns", tz="UTC")),
        pa.field("driver_id", pa.int64()),
        pa.field("conv_rate", pa.float32()),
        pa.field("acc_rate", pa.float32()),
        pa.field("avg_daily_trips", pa.int32()),
        pa.field("created", pa.timestamp("us")),
    ]
    for rows, name, fields in (
        (stats, "driver_stats.parquet", base_fields),
        (prod, "driver_stats_with_productivity.parquet", [*base_fields, pa.field("productivity", pa.float64())]),
    ):
        schema = pa.schema(fields)
        table = pa.Table.from_pylist(rows, schema=schema)
        pq.write_table(table, data_dir / name)
    return read_source(data_dir / "driver_stats.parquet"), read_source(
        data_dir / "driver_stats_with_productivity.parquet"
    )


def read_source(path: Path) -> pd.DataFrame:
    df = pd.read_parquet(path)
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    df["created"] = pd.to_datetime(df["created"]).dt.tz_localize("UTC")
    return df


def as_of(src: pd.DataFrame, driver: int, ts: pd.Timestamp, ttl: timedelta, column: str) -> float:
    """Independent point-in-time lookup: newest source row with ts - ttl <= event <= ts."""
    rows = src[(src.driver_id == driver) & (src.event_timestamp <= ts) & (src.event_timestamp >= ts - ttl)]
    if rows.empty:
        return float("nan")
    return float(rows.sort_values(["event_timestamp", "created"]).iloc[-1][column])


def expected_features(entities: pd.DataFrame, stats: pd.DataFrame, prod: pd.DataFrame) -> pd.DataFrame:
    out = {}
    for name in ("avg_daily_trips", "conv_rate", "acc_rate", "productivity", "linear_combination"):
        out[name] = []
    for row in entities.itertuples():
        ts = row.ts_utc
        trips = as_of(stats, row.driver_id, ts, TTL["driver_hourly_stats"], "avg_daily_trips")
        conv = as_of(stats, row.driver_id, ts, TTL["driver_quality_metrics"], "conv_rate")
        acc = as_of(stats, row.driver_id, ts, TTL["driver_quality_metrics"], "acc_rate")
        productivity = as_of(prod, row.driver_id, ts, TTL["driver_productivity_metrics"], "productivity")
        out["avg_daily_trips"].append(trips)
        out["conv_rate"].append(conv)
        out["acc_rate"].append(acc)
        out["productivity"].append(productivity)
        out["linear_combination"].append(row.conv_rate_coef * conv + row.acc_rate_coef * acc)
    return pd.DataFrame(out)


def assert_close(actual: pd.Series, expected: pd.Series, name: str) -> None:
    a = pd.to_numeric(actual, errors="coerce").astype("float64").to_numpy()
    e = pd.to_numeric(expected, errors="coerce").astype("float64").to_numpy()
    mismatch = ~((np.isnan(a) & np.isnan(e)) | np.isclose(a, e, rtol=1e-6, atol=1e-9, equal_nan=False))
    assert not mismatch.any(), (
        f"{name}: rows {np.flatnonzero(mismatch).tolist()} actual {a[mismatch]} expected {e[mismatch]}"
    )


def entity_rows(seed: int) -> pd.DataFrame:
    """Entity rows with repeats (identical and with other coefficients), TTL edge
    cases, an unknown driver and unsorted timestamps."""
    rng = random.Random(seed)
    rows = []
    for _ in range(30):
        driver = rng.choice([*DRIVERS, UNKNOWN_DRIVER])
        ts = T0 + timedelta(minutes=rng.randint(-600, 8 * 24 * 60))
        rows.append((driver, ts, round(rng.uniform(0, 1), 3), round(rng.uniform(0, 1), 3)))
    edge = [
        (1001, T0 + timedelta(hours=10)),  # exactly on a source event
        (1001, T0 + timedelta(hours=95) + TTL["driver_hourly_stats"]),  # last event + hourly TTL: still valid
        (1001, T0 + timedelta(hours=95) + TTL["driver_hourly_stats"] + timedelta(seconds=1)),  # just expired
        (1003, T0 + timedelta(hours=23) + timedelta(days=1, hours=12)),  # hourly expired, quality valid
        (1003, T0 + timedelta(days=5)),  # only productivity valid
        (1002, T0 - timedelta(seconds=1)),  # before any data
    ]
    rows += [(d, ts, 0.7, 0.3) for d, ts in edge]
    rows += [rows[3], rows[3], rows[-2]]  # identical repeats
    rows.append((1001, T0 + timedelta(hours=10), 1.0, 0.0))  # same entity and time, other request data
    rng.shuffle(rows)
    return pd.DataFrame(rows, columns=["driver_id", "ts_utc", "conv_rate_coef", "acc_rate_coef"])


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    assert (REPO_SRC / "features.py").exists(), "feature_repo/features.py is missing"
    root = tmp_path_factory.mktemp("hostagent")
    repo = root / "feature_repo"
    shutil.copytree(
        REPO_SRC,
        repo,
        ignore=shutil.ignore_patterns("*.db", "*.db-*", "*.parquet", "__pycache__", "*.tmp"),
    )
    (repo / "data").mkdir(exist_ok=True)
    stats, prod = make_data(repo / "data")
    project = re.search(r"^project:\s*(\S+)", (repo / "feature_store.yaml").read_text(), re.M).group(1)

    not_applied = run_agent("describe", repo)
    apply = subprocess.run(
        [FEAST_PYTHON, "-m", "feast.cli.cli", "--chdir", str(repo), "apply"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert apply.returncode == 0, apply.stdout + apply.stderr
    before = run_agent("describe", repo)
    materialize = run_agent("materialize", repo)
    after = run_agent("describe", repo)
    return SimpleNamespace(
        root=root,
        repo=repo,
        project=project,
        stats=stats,
        prod=prod,
        not_applied=not_applied,
        before=ok(before),
        materialize=ok(materialize),
        after=after,
    )


@pytest.fixture(scope="module")
def by_refs(deployed):
    """--features over a CSV whose timestamps mix naive, Z and +02:00 forms."""
    ents = entity_rows(seed=11)
    offsets = [timedelta(0), None, timedelta(hours=2), timedelta(hours=-5)]
    texts = []
    for i, ts in enumerate(ents.ts_utc):
        off = offsets[i % len(offsets)]
        if off is None:
            texts.append(ts.strftime("%Y-%m-%dT%H:%M:%SZ"))
        elif off == timedelta(0):
            texts.append(ts.replace(tzinfo=None).isoformat())  # naive = UTC
        else:
            texts.append(ts.astimezone(timezone(off)).isoformat())
    csv = ents.drop(columns=["ts_utc"]).assign(event_timestamp=texts)
    csv = csv[["driver_id", "event_timestamp", "conv_rate_coef", "acc_rate_coef"]]
    path = deployed.root / "entities.csv"
    csv.to_csv(path, index=False)
    refs = [
        "driver_hourly_stats:avg_daily_trips",
        "driver_quality_metrics:conv_rate",
        "driver_quality_metrics:acc_rate",
        "driver_productivity_metrics:productivity",
        f"{ODFV}:linear_combination",
    ]
    out = deployed.root / "out" / "by_refs.parquet"
    run = run_agent(
        "historical", deployed.repo, "--entities", str(path), "--features", ",".join(refs), "--out", str(out)
    )
    return SimpleNamespace(entities=ents, run=run, out=out)


@pytest.fixture(scope="module")
def by_service(deployed):
    """--feature-service over a parquet file with naive datetime64 timestamps."""
    ents = entity_rows(seed=23)
    df = pd.DataFrame(
        {
            "event_timestamp": pd.to_datetime(ents.ts_utc, utc=True).dt.tz_localize(None),
            "driver_id": ents.driver_id,
            "label": np.arange(len(ents)),
            "conv_rate_coef": ents.conv_rate_coef,
            "acc_rate_coef": ents.acc_rate_coef,
        }
    )
    path = deployed.root / "entities.parquet"
    df.to_parquet(path, index=False)
    out = deployed.root / "out" / "by_service.parquet"
    run = run_agent(
        "historical", deployed.repo, "--entities", str(path), "--feature-service", SERVICE, "--out", str(out)
    )
    return SimpleNamespace(entities=ents, run=run, out=out)


# --------------------------------------------------------------------------- describe / materialize


def test_describe_before_apply_is_an_input_error(deployed):
    run = deployed.not_applied
    assert run.returncode == 1 and run.doc["kind"] == "input"
    assert "not applied" in run.doc["error"]


def test_describe_fast_path_and_fields(deployed):
    doc = deployed.before
    assert doc["project"] == deployed.project
    assert doc["registry_last_updated"].endswith("+00:00")
    assert doc["entities"] == [{"name": "driver", "join_keys": ["driver_id"], "join_key_types": {"driver_id": "Int64"}}]

    fvs = {fv["name"]: fv for fv in doc["feature_views"]}
    assert set(fvs) == set(TTL)
    for name, ttl in TTL.items():
        assert fvs[name]["ttl_seconds"] == ttl.total_seconds()
        assert fvs[name]["entities"] == ["driver"]
        assert fvs[name]["join_keys"] == [{"name": "driver_id", "dtype": "Int64"}]
        assert fvs[name]["online"] is True
        assert fvs[name]["last_materialized"] is None
        assert fvs[name]["materialization_intervals"] == []
    assert fvs["driver_hourly_stats"]["features"] == [
        {"name": "conv_rate", "dtype": "Float32"},
        {"name": "acc_rate", "dtype": "Float32"},
        {"name": "avg_daily_trips", "dtype": "Int64"},
    ]
    assert fvs["driver_productivity_metrics"]["features"] == [{"name": "productivity", "dtype": "Float64"}]

    (odfv,) = doc["on_demand_feature_views"]
    assert odfv["name"] == ODFV
    assert odfv["mode"] == "python"
    assert odfv["features"] == [{"name": "linear_combination", "dtype": "Float64"}]
    assert odfv["request_sources"] == {
        "linear_coefficients": [
            {"name": "conv_rate_coef", "dtype": "Float64"},
            {"name": "acc_rate_coef", "dtype": "Float64"},
        ]
    }
    assert set(odfv["source_feature_views"]) <= set(TTL) and odfv["source_feature_views"]

    (service,) = doc["feature_services"]
    assert service["name"] == SERVICE
    assert f"{ODFV}:linear_combination" in service["features"]


def test_describe_is_fast(deployed):
    run = run_agent("describe", deployed.repo)
    assert "describe (fast)" in run.stderr
    assert run.seconds < 5, f"describe took {run.seconds:.2f}s"  # ~0.3 s; `import feast` alone is ~10 s


def test_describe_fast_path_matches_feast(deployed):
    assert "describe (fast)" in deployed.after.stderr
    full = run_agent("describe", deployed.repo, "--full")
    assert "describe (full)" in full.stderr
    assert ok(full) == ok(deployed.after)


def test_first_materialize_covers_all_history(deployed):
    mat = deployed.materialize
    end = datetime.fromisoformat(mat["end"])
    assert end.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - end) < timedelta(hours=1)
    assert sorted(v["name"] for v in mat["views"]) == sorted(TTL)
    for view in mat["views"]:
        assert view["start"] == EPOCH_ISO  # not now - ttl: the data is older than any TTL
        assert view["end"] == mat["end"]

    fvs = {fv["name"]: fv for fv in ok(deployed.after)["feature_views"]}
    for name in TTL:
        assert fvs[name]["last_materialized"] == mat["end"]
        assert fvs[name]["materialization_intervals"] == [[EPOCH_ISO, mat["end"]]]

    online = sqlite3.connect(deployed.repo / "data" / "online_store.db")
    try:
        tables = [t for (t,) in online.execute("select name from sqlite_master where type='table'")]
        for name in TTL:
            (table,) = [t for t in tables if t.endswith(name)]
            assert online.execute(f'select count(*) from "{table}"').fetchone()[0] > 0
    finally:
        online.close()


# --------------------------------------------------------------------------- historical


def test_historical_one_row_per_entity_row_in_order(by_refs):
    doc = ok(by_refs.run)
    df = pd.read_parquet(by_refs.out)
    ents = by_refs.entities
    assert doc["rows"] == len(df) == len(ents)
    assert doc["out"] == str(by_refs.out)
    assert doc["columns"] == list(df.columns)
    assert list(df.columns[:4]) == ["driver_id", "event_timestamp", "conv_rate_coef", "acc_rate_coef"]
    assert ents.duplicated(["driver_id", "ts_utc"]).sum() >= 3  # the input really repeats rows
    assert df["driver_id"].tolist() == ents["driver_id"].tolist()
    assert str(df["event_timestamp"].dt.tz) == "UTC"
    expected_ts = pd.to_datetime(ents["ts_utc"], utc=True)
    assert (df["event_timestamp"].dt.tz_convert("UTC") == expected_ts.dt.tz_convert("UTC")).all()
    assert df["conv_rate_coef"].tolist() == ents["conv_rate_coef"].tolist()
    assert not list(by_refs.out.parent.glob(".*.tmp"))


def test_historical_matches_point_in_time_pandas(deployed, by_refs):
    ok(by_refs.run)
    df = pd.read_parquet(by_refs.out)
    ents = by_refs.entities.assign(ts_utc=pd.to_datetime(by_refs.entities.ts_utc, utc=True))
    want = expected_features(ents, deployed.stats, deployed.prod)
    for column in want.columns:
        assert_close(df[column], want[column], column)
    # The edge rows are in the data: a row with only quality/productivity values,
    # expired and unknown drivers, and rows with everything set.
    assert df["avg_daily_trips"].isna().any() and df["avg_daily_trips"].notna().any()
    assert (df["avg_daily_trips"].isna() & df["conv_rate"].notna()).any()
    assert (df["conv_rate"].isna() & df["productivity"].notna()).any()


def test_historical_request_data_feeds_the_on_demand_view(by_refs):
    df = pd.read_parquet(by_refs.out)
    expected = df["conv_rate_coef"] * df["conv_rate"].astype("float64") + df["acc_rate_coef"] * df["acc_rate"].astype(
        "float64"
    )
    assert_close(df["linear_combination"], expected, "linear_combination")
    # Repeated (driver, time) rows with different coefficients get their own value.
    same = df[df.duplicated(["driver_id", "event_timestamp"], keep=False) & df["conv_rate"].notna()]
    assert same.groupby(["driver_id", "event_timestamp"])["linear_combination"].nunique().max() >= 2


def test_historical_feature_service_from_parquet(deployed, by_service):
    doc = ok(by_service.run)
    df = pd.read_parquet(by_service.out)
    ents = by_service.entities.assign(ts_utc=pd.to_datetime(by_service.entities.ts_utc, utc=True))
    assert doc["rows"] == len(df) == len(ents)
    assert df["label"].tolist() == list(range(len(ents)))  # extra columns pass through, in order
    assert df.columns[-3:].tolist() == ["conv_rate", "acc_rate", "linear_combination"]
    assert (df["event_timestamp"].dt.tz_convert("UTC") == ents["ts_utc"]).all()  # naive input = UTC
    want = expected_features(ents, deployed.stats, deployed.prod)
    for column in ("conv_rate", "acc_rate", "linear_combination"):
        assert_close(df[column], want[column], column)


def test_historical_input_errors(deployed):
    good = deployed.root / "good.csv"
    good.write_text("driver_id,event_timestamp,conv_rate_coef,acc_rate_coef\n1001,2025-08-02T00:00:00,0.7,0.3\n")
    no_ts = deployed.root / "no_ts.csv"
    no_ts.write_text("driver_id,ts\n1001,2025-08-02T00:00:00\n")
    no_keys = deployed.root / "no_keys.csv"
    no_keys.write_text("event_timestamp,conv_rate_coef\n2025-08-02T00:00:00,0.7\n")
    out = str(deployed.root / "out" / "never.parquet")

    run = run_agent(
        "historical",
        deployed.repo,
        "--entities",
        str(no_ts),
        "--features",
        "driver_hourly_stats:conv_rate",
        "--out",
        out,
    )
    assert (run.returncode, run.doc["kind"]) == (1, "input")
    assert "event_timestamp" in run.doc["error"]

    run = run_agent("historical", deployed.repo, "--entities", str(no_keys), "--feature-service", SERVICE, "--out", out)
    assert (run.returncode, run.doc["kind"]) == (1, "input")
    missing = run.doc["error"].split(": ", 1)[1].split(" (")[0]  # "...missing column(s): a, b (why...)"
    assert "driver_id" in missing and "acc_rate_coef" in missing
    assert "conv_rate_coef" not in missing  # present columns are not reported

    refs = "driver_hourly_stats:conv_rate,driver_hourly_stats:no_such_feature,no_such_view:x"
    run = run_agent("historical", deployed.repo, "--entities", str(good), "--features", refs, "--out", out)
    assert (run.returncode, run.doc["kind"]) == (1, "input")
    assert "no_such_feature" in run.doc["error"] and "no_such_view" in run.doc["error"]
    assert not Path(out).exists()
