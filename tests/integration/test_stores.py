"""Shared stores and several hosts on the local target, for real: a
redis-server and a PostgreSQL cluster started by Terraform, serving TLS only
with a CA featctl generated, two sshd "hosts".

One deployment travels through the module in order: it starts on sqlite (the
baseline values), moves to Redis + PostgreSQL on two hosts, refuses plain-text
connections, reaches the stores with the CA its settings name (not the
system's store), survives a host outage under traffic, a Redis restart and an
unreachable PostgreSQL, rolls back to sqlite, and is destroyed without a trace.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, agent_command, featctl
from tests.integration.conftest import Deployed, processes_under
from tests.integration.expected import latest, load

pytestmark = pytest.mark.integration

AGENT, AGENT_ENV = agent_command()
PG_BIN = Path("/usr/lib/postgresql/15/bin")
DRIVERS = ("1001", "1002", "1003")
WEIGHTS = ("-w", "conv_rate=0.7,acc_rate=0.3")
AT = "2026-11-20T12:00:00+00:00"


def _need_servers() -> None:
    missing = [p for p in ("/usr/bin/redis-server", "/usr/bin/redis-cli", str(PG_BIN / "initdb")) if not Path(p).exists()]
    if missing:
        pytest.fail(f"these tests need {', '.join(missing)}: run .ci/run or scripts/bootstrap --dev")


class Chain:
    """The module's one deployment, and what earlier tests learnt."""

    def __init__(self, d: Deployed) -> None:
        self.d = d
        self.baseline: dict[str, object] = {}
        self.store_ports: dict[str, int] = {}
        self.store_dirs: dict[str, str] = {}


def answers(d: Deployed) -> dict[str, object]:
    """What the tests compare across stores: score, online and historical rows,
    also of Map and Struct features (PROFILES)."""
    drivers = [a for x in DRIVERS for a in ("-d", x)]
    return {
        "score": d.json("score", *WEIGHTS, *drivers),
        "online": d.json("online", *drivers, "-f", "driver_hourly_stats:conv_rate,driver_hourly_stats:avg_daily_trips"),
        "historical": d.json(
            "historical", *drivers, "--at", AT, "-f", "driver_hourly_stats:conv_rate,driver_hourly_stats:acc_rate"
        ),
        "profiles_online": d.json("online", *drivers, "-f", PROFILE_FEATURES),
        "profiles_historical": d.json("historical", *drivers, "--at", AT, "-f", PROFILE_FEATURES),
    }


# #23 item 6: Map and Struct features written as `feast init`'s template writes
# them (parquet structs). On PostgreSQL they are jsonb: Feast's materialization
# failed on them ("Unsupported cast from struct<...> to map") and featctl's
# historical gave key/value pairs where the file store gives objects.
PROFILE_FEATURES = "driver_profiles:metadata,driver_profiles:profile"
PROFILES_VIEW = """
from datetime import timedelta

from feast import FeatureView, Field, FileSource
from feast.types import Map, String, Struct

from features import driver

driver_profiles = FeatureView(
    name="driver_profiles", entities=[driver], ttl=timedelta(days=30), online=True,
    schema=[Field(name="metadata", dtype=Map), Field(name="profile", dtype=Struct({"name": String, "age": String}))],
    source=FileSource(name="driver_profiles_source", path="data/driver_profiles.parquet",
                      timestamp_field="event_timestamp"),
)
"""
PROFILE_TIMES = ("2026-11-18T00:00:00+00:00", "2026-11-20T06:00:00+00:00", "2026-11-21T00:00:00+00:00")


