"""Users' own data flows that gave wrong numbers with exit 0 (issue #15, items
1-3), on repositories written the way users write them (tests/userrepos.py):

* moving a running deployment to Redis (and back), a Redis that lost its
  data: every answer equals pandas on the repository's data, ``status`` says
  unhealthy exactly while the online store is wrong, ``materialize`` repairs it;
* an offline push through the feature server survives the next deploy, a
  data file changed on both sides stops the deploy until the user chooses;
* a data file whose path the definitions build with ``os.path.abspath``
  is reloaded in full when it changes.

Each module-scoped deployment goes through its steps in order.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import featctl
from tests.integration.conftest import Deployed, processes_under
from tests.userrepos import (
    CHURN_CUSTOMERS,
    EVENT_USERS,
    churn_frame,
    point_in_time,
    typed_events,
    write_churn,
    write_events,
    write_events_data,
)

pytestmark = pytest.mark.integration

WEIGHTS = {"sessions": 0.5, "support_tickets": 2.0}


def deploy(root: Path, repo: str) -> Deployed:
    d = Deployed(root)
    d.repo = root / repo
    (root / "featctl.toml").write_text(f'repo = "{repo}"\nserver_workers = 1\n')
    d.first_deploy = featctl("deploy", cwd=root, timeout=1200).ok()
    return d


def teardown(d: Deployed) -> None:
    if (d.workspace / "deployment.json").exists():
        featctl("destroy", "--yes", cwd=d.root, timeout=300).ok()
    assert processes_under(d.workspace) == []


def health(d: Deployed) -> str:
    return str(d.status()["deployment"]["feature_server"])


# --- moving to Redis, a Redis that lost its data ------------------------------------------


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    root = tmp_path_factory.mktemp("churn")
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    write_churn(root, now)
    d = deploy(root, "churn")
    d.now = now
    try:
        yield d
    finally:
        teardown(d)


def churn_reference(now: datetime) -> dict[int, float]:
    """The score online serving must give: each customer's newest row, weighted."""
    frame = churn_frame(now)
    entities = pd.DataFrame({"customer_id": CHURN_CUSTOMERS, "event_timestamp": [now] * len(CHURN_CUSTOMERS)})
    ref = point_in_time(
        entities, frame, ["customer_id"], ["sessions", "support_tickets"], timestamp="ts", ttl=timedelta(days=14)
    )
    return {
        int(r.customer_id): r.sessions * WEIGHTS["sessions"] + r.support_tickets * WEIGHTS["support_tickets"]
        for r in ref.itertuples()
    }


def churn_scores(d: Deployed) -> dict[int, float]:
    args = [a for c in CHURN_CUSTOMERS for a in ("--entity", f"customer_id={c}")]
    weights = ",".join(f"{k}={v}" for k, v in WEIGHTS.items())
    rows = d.json("score", "--weights", weights, *args)
    assert [r["customer_id"] for r in rows] == CHURN_CUSTOMERS
    return {int(r["customer_id"]): r["churn_score"] for r in rows}


