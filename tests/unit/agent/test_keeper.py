"""featctl's supervisor and the deployment's keeper keep each other (real
processes: the supervisor, the keeper and a ``sleep`` standing for a server)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from featctl.agent import keeper, supervise
from featctl.agent.common import alive, read
from featctl.agent.releases import stop_server

SRC = Path(__file__).resolve().parents[3] / "src"


def wait(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {seconds} s")


@pytest.fixture
def base(tmp_path: Path):
    meta = tmp_path / "releases" / "R1" / ".featctl"
    meta.mkdir(parents=True)
    (tmp_path / "run").mkdir()
    (tmp_path / "current").symlink_to("releases/R1")
    yield tmp_path
    stop_server(str(tmp_path), "R1")
    keeper.stop(str(tmp_path))
    for pid in (read(str(tmp_path / "run" / "keeper.pid")),):
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def start(base: Path) -> Path:
    meta = base / "releases" / "R1" / ".featctl"
    subprocess.run(
        [sys.executable, "-m", "featctl.agent.supervise", "--pidfile", str(meta / "server.pid"),
         "--log", str(meta / "server.log"), "--keep", str(base), "--", "sleep", "1000"],
        env={**os.environ, "PYTHONPATH": str(SRC)}, check=True, timeout=60,
    )  # fmt: skip
    wait(lambda: read(str(meta / "server-group.pid")), 30, "the server's start")
    return meta


def live(pid: str) -> bool:
    return supervise.leader_alive(int(pid)) if pid.isdigit() else False


def test_a_killed_supervisor_is_replaced_and_its_server_kept_then_restarted(base: Path) -> None:
    meta = start(base)
    first, server = read(str(meta / "server.pid")), read(str(meta / "server-group.pid"))
    wait(lambda: keeper.running(str(base)), 30, "the keeper's start")
    os.kill(int(first), signal.SIGKILL)
    # A new supervisor within seconds, watching the server that ran on (not restarting it).
    new = wait(lambda: (p := read(str(meta / "server.pid"))) != first and alive(p) and p, 20, "a new supervisor")
    assert read(str(meta / "server-group.pid")) == server and live(server)
    keeper_log = base / "run" / "keeper.log"
    wait(lambda: keeper_log.exists() and "was gone: started a new one" in keeper_log.read_text(), 20, "the keeper's line")
    # The server killed too: the new supervisor starts it again and its log says so.
    os.kill(int(server), signal.SIGKILL)
    wait(lambda: (g := read(str(meta / "server-group.pid"))) != server and live(g), 20, "a restarted server")
    assert read(str(meta / "server.pid")) == new
    restarted = supervise.last_restart(str(meta / "server.log"))
    assert restarted and restarted.endswith("(by a new supervisor)")


def test_a_killed_keeper_is_started_again_by_a_supervisor(base: Path) -> None:
    start(base)
    pid = wait(lambda: keeper.running(str(base)), 30, "the keeper's start")
    os.kill(pid, signal.SIGKILL)
    wait(lambda: (k := keeper.running(str(base))) and k != pid, supervise.KEEPER_CHECK_SECONDS + 15, "a new keeper")


def test_a_stopped_server_is_not_started_again(base: Path) -> None:
    meta = start(base)
    wait(lambda: keeper.running(str(base)), 30, "the keeper's start")
    assert stop_server(str(base), "R1")
    assert not list(meta.glob("*.argv"))
    time.sleep(keeper.TICK * 2 + 1)
    assert not read(str(meta / "server.pid")) and not supervise.held(supervise.lock_file(str(meta / "server.pid")))


def test_one_supervisor_per_pid_file(base: Path) -> None:
    meta = start(base)
    first = read(str(meta / "server.pid"))
    start(base)  # a second one exits at once, leaving the first in charge
    wait(lambda: "another supervisor holds" in (meta / "server.log").read_text(), 30, "the second one's exit")
    assert read(str(meta / "server.pid")) == first


def test_restarts_are_read_from_the_log() -> None:
    log = (
        "2026-12-07T01:00:00Z supervise: starting: x\n"
        "2026-12-07T01:00:05Z supervise: restarted\n"
        "2026-12-07T01:01:00Z supervise: restarted (by a new supervisor)\n"
        "some server output: supervise: restarted\n"
    )
    assert supervise.restarts(log) == ["2026-12-07T01:00:05Z", "2026-12-07T01:01:00Z (by a new supervisor)"]


def test_the_schedule_loop_is_kept_too(base: Path) -> None:
    """The schedule's loop runs under a supervisor of run/schedule.pid (remote/schedule.py)."""
    run = base / "run"
    subprocess.run(
        [sys.executable, "-m", "featctl.agent.supervise", "--pidfile", str(run / "schedule.pid"),
         "--log", str(run / "schedule.log"), "--keep", str(base), "--", "sleep", "1000"],
        env={**os.environ, "PYTHONPATH": str(SRC)}, check=True, timeout=60,
    )  # fmt: skip
    first = wait(lambda: alive(p := read(str(run / "schedule.pid"))) and p, 30, "the loop's supervisor")
    wait(lambda: keeper.running(str(base)), 30, "the keeper's start")
    os.kill(int(first), signal.SIGKILL)
    os.killpg(int(read(str(run / "schedule-group.pid"))), signal.SIGKILL)
    wait(lambda: (p := read(str(run / "schedule.pid"))) != first and alive(p), 20, "a new supervisor of the loop")
    wait(lambda: supervise.last_restart(str(run / "schedule.log")), 20, "the loop's restart")
    subprocess.run(["kill", "-TERM", read(str(run / "schedule.pid"))], check=True)
    wait(lambda: not supervise.held(supervise.lock_file(str(run / "schedule.pid"))), 30, "the loop's stop")
    assert not (run / "schedule.argv").exists()
