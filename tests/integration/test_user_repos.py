"""User-shaped repositories (tests/userrepos.py) deployed with featctl on the
local target, their answers compared with the pandas point-in-time reference.

One module-scoped deployment of the credit repository (string and composite
keys, same-time rows whose later-created row comes first in the file, nullable
Int64, UnixTimestamp, an applicant with nothing inside the TTL) serves every
test here; the tests only read. Other #15 tests that read the credit
deployment may join this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import featctl
from tests.integration.conftest import Deployed, _deploy, processes_under
from tests.userrepos import (
    BUREAUS,
    CREDIT_APPLICANTS,
    CREDIT_PROFILE,
    CREDIT_REPORT,
    credit_reference,
    point_in_time,
    write_credit,
)

pytestmark = pytest.mark.integration

NOW = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
PROFILE = CREDIT_PROFILE
REPORT = CREDIT_REPORT


@pytest.fixture(scope="module")
def credit(tmp_path_factory) -> Iterator[Deployed]:
    root = tmp_path_factory.mktemp("credit")
    repo = write_credit(root, NOW)
    (root / "featctl.toml").write_text('repo = "credit"\nserver_workers = 1\n')
    for d in _deploy(root):
        d.repo = repo
        yield d
    assert processes_under(root / ".featctl") == []


def tie_times() -> dict[str, datetime]:
    """The instants where an applicant has two rows (tests/userrepos.py:write_credit)."""
    return {a: NOW - timedelta(days=day, hours=CREDIT_APPLICANTS.index(a)) for a, day in
            (("A-001", 10), ("007", 4), ("B-10", 0))}


def entity_rows(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ents = pd.DataFrame(
        {
            "applicant_id": rng.choice([*CREDIT_APPLICANTS, "nobody"], n),
            "bureau": rng.choice(BUREAUS, n),
            "event_timestamp": [NOW - timedelta(minutes=float(m)) for m in rng.uniform(-60, 70 * 24 * 60, n)],
            "income_coef": rng.uniform(-1, 1, n).round(3),
            "debt_coef": rng.uniform(-1, 1, n).round(3),
        }
    )
    ties = tie_times()
    pinned = [(a, t) for a, t in ties.items()] + [("b-10", NOW), ("A-002", NOW - timedelta(days=3))]
    for i, (a, t) in enumerate(pinned):  # the tie instants and the applicant outside the TTL
        ents.loc[i, ["applicant_id", "bureau", "event_timestamp"]] = [a, "equifax", t]
    ents = pd.concat([ents, ents.iloc[: n // 10]], ignore_index=True)  # repeated rows are kept
    ents["event_timestamp"] = pd.to_datetime(ents["event_timestamp"], utc=True)
    return ents


def reference(d: Deployed, ents: pd.DataFrame) -> pd.DataFrame:
    return credit_reference(d.repo, ents)


def assert_column(got: pd.Series, want: pd.Series, name: str) -> None:
    assert len(got) == len(want), name
    g_null, w_null = got.isna().to_numpy(), want.isna().to_numpy()
    assert (g_null == w_null).all(), f"{name}: nulls differ at rows {np.nonzero(g_null != w_null)[0][:10]}"
    g, w = got[~g_null], want[~w_null]
    if pd.api.types.is_float_dtype(w.dtype):
        assert np.allclose(g.astype(float).to_numpy(), w.astype(float).to_numpy(), rtol=1e-12, atol=1e-9), name
    elif pd.api.types.is_datetime64_any_dtype(w.dtype):
        assert (pd.to_datetime(g, utc=True).to_numpy() == pd.to_datetime(w, utc=True).to_numpy()).all(), name
    else:
        assert g.astype(object).tolist() == w.astype(object).tolist(), name


@pytest.fixture(scope="module")
def big(credit: Deployed, tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One historical call over 3,000+ entity rows: both views and the score view."""
    tmp = tmp_path_factory.mktemp("credit-big")
    ents = entity_rows(3000, seed=15)
    ents.to_parquet(tmp / "entities.parquet", index=False)
    refs = ",".join([f"credit_profile:{f}" for f in PROFILE] + [f"bureau_reports:{f}" for f in REPORT])
    out = tmp / "out.parquet"
    featctl("historical", "--entities", str(tmp / "entities.parquet"), "-f", refs, "--out", str(out),
            "--output", "json", cwd=credit.root, timeout=600).ok()
    return ents, pd.read_parquet(out)


