"""The local stores' servers under featctl's supervisor: terraform/modules/stores'
scripts run a real redis-server and a real PostgreSQL (TLS only) under
supervise.py from featctl's agent package, as a deploy does; ``kill -9`` of
either server is followed by the server answering again within 30 s with
everything it held (Redis' append-only file, PostgreSQL's WAL), its
supervisor's log naming the restart, and the stop scripts leave no process.
Before, nothing restarted them until the next deploy."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import ROOT, agent_command

pytestmark = pytest.mark.integration

SCRIPTS = ROOT / "terraform" / "modules" / "stores" / "scripts"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
RESTART_SECONDS = 30.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _agent_dir() -> str:
    _, env = agent_command()
    return env["PYTHONPATH"]  # holds featctl_agent/, as the module's agent/ does


@pytest.fixture
def tls(tmp_path: Path) -> SimpleNamespace:
    from featctl.provision.tls import ensure_store_tls
    from featctl.workspace import Workspace

    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    material = ensure_store_tls(Workspace(secrets_dir), ["127.0.0.1"])
    password = secrets.token_hex(16)
    pw = secrets_dir / "password"
    pw.write_text(password)
    pw.chmod(0o600)
    return SimpleNamespace(password=password, password_file=str(pw), **material)


def _until(check, seconds: float, what: str) -> float:
    started = time.monotonic()
    last: object = None
    while time.monotonic() - started < seconds:
        try:
            if check():
                return time.monotonic() - started
        except Exception as exc:  # a server still starting
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {seconds} s (last: {last!r})")


def _pid(path: Path) -> int:
    return int(path.read_text().split()[0])


@pytest.fixture
def redis(tmp_path: Path, tls: SimpleNamespace) -> Iterator[SimpleNamespace]:
    env = {
        **os.environ, "DATA_DIR": str(tmp_path / "redis"), "PORT": str(_free_port()), "AGENT_DIR": _agent_dir(),
        "PASSWORD_FILE": tls.password_file, "TLS_CA": tls.ca_cert, "TLS_CERT": tls.server_cert,
        "TLS_KEY": tls.server_key,
    }  # fmt: skip
    start = subprocess.run(["sh", str(SCRIPTS / "start-redis.sh")], env=env, capture_output=True, text=True, timeout=120)
    assert start.returncode == 0, start.stderr
    try:
        yield SimpleNamespace(dir=tmp_path / "redis", port=env["PORT"], tls=tls)
    finally:
        subprocess.run(["sh", str(SCRIPTS / "stop-redis.sh")], env=env, capture_output=True, timeout=120)


def _redis(r: SimpleNamespace, *args: str) -> str:
    cmd = ["redis-cli", "--tls", "--cacert", r.tls.ca_cert, "-h", "127.0.0.1", "-p", r.port, "--no-raw", *args]
    out = subprocess.run(cmd, env={**os.environ, "REDISCLI_AUTH": r.tls.password}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_killed_redis_serves_again_within_30_s_with_its_data(redis: SimpleNamespace) -> None:
    assert _redis(redis, "SET", "featctl:k", "kept") == "OK"
    before = _pid(redis.dir / "redis.pid")
    os.kill(before, signal.SIGKILL)
    took = _until(lambda: _redis(redis, "GET", "featctl:k") == '"kept"', RESTART_SECONDS, "Redis answering again")
    assert _pid(redis.dir / "redis.pid") != before
    assert " supervise: restarted" in (redis.dir / "supervise.log").read_text()
    print(f"redis served again {took:.1f} s after kill -9")
    supervisor = _pid(redis.dir / "supervise.pid")
    stop = subprocess.run(
        ["sh", str(SCRIPTS / "stop-redis.sh")], env={**os.environ, "DATA_DIR": str(redis.dir), "KEEP_DATA": "1"},
        capture_output=True, timeout=120,
    )  # fmt: skip
    assert stop.returncode == 0
    for pid in (supervisor, _pid(redis.dir / "redis.pid") if (redis.dir / "redis.pid").exists() else before):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.fixture
def postgres(tls: SimpleNamespace) -> Iterator[SimpleNamespace]:
    if not (PG_BIN / "postgres").exists():
        pytest.fail(f"no PostgreSQL server in {PG_BIN}: run scripts/bootstrap --dev")
    parent = Path(tempfile.mkdtemp(prefix="featctl-test-sup-", dir="/var/tmp"))
    parent.chmod(0o711)  # the cluster's user (postgres, when we are root) passes through
    env = {
        **os.environ, "DATA_DIR": str(parent / "data"), "PORT": str(_free_port()), "AGENT_DIR": _agent_dir(),
        "PASSWORD_FILE": tls.password_file, "PG_BIN": str(PG_BIN), "DATABASE": "feast", "DB_USER": "feast",
        "TLS_CA": tls.ca_cert, "TLS_CERT": tls.server_cert, "TLS_KEY": tls.server_key,
    }  # fmt: skip
    try:
        start = subprocess.run(
            ["sh", str(SCRIPTS / "start-postgres.sh")], env=env, capture_output=True, text=True, timeout=300
        )
        assert start.returncode == 0, start.stderr
        yield SimpleNamespace(dir=parent / "data", port=env["PORT"], tls=tls, env=env)
    finally:
        subprocess.run(["sh", str(SCRIPTS / "stop-postgres.sh")], env=env, capture_output=True, timeout=180)
        shutil.rmtree(parent, ignore_errors=True)


def _psql(pg: SimpleNamespace, sql: str) -> str:
    env = {**os.environ, "PGPASSWORD": pg.tls.password, "PGSSLMODE": "verify-ca", "PGSSLROOTCERT": pg.tls.ca_cert}
    cmd = [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", pg.port, "-U", "feast", "-d", "feast", "-tAc", sql]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_killed_postgres_serves_again_within_30_s_with_its_data(postgres: SimpleNamespace) -> None:
    _psql(postgres, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('committed')")
    before = _pid(postgres.dir / "postmaster.pid")
    os.kill(before, signal.SIGKILL)
    took = _until(lambda: _psql(postgres, "SELECT v FROM kept") == "committed", RESTART_SECONDS, "PostgreSQL again")
    assert _pid(postgres.dir / "postmaster.pid") != before
    assert " supervise: restarted" in (postgres.dir / "postgres.log").read_text()
    print(f"postgres served again {took:.1f} s after kill -9")
    supervisor = _pid(postgres.dir / "featctl" / "supervise.pid")
    server = _pid(postgres.dir / "postmaster.pid")
    stop = subprocess.run(
        ["sh", str(SCRIPTS / "stop-postgres.sh")], env={**postgres.env, "KEEP_DATA": "1"}, capture_output=True,
        timeout=180,
    )  # fmt: skip
    assert stop.returncode == 0
    for pid in (supervisor, server):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_redis_an_earlier_featctl_started_is_restarted_supervised(tmp_path: Path, tls: SimpleNamespace) -> None:
    env = {
        **os.environ, "DATA_DIR": str(tmp_path / "redis"), "PORT": str(_free_port()),
        "PASSWORD_FILE": tls.password_file, "TLS_CA": tls.ca_cert, "TLS_CERT": tls.server_cert,
        "TLS_KEY": tls.server_key,
    }  # fmt: skip
    try:
        old = subprocess.run(["sh", str(SCRIPTS / "start-redis.sh")], env=env, capture_output=True, timeout=120)
        assert old.returncode == 0 and not (tmp_path / "redis" / "supervise.pid").exists()
        r = SimpleNamespace(dir=tmp_path / "redis", port=env["PORT"], tls=tls)
        assert _redis(r, "SET", "featctl:k", "kept") == "OK"
        new = subprocess.run(
            ["sh", str(SCRIPTS / "start-redis.sh")], env={**env, "AGENT_DIR": _agent_dir()}, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert new.returncode == 0, new.stderr
        supervisor = _pid(r.dir / "supervise.pid")
        os.kill(supervisor, 0)
        assert _redis(r, "GET", "featctl:k") == '"kept"'
    finally:
        subprocess.run(["sh", str(SCRIPTS / "stop-redis.sh")], env=env, capture_output=True, timeout=120)
