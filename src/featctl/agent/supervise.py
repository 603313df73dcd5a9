"""Keep one command running on a host without systemd (stdlib only).

featctl starts it detached on the host::

    PYTHONPATH=<base>/agent python3 -m featctl_agent.supervise --pidfile run/server.pid --log run/server.log -- CMD ...

It becomes a session leader (so one signal to its process group stops it and
everything it started), writes its pid file, runs CMD, restarts CMD when it
exits (with a growing pause, giving up after repeated fast crashes), and on
SIGTERM stops CMD and exits. The pid file is removed on exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from typing import IO

FAST_CRASH_SECONDS = 10.0
MAX_FAST_CRASHES = 5


def _log(fh: IO[str], message: str) -> None:
    fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} supervise: {message}\n")
    fh.flush()


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

    tmp = f"{args.pidfile}.tmp"
    with open(tmp, "w") as fh:
        fh.write(f"{os.getpid()}\n")
    os.replace(tmp, args.pidfile)

    child: subprocess.Popen[bytes] | None = None
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)

    fast_crashes = 0
    try:
        while not stopping:
            started = time.monotonic()
            _log(log, f"starting: {' '.join(command)}")
            child = subprocess.Popen(command, cwd=args.cwd, stdout=log, stderr=log)
            while True:
                try:
                    code = child.wait()
                    break
                except InterruptedError:
                    continue
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
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        try:
            with open(args.pidfile) as fh:
                if fh.read().strip() == str(os.getpid()):
                    os.unlink(args.pidfile)
        except OSError:
            pass
        _log(log, "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