def write_profiles(repo: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [(int(x), t, i) for x in DRIVERS for i, t in enumerate(PROFILE_TIMES)]
    metadata = pa.struct([("vehicle_type", pa.string()), ("rating", pa.string())])
    table = pa.table({
        "driver_id": pa.array([r[0] for r in rows], pa.int64()),
        "event_timestamp": pa.array([pd.Timestamp(r[1]) for r in rows], pa.timestamp("ns", tz="UTC")),
        "metadata": pa.array([{"vehicle_type": ("sedan", "suv", "truck")[r[2]], "rating": f"{r[0] % 7}.{r[2]}"}
                              for r in rows], metadata),
        "profile": pa.array([{"name": f"driver_{r[0]}", "age": str(30 + r[2])} for r in rows],
                            pa.struct([("name", pa.string()), ("age", pa.string())])),
    })  # fmt: skip
    pq.write_table(table, repo / "data" / "driver_profiles.parquet")
    (repo / "profiles.py").write_text(PROFILES_VIEW)


def check_profiles(got: dict[str, object]) -> None:
    """The profile answers against the file written: the newest row online, the
    row as of AT in historical (objects, as Feast's file store gives them)."""
    online, historical = got["profiles_online"], got["profiles_historical"]
    assert isinstance(online, list) and isinstance(historical, list)
    for rows, i in ((online, 2), (historical, 1)):
        assert [r["driver_id"] for r in rows] == [int(x) for x in DRIVERS]
        for r in rows:
            x = r["driver_id"]
            assert r["metadata"] == {"vehicle_type": ("sedan", "suv", "truck")[i], "rating": f"{x % 7}.{i}"}, r
            assert r["profile"] == {"name": f"driver_{x}", "age": str(30 + i)}, r


def write_toml(d: Deployed, extra: str = "") -> None:
    (d.root / "featctl.toml").write_text("server_workers = 1\n" + extra)


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Iterator[Chain]:
    _need_servers()
    root = tmp_path_factory.mktemp("stores")
    shutil.copytree(
        ROOT / "feature_repo", root / "feature_repo", ignore=shutil.ignore_patterns("*.db", "*.parquet", "__pycache__")
    )
    (root / "feature_repo" / "data").mkdir(exist_ok=True)
    write_profiles(root / "feature_repo")
    d = Deployed(root)
    write_toml(d)
    c = Chain(d)
    try:
        # A failed first deploy is destroyed too: nothing of it may outlive the module.
        d.first_deploy = featctl("deploy", cwd=root, timeout=1200).ok()
        yield c
    finally:
        if (d.workspace / "deployment.json").exists():
            featctl("destroy", "--yes", cwd=root, timeout=300)


def test_baseline_on_sqlite(chain: Chain) -> None:
    d = chain.d
    chain.baseline = answers(d)
    check_profiles(chain.baseline)
    data = load(d.repo / "data" / "driver_stats.parquet")
    for row in chain.baseline["online"]:
        want = latest(data, int(row["driver_id"]))
        assert want is not None and row["conv_rate"] == pytest.approx(float(want["conv_rate"]))


def test_moving_to_redis_and_postgres_on_two_hosts_keeps_every_value(chain: Chain) -> None:
    d = chain.d
    write_toml(d, 'stores = ["redis", "postgres"]\nhosts = 2\n')
    res = featctl("deploy", cwd=d.root, timeout=1200).ok()
    assert "loaded" in res.stderr and "PostgreSQL table" in res.stderr
    assert "host 1: release" in res.stderr
    record = d.record()
    assert len(record["hosts"]) == 2 and set(record["stores"]) == {"redis", "postgres"}
    chain.store_ports = {s: int(w["port"]) for s, w in record["stores"].items()}
    chain.store_dirs = dict(record["stack_vars"]["store_dirs"])
    # The same answers as on sqlite, from both hosts (queries spread over them).
    for _ in range(2):
        assert answers(d) == chain.baseline
    # The secrets: 0600 files, never in status or on the hosts' command lines.
    for store in ("redis", "postgres"):
        pw = d.workspace / "secrets" / f"{store}.password"
        assert pw.stat().st_mode & 0o777 == 0o600
    for h in record["hosts"]:
        env_file = Path(h["remote_base_dir"]) / "run" / "stores.env"
        assert env_file.stat().st_mode & 0o777 == 0o600
    status = d.run("status", "--output", "json").ok()
    for store in ("redis", "postgres"):
        assert (d.workspace / "secrets" / f"{store}.password").read_text().strip() not in status.stdout
    ps = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, text=True).stdout
    assert (d.workspace / "secrets" / "postgres.password").read_text().strip() not in ps
    info = json.loads(status.stdout)["deployment"]
    assert [h["feature_server"].startswith("healthy") for h in info["hosts"]] == [True, True]
    assert set(info["stores"]) == {"redis", "postgres"}


def _ca(chain: Chain) -> str:
    return str(chain.d.workspace / "tls" / "ca.crt")


def _psql_run(chain: Chain, sql: str, ssl: str) -> subprocess.CompletedProcess[str]:
    d = chain.d
    env = {**os.environ, "PGPASSWORD": (d.workspace / "secrets" / "postgres.password").read_text().strip()}
    dsn = f"host=127.0.0.1 port={chain.store_ports['postgres']} user=feast dbname=feast {ssl}"
    return subprocess.run(
        [str(PG_BIN / "psql"), dsn, "-tAc", sql], capture_output=True, text=True, env=env, timeout=60
    )