def test_credit_historical_equals_the_pandas_reference(credit, big):
    ents, got = big
    want = reference(credit, ents)
    assert len(got) == len(ents)
    assert got["applicant_id"].tolist() == ents["applicant_id"].tolist()  # input order, repeats kept
    assert (pd.to_datetime(got["event_timestamp"], utc=True) == ents["event_timestamp"]).all()
    for c in [*PROFILE, *REPORT]:
        assert_column(got[c], want[c], c)
    # The data really holds the edge cases.
    assert got["income"].isna().any() and got["delinquencies"].isna().any()
    assert (got["applicant_id"] == "b-10").any() and got.loc[got["applicant_id"] == "b-10", "income"].isna().any()


def test_the_score_view_runs_on_the_joined_rows(credit, big, tmp_path):
    """Feast's on-demand view code on top of the join (the user's python-mode UDF
    takes no nulls, as with Feast's SDK: only rows with a profile)."""
    ents, got = big
    rows = ents[got["income"].notna().to_numpy()].head(500).reset_index(drop=True)
    rows.to_parquet(tmp_path / "e.parquet", index=False)
    featctl("historical", "--entities", str(tmp_path / "e.parquet"), "-f", "risk_score:risk_score",
            "--out", str(tmp_path / "o.parquet"), "--output", "json", cwd=credit.root).ok()
    out = pd.read_parquet(tmp_path / "o.parquet")
    assert_column(out["risk_score"], reference(credit, rows)["risk_score"], "risk_score")


def test_the_feature_server_and_the_agent_process_give_the_same_rows(credit, big, tmp_path):
    """historical and score --entities run inside the serving feature server
    (FEATCTL_HISTORICAL_VIA=server fails rather than fall back) and in the
    agent's own process (=process, what every call did before): the same frame,
    types included, equal to the pandas reference; a request the server refuses
    is the same one line and exit 2 as before."""
    ents, got = big
    rows = ents[got["income"].notna().to_numpy()].head(1500).reset_index(drop=True)  # risk_score takes no nulls
    rows.to_parquet(tmp_path / "e.parquet", index=False)
    refs = ",".join([f"credit_profile:{f}" for f in PROFILE] + [f"bureau_reports:{f}" for f in REPORT]
                    + ["risk_score:risk_score"])
    frames = {}
    for via in ("server", "process"):
        for cmd in ("historical", "score"):
            out = tmp_path / f"{cmd}-{via}.parquet"
            args = ["-f", refs] if cmd == "historical" else []
            featctl(cmd, "--entities", str(tmp_path / "e.parquet"), *args, "--out", str(out), cwd=credit.root,
                    env={"FEATCTL_HISTORICAL_VIA": via}, timeout=600).ok()
            frames[cmd, via] = pd.read_parquet(out)
    want = reference(credit, rows)
    for cmd in ("historical", "score"):
        pd.testing.assert_frame_equal(frames[cmd, "server"], frames[cmd, "process"])
        for c in ["income", "debt", "risk_score"] + ([*PROFILE, *REPORT] if cmd == "historical" else []):
            assert_column(frames[cmd, "server"][c], want[c], f"{cmd} {c}")
    assert frames["score", "server"]["risk_score"].notna().all()
    rows.drop(columns=["debt_coef"]).to_parquet(tmp_path / "bad.parquet", index=False)
    for via in ("server", "process"):
        res = featctl("historical", "--entities", str(tmp_path / "bad.parquet"), "-f", "risk_score:risk_score",
                      cwd=credit.root, env={"FEATCTL_HISTORICAL_VIA": via})
        assert res.returncode == 2 and res.stdout == "", res.stderr
        assert res.stderr.strip().splitlines() == [
            "featctl: error: entity file is missing column(s): debt_coef "
            "(debt_coef: request data risk_weights for risk_score)"
        ], res.stderr


def test_ties_take_the_later_created_row_even_when_it_comes_first_in_the_file(big):
    ents, got = big
    for applicant, at in tie_times().items():
        rows = got[(ents["applicant_id"] == applicant) & (ents["event_timestamp"] == at)]
        assert len(rows) >= 1
        assert (rows["open_loans"] == 9).all() and (rows["income"] >= 77777.0).all(), applicant
    a002 = got[(ents["applicant_id"] == "A-002") & (ents["bureau"] == "equifax")
               & (ents["event_timestamp"] == NOW - timedelta(days=3))]
    assert (a002["delinquencies"] == 42).all() and (a002["credit_limit"] == 4242.0).all()


def test_types_survive_the_join(big):
    _, got = big
    for c in ("delinquencies", "open_loans"):  # nulls (no data, unknown applicants) do not make them float64
        assert str(got[c].dtype) == "Int64" and got[c].isna().any(), c
    assert str(got["last_payment"].dtype).startswith("datetime64") and str(got["last_payment"].dt.tz) == "UTC"


