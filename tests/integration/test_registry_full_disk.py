"""A full disk during materialization leaves Feast's file registry as it was.

Feast 0.67's file registry write truncated registry.db and made one unchecked
write: on a full disk materialize reported success, the registry was left
truncated ("Wire format was corrupt" on every later read) and the feature
server crash-looped. Here the registry lives on a small tmpfs (the online
store and the data do not), a real ``feast serve`` started through featctl's
wrapper (as on a host) materializes into it after the tmpfs was filled, and
the agent's own ``materialize`` command does the same: both must fail with
"No space left on device", the registry's bytes must be unchanged, and the
server must go on answering the values pandas gives.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from featctl.agent.common import unix_post
from tests.conftest import agent_command
from tests.integration import expected
from tests.integration.test_hostagent import DRIVERS, FEAST_PYTHON, REPO_SRC, make_data

pytestmark = pytest.mark.integration

# A range that ends by now (the host refuses one that ends in the future) and holds every row.
START = "2000-01-01T00:00:00+00:00"
END = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat(timespec="seconds")
FEATURES = ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate", "driver_hourly_stats:avg_daily_trips"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("this test mounts a tmpfs: run it as root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(mnt: Path) -> None:
    """Fill the file system to the last byte."""
    chunk = b"\0" * 65536
    with open(mnt / "filler", "wb", buffering=0) as fh:
        for size in (65536, 4096, 1):
            try:
                while True:
                    fh.write(chunk[:size])
            except OSError as exc:
                assert "No space left on device" in str(exc)


def _get(sock: str, url: str) -> int:
    import http.client
    import socket

    class _Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(5)
            self.sock.connect(sock)

    conn = _Conn("localhost", timeout=5)
    try:
        conn.request("GET", url)
        return conn.getresponse().status
    finally:
        conn.close()


def _online(sock: str) -> dict[int, dict[str, float | None]]:
    status, body = unix_post(
        sock, "/get-online-features", {"features": FEATURES, "entities": {"driver_id": DRIVERS}}, timeout=60
    )
    assert status == 200, body
    doc = json.loads(body)
    names = doc["metadata"]["feature_names"]
    out: dict[int, dict[str, float | None]] = {}
    for i, driver in enumerate(DRIVERS):
        out[driver] = {n: doc["results"][names.index(n)]["values"][i] for n in names if n != "driver_id"}
    return out


def _applied_repo(tmp_path: Path, registry: Path) -> tuple[Path, object]:
    """featctl's demo repository with its registry at ``registry``, applied."""
    repo = tmp_path / "feature_repo"
    shutil.copytree(REPO_SRC, repo, ignore=shutil.ignore_patterns("*.db", "*.db-*", "*.parquet", "__pycache__"))
    (repo / "data").mkdir(exist_ok=True)
    stats, _ = make_data(repo / "data")
    text = (repo / "feature_store.yaml").read_text()
    text = re.sub(r"^    path: data/registry.db$", f"    path: {registry}", text, count=1, flags=re.M)
    (repo / "feature_store.yaml").write_text(text)
    apply = _apply(repo)
    assert apply.returncode == 0, apply.stdout + apply.stderr
    return repo, stats


def _apply(repo: Path) -> subprocess.CompletedProcess[str]:
    """``feast apply`` through featctl's wrapper, as a deploy runs it on the host."""
    _, env = agent_command(FEAST_PYTHON)
    cmd = [FEAST_PYTHON, "-m", "featctl_agent.feast_cli", "apply"]
    return subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=600)


def test_a_full_disk_fails_materialize_and_keeps_the_registry(tmp_path: Path, small_disk: Path) -> None:
    registry = small_disk / "registry.db"
    repo, stats = _applied_repo(tmp_path, registry)
    agent, env = agent_command(FEAST_PYTHON)
    # Loaded once with room to spare: these are the values serving must keep.
    materialize = [*agent, "materialize", "--repo", str(repo), "--start", START, "--end", END]
    first = subprocess.run(
        [*materialize, "--views", "driver_hourly_stats"], cwd=repo, env=env, capture_output=True, text=True, timeout=600
    )
    assert first.returncode == 0, first.stdout + first.stderr

    sock = str(tmp_path / "s")
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [
            FEAST_PYTHON,
            "-m",
            "featctl_agent.feast_cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "1",
            "--workers",
            "1",
            "--no-access-log",
            "--registry_ttl_sec",
            "2",
        ],
        cwd=repo,
        env={**env, "FEATCTL_BIND": sock},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if _get(sock, "/health") == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the feature server did not start"
            time.sleep(0.5)
        reference = {
            d: {c: (None if row is None else row[c]) for c in ("conv_rate", "acc_rate", "avg_daily_trips")}
            for d in DRIVERS
            for row in [expected.latest(stats, d)]
        }

        def same_as_pandas(got: dict[int, dict[str, float | None]]) -> None:
            for d in DRIVERS:
                for c, want in reference[d].items():
                    if want is None:
                        assert got[d][c] is None, (d, c)
                    else:
                        assert got[d][c] == pytest.approx(float(want), rel=1e-6), (d, c, got[d][c], want)

        same_as_pandas(_online(sock))
        before = registry.read_bytes()
        _fill(small_disk)

        # featctl's materialize goes through the feature server's endpoint.
        status, body = unix_post(
            sock,
            "/materialize",
            {"start_ts": START, "end_ts": END, "feature_views": ["driver_hourly_stats"]},
            timeout=300,
        )
        assert status >= 500, (status, body)
        assert "No space left on device" in body, body
        assert registry.read_bytes() == before

        # The agent's own materialize command (featctl's standalone path).
        agent_run = subprocess.run(
            [*materialize, "--views", "driver_hourly_stats"],
            cwd=repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert agent_run.returncode != 0, agent_run.stdout
        assert "No space left on device" in agent_run.stdout + agent_run.stderr
        assert registry.read_bytes() == before
        assert {p.name for p in small_disk.iterdir()} == {"filler", "registry.db"}, "a temporary file was left"

        # The server reloads the registry (ttl 2 s) and still answers pandas' values.
        time.sleep(4)
        assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
        same_as_pandas(_online(sock))
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        log.close()


def test_a_full_disk_fails_apply_and_keeps_the_registry(tmp_path: Path, small_disk: Path) -> None:
    """A registry that grows by more than a page on a full disk: Feast's own
    write truncated it to what fit and exited 0 (the next read: "Wire format
    was corrupt")."""
    registry = small_disk / "registry.db"
    repo, _ = _applied_repo(tmp_path, registry)
    before = registry.read_bytes()
    _fill(small_disk)
    with (repo / "features.py").open("a") as fh:
        fh.write(
            "\nwider = FeatureView(name='wider', entities=[driver], ttl=timedelta(days=1), source=driver_stats_source,"
            f" schema=[Field(name='conv_rate', dtype=Float32)], online=False, description={'x' * 20000!r})\n"
        )
    apply = _apply(repo)
    assert apply.returncode != 0, apply.stdout
    assert "No space left on device" in apply.stdout + apply.stderr
    assert registry.read_bytes() == before
    assert {p.name for p in small_disk.iterdir()} == {"filler", "registry.db"}, "a temporary file was left"
