"""The deployment's keeper: starts a supervisor again when it was killed (stdlib only).

featctl's supervisor (supervise.py) restarts a crashed server, but nothing
restarted a killed supervisor: its server ran on unsupervised, and once that
died too nothing served until the next deploy. Every supervisor featctl starts
with ``--keep <base>`` records how it was started (``<service>.argv``) and
starts this keeper when none runs; the keeper, every ``TICK`` seconds, starts
the recorded supervisor again (``--adopt``: it watches the group its
predecessor left running and restarts the server once that group's leader is
gone) for every record of the serving release and of the schedule whose
supervisor no longer holds its lock. So the supervisors keep the keeper and
the keeper keeps them::

    PYTHONPATH=<base>/agent python -m featctl_agent.keeper --base <base>

A record goes when its service is stopped (``stop`` removes it under the same
``keep.lock`` the keeper restarts under, so a stopped service is never started
again) or its supervisor gave up. The keeper holds ``run/keeper.lock`` while it
lives (one per deployment), logs to ``run/keeper.log``, and exits when the
deployment directory is gone or nothing is left to keep.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

from .common import alive, read
from .supervise import held, keeper_lock, lock_file

TICK = 2.0
#: A record whose supervisor was started again this often within WINDOW is dropped.
MAX_RESTARTS, WINDOW = 5, 600.0
#: Ticks with nothing to keep before the keeper exits.
IDLE_TICKS = 30


def pid_path(base: str) -> str:
    return os.path.join(base, "run", "keeper.pid")


@contextlib.contextmanager
def keep_lock(directory: str) -> Iterator[None]:
    """The lock under which a record in ``directory`` is acted on (the keeper's
    restart, ``stop``'s removal), so the two never interleave."""
    fd = os.open(os.path.join(directory, "keep.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def forget(directory: str, service: str | None = None) -> None:
    """Remove the records of ``directory``'s supervisors (or of one ``service``):
    called before they are stopped, under ``keep_lock``."""
    for path in glob.glob(os.path.join(directory, f"{service or '*'}.argv")):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def running(base: str) -> int | None:
    """The pid of the deployment's live keeper."""
    pid = read(pid_path(base))
    return int(pid) if pid.isdigit() and held(keeper_lock(base)) else None


def stop(base: str) -> None:
    """Stop the deployment's keeper (before everything of the deployment is stopped)."""
    pid = read(pid_path(base))
    if alive(pid) and _is_keeper(int(pid)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(pid), signal.SIGKILL)


def _is_keeper(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return b".keeper" in fh.read()
    except OSError:
        return False


def _records(base: str) -> list[str]:
    """The records of the serving release's supervisors and of the schedule's."""
    link = os.path.join(base, "current")
    cur = os.path.basename(os.readlink(link).rstrip("/")) if os.path.islink(link) else ""
    found = sorted(glob.glob(os.path.join(base, "releases", cur, ".featctl", "*.argv"))) if cur else []
    return found + sorted(glob.glob(os.path.join(base, "run", "*.argv")))


def _log(message: str, base: str) -> None:
    with open(os.path.join(base, "run", "keeper.log"), "a") as fh:
        fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} keeper: {message}\n")


def _restart(record: str, base: str) -> bool:
    """Start the supervisor of ``record`` again if it is gone; True if it was."""
    directory = os.path.dirname(record)
    pidfile = record[: -len(".argv")] + ".pid"
    with keep_lock(directory):
        if held(lock_file(pidfile)) or not os.path.exists(record):
            return False
        try:
            with open(record) as fh:
                spec = json.load(fh)
            argv, cwd = [str(a) for a in spec["argv"]], str(spec.get("cwd") or base)
        except (OSError, ValueError, KeyError, TypeError):
            _log(f"dropping the unreadable record {record}", base)
            forget(directory, os.path.basename(record)[: -len(".argv")])
            return False
        proc = subprocess.Popen(
            argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=30)  # it daemonizes: the first process exits at once
        deadline = time.monotonic() + 15
        while not held(lock_file(pidfile)) and time.monotonic() < deadline:
            time.sleep(0.1)
        what = os.path.relpath(record[: -len(".argv")], base)
        _log(f"the supervisor of {what} was gone: started a new one", base)
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    args = parser.parse_args(argv)
    base = os.path.realpath(args.base)
    os.makedirs(os.path.join(base, "run"), exist_ok=True)
    fd = os.open(keeper_lock(base), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0  # another keeper runs
    if os.fork() > 0:  # out of the starting supervisor's way
        os._exit(0)
    os.setsid()
    with open(pid_path(base) + ".tmp", "w") as fh:
        fh.write(f"{os.getpid()}\n")
    os.replace(pid_path(base) + ".tmp", pid_path(base))
    devnull = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):
        os.dup2(devnull, std)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    history: dict[str, list[float]] = {}
    idle = 0
    while os.path.isdir(os.path.join(base, "releases")):
        try:
            records = _records(base)
            idle = 0 if records else idle + 1
            if idle > IDLE_TICKS:
                break
            for record in records:
                now = time.monotonic()
                recent = [t for t in history.get(record, []) if now - t < WINDOW]
                if len(recent) >= MAX_RESTARTS:
                    with keep_lock(os.path.dirname(record)):
                        forget(os.path.dirname(record), os.path.basename(record)[: -len(".argv")])
                    _log(
                        f"giving up on {record}: its supervisor was started {len(recent)} times in {WINDOW:.0f} s", base
                    )
                    continue
                if _restart(record, base):
                    recent.append(now)
                history[record] = recent
        except OSError as exc:  # a release removed under us: look again next time
            with contextlib.suppress(OSError):
                _log(f"{exc}", base)
        time.sleep(TICK)
    return 0


if __name__ == "__main__":
    sys.exit(main())