def test_the_same_entity_row_alone_gives_the_same_value(credit, big):
    ents, got = big
    ties = tie_times()
    at = ties["B-10"]
    rows = json.loads(
        featctl("historical", "--entity", "applicant_id=B-10", "--at", at.isoformat(), "-f", "credit_profile:income",
                "--output", "json", cwd=credit.root).ok().stdout
    )
    in_file = got.loc[(ents["applicant_id"] == "B-10") & (ents["event_timestamp"] == at), "income"]
    assert [r["income"] for r in rows] == [float(in_file.iloc[0])] == [77777.0]
    # A small file of rows picked from the big one: every value as in the big answer.
    pick = [0, 1, 2, 3, 4, 17, 1234, len(ents) - 1]
    small_in = Path(credit.root) / "small.parquet"
    ents.iloc[pick].to_parquet(small_in, index=False)
    small_out = Path(credit.root) / "small_out.parquet"
    featctl("historical", "--entities", str(small_in), "--feature-service", "credit_model", "--out", str(small_out),
            "--output", "json", cwd=credit.root).ok()
    small = pd.read_parquet(small_out)
    for c in ("income", "open_loans", "delinquencies", "credit_limit"):
        assert_column(small[c].reset_index(drop=True), got[c].iloc[pick].reset_index(drop=True), c)


# --- events: arrays and every scalar type through the agent's join (no deployment) ----------

EVENT_FEATURES = ["clicks", "purchases", "ctr", "revenue", "segment", "is_active", "last_seen", "embedding", "tags",
                  "recent_items"]


def test_events_arrays_and_types_pass_through_the_agent(tmp_path):
    """The events repository applied with the pinned Feast (.venv-feast) and
    queried through featctl's agent: Array(Float32/String/Int64), Int32, Bool,
    UnixTimestamp come out with their values and Arrow types, as the reference."""
    import os
    import subprocess

    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.conftest import ROOT, agent_command
    from tests.userrepos import EVENT_USERS, write_events

    python = os.environ.get("FEATCTL_TEST_FEAST_PYTHON") or str(ROOT / ".venv-feast" / "bin" / "python")
    repo = write_events(tmp_path, NOW)
    feast_bin = Path(python).parent / "feast"
    apply = subprocess.run([str(feast_bin), "apply"], cwd=repo, capture_output=True, text=True, timeout=300)
    assert apply.returncode == 0, apply.stderr[-3000:]
    rng = np.random.default_rng(9)
    n = 300
    ents = pd.DataFrame(
        {
            "user_id": rng.choice([*EVENT_USERS, 77], n),
            "event_timestamp": [NOW - timedelta(hours=float(h)) for h in rng.uniform(-2, 24 * 12, n)],
        }
    )
    ents["event_timestamp"] = pd.to_datetime(ents["event_timestamp"], utc=True)
    ents.to_parquet(tmp_path / "e.parquet", index=False)
    agent, env = agent_command(python)
    refs = ",".join(f"user_events:{f}" for f in EVENT_FEATURES)
    run = subprocess.run(
        [*agent, "historical", "--repo", str(repo), "--entities", str(tmp_path / "e.parquet"), "--features", refs,
         "--out", str(tmp_path / "o.parquet")],
        env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert json.loads(run.stdout)["engine"] == "as-of join (file)"
    got = pq.read_table(tmp_path / "o.parquet")
    source = pd.read_parquet(repo / "data" / "user_events.parquet")
    want = point_in_time(ents, source, ["user_id"], EVENT_FEATURES, timestamp="event_timestamp", created="created",
                         ttl=timedelta(days=7))
    assert got.schema.field("embedding").type == pa.list_(pa.float32())
    assert got.schema.field("tags").type == pa.list_(pa.string())
    assert got.schema.field("recent_items").type == pa.list_(pa.int64())
    assert got.schema.field("clicks").type == pa.int32() and got.schema.field("is_active").type == pa.bool_()
    assert pa.types.is_timestamp(got.schema.field("last_seen").type)
    for f in EVENT_FEATURES:
        mine = got.column(f).to_pylist()
        theirs = [None if not isinstance(v, (list, np.ndarray)) and pd.isna(v) else v for v in want[f]]
        if f in ("embedding", "tags", "recent_items"):
            theirs = [None if v is None else list(v) for v in theirs]
            if f == "embedding":  # float32 values compared as float32
                theirs = [None if v is None else [float(np.float32(x)) for x in v] for v in theirs]
        elif f == "last_seen":
            theirs = [None if v is None else pd.Timestamp(v).to_pydatetime() for v in theirs]
            mine = [None if v is None else pd.Timestamp(v).tz_convert("UTC").to_pydatetime() for v in mine]
        elif f == "ctr":
            theirs = [None if v is None else float(np.float32(v)) for v in theirs]
        else:
            theirs = [None if v is None else (v.item() if hasattr(v, "item") else v) for v in theirs]
        assert mine == theirs, f
    assert got.column("embedding").null_count > 0 and got.column("embedding").null_count < n
