"""Scheduled incremental materialization on the host (stdlib only): each run
asks the serving release's feature server to materialize, and records its
outcome in ``run/schedule.json`` for ``featctl status``."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import time
from typing import Any

from .common import HTTPStatus, now, read, unix_post, write
from .lock import lock_paths
from .releases import META, current


def _schedule_file(base: str) -> str:
    return os.path.join(base, "run", "schedule.json")


def _load_schedule(base: str) -> dict[str, Any]:
    try:
        with open(_schedule_file(base)) as fh:
            data: dict[str, Any] = json.load(fh)
            return data
    except (OSError, ValueError):
        return {}


def materialize_once(base: str, every: int) -> dict[str, Any]:
    """One incremental materialization through the serving release's feature server."""
    state = _load_schedule(base)
    state.update({"every_seconds": every, "last_run": now()})
    lock, _ = lock_paths(base)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            state.update({"last_status": "skipped", "last_error": "a deploy held the lock"})
            return state
        cur = current(base)
        port = read(os.path.join(base, "releases", cur, META, "port")) if cur else ""
        if not port:
            state.update({"last_status": "error", "last_error": "no serving release"})
            return state
        end = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        started = time.monotonic()
        try:
            status, body = unix_post(
                os.path.join(base, "run", "s", port), "/materialize-incremental", {"end_ts": end}, timeout=3600
            )
            if status >= 400:
                raise HTTPStatus(status, body)
            state.update(
                {
                    "last_status": "ok",
                    "last_error": None,
                    "last_end": end,
                    "last_seconds": round(time.monotonic() - started, 3),
                }
            )
        except HTTPStatus as exc:
            state.update({"last_status": "error", "last_error": f"HTTP {exc.status}: {exc.body[:300]}"})
        except OSError as exc:
            state.update({"last_status": "error", "last_error": str(exc)[:300]})
    finally:
        os.close(fd)
    return state


def cmd_materialize_loop(args: argparse.Namespace) -> int:
    """Run materialize_once every ``--every`` seconds (under featctl's supervisor)."""
    while True:
        started = time.time()
        state = materialize_once(args.base, args.every)
        state["next_run"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started + args.every))
        write(_schedule_file(args.base), json.dumps(state))
        time.sleep(max(1.0, started + args.every - time.time()))


def cmd_materialize_once(args: argparse.Namespace) -> dict[str, Any]:
    state = materialize_once(args.base, args.every)
    state["next_run"] = None
    write(_schedule_file(args.base), json.dumps(state))
    return state
