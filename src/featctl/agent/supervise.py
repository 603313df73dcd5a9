"""Keep one command running on a host without systemd (stdlib only).

featctl starts it detached on the host::

    PYTHONPATH=<base>/agent python3 -m featctl_agent.supervise --pidfile run/server.pid --log run/server.log -- CMD ...

It becomes a session leader, writes its pid file, and runs CMD in a session
of its own, whose leader's pid it writes to the group file (``<pidfile>``
with ``-group.pid``). When CMD exits it kills CMD's whole process group
before starting it again (a gunicorn master killed with SIGKILL leaves its
workers holding the port), with a growing pause, giving up after repeated fast
crashes. On SIGTERM it stops CMD's group and exits. Both files are removed on
exit. If the supervisor itself is killed, the group file still names CMD's
group, so ``featctl_agent stop`` (and the local target's destroy) can stop it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import IO

from .common import pgid_alive

FAST_CRASH_SECONDS = 10.0
MAX_FAST_CRASHES = 5


def _log(fh: IO[str], message: str) -> None:
    fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} supervise: {message}\n")
    fh.flush()


def group_file(pidfile: str) -> str:
    return (pidfile[: -len(".pid")] if pidfile.endswith(".pid") else pidfile) + "-group.pid"


def stop_group(pgid: int, timeout: float = 15.0) -> None:
    """SIGTERM the process group, SIGKILL it after ``timeout``; reap our child."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(-pgid, os.WNOHANG)
            if not pgid_alive(pgid):
                return
            time.sleep(0.1)


def _write(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _remove_if(path: str, content: str) -> None:
    try:
        with open(path) as fh:
            if fh.read().strip() == content:
                os.unlink(path)
    except OSError:
        pass


def _daemonize() -> None:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--cwd", default=None)
    parser.add_argument("--foreground", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")

    if not args.foreground:
        _daemonize()
    else:
        os.setpgrp() if os.getpgrp() != os.getpid() else None

    log = open(args.log, "a", buffering=1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)

    _write(args.pidfile, f"{os.getpid()}\n")
    groupfile = group_file(args.pidfile)

    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    fast_crashes = 0
    try:
        while not stopping:
            started = time.monotonic()
            _log(log, f"starting: {' '.join(command)}")
            child = subprocess.Popen(command, cwd=args.cwd, stdout=log, stderr=log, start_new_session=True)
            _write(groupfile, f"{child.pid}\n")
            while True:
                try:
                    code = child.wait()
                    break
                except InterruptedError:
                    continue
            if pgid_alive(child.pid):
                # What the command left behind (a killed gunicorn master's workers).
                _log(log, f"stopping what is left of process group {child.pid}")
                stop_group(child.pid)
            if stopping:
                break
            ran = time.monotonic() - started
            fast_crashes = fast_crashes + 1 if ran < FAST_CRASH_SECONDS else 0
            _log(log, f"exited with status {code} after {ran:.1f} s")
            if fast_crashes >= MAX_FAST_CRASHES:
                _log(log, f"giving up after {fast_crashes} fast crashes")
                return 1
            time.sleep(min(30.0, 0.5 * 2**fast_crashes))
    finally:
        if child is not None:
            stop_group(child.pid)
            with contextlib.suppress(ChildProcessError, subprocess.TimeoutExpired):
                child.wait(timeout=1)
            _remove_if(groupfile, str(child.pid))
        _remove_if(args.pidfile, str(os.getpid()))
        _log(log, "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
