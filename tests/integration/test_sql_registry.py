"""The host agent's fast read of Feast's SQL registry on a real PostgreSQL,
against Feast's own SqlRegistry.

A PostgreSQL cluster (TLS only, verify-full) started by featctl's own store script, a Feast
environment as a host with `stores = postgres` gets (the pinned lock plus
feast[postgres]), and two projects applied into one registry by Feast. The
agent must read the registry without `import feast` and give the same
Registry proto as `FeatureStore(...).registry.proto()`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import ROOT, agent_command
from tests.integration.test_hostagent import REPO_SRC, make_data

pytestmark = pytest.mark.integration

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SCRIPTS = ROOT / "terraform" / "modules" / "stores" / "scripts"
START, END = "2025-08-01T00:00:00+00:00", "2025-08-03T00:00:00+00:00"
REGISTRY = """registry:
    registry_type: sql
    path: ${FEATCTL_POSTGRES_URL}
    cache_ttl_seconds: 60
    sqlalchemy_config_kwargs:
        pool_pre_ping: true
"""
# In the Feast environment: Feast's own proto and the agent's, for every project's repository.
COMPARE = """
import json, sys
from featctl_agent import registry, sql_registry
from featctl_agent.repo import load_repo_config
from feast import FeatureStore
out = {}
for repo in sys.argv[1:]:
    cfg = load_repo_config(repo)
    full = FeatureStore(repo_path=repo).registry.proto()
    fast = sql_registry.read_proto(registry.import_registry_pb2_fast(), sql_registry.postgres_url(cfg), cfg["project"])
    out[cfg["project"]] = {
        "same": fast.SerializeToString(deterministic=True) == full.SerializeToString(deterministic=True),
        "projects": sorted(p.spec.name for p in full.projects),
        "views": len(full.feature_views),
        "intervals": sum(len(v.meta.materialization_intervals) for v in full.feature_views),
        "infra": len(full.infra.infra_objects),
    }
print(json.dumps(out))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def feast_pg(tmp_path_factory) -> Path:
    """A Feast environment as a host with stores = postgres builds it (uv, the pinned lock + feast[postgres])."""
    env = tmp_path_factory.mktemp("feast-pg") / "env"
    uv = ROOT / ".venv" / "bin" / "uv"
    base = ROOT / ".venv-feast" / "bin" / "python"
    if not uv.exists() or not base.exists():
        pytest.fail("run scripts/bootstrap --dev first (.venv/bin/uv, .venv-feast)")
    uv_env = {**os.environ, "UV_SYSTEM_CERTS": "1"}
    for cmd in (
        [uv, "venv", "--quiet", "--python", base, env],
        [uv, "pip", "install", "--quiet", "--python", env / "bin" / "python", "--compile-bytecode",
         "-r", ROOT / "src" / "featctl" / "agent" / "requirements.txt", "feast[postgres]==0.67.0"],
    ):
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=uv_env, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return env / "bin" / "python"


@pytest.fixture(scope="module")
def postgres(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """A real PostgreSQL cluster on loopback, TLS only, by featctl's own store scripts and CA."""
    from featctl.provision.tls import ensure_store_tls
    from featctl.workspace import Workspace

    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"these tests need {PG_BIN}/initdb: run .ci/run or scripts/bootstrap --dev")
    secrets = tmp_path_factory.mktemp("pg-secret")
    tls = ensure_store_tls(Workspace(secrets), ["127.0.0.1"])
    password = uuid.uuid4().hex
    pw_file = secrets / "password"
    pw_file.write_text(password)
    pw_file.chmod(0o600)
    env = {
        **os.environ, "DATA_DIR": f"/var/tmp/featctl-postgres-test-{uuid.uuid4().hex[:12]}/data", "PORT": str(_free_port()),
        "PASSWORD_FILE": str(pw_file), "PG_BIN": str(PG_BIN), "DATABASE": "feast", "DB_USER": "feast",
        "TLS_CA": tls["ca_cert"], "TLS_CERT": tls["server_cert"], "TLS_KEY": tls["server_key"],
    }
    try:
        start = subprocess.run(["sh", str(SCRIPTS / "start-postgres.sh")], capture_output=True, text=True, env=env,
                               timeout=180)
        assert start.returncode == 0, start.stderr
        yield SimpleNamespace(port=int(env["PORT"]), password=password, ca_file=tls["ca_cert"])
    finally:
        subprocess.run(["sh", str(SCRIPTS / "stop-postgres.sh")], capture_output=True, env=env, timeout=180)
        assert not Path(env["DATA_DIR"]).exists()