def _psql(chain: Chain, sql: str) -> str:
    out = _psql_run(chain, sql, f"sslmode=verify-full sslrootcert={_ca(chain)}")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _redis_run(chain: Chain, *args: str, tls: tuple[str, ...] | None = None) -> subprocess.CompletedProcess[str]:
    pw = (chain.d.workspace / "secrets" / "redis.password").read_text().strip()
    tls = ("--tls", "--cacert", _ca(chain)) if tls is None else tls
    return subprocess.run(
        ["redis-cli", *tls, "-h", "127.0.0.1", "-p", str(chain.store_ports["redis"]), "--no-auth-warning", "-a", pw,
         *args],
        capture_output=True, text=True, timeout=60,
    )


def _redis(chain: Chain, *args: str) -> str:
    out = _redis_run(chain, *args)
    assert out.returncode == 0 and "error" not in out.stdout.lower(), out.stdout + out.stderr
    return out.stdout.strip()


def test_historical_on_postgres_equals_the_pandas_reference(chain: Chain, tmp_path) -> None:
    """The PostgreSQL offline store's point-in-time join (agent/pg_join.py):
    many entity rows with repeats, rows before and after every TTL, unknown
    drivers; values as the pandas reference on the same parquet files, the same
    frame inside the feature server and in the agent's process, and the same
    entity row alone gives the same value as inside the file."""
    import numpy as np
    import pandas as pd

    from tests.userrepos import point_in_time

    d = chain.d
    stats = pd.read_parquet(d.repo / "data" / "driver_stats.parquet")
    prod = pd.read_parquet(d.repo / "data" / "driver_stats_with_productivity.parquet")
    rng = np.random.default_rng(171)
    lo, hi = stats["event_timestamp"].min(), stats["event_timestamp"].max()
    n = 4000
    span = (hi - lo) + pd.Timedelta(days=10)
    ents = pd.DataFrame(
        {
            "driver_id": rng.choice([*sorted(stats["driver_id"].unique()), 999999], n),
            "event_timestamp": lo - pd.Timedelta(days=1) + pd.to_timedelta(rng.uniform(0, 1, n) * span.value, unit="ns"),
        }
    )
    ents = pd.concat([ents, ents.iloc[:400]], ignore_index=True)
    ents["event_timestamp"] = ents["event_timestamp"].dt.floor("us")
    ents.to_parquet(tmp_path / "e.parquet", index=False)
    refs = "driver_hourly_stats:conv_rate,driver_hourly_stats:avg_daily_trips,driver_productivity_metrics:productivity"
    for via in ("server", "process"):  # inside the serving feature server, and in the agent's own process
        featctl("historical", "--entities", str(tmp_path / "e.parquet"), "-f", refs, "--out",
                str(tmp_path / f"o-{via}.parquet"), cwd=d.root, env={"FEATCTL_HISTORICAL_VIA": via}, timeout=600).ok()
    got = pd.read_parquet(tmp_path / "o-server.parquet")
    pd.testing.assert_frame_equal(got, pd.read_parquet(tmp_path / "o-process.parquet"))
    want = point_in_time(ents, stats, ["driver_id"], ["conv_rate", "avg_daily_trips"], timestamp="event_timestamp",
                         created="created", ttl=pd.Timedelta(days=1).to_pytimedelta())
    want["productivity"] = point_in_time(ents, prod, ["driver_id"], ["productivity"], timestamp="event_timestamp",
                                         created="created", ttl=pd.Timedelta(days=7).to_pytimedelta())["productivity"]
    assert len(got) == len(ents) and got["driver_id"].tolist() == ents["driver_id"].tolist()
    for c in ("conv_rate", "avg_daily_trips", "productivity"):
        g, w = got[c].astype("float64").to_numpy(), want[c].astype("float64").to_numpy()
        assert (np.isnan(g) == np.isnan(w)).all(), c
        assert np.nanmax(np.abs(g - w)) == 0.0, c
        assert np.isnan(g).any() and (~np.isnan(g)).sum() > 100, c  # both kinds of rows are in the data
    assert str(got["conv_rate"].dtype) == "float32"  # as on the file store, not PostgreSQL's float64
    # nulls keep integers integers, of the type the view declares (Int64), as every output types them
    assert str(got["avg_daily_trips"].dtype) == "Int64"
    # Both of pg_join's ways to read a view: the 4,400 rows above read each view's
    # window whole (few source rows per entity row); 40 rows probe the index per row.
    from featctl.agent.pg_join import BULK_FACTOR

    assert max(len(stats), len(prod)) <= BULK_FACTOR * len(ents) and min(len(stats), len(prod)) > BULK_FACTOR * 40
    few = ents.iloc[::110].reset_index(drop=True)
    assert len(few) == 40
    few.to_parquet(tmp_path / "few.parquet", index=False)
    featctl("historical", "--entities", str(tmp_path / "few.parquet"), "-f", refs, "--out", str(tmp_path / "few-out.parquet"),
            cwd=d.root, timeout=600).ok()
    probed = pd.read_parquet(tmp_path / "few-out.parquet")
    pd.testing.assert_frame_equal(probed, got.iloc[::110].reset_index(drop=True))
    assert probed["conv_rate"].notna().sum() > 5 and probed["conv_rate"].isna().sum() > 0
    row = int(np.flatnonzero(~np.isnan(got["conv_rate"].astype("float64").to_numpy()))[0])
    alone = d.json("historical", "-d", str(ents["driver_id"][row]), "--at", ents["event_timestamp"][row].isoformat(),
                   "-f", "driver_hourly_stats:conv_rate")
    assert [r["conv_rate"] for r in alone] == [pytest.approx(float(got["conv_rate"][row]), rel=1e-7)]


