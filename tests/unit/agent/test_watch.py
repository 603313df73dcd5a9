"""agent/watch.py (#23 item 5): what the Spark watch decides, and that a command
whose client hung up or whose job stalled leaves nothing running. The process
tests run real processes (a Python "agent" and a child standing in for the
JVM: the watch reads only /proc, so it cannot tell)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from featctl.agent import watch
from featctl.config import load_settings
from featctl.errors import CommandTimedOut, ConfigError, JobStopped
from featctl.remote.agent import run_agent
from featctl.remote.layout import Layout
from featctl.remote.ssh import Result

SRC = str(Path(watch.__file__).resolve().parents[2])


def test_the_default_driver_heap_is_half_the_host_and_at_least_a_gibibyte():
    assert watch.default_driver_memory("MemTotal:       24576000 kB\nMemFree: 1 kB\n") == "12000m"
    assert watch.default_driver_memory("MemTotal:        1024000 kB\n") == "1024m"
    assert watch.default_driver_memory("") == "1024m"


def test_a_dead_jvm_is_named_by_what_killed_it():
    assert "ran out of memory (driver memory 2g)" in watch.death_message(3, "2g")
    assert "[spark] driver_memory" in watch.death_message(52, "2g")
    assert "killed by SIGKILL (the kernel's out-of-memory killer" in watch.death_message(-9, "2g")
    assert "killed by SIGTERM" in watch.death_message(-15, "2g")
    assert "exited with status 1" in watch.death_message(1, "2g")


def test_a_stall_is_a_full_window_of_almost_no_cpu():
    idle = [(float(t), 0.006 * t) for t in range(0, 50, 2)]  # an idle JVM: 0.6 % of a core
    assert watch.stalled(idle, 45)
    assert not watch.stalled(idle, 60)  # the window is not covered yet
    busy = [(float(t), 0.9 * t) for t in range(0, 50, 2)]
    assert not watch.stalled(busy, 45)
    # Busy long ago, idle for the last 45 s: stalled; idle then one busy moment: not.
    burst = [(float(t), 30.0 if t >= 10 else 3.0 * t) for t in range(0, 60, 2)]
    assert watch.stalled(burst, 45)
    late = [(t, c if t < 50 else c + 5.0) for t, c in idle + [(50.0, 0.3)]]
    assert not watch.stalled(late, 45)


def test_spark_settings_are_checked_and_reach_the_release(tmp_path):
    (tmp_path / "featctl.toml").write_text('[spark]\ndriver_memory = "6G"\nstall_seconds = 30\n')
    s = load_settings(environ={}, cwd=tmp_path)
    assert s.spark == {"driver_memory": "6g", "stall_seconds": 30.0}
    assert load_settings(environ={}, cwd=tmp_path / "nowhere").spark == {"driver_memory": None, "stall_seconds": 45.0}
    for bad in ('driver_memory = "2048"', 'driver_memory = "256m"', "stall_seconds = 5", 'stall_seconds = "x"'):
        (tmp_path / "featctl.toml").write_text(f"[spark]\n{bad}\n")
        with pytest.raises(ConfigError, match=r"\[spark\]"):
            load_settings(environ={}, cwd=tmp_path)


class _Conn:
    """The SSH boundary: returns one result, or raises."""

    endpoint = "u@h:22"

    def __init__(self, result: Result | None = None, raises: Exception | None = None) -> None:
        self.result, self.raises, self.commands = result, raises, []

    def run(self, command, **_kw):
        self.commands.append(command)
        if self.raises is not None:
            raise self.raises
        return self.result


def test_run_agent_reports_a_stopped_job_with_its_own_code():
    layout = Layout("/base")
    doc = {"error": "Spark made no progress for 45 s", "kind": "job"}
    conn = _Conn(Result("c", 1, json.dumps(doc).encode(), b""))
    with pytest.raises(JobStopped, match="historical on the host: Spark made no progress") as err:
        run_agent(conn, layout, "historical", timeout=60)
    assert err.value.exit_code == 10
    assert conn.commands[0].startswith("env FEATCTL_WATCH_CLIENT=1 PYTHONPATH=")
    late = _Conn(raises=CommandTimedOut("command timed out after 60 s on u@h:22: ..."))
    with pytest.raises(JobStopped, match="did not finish within 60 s; featctl stopped it") as err:
        run_agent(late, layout, "historical", timeout=60)
    assert err.value.exit_code == 10


def _agent(tmp_path: Path, body: str) -> subprocess.Popen[bytes]:
    """A Python process with the agent's watch, a child that idles (the "JVM"),
    and ``body``; its pid file names the child."""
    script = textwrap.dedent(
        f"""
        import os, subprocess, sys, time
        sys.path.insert(0, {SRC!r})
        from featctl.agent import watch
        child = subprocess.Popen(["sleep", "300"])
        open({str(tmp_path / "child")!r}, "w").write(str(child.pid))
        """
    ) + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def _gone(pid: int, within: float) -> bool:
    end = time.monotonic() + within
    while time.monotonic() < end:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def _child(tmp_path: Path) -> int:
    end = time.monotonic() + 10
    while not (tmp_path / "child").exists() and time.monotonic() < end:
        time.sleep(0.05)
    return int((tmp_path / "child").read_text())


def test_the_client_hanging_up_kills_the_command_and_what_it_started(tmp_path, monkeypatch):
    monkeypatch.setenv(watch.CLIENT_ENV, "1")
    proc = _agent(tmp_path, "watch.watch_client()\ntime.sleep(300)\n")
    child = _child(tmp_path)
    assert not _gone(child, 0.5)
    assert proc.stdin is not None
    proc.stdin.close()  # what sshd does when the channel or connection ends
    assert proc.wait(timeout=10) == 1
    assert _gone(child, 5)


def test_without_the_client_flag_a_closed_stdin_is_no_signal(tmp_path, monkeypatch):
    monkeypatch.delenv(watch.CLIENT_ENV, raising=False)
    proc = _agent(tmp_path, "watch.watch_client()\ntime.sleep(1.5)\nchild.kill()\n")
    child = _child(tmp_path)
    assert proc.stdin is not None
    proc.stdin.close()  # the schedule runs the agent with stdin from /dev/null
    assert proc.wait(timeout=10) == 0 and _gone(child, 5)


def test_a_stalled_job_ends_with_one_line_and_nothing_left(tmp_path):
    os.environ.pop(watch.CLIENT_ENV, None)
    body = """
        from featctl.agent import output
        output.protect_stdout()
        watch.POLL = 0.2
        watch._watch_jvm(2.0, watch._json_report)
    """
    started = time.monotonic()
    proc = _agent(tmp_path, body)
    child = _child(tmp_path)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1 and time.monotonic() - started < 15
    doc = json.loads(out.decode().strip().splitlines()[-1])
    assert doc["kind"] == "job" and doc["error"].startswith("Spark made no progress for 2 s")
    assert _gone(child, 5)