def _repo(root: Path, project: str | None = None) -> Path:
    repo = root / "feature_repo"
    shutil.copytree(REPO_SRC, repo, ignore=shutil.ignore_patterns("*.db", "*.db-*", "*.parquet", "__pycache__"))
    (repo / "data").mkdir(exist_ok=True)
    make_data(repo / "data")
    text = (repo / "feature_store.yaml").read_text()
    text = re.sub(r"^registry:\n(?:[ #].*\n)+", REGISTRY, text, count=1, flags=re.M)
    if project:
        text = re.sub(r"^project: .*$", f"project: {project}", text, count=1, flags=re.M)
    (repo / "feature_store.yaml").write_text(text)
    assert "registry_type: sql" in text
    return repo


@pytest.fixture(scope="module")
def applied(tmp_path_factory, feast_pg: Path, postgres: SimpleNamespace) -> SimpleNamespace:
    """Two projects applied into one SQL registry, one of them materialized over a range."""
    root = tmp_path_factory.mktemp("sqlreg")
    from featctl.repo.stores import env_lines

    env_file = root / "stores.env"  # as run/stores.env on a host, by featctl's own code: the agent loads it
    pg = {"host": "127.0.0.1", "port": postgres.port, "database": "feast", "user": "feast",
          "sslmode": "verify-full", "ca_file": postgres.ca_file}
    env_file.write_text(env_lines({"postgres": pg}, {"postgres": postgres.password}))
    env_file.chmod(0o600)
    agent, agent_env = agent_command(feast_pg)
    agent_env = {**agent_env, "FEATCTL_ENV_FILE": str(env_file)}
    repos = {"main": _repo(root / "main"), "other": _repo(root / "other", "featctl_other")}

    def agent_run(command: str, repo: Path, *args: str, env: dict[str, str] | None = None) -> SimpleNamespace:
        proc = subprocess.run([*agent, command, "--repo", str(repo), *args], capture_output=True, text=True,
                              env=env or agent_env, timeout=600, cwd=repo)
        return SimpleNamespace(rc=proc.returncode, doc=json.loads(proc.stdout), stderr=proc.stderr)

    for repo in repos.values():
        apply = subprocess.run([str(feast_pg), "-m", "featctl_agent.feast_cli", "apply"], cwd=repo, env=agent_env,
                               capture_output=True, text=True, timeout=600)
        assert apply.returncode == 0, apply.stdout + apply.stderr
    mat = agent_run("materialize", repos["main"], "--start", START, "--end", END, "--views", "driver_hourly_stats")
    assert mat.rc == 0, mat.stderr
    return SimpleNamespace(root=root, repos=repos, agent_run=agent_run, agent_env=agent_env, python=feast_pg,
                           password=postgres.password)