def test_an_offline_push_into_postgres_is_refused_before_anything_is_sent(chain: Chain) -> None:
    """#24 item 1: Feast 0.67's PostgreSQL offline store has no offline_write_batch
    (the feature server answered HTTP 500 with an empty body): one line, exit 2,
    no table changed, the online store untouched."""
    d = chain.d
    tables = _psql(chain, "SELECT table_name FROM featctl_loads ORDER BY table_name").split()
    assert tables

    def counts() -> dict[str, str]:
        return {t: _psql(chain, f'SELECT count(*) FROM "{t}"') for t in tables}

    before = counts()
    online = d.json("online", "-d", "1001", "-f", "driver_quality_metrics:conv_rate,driver_quality_metrics:acc_rate")
    for to in ("offline", "both"):
        res = d.run(
            "push", "--view", "driver_stats_push_source", "--entity", "driver_id=1001", "--set", "conv_rate=0.5",
            "--set", "acc_rate=0.25", "--to", to,
        )  # fmt: skip
        assert res.returncode == 2, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert "PostgreSQL offline store takes no pushes" in res.stderr and "--to online" in res.stderr
    assert counts() == before
    assert d.json("online", "-d", "1001", "-f", "driver_quality_metrics:conv_rate,driver_quality_metrics:acc_rate") == online


def test_verify_repairs_a_redis_value_no_materialization_overwrites(chain: Chain) -> None:
    """A wrong value in Redis whose event time is newer than the source's row
    (but before the last materialization): Feast's Redis writer skips every
    row not newer than what it holds, so a range materialization leaves it
    served; verify finds it against the pandas reference and --repair writes
    the source's row over it."""
    from datetime import timedelta

    d = chain.d
    data = load(d.repo / "data" / "driver_stats.parquet")
    probed = d.record()["probe"]["views"]["driver_quality_metrics"]["entity"]["driver_id"]
    victim = next(int(v) for v in DRIVERS if int(v) != probed)
    right = latest(data, victim)
    assert right is not None
    at = (right.event_timestamp + timedelta(seconds=1)).isoformat()
    d.run(
        "push", "--view", "driver_stats_push_source", "-e", f"driver_id={victim}", "--set", "conv_rate=42.0",
        "--set", "acc_rate=42.0", "--at", at, "--to", "online",
    ).ok()  # fmt: skip

    def served() -> float:
        return float(d.json("online", "-d", str(victim), "-f", "driver_quality_metrics:conv_rate")[0]["conv_rate"])

    assert served() == 42.0
    end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    d.run("materialize", "--start", "2000-01-01T00:00:00Z", "--end", end, "--view", "driver_quality_metrics").ok()
    assert served() == 42.0  # the defect verify exists for: no materialization overwrites it

    found = d.run("verify", "--view", "driver_quality_metrics", "--output", "json")
    assert found.returncode == 9, found.stderr
    rows = {r["feature"]: r for r in json.loads(found.stdout)}
    assert set(rows) == {"conv_rate", "acc_rate"} and {r["entity"] for r in rows.values()} == {f"driver_id={victim}"}
    for feature in ("conv_rate", "acc_rate"):
        assert rows[feature]["online"] == 42.0
        assert rows[feature]["offline"] == pytest.approx(float(right[feature]), rel=1e-6)
    fixed = d.run("verify", "--view", "driver_quality_metrics", "--repair", "--output", "json")
    assert fixed.returncode == 9 and all(r["repaired"] for r in json.loads(fixed.stdout)), fixed.stderr
    assert served() == pytest.approx(float(right.conv_rate), rel=1e-6)
    again = d.run("verify", "--output", "json")
    assert again.returncode == 0 and json.loads(again.stdout) == [], again.stderr
    assert answers(d) == chain.baseline


