"""The host's deploy lock: one deploy, rollback or materialization at a time,
held by a process tied to the client's SSH channel (stdlib only)."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import socket
import sys
from typing import Any

from .common import now, stop_pid, write
from .output import write_line

BUSY = 3


def lock_paths(base: str) -> tuple[str, str]:
    run = os.path.join(base, "run")
    os.makedirs(run, exist_ok=True)
    return os.path.join(run, "deploy.lock"), os.path.join(run, "deploy.lock.json")


def lock_holder(base: str) -> dict[str, Any] | None:
    lock, info = lock_paths(base)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            with open(info) as fh:
                held: dict[str, Any] = json.load(fh)
                return held
        except (OSError, ValueError):
            return {"holder": "unknown"}
    finally:
        os.close(fd)
    return None


def cmd_lock(args: argparse.Namespace) -> int:
    """Hold the deploy lock until stdin closes (the SSH channel ends)."""
    lock, info = lock_paths(args.base)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = None
        with contextlib.suppress(OSError, ValueError), open(info) as fh:
            holder = json.load(fh)
        write_line({"busy": holder or {"holder": "unknown"}})
        return BUSY
    holder = json.loads(args.holder)
    holder.update({"lock_pid": os.getpid(), "since": now(), "host": socket.gethostname()})
    write(info, json.dumps(holder))
    write_line({"locked": holder})
    try:
        while sys.stdin.buffer.read(65536):
            pass
    finally:
        with contextlib.suppress(OSError):
            os.unlink(info)
    return 0


def cmd_unlock(args: argparse.Namespace) -> dict[str, Any]:
    """Break a lock whose holder is gone: stop the process that holds it."""
    _, info = lock_paths(args.base)
    holder = None
    with contextlib.suppress(OSError, ValueError), open(info) as fh:
        holder = json.load(fh)
    if lock_holder(args.base) is None:
        with contextlib.suppress(OSError):
            os.unlink(info)
        return {"unlocked": False, "holder": None}
    pid = str((holder or {}).get("lock_pid", ""))
    stop_pid(pid, timeout=5)
    with contextlib.suppress(OSError):
        os.unlink(info)
    return {"unlocked": True, "holder": holder}
