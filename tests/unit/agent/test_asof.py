"""The agent's as-of join (agent/asof.py) against the pandas reference
(tests/userrepos.py:point_in_time) on both shapes of training data, with
duplicates, out-of-TTL rows, ties, nulls, arrays and string/composite keys.

The join runs in this process (its pandas/pyarrow); the last test runs it
again in the pinned host environment (.venv-feast) on the same data.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from featctl.agent.asof import NAT, ViewSpec, asof_index, join_view, key_groups, ts_ns
from tests.userrepos import CREDIT_APPLICANTS, point_in_time, write_credit

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parents[3]


def run_join(entities, source, keys, features, *, ts="ts", created=None, ttl=None, source_keys=None):
    spec = ViewSpec(
        name="v",
        keys=list(zip(keys, source_keys or keys)),
        timestamp=ts,
        created=created,
        features=[(f, f) for f in features],
        ttl_ns=int(ttl.total_seconds() * 1e9) if ttl else None,
    )
    table = pa.Table.from_pandas(source.reset_index(drop=True), preserve_index=False)
    ent_ts = ts_ns(pd.to_datetime(entities["event_timestamp"], utc=True))
    cols = join_view({k: entities[k] for k in keys}, ent_ts, table, spec)
    return pa.table(cols)


def assert_same(got: pa.Table, want: pd.DataFrame, features) -> None:
    assert got.num_rows == len(want)
    for f in features:
        mine = got.column(f).to_pylist()
        theirs = [None if (not isinstance(v, (list, np.ndarray)) and pd.isna(v)) else v for v in want[f]]
        theirs = [list(v) if isinstance(v, np.ndarray) else v for v in theirs]
        assert mine == theirs, f


def random_shape(rng, n_entities, rows_per_entity, n_rows, *, dup_times=True):
    """Source: rows_per_entity rows per entity on an hourly-ish grid, some same-time
    pairs; entity rows at random times over a span wider than the data."""
    src = []
    for e in range(n_entities):
        hours = np.sort(rng.choice(24 * 60, size=rows_per_entity, replace=dup_times))
        for i, h in enumerate(hours):
            ts = T0 + timedelta(hours=int(h))
            src.append({"k": e, "ts": ts, "created": ts + timedelta(minutes=int(rng.integers(0, 3))), "v": float(i),
                        "n": int(rng.integers(0, 100))})
    source = pd.DataFrame(src).sample(frac=1.0, random_state=int(rng.integers(0, 1000))).reset_index(drop=True)
    ents = pd.DataFrame(
        {
            "k": rng.integers(-1, n_entities + 1, n_rows),  # some unknown entities
            "event_timestamp": [T0 + timedelta(hours=float(x)) for x in rng.uniform(-24, 24 * 62, n_rows)],
        }
    )
    ents = pd.concat([ents, ents.iloc[: n_rows // 10]], ignore_index=True)  # duplicates
    return source, ents


@pytest.mark.parametrize(
    "shape",
    [(5, 360, 2000), (2000, 3, 3000)],
    ids=["few entities x many rows", "many entities x few rows"],
)
@pytest.mark.parametrize("ttl", [None, timedelta(days=2)], ids=["no ttl", "ttl"])
def test_matches_the_reference_on_both_shapes(shape, ttl):
    rng = np.random.default_rng(17)
    source, ents = random_shape(rng, *shape)
    want = point_in_time(ents, source, ["k"], ["v", "n"], timestamp="ts", created="created", ttl=ttl)
    got = run_join(ents, source, ["k"], ["v", "n"], created="created", ttl=ttl)
    assert_same(got, want, ["v", "n"])
    assert got.column("n").type == pa.int64()  # no float64 from the nulls of unmatched rows
    assert got.column("n").null_count > 0


def test_ties_latest_created_wins_then_the_last_row():
    source = pd.DataFrame(
        {
            "k": ["a", "a", "a", "a", "a"],
            "ts": [T0, T0, T0, T0 - timedelta(hours=1), T0],
            "created": [T0 + timedelta(hours=3), T0, T0 + timedelta(hours=3), T0, pd.NaT],
            "v": [1, 2, 3, 4, 5],
        }
    )
    ents = pd.DataFrame({"k": ["a"], "event_timestamp": [T0]})
    got = run_join(ents, source, ["k"], ["v"], created="created")
    assert got.column("v").to_pylist() == [3]  # rows 0 and 2 tie on created: the later row
    got = run_join(ents, source.iloc[[1, 3, 4]], ["k"], ["v"], created="created")
    assert got.column("v").to_pylist() == [2]  # a missing created time is the oldest
    got = run_join(ents, source.iloc[[0, 1, 2]], ["k"], ["v"])  # no created column: the last row
    assert got.column("v").to_pylist() == [3]


def test_the_same_entity_row_gets_the_same_value_alone_or_in_a_big_frame():
    rng = np.random.default_rng(3)
    source, ents = random_shape(rng, 20, 50, 5000)
    big = run_join(ents, source, ["k"], ["v"], created="created").column("v").to_pylist()
    for i in (0, 17, 2500, len(ents) - 1):
        alone = run_join(ents.iloc[[i]], source, ["k"], ["v"], created="created").column("v").to_pylist()
        assert alone == [big[i]]


def test_ttl_bounds_are_inclusive_and_zero_means_none():
    source = pd.DataFrame({"k": [1, 1], "ts": [T0 - timedelta(days=1), T0 + timedelta(hours=1)], "v": [1.0, 2.0]})
    ents = pd.DataFrame({"k": [1, 1, 1], "event_timestamp": [T0, T0 + timedelta(seconds=1), T0 - timedelta(days=1)]})
    got = run_join(ents, source, ["k"], ["v"], ttl=timedelta(days=1))
    assert got.column("v").to_pylist() == [1.0, None, 1.0]
    spec_zero = run_join(ents, source, ["k"], ["v"], ttl=timedelta(0))
    assert spec_zero.column("v").to_pylist() == [1.0, 1.0, 1.0]


def test_composite_string_keys_keep_leading_zeros_and_case():
    source = pd.DataFrame(
        {
            "applicant_id": ["007", "7", "B-10", "b-10", "007"],
            "bureau": ["x", "x", "x", "x", "y"],
            "ts": [T0] * 5,
            "v": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    ents = pd.DataFrame(
        {
            "applicant_id": ["007", "7", "b-10", "B-10", "007", None, "007"],
            "bureau": ["x", "x", "x", "x", "y", "x", None],
            "event_timestamp": [T0 + timedelta(hours=1)] * 7,
        }
    )
    got = run_join(ents, source, ["applicant_id", "bureau"], ["v"])
    assert got.column("v").to_pylist() == [1.0, 2.0, 4.0, 3.0, 5.0, None, None]


def test_join_key_map_reads_the_source_column_under_another_name():
    source = pd.DataFrame({"driver_id": [1, 2], "ts": [T0, T0], "v": [10, 20]})
    ents = pd.DataFrame({"origin_id": [2, 1, 3], "event_timestamp": [T0] * 3})
    got = run_join(ents, source, ["origin_id"], ["v"], source_keys=["driver_id"])
    assert got.column("v").to_pylist() == [20, 10, None]


def test_types_pass_through_arrays_nullable_ints_and_timestamps():
    source = pa.table(
        {
            "k": pa.array([1, 2, 2], pa.int64()),
            "ts": pa.array([T0, T0, T0 + timedelta(hours=1)], pa.timestamp("us", "UTC")),
            "emb": pa.array([[0.5, -1.25], [1.0, 2.0], [3.0, 4.5]], pa.list_(pa.float32())),
            "tags": pa.array([["a"], [], None], pa.list_(pa.string())),
            "cnt": pa.array([None, 4, 5], pa.int64()),
            "seen": pa.array([T0 - timedelta(days=1), None, T0], pa.timestamp("ns")),
        }
    )
    spec = ViewSpec("v", [("k", "k")], "ts", None, [(c, c) for c in ("emb", "tags", "cnt", "seen")])
    ents = pd.DataFrame({"k": [1, 2, 3, 2], "event_timestamp": [T0 + timedelta(hours=2)] * 3 + [T0]})
    got = pa.table(join_view({"k": ents["k"]}, ts_ns(ents["event_timestamp"]), source, spec))
    assert got.schema.field("emb").type == pa.list_(pa.float32())
    assert got.column("emb").to_pylist() == [[0.5, -1.25], [3.0, 4.5], None, [1.0, 2.0]]
    assert got.column("tags").to_pylist() == [["a"], None, None, []]
    assert got.schema.field("cnt").type == pa.int64()
    assert got.column("cnt").to_pylist() == [None, 5, None, 4]
    assert got.schema.field("seen").type == pa.timestamp("ns")
    assert got.column("seen").to_pylist()[1] == T0.replace(tzinfo=None)


def test_naive_and_aware_source_times_are_both_utc():
    naive = pa.array([datetime(2025, 1, 1, 12)], pa.timestamp("ns"))
    aware = pa.array([datetime(2025, 1, 1, 12, tzinfo=timezone.utc)], pa.timestamp("us", "UTC"))
    assert ts_ns(naive).tolist() == ts_ns(aware).tolist()
    assert ts_ns(pa.array([None], pa.timestamp("ms"))).tolist() == [NAT]


def test_key_groups_null_and_type_edges():
    ge, gs = key_groups([pd.Series([1, None, 3])], [pd.Series([3, 1])])
    assert ge[1] == -1 and ge[0] == gs[1] and ge[2] == gs[0]
    ge, gs = key_groups([], [])
    assert len(ge) == 0 and len(gs) == 0


def test_asof_index_without_rows():
    assert asof_index([0], [1], [], []).tolist() == [-1]
    assert asof_index([], [], [0], [1]).tolist() == []


def test_credit_repository_data(tmp_path):
    """The user-shaped credit data: ties whose later-created row comes first,
    an applicant with nothing inside the TTL, nullable Int64, UnixTimestamp."""
    now = datetime(2026, 6, 1, tzinfo=timezone.utc)
    repo = write_credit(tmp_path, now)
    profiles = pd.read_parquet(repo / "data" / "profiles.parquet")
    reports = pd.read_parquet(repo / "data" / "reports.parquet")
    rng = np.random.default_rng(5)
    n = 400
    ents = pd.DataFrame(
        {
            "applicant_id": rng.choice(CREDIT_APPLICANTS + ["nobody"], n),
            "bureau": rng.choice(["equifax", "experian"], n),
            "event_timestamp": [now - timedelta(hours=float(h)) for h in rng.uniform(-5, 24 * 70, n)],
        }
    )
    ents.loc[0:4, "event_timestamp"] = now  # the tie instants of B-10 and more
    ents.loc[0:4, "applicant_id"] = ["B-10", "A-001", "007", "b-10", "A-002"]
    feats = ["income", "debt", "open_loans", "last_payment"]
    want = point_in_time(ents, profiles, ["applicant_id"], feats, timestamp="event_ts", created="created_ts",
                         ttl=timedelta(days=30))
    got = run_join(ents, profiles, ["applicant_id"], feats, ts="event_ts", created="created_ts", ttl=timedelta(days=30))
    assert_same(got.select(["income", "debt", "open_loans"]), want, ["income", "debt", "open_loans"])
    assert got.column("last_payment").to_pylist() == [None if pd.isna(v) else v.to_pydatetime() for v in want["last_payment"]]
    assert got.column("income").to_pylist()[0] == 77777.0  # B-10 at now: the later-created row
    assert got.column("income").to_pylist()[3] is None  # b-10: nothing within 30 days
    rep = ["delinquencies", "credit_limit"]
    want = point_in_time(ents, reports, ["applicant_id", "bureau"], rep, timestamp="event_ts", created="created_ts",
                         ttl=timedelta(days=90))
    got = run_join(ents, reports, ["applicant_id", "bureau"], rep, ts="event_ts", created="created_ts",
                   ttl=timedelta(days=90))
    assert_same(got, want, rep)
    assert got.schema.field("delinquencies").type == pa.int64()


HOST_SCRIPT = """
import json, sys
import pandas as pd, pyarrow as pa
sys.path.insert(0, sys.argv[1])
from asof import ViewSpec, join_view, ts_ns
import pyarrow.parquet as pq
ents = pd.read_parquet(sys.argv[2])
src = pq.read_table(sys.argv[3])
spec = ViewSpec("v", [("k", "k")], "ts", "created", [("v", "v"), ("n", "n")], int(2 * 86400e9))
out = join_view({"k": ents["k"]}, ts_ns(ents["event_timestamp"]), src, spec)
print(json.dumps({c: a.to_pylist() for c, a in out.items()}))
"""


def test_the_pinned_host_environment_gives_the_same_answer(tmp_path):
    python = os.environ.get("FEATCTL_TEST_FEAST_PYTHON") or str(ROOT / ".venv-feast" / "bin" / "python")
    if not Path(python).exists():
        pytest.skip("no .venv-feast (scripts/bootstrap --dev builds it)")
    rng = np.random.default_rng(23)
    source, ents = random_shape(rng, 50, 40, 3000)
    ents.to_parquet(tmp_path / "e.parquet", index=False)
    source.to_parquet(tmp_path / "s.parquet", index=False)
    (tmp_path / "host.py").write_text(HOST_SCRIPT)
    agent_dir = ROOT / "src" / "featctl" / "agent"
    proc = subprocess.run(
        [python, str(tmp_path / "host.py"), str(agent_dir), str(tmp_path / "e.parquet"), str(tmp_path / "s.parquet")],
        capture_output=True, text=True, timeout=120, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert proc.returncode == 0, proc.stderr
    host = json.loads(proc.stdout)
    want = point_in_time(ents, source, ["k"], ["v", "n"], timestamp="ts", created="created", ttl=timedelta(days=2))
    here = run_join(ents, source, ["k"], ["v", "n"], created="created", ttl=timedelta(days=2))
    assert host == {c: here.column(c).to_pylist() for c in ("v", "n")}
    assert_same(here, want, ["v", "n"])