LOAD_SCRIPT = """
import sys, psycopg
from featctl_agent.stores import _load
dsn, parquet = sys.argv[1:3]
with psycopg.connect(dsn) as conn, conn.transaction():
    print(_load(conn, "featctl_types_probe", parquet))
"""


def test_the_loader_takes_every_arrow_type_parquet_holds(chain: Chain, tmp_path: Path) -> None:
    """#23 item 6: date32/64, time, decimal, dictionary, binary, int8, lists of
    strings and dates, nested lists, structs, maps and a column of nulls load
    into PostgreSQL (Feast 0.67's type map refused most of them: 'Unsupported
    type: date32[day]' failed the whole table) and read back as the file holds them."""
    import datetime as dt
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "driver_id": pa.array([1, 2], pa.int64()),
            "day": pa.array([dt.date(2024, 2, 29), None], pa.date32()),
            "day64": pa.array([dt.date(1999, 12, 31), dt.date(2030, 1, 1)], pa.date64()),
            "at": pa.array([dt.time(13, 5, 7, 250000), dt.time(0, 0)], pa.time64("us")),
            "amount": pa.array([decimal.Decimal("1234.567"), decimal.Decimal("-0.001")], pa.decimal128(12, 3)),
            "tier": pa.array(["gold", "silver"]).dictionary_encode(),
            "blob": pa.array([b"\x00\xff", b"ab"], pa.binary()),
            "small": pa.array([-128, 127], pa.int8()),
            "tags": pa.array([["a", "b,c"], []], pa.list_(pa.string())),
            "days": pa.array([[dt.date(2024, 1, 1)], None], pa.list_(pa.date32())),
            "nested": pa.array([[["x"]], [["y", "z"]]], pa.list_(pa.list_(pa.string()))),
            "meta": pa.array([[("k", "v")], []], pa.map_(pa.string(), pa.string())),
            "nothing": pa.array([None, None], pa.null()),
        }
    )
    path = tmp_path / "types.parquet"
    pq.write_table(table, path)
    d = chain.d
    rec = d.record()
    base = Path(rec["remote_base_dir"])
    python = base / "envs" / rec["env_name"] / "bin" / "python"
    password = (d.workspace / "secrets" / "postgres.password").read_text().strip()
    dsn = (f"host=127.0.0.1 port={chain.store_ports['postgres']} user=feast dbname=feast password={password} "
           f"sslmode=verify-full sslrootcert={_ca(chain)}")  # fmt: skip
    res = subprocess.run(
        [str(python), "-c", LOAD_SCRIPT, dsn, str(path)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(base / "agent")},
    )  # fmt: skip
    assert res.returncode == 0 and res.stdout.strip() == "2", res.stderr[-2000:]
    try:
        got = _psql(chain, "SELECT row_to_json(t) FROM featctl_types_probe t ORDER BY driver_id")
        rows = [json.loads(line) for line in got.splitlines()]
        assert rows[0] == {
            "driver_id": 1, "day": "2024-02-29", "day64": "1999-12-31", "at": "13:05:07.25", "amount": 1234.567,
            "tier": "gold", "blob": "\\x00ff", "small": -128, "tags": ["a", "b,c"], "days": ["2024-01-01"],
            "nested": [["x"]], "meta": {"k": "v"}, "nothing": None,
        }  # fmt: skip
        assert rows[1]["day"] is None and rows[1]["amount"] == -0.001 and rows[1]["tags"] == []
        assert rows[1]["days"] is None and rows[1]["tier"] == "silver" and rows[1]["small"] == 127
        types = _psql(chain, "SELECT string_agg(column_name || ' ' || data_type, ', ' ORDER BY ordinal_position) "
                             "FROM information_schema.columns WHERE table_name = 'featctl_types_probe'")  # fmt: skip
        assert "day date" in types and "amount numeric" in types and "tags ARRAY" in types and "blob bytea" in types
    finally:
        _psql(chain, "DROP TABLE IF EXISTS featctl_types_probe")


