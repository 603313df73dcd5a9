"""Keep one command running on a host without systemd (stdlib only).

featctl starts it detached on the host::

    PYTHONPATH=<base>/agent python3 -m featctl_agent.supervise --pidfile run/server.pid --log run/server.log \
        [--keep <base>] -- CMD ...

It becomes a session leader, writes its pid file, and runs CMD in a session
of its own, whose leader's pid it writes to the group file (``<pidfile>``
with ``-group.pid``). When CMD exits it kills CMD's whole process group
before starting it again (a gunicorn master killed with SIGKILL leaves its
workers holding the port), with a growing pause, giving up after repeated fast
crashes; each restart is a ``restarted`` line in its log (``restarts`` reads
them). On SIGTERM it stops CMD's group and exits. Both files are removed on
exit. If the supervisor itself is killed, the group file still names CMD's
group, so ``featctl_agent stop`` (and the local target's destroy) can stop it.

One supervisor per pid file: it holds an exclusive lock on ``<pidfile>.lock``
while it lives (a second one exits at once). It records how it was started in
``<pidfile minus .pid>.argv`` (0600; removed when it is stopped), so the
deployment's keeper (keeper.py, started and kept alive by the supervisors of
``--keep <base>``) starts a new supervisor when this one was killed. That one
runs with ``--adopt``: a group its predecessor left running is watched, not
killed, and CMD is started again once the group's leader is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import IO

from .common import pgid_alive

FAST_CRASH_SECONDS = 10.0
MAX_FAST_CRASHES = 5
#: How often a supervisor checks that its deployment's keeper runs.
KEEPER_CHECK_SECONDS = 5.0
_STAMP = "%Y-%m-%dT%H:%M:%SZ"
_RESTART = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) supervise: restarted\b(.*)$", re.M)


def _log(fh: IO[str], message: str) -> None:
    fh.write(f"{time.strftime(_STAMP, time.gmtime())} supervise: {message}\n")
    fh.flush()


def _stem(pidfile: str) -> str:
    return pidfile[: -len(".pid")] if pidfile.endswith(".pid") else pidfile


def group_file(pidfile: str) -> str:
    return _stem(pidfile) + "-group.pid"


def record_file(pidfile: str) -> str:
    """How the supervisor of ``pidfile`` was started (for the keeper)."""
    return _stem(pidfile) + ".argv"


def lock_file(pidfile: str) -> str:
    return pidfile + ".lock"


def held(path: str) -> bool:
    """Whether a live process holds the exclusive lock on ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def restarts(log_text: str) -> list[str]:
    """The restarts a supervisor's log records, oldest first: each its UTC time
    and how (`` (by a new supervisor)`` after its supervisor was killed)."""
    return [m.group(1) + m.group(2).rstrip() for m in _RESTART.finditer(log_text)]


def last_restart(log: str) -> str | None:
    """The newest restart in the end of the supervisor's log ``log``, if any."""
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - 262144))
            text = fh.read().decode(errors="replace")
    except OSError:
        return None
    found = restarts(text)
    return found[-1] if found else None


def stop_group(pgid: int, timeout: float = 15.0, first: int = signal.SIGTERM) -> None:
    """Signal the process group (``first``: SIGTERM), SIGKILL it after ``timeout``; reap our child."""
    for sig, wait in ((first, timeout), (signal.SIGKILL, 5.0)):
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


def leader_alive(pid: int) -> bool:
    """Whether ``pid`` lives and still leads its process group (a zombie does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in ("Z", "X") and fields[2] == str(pid)


def started_by(pid: int, groupfile: str) -> bool:
    """Whether ``pid`` was started before ``groupfile`` (which names it) was
    written: the process a group file names may have gone, and its pid be
    another program's since (whose start is later)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime "))
        written = os.stat(groupfile).st_mtime
    except (OSError, ValueError, IndexError, StopIteration):
        return False
    return boot + ticks / os.sysconf("SC_CLK_TCK") <= written + 1.0


def _write(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _remove_if(path: str, content: str) -> None:
    if _read(path) == content:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _daemonize() -> None:
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)