def redis_cli(d: Deployed, *command: str) -> str:
    where = d.record()["stores"]["redis"]
    password = (d.workspace / "secrets" / "redis.password").read_text().strip()
    tls = ["--tls", "--cacert", str(where["ca_file"])] if where.get("tls") else []
    out = subprocess.run(
        ["redis-cli", "-h", str(where["host"]), "-p", str(where["port"]), *tls, "--no-auth-warning", *command],
        env={"REDISCLI_AUTH": password, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_moving_to_redis_loads_every_view_and_answers_right(churn):
    d = churn
    expected = churn_reference(d.now)
    assert churn_scores(d) == pytest.approx(expected)
    moved = d.run("deploy", "--stores", "redis", timeout=1200).ok()
    # Before: "materialized customer_activity (incremental)" into an empty Redis,
    # every value null, exit 0, status healthy.
    assert "materialized customer_activity (all data)" in moved.stderr, moved.stderr
    assert int(redis_cli(d, "DBSIZE")) >= len(CHURN_CUSTOMERS)
    assert churn_scores(d) == pytest.approx(expected)
    assert health(d).startswith("healthy")


def test_a_redis_that_lost_its_data_is_unhealthy_until_materialize_repairs_it(churn):
    d = churn
    redis_cli(d, "FLUSHALL")
    # Feast's Redis store answers PRESENT with nulls for keys it never got.
    verdict = health(d)
    assert verdict.startswith("unhealthy") and "no customer_activity:" in verdict, verdict
    repaired = d.run("materialize", "--output", "json").ok()
    modes = {m["view"]: m["mode"] for m in json.loads(repaired.stdout)}
    assert modes["customer_activity"] == "repaired (all data)"
    assert churn_scores(d) == pytest.approx(churn_reference(d.now))
    assert health(d).startswith("healthy")


def test_back_to_sqlite_is_another_store_and_loads_in_full(churn):
    d = churn
    back = d.run("deploy", timeout=1200).ok()  # no stores: the release's online store is sqlite again
    assert "materialized customer_activity (all data)" in back.stderr, back.stderr
    assert churn_scores(d) == pytest.approx(churn_reference(d.now))
    assert health(d).startswith("healthy")


def test_a_shared_registry_survives_a_failed_release(churn):
    """stores = postgres: Feast's SQL registry, shared by every release, records
    the sqlite online store of the release that applied last. A release that
    failed after its `feast apply` made the next apply tear down the serving
    release's tables ("no such table") or fail on the removed release's
    directory (FileNotFoundError), for good."""
    d = churn
    d.run("deploy", "--stores", "postgres", timeout=1200).ok()
    expected = churn_reference(d.now)
    assert churn_scores(d) == pytest.approx(expected)
    record = d.record()
    other = next(p for p in record["server_ports"] if p != record["server_port"])
    from tests.integration.helpers import hold_server_socket

    holder = hold_server_socket(d, other)  # a foreign program on the next release's socket
    try:
        definitions = d.repo / "definitions.py"
        definitions.write_text(definitions.read_text() + "\n# a change\n")
        failed = d.run("deploy", "--stores", "postgres", timeout=1200)
        assert failed.returncode == 5 and "held by another program" in failed.stderr, failed.stderr
    finally:
        holder.close()
    assert churn_scores(d) == pytest.approx(expected)  # the serving release kept its tables
    assert health(d).startswith("healthy")
    definitions.write_text(definitions.read_text() + "# another\n")
    d.run("deploy", "--stores", "postgres", timeout=1200).ok()  # after the removed failed release: converges
    assert churn_scores(d) == pytest.approx(expected)
    assert health(d).startswith("healthy")


# --- offline pushes, data files changed on both sides, abspath sources --------------------


@pytest.fixture(scope="module")
def events(tmp_path_factory):
    root = tmp_path_factory.mktemp("events")
    now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    repo = write_events(root, now)
    d = deploy(root, "events")
    d.now = now
    d.data = repo / "data" / "user_events.parquet"
    d.original = pd.read_parquet(d.data)
    try:
        yield d
    finally:
        teardown(d)


def push(d: Deployed, rows: pd.DataFrame, to: str) -> None:
    """Feast's push through the feature server's /push (what `store.push` does)."""
    df: dict[str, list] = {}
    for col in rows.columns:
        values = []
        for v in rows[col]:
            if col == "last_seen":
                v = int(v.timestamp())  # a UnixTimestamp feature goes in as epoch seconds
            elif isinstance(v, datetime):
                v = v.isoformat()
            elif hasattr(v, "tolist"):
                v = v.tolist()
            values.append(v)
        df[col] = values
    body = {"push_source_name": "user_events_push", "to": to, "df": df}
    from tests.integration.helpers import server_post

    status, raw = server_post(d, "/push", body, timeout=120)
    assert status == 200, raw


def historical(d: Deployed, tmp: Path, entities: pd.DataFrame) -> pd.DataFrame:
    path = tmp / "entities.csv"
    entities.assign(event_timestamp=[t.isoformat() for t in entities["event_timestamp"]]).to_csv(path, index=False)
    rows = d.json("historical", "--entities", str(path), "-f", "user_events:clicks,user_events:segment")
    return pd.DataFrame(rows)


def reference(d: Deployed, source: pd.DataFrame, entities: pd.DataFrame) -> pd.DataFrame:
    return point_in_time(
        entities,
        source,
        ["user_id"],
        ["clicks", "segment"],
        timestamp="event_timestamp",
        created="created",
        ttl=timedelta(days=7),
    )


def online(d: Deployed) -> dict[int, tuple[int, str]]:
    args = [a for u in EVENT_USERS for a in ("--entity", f"user_id={u}")]
    rows = d.json("online", *args, "-f", "user_events:clicks,user_events:segment")
    return {int(r["user_id"]): (r["clicks"], r["segment"]) for r in rows}


def newest(source: pd.DataFrame) -> dict[int, tuple[int, str]]:
    last = source.sort_values(["event_timestamp", "created"], kind="stable").groupby("user_id").tail(1)
    return {int(r.user_id): (int(r.clicks), str(r.segment)) for r in last.itertuples()}


def pushed_row(d: Deployed) -> pd.DataFrame:
    row = d.original[d.original.user_id == 1].tail(1).copy()
    at = d.now + timedelta(minutes=30)
    row["clicks"] = 777
    row["segment"] = "pushed"
    row["event_timestamp"] = row["created"] = at
    row["last_seen"] = at
    return row.reset_index(drop=True)


def entity_rows(d: Deployed) -> pd.DataFrame:
    at = d.now + timedelta(hours=1)
    return pd.DataFrame({"user_id": EVENT_USERS + [1], "event_timestamp": [at] * 4 + [d.now - timedelta(days=2)]})


def test_an_offline_push_survives_the_next_deploy(events, tmp_path):
    d = events
    row = pushed_row(d)
    push(d, row, "online_and_offline")
    with_push = pd.concat([d.original, typed_events(row)], ignore_index=True)
    ents = entity_rows(d)
    before = historical(d, tmp_path, ents)
    assert before[["clicks", "segment"]].to_dict("records") == reference(d, with_push, ents)[
        ["clicks", "segment"]
    ].to_dict("records")
    # A change to the definitions makes a new release, copied from the serving one.
    (d.repo / "definitions.py").write_text((d.repo / "definitions.py").read_text() + "\n# reviewed\n")
    again = d.run("deploy", timeout=1200).ok()
    assert "data/user_events.parquet changed on the host since featctl uploaded it" in again.stderr
    assert "uploaded 1 file(s)" in again.stderr  # definitions.py, not the data file
    after = historical(d, tmp_path, ents)
    assert after.equals(before)  # before the fix: the pushed row was gone
    assert online(d)[1] == (777, "pushed")
    plan = d.run("plan", "--output", "json").ok()
    assert json.loads(plan.stdout)["kept_host_data"] == ["data/user_events.parquet"]
    assert "deploy keeps the host's copy" in plan.stderr


def test_a_data_file_changed_on_both_sides_waits_for_a_choice(events, tmp_path):
    d = events
    release = d.record()["release"]
    laptop = d.original.copy()
    laptop["clicks"] = laptop["clicks"] + 1000
    write_events_data(d.data, typed_events(laptop))
    stopped = d.run("deploy", timeout=1200)
    assert stopped.returncode == 2
    lines = [ln for ln in stopped.stderr.splitlines() if ln.startswith("featctl: error")]
    assert len(lines) == 1 and "data/user_events.parquet" in lines[0], stopped.stderr
    assert "--keep-host-data" in lines[0] and "--overwrite-data" in lines[0]
    assert d.record()["release"] == release
    plan = json.loads(d.run("plan", "--output", "json").ok().stdout)
    assert plan["conflicts"] == ["data/user_events.parquet"]

    ents = entity_rows(d)
    with_push = pd.concat([d.original, typed_events(pushed_row(d))], ignore_index=True)
    kept = d.run("deploy", "--keep-host-data", timeout=1200).ok()
    assert "kept the host's copy" in kept.stderr
    got = historical(d, tmp_path, ents)
    assert got[["clicks", "segment"]].to_dict("records") == reference(d, with_push, ents)[
        ["clicks", "segment"]
    ].to_dict("records")


def test_overwrite_takes_this_machines_file_and_reloads_an_abspath_source_in_full(events, tmp_path):
    d = events
    laptop = pd.read_parquet(d.data)
    both = d.run("deploy", "--keep-host-data", "--overwrite-data")
    assert both.returncode == 2 and "exclude each other" in both.stderr
    over = d.run("deploy", "--overwrite-data", timeout=1200).ok()
    # The source path is os.path.join(os.path.dirname(os.path.abspath(__file__)), ...):
    # before the fix the changed file was materialized "incremental", keeping old values.
    assert "materialized user_events (all data)" in over.stderr, over.stderr
    ents = entity_rows(d)
    got = historical(d, tmp_path, ents)
    assert got[["clicks", "segment"]].to_dict("records") == reference(d, laptop, ents)[
        ["clicks", "segment"]
    ].to_dict("records")
    assert online(d) == newest(laptop)
    assert health(d).startswith("healthy")
    # Changed again (values only, same times): reloaded in full again.
    laptop["clicks"] = laptop["clicks"] + 1
    write_events_data(d.data, typed_events(laptop))
    again = d.run("deploy", timeout=1200).ok()
    assert "materialized user_events (all data)" in again.stderr, again.stderr
    assert online(d) == newest(laptop)