def test_describe_reads_the_sql_registry_without_importing_feast(applied: SimpleNamespace) -> None:
    env = {**applied.agent_env, "PYTHONPROFILEIMPORTTIME": "1"}
    fast = applied.agent_run("describe", applied.repos["main"], "--check", env=env)
    assert fast.rc == 0, fast.stderr[-3000:]
    assert "describe (fast)" in fast.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in fast.stderr.splitlines() if line.startswith("import time")}
    assert "psycopg" in imported and "feast.protos.feast.core.Registry_pb2" in imported
    assert not {"feast.feature_store", "feast.repo_config", "sqlalchemy"} & imported
    assert applied.password not in fast.stderr + json.dumps(fast.doc)

    full = applied.agent_run("describe", applied.repos["main"], "--check", "--full")
    assert full.rc == 0 and "describe (full)" in full.stderr
    assert fast.doc == full.doc
    views = {v["name"]: v for v in fast.doc["feature_views"]}
    assert views["driver_hourly_stats"]["materialization_intervals"] == [[START, END]]
    assert views["driver_hourly_stats"]["last_materialized"] == END
    assert not views["driver_quality_metrics"]["materialization_intervals"]
    assert fast.doc["problems"] == []  # the sqlite online store the registry's infra names is intact


def test_the_fast_proto_is_feasts_proto_for_every_project(applied: SimpleNamespace) -> None:
    proc = subprocess.run(
        [str(applied.python), "-c", COMPARE, *map(str, applied.repos.values())],
        capture_output=True, text=True, env=applied.agent_env, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(got) == {"featctl_drivers", "featctl_other"}
    for project, r in got.items():
        assert r["same"], project
        assert r["projects"] == ["featctl_drivers", "featctl_other"]
        assert r["views"] >= 6 and r["intervals"] == 1 and r["infra"] > 0  # two projects' views, one materialized


def test_each_project_describes_its_own_objects(applied: SimpleNamespace) -> None:
    other = applied.agent_run("describe", applied.repos["other"])
    assert other.rc == 0 and "describe (fast)" in other.stderr
    assert other.doc["project"] == "featctl_other"
    assert all(not v["materialization_intervals"] for v in other.doc["feature_views"])
    assert {v["name"] for v in other.doc["feature_views"]} >= {"driver_hourly_stats", "driver_quality_metrics"}


def test_a_project_feast_never_applied_is_left_to_feast(applied: SimpleNamespace) -> None:
    repo = _repo(applied.root / "never", "featctl_never_applied")
    run = applied.agent_run("describe", repo)
    assert "fast registry read unavailable (project 'featctl_never_applied' is not in the projects table)" in run.stderr
    assert run.rc == 1 and run.doc["kind"] == "input" and "not applied" in run.doc["error"]


# In the Feast environment: the entity upload of agent/pg_join.py, as Arrow CSV and row by row.
UPLOAD = """
import json, sys
import numpy as np, pandas as pd, psycopg
from featctl_agent import pg_join
ents = pd.DataFrame({
    "k": ['a,b', 'q"uote', 'new\\nline', '', None, 'ü', '\\\\N', 'x'],
    "f": [1.5, np.nan, 0.1, 1e300, -0.0, 2.0, 3.0, 4.0],
    "b": [True, False, True, False, True, False, True, False],
    "event_timestamp": pd.to_datetime(["1960-01-01 00:00:00.0000015", "2021-01-01", None, "2021-06-01 12:00:00.999999999",
                                       "2021-01-01T03:00:00+03:00", "2021-01-01", "2021-01-01", "2021-01-01"],
                                      utc=True, format="ISO8601"),
})
out = {}
with psycopg.connect(sys.argv[1]) as conn:
    for mode in ("csv", "rows"):
        if mode == "rows":
            pg_join._entities_csv = lambda df, keys: None
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SET LOCAL TimeZone = 'Asia/Tokyo'")  # a session zone that is not UTC
            pg_join.upload_entities(cur, ents, ["k", "f", "b"])
            out[mode] = [list(r) for r in cur.execute(
                f"SELECT extract(epoch from {pg_join.ident(pg_join.TS)})::text, k, f::text, b FROM {pg_join.ENTITIES} "
                f"ORDER BY {pg_join.ident(pg_join.ROW)}").fetchall()]
print(json.dumps(out))
"""


def _in_feast_env(feast_pg: Path, postgres: SimpleNamespace, script: str) -> dict[str, Any]:
    """The JSON a script prints, run in the Feast env with the agent importable and
    a verify-full DSN of the test cluster as its argument."""
    _, env = agent_command(feast_pg)
    dsn = (f"host=127.0.0.1 port={postgres.port} dbname=feast user=feast password={postgres.password} "
           f"sslmode=verify-full sslrootcert={postgres.ca_file}")
    proc = subprocess.run([str(feast_pg), "-c", script, dsn], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_entity_upload_as_csv_equals_the_row_by_row_copy(feast_pg: Path, postgres: SimpleNamespace) -> None:
    """pg_join's entity rows go in as Arrow-written CSV: quotes, commas, newlines,
    empty strings vs nulls, NaN, times before 1970, nanoseconds and offsets land
    exactly as the row-by-row COPY puts them (times floored to microseconds)."""
    got = _in_feast_env(feast_pg, postgres, UPLOAD)
    assert got["csv"] == got["rows"]
    epochs = [r[0] for r in got["csv"]]
    assert epochs[0] == "-315619199.999999" and epochs[2] is None and epochs[3] == "1622548800.999999"
    assert epochs[4] == "1609459200.000000"  # 03:00+03:00 is midnight UTC
    assert [r[1] for r in got["csv"]][:5] == ['a,b', 'q"uote', 'new\nline', '', None]
    assert got["csv"][1][2] is None and got["csv"][0][3] is True


# In the Feast environment: pg_join's download of a result, as CSV read by Arrow and as binary rows.
DOWNLOAD = r"""
import json, sys
import psycopg
from featctl_agent import pg_join
out = {}
with psycopg.connect(sys.argv[1]) as conn:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE dl (i bigint, s smallint, n int, t text, v varchar(10), r real, d double precision, "
                    "b boolean) ON COMMIT DROP")
        cur.execute(r'''INSERT INTO dl VALUES (1, 2, 3, 'a,b', 'x', 0.1, 0.1, true), (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
            (-9223372036854775808, -32768, 2147483647, '', '', 'NaN', 'Infinity', false),
            (0, 0, 0, E'q"u\note', '\N', '-Infinity', 1e-310, NULL), (5, 5, 5, 'ü', 'NULL', 3.4028235e38, 1.7976931348623157e308, true)''')
        for q in ("SELECT * FROM dl", "SELECT d FROM dl", "SELECT * FROM dl WHERE false", "SELECT t FROM dl ORDER BY i"):
            csv, _ = pg_join._download(cur, q)
            saved, pg_join.CSV_TYPES = pg_join.CSV_TYPES, set()
            binary, _ = pg_join._download(cur, q)
            pg_join.CSV_TYPES = saved
            out[q] = {"same": all(a.equals(b) and a.type == b.type for a, b in zip(csv, binary)),
                      "rows": [len(a) for a in csv], "values": [repr(a.to_pylist()) for a in csv]}
print(json.dumps(out))
"""


def test_result_download_as_csv_equals_the_binary_rows(feast_pg: Path, postgres: SimpleNamespace) -> None:
    """pg_join reads a result of plain columns as PostgreSQL CSV parsed by Arrow: the
    same arrays and types as the binary COPY decoded row by row (nulls, empty strings,
    one null column = an empty line, NaN as null, infinities, extremes, no rows)."""
    got = _in_feast_env(feast_pg, postgres, DOWNLOAD)
    assert all(v["same"] for v in got.values()), got
    assert got["SELECT * FROM dl"]["rows"] == [5] * 8 and got["SELECT * FROM dl WHERE false"]["rows"] == [0] * 8
    assert got["SELECT d FROM dl"]["rows"] == [5]
    assert got["SELECT t FROM dl ORDER BY i"]["values"] == [repr(["", 'q"u\note', "a,b", "ü", None])]