def _lock(pidfile: str) -> int | None:
    """The supervisor's lock on its pid file, or None when another one holds it."""
    fd = os.open(lock_file(pidfile), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.set_inheritable(fd, False)
    return fd


def keeper_lock(base: str) -> str:
    """What the deployment's keeper (keeper.py) holds while it lives."""
    return os.path.join(base, "run", "keeper.lock")


def ensure_keeper(base: str) -> None:
    """Start the deployment's keeper unless one runs (it exits if another won the race)."""
    if held(keeper_lock(base)) or not os.path.isdir(base):
        return
    package = __package__ or "featctl_agent"
    starter = subprocess.Popen(
        [sys.executable, "-m", f"{package}.keeper", "--base", base],
        cwd=base,  # not a release's directory: a release may go while the keeper stays
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    with contextlib.suppress(subprocess.TimeoutExpired):
        starter.wait(timeout=30)  # the keeper forks away and its first process exits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--cwd", default=None)
    parser.add_argument("--foreground", action="store_true")
    parser.add_argument("--keep", default=None, help="the deployment directory whose keeper to keep running")
    parser.add_argument("--adopt", action="store_true", help="watch a group a killed supervisor left running")
    parser.add_argument("--stop-signal", default="TERM", help="what stops CMD (PostgreSQL's fast shutdown: INT)")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    raw = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(raw)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    args.pidfile = os.path.abspath(args.pidfile)
    halt = signal.Signals[f"SIG{args.stop_signal.upper().removeprefix('SIG')}"]

    if not args.foreground:
        _daemonize()
    else:
        os.setpgrp() if os.getpgrp() != os.getpid() else None

    log = open(args.log, "a", buffering=1)
    lock = _lock(args.pidfile)
    if lock is None:
        _log(log, f"another supervisor holds {lock_file(args.pidfile)}: exiting")
        return 0
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)

    _write(args.pidfile, f"{os.getpid()}\n")
    groupfile = group_file(args.pidfile)
    if args.keep:
        cut = raw.index("--") if "--" in raw else len(raw) - len(command)
        again = [a for a in raw[:cut] if a not in ("--adopt", "--foreground")] + raw[cut:]
        package = __package__ or "featctl_agent"
        record = {"argv": [sys.executable, "-m", f"{package}.supervise", "--adopt", *again], "cwd": os.getcwd()}
        _write(record_file(args.pidfile), json.dumps(record))

    child: subprocess.Popen[bytes] | None = None
    adopted: int | None = None
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, halt)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def keep() -> None:
        if args.keep:
            with contextlib.suppress(OSError):
                ensure_keeper(args.keep)

    fast_crashes = 0
    restarting = False
    why = " (by a new supervisor)" if args.adopt else ""
    try:
        left = _read(groupfile)
        if args.adopt and left.isdigit() and leader_alive(int(left)) and started_by(int(left), groupfile):
            adopted = int(left)
            _log(log, f"a new supervisor: watching process group {adopted}, left running by the one before")
            while not stopping and leader_alive(adopted):
                keep()
                time.sleep(0.5)
            if pgid_alive(adopted):
                stop_group(adopted)
            restarting = not stopping
            if restarting:
                _log(log, f"process group {adopted} ended")
        elif args.adopt:
            restarting = True
        while not stopping:
            started = time.monotonic()
            if restarting:
                _log(log, "restarted" + why)
                why = ""
            _log(log, f"starting: {' '.join(command)}")
            child = subprocess.Popen(command, cwd=args.cwd, stdout=log, stderr=log, start_new_session=True)
            _write(groupfile, f"{child.pid}\n")
            while True:
                keep()
                try:
                    code = child.wait(timeout=KEEPER_CHECK_SECONDS if args.keep else None)
                    break
                except (InterruptedError, subprocess.TimeoutExpired):
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
                with contextlib.suppress(OSError):
                    os.unlink(record_file(args.pidfile))
                return 1
            time.sleep(min(30.0, 0.5 * 2**fast_crashes))
            restarting = True
    finally:
        if child is not None:
            stop_group(child.pid, first=halt)
            with contextlib.suppress(ChildProcessError, subprocess.TimeoutExpired):
                child.wait(timeout=1)
            _remove_if(groupfile, str(child.pid))
        elif adopted is not None and stopping:
            stop_group(adopted, first=halt)
            _remove_if(groupfile, str(adopted))
        if stopping:
            with contextlib.suppress(OSError):
                os.unlink(record_file(args.pidfile))
        _remove_if(args.pidfile, str(os.getpid()))
        _log(log, "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