def test_registry_rows_are_in_postgres_and_online_values_in_redis(chain: Chain) -> None:
    views = _psql(chain, "SELECT feature_view_name FROM feature_views WHERE project_id = 'featctl_drivers'")
    assert "driver_hourly_stats" in views.split()
    loaded = _psql(chain, "SELECT table_name, row_count FROM featctl_loads ORDER BY table_name")
    rows = dict(line.split("|") for line in loaded.splitlines())
    n = len(load(chain.d.repo / "data" / "driver_stats.parquet"))
    assert any(t.startswith("featctl_driver_stats_") and int(c) == n for t, c in rows.items())
    assert int(_redis(chain, "DBSIZE")) > 0
    # Without the password Redis answers nothing (requirepass).
    anonymous = subprocess.run(
        ["redis-cli", "--tls", "--cacert", _ca(chain), "-h", "127.0.0.1", "-p", str(chain.store_ports["redis"]),
         "DBSIZE"],
        capture_output=True, text=True, timeout=60,
    )
    assert "NOAUTH" in anonymous.stdout + anonymous.stderr


def test_plain_text_connections_to_either_store_are_refused(chain: Chain) -> None:
    # Redis has no plain-text port: a client without TLS gets its connection dropped, no answer.
    plain = _redis_run(chain, "DBSIZE", tls=())
    assert plain.returncode != 0, plain.stdout
    assert not plain.stdout.strip().isdigit() and "I/O error" in plain.stdout + plain.stderr, plain
    # PostgreSQL rejects a connection without TLS whoever asks, with the right password too.
    refused = _psql_run(chain, "SELECT 1", "sslmode=disable")
    assert refused.returncode != 0 and refused.stdout.strip() != "1"
    assert "pg_hba.conf rejects connection" in refused.stderr and "no encryption" in refused.stderr, refused.stderr
    # The same clients over TLS, checked against featctl's CA, get answers.
    assert _redis(chain, "PING") == "PONG"
    assert _psql(chain, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == "t"


def test_the_hosts_reach_the_stores_with_the_ca_their_settings_name(chain: Chain) -> None:
    """The CA reaches Redis's and PostgreSQL's clients through the settings,
    as on the yandex target: each host holds it under its own directory, its
    stores.env names it, and Feast's own clients verify the servers with it,
    while the same clients without it (the system's store, no ~/.postgresql)
    are refused."""
    d = chain.d
    record = d.record()
    ca = (d.workspace / "tls" / "ca.crt").read_bytes()
    redis, pg = record["stores"]["redis"], record["stores"]["postgres"]
    assert redis["tls"] is True and pg["sslmode"] == "verify-full"
    assert redis["ca_file"] == pg["ca_file"] == f"{record['remote_base_dir']}/tls/featctl-ca.crt"
    for h in record["hosts"]:
        base = Path(h["remote_base_dir"])
        host_ca = base / "tls" / "featctl-ca.crt"
        assert host_ca.read_bytes() == ca and host_ca.stat().st_mode & 0o777 == 0o644
        env = dict(line.split("=", 1) for line in (base / "run" / "stores.env").read_text().splitlines())
        assert f",ssl=true,ssl_ca_certs={host_ca}" in env["FEATCTL_REDIS_CONNECTION"]
        assert env["FEATCTL_POSTGRES_SSLMODE"] == "verify-full"
        assert env["FEATCTL_POSTGRES_SSLROOTCERT"] == env["PGSSLROOTCERT"] == str(host_ca)
        assert f"sslmode=verify-full&sslrootcert={host_ca}" in env["FEATCTL_POSTGRES_URL"]
    base = Path(record["remote_base_dir"])
    python = base / "envs" / record["env_name"] / "bin" / "python"
    probe = subprocess.run(
        [str(python), str(Path(__file__).with_name("tls_probe.py")), str(base / "run" / "stores.env"),
         str(base / "current")],
        capture_output=True, text=True, timeout=300,
    )
    assert probe.returncode == 0, probe.stderr[-2000:]
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    host_ca = str(base / "tls" / "featctl-ca.crt")
    assert seen["redis_params"] == {"ssl": True, "ssl_ca_certs": host_ca}
    assert seen["postgres_sslmode"] == "verify-full" and seen["postgres_sslrootcert_path"] == host_ca
    assert seen["redis_with_settings"] == "ok" and seen["postgres_with_settings"] == "ok", seen
    assert "CERTIFICATE_VERIFY_FAILED" in seen["redis_without_ca"], seen
    assert "root.crt" in seen["postgres_without_ca"] and "does not exist" in seen["postgres_without_ca"], seen


def test_a_redeploy_with_nothing_changed_is_a_no_op(chain: Chain) -> None:
    d = chain.d
    before = {h["remote_base_dir"]: h.get("release") for h in d.record()["hosts"][1:]}
    res = featctl("deploy", cwd=d.root, timeout=600).ok()
    assert "nothing changed" in res.stderr
    after = {h["remote_base_dir"]: h.get("release") for h in d.record()["hosts"][1:]}
    assert after == before
    assert d.record()["stack_vars"]["store_dirs"] == chain.store_dirs  # chosen once (as root: a random name)
    loaded = _psql(chain, "SELECT count(*) FROM featctl_loads")
    assert int(loaded) == 3  # nothing loaded twice: the two driver_stats files and driver_profiles


def test_a_store_certificate_the_host_cannot_verify_stops_the_deploy(chain: Chain, tmp_path: Path) -> None:
    """Host 0 given another CA: its check of the stores fails on the
    certificate before anything changes, and queries go on."""
    from featctl.provision.tls import ensure_store_tls
    from featctl.workspace import Workspace

    d = chain.d
    host_ca = Path(d.record()["remote_base_dir"]) / "tls" / "featctl-ca.crt"
    original = host_ca.read_bytes()
    stranger = Path(ensure_store_tls(Workspace(tmp_path / "other"), ["127.0.0.1", "localhost"])["ca_cert"])
    host_ca.write_bytes(stranger.read_bytes())
    try:
        res = featctl("deploy", cwd=d.root, timeout=600)
        assert res.returncode == 5, res.stderr
        last = res.stderr.strip().splitlines()[-1]
        assert last.startswith("featctl: error: deploy stopped before any change"), last
        assert "CERTIFICATE_VERIFY_FAILED" in last, last
    finally:
        host_ca.write_bytes(original)
    assert d.json("score", *WEIGHTS, *[a for x in DRIVERS for a in ("-d", x)]) == chain.baseline["score"]


def _score_once(root: Path) -> tuple[int, str]:
    res = featctl("score", *WEIGHTS, "-d", "1001", "--output", "json", cwd=root, timeout=120)
    return res.returncode, res.stderr.strip()


def test_one_host_down_under_200_queries_then_deploy_heals_it(chain: Chain) -> None:
    d = chain.d
    record = d.record()
    host1 = record["hosts"][1]
    sshd_pid = int((d.workspace / "local" / "sshd-1" / "sshd.pid").read_text())
    results: list[tuple[int, str]] = []
    broken = threading.Event()

    def outage() -> None:
        while len(results) < 30:
            time.sleep(0.05)
        # The host's feature server stops and its sshd dies (no SSH, no tunnel).
        state = json.loads(
            subprocess.run([*AGENT, "state", "--base", host1["remote_base_dir"]], capture_output=True, text=True,
                           env=AGENT_ENV).stdout
        )
        subprocess.run([*AGENT, "stop", "--base", host1["remote_base_dir"], "--id", state["current"]],
                       capture_output=True, env=AGENT_ENV, check=True)
        os.kill(sshd_pid, signal.SIGTERM)
        broken.set()

    killer = threading.Thread(target=outage)
    killer.start()
    with ThreadPoolExecutor(max_workers=4) as pool:
        for r in pool.map(lambda _: _score_once(d.root), range(200)):
            results.append(r)
    killer.join()
    assert broken.is_set()
    failed = [r for r in results if r[0] != 0]
    assert failed == [], f"{len(failed)} of 200 queries failed: {failed[:3]}"
    info = d.status()["deployment"]
    assert info["hosts"][1]["feature_server"].startswith(("unknown", "unhealthy", "not running")), info["hosts"]
    assert "host(s) 1" in info["repair"]
    res = featctl("deploy", cwd=d.root, timeout=900).ok()
    assert "host 1: release" in res.stderr
    info = d.status()["deployment"]
    assert [h["feature_server"].startswith("healthy") for h in info["hosts"]] == [True, True]
    assert answers(d) == chain.baseline


def test_a_killed_redis_is_back_by_itself_and_an_outage_gives_one_line_errors(chain: Chain) -> None:
    d = chain.d
    pid = int((Path(chain.store_dirs["redis"]) / "redis.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    # Its supervisor starts it again on its append-only file: no deploy, nothing lost.
    deadline = time.monotonic() + 30
    while featctl("score", *WEIGHTS, "-d", "1001", cwd=d.root).returncode != 0:
        assert time.monotonic() < deadline, "score still failing 30 s after kill -9 of Redis"
        time.sleep(0.5)
    assert answers(d) == chain.baseline
    assert "restarted at" in json.loads(d.run("status", "--output", "json").stdout)["deployment"]["store_servers"]["redis"]
    # An outage (the server and its supervisor stopped): one-line errors, and the next deploy heals it.
    scripts = ROOT / "terraform" / "modules" / "stores" / "scripts"
    env = {**os.environ, "DATA_DIR": chain.store_dirs["redis"], "KEEP_DATA": "1"}
    subprocess.run(["sh", str(scripts / "stop-redis.sh")], env=env, check=True, timeout=120)
    while _port_open(chain.store_ports["redis"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    res = featctl("score", *WEIGHTS, "-d", "1001", cwd=d.root)
    assert res.returncode != 0
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "Connection refused" in res.stderr or "connecting" in res.stderr
    # The next deploy restarts Redis on its data (append-only file): no re-materialization needed.
    heal = featctl("deploy", cwd=d.root, timeout=600).ok()
    assert "redis server is not running" in heal.stderr
    assert answers(d) == chain.baseline


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_postgres_unreachable_at_deploy_stops_cleanly_and_serving_goes_on(chain: Chain) -> None:
    d = chain.d
    # The server and its supervisor stopped (the supervisor would start it again).
    env = {**os.environ, "DATA_DIR": chain.store_dirs["postgres"], "PG_BIN": str(PG_BIN), "KEEP_DATA": "1"}
    subprocess.run(["sh", str(ROOT / "terraform" / "modules" / "stores" / "scripts" / "stop-postgres.sh")], env=env,
                   capture_output=True, check=True, timeout=180)
    # Something else answers on its port: Terraform sees a port in use, the host sees no PostgreSQL.
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", chain.store_ports["postgres"]))
    holder.listen(16)
    stop = threading.Event()

    def refuse() -> None:
        holder.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = holder.accept()
                conn.close()
            except OSError:
                pass

    t = threading.Thread(target=refuse)
    t.start()
    try:
        res = featctl("deploy", cwd=d.root, timeout=600)
        assert res.returncode != 0
        lines = res.stderr.strip().splitlines()
        assert lines[-1].startswith("featctl: error: deploy stopped before any change"), lines[-1]
        assert f"PostgreSQL at 127.0.0.1:{chain.store_ports['postgres']} is unreachable" in lines[-1]
        # Online queries need only Redis and the cached registry: they keep working.
        assert d.json("score", *WEIGHTS, *[a for x in DRIVERS for a in ("-d", x)]) == chain.baseline["score"]
    finally:
        stop.set()
        t.join()
        holder.close()
    featctl("deploy", cwd=d.root, timeout=600).ok()  # PostgreSQL restarted on its data
    assert answers(d) == chain.baseline


def test_rollback_returns_to_sqlite_with_the_same_values(chain: Chain) -> None:
    d = chain.d
    featctl("rollback", cwd=d.root, timeout=600).ok()
    current = Path(d.record()["remote_base_dir"]) / "current" / "feature_store.yaml"
    assert "redis" not in current.read_text() and "sqlite" in current.read_text()
    assert answers(d) == chain.baseline


def test_destroy_leaves_no_process_port_data_or_key(chain: Chain) -> None:
    d = chain.d
    record = d.record()
    ports = [int(h["port"]) for h in record["hosts"]] + list(chain.store_ports.values())
    ports += [p for h in record["hosts"][1:] for p in h.get("server_ports", [])] + record["server_ports"]
    featctl("destroy", "--yes", cwd=d.root, timeout=600).ok()
    assert processes_under(d.workspace) == []
    assert processes_under(Path(chain.store_dirs["postgres"])) == []
    assert [p for p in ports if _port_open(p)] == []
    for path in chain.store_dirs.values():
        assert not Path(path).exists(), path
    if os.geteuid() == 0:  # and the private directory featctl made for PostgreSQL's data
        assert not Path(chain.store_dirs["postgres"]).parent.exists()
    assert not (d.workspace / "secrets").exists() and not (d.workspace / "keys").exists()
    assert not (d.workspace / "tls").exists()
    assert not (d.workspace / "deployment.json").exists()
