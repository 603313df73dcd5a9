"""Scheduled incremental materialization on the host (stdlib only): each run
asks the serving release's feature server to materialize, then runs a sampled
``verify --repair`` (VERIFY_SAMPLE entities per view, in the release's Feast
environment: agent/verify.py) so that a wrong online value does not stay
served, and records both outcomes in ``run/schedule.json`` (and the verify's
in ``run/verify.json``) for ``featctl status``."""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import time
from typing import Any

from .common import HTTPStatus, now, read, unix_post, write
from .lock import lock_paths
from .releases import META, current

VERIFY_TIMEOUT = 1800


def _schedule_file(base: str) -> str:
    return os.path.join(base, "run", "schedule.json")


def _load_schedule(base: str) -> dict[str, Any]:
    try:
        with open(_schedule_file(base)) as fh:
            data: dict[str, Any] = json.load(fh)
            return data
    except (OSError, ValueError):
        return {}


def verify_sample(base: str, release: str, default_env: str, sample: int) -> dict[str, Any]:
    """A ``verify --repair`` of ``sample`` entities per view of ``release`` in its Feast environment:
    the verify's summary, or {"error": ...}. Runs without the deploy lock (a
    deploy is not refused meanwhile); its record names the release it read."""
    env = read(os.path.join(base, "releases", release, META, "env")) or default_env
    python = os.path.join(base, "envs", env, "bin", "python") if env else ""
    if not python or not os.path.exists(python):
        return {"when": now(), "error": f"no Feast environment for release {release} ({env or 'unknown'})"}
    record = os.path.join(base, "run", "verify.json")
    argv = [python, "-m", __package__ or "featctl_agent", "verify", "--repo", os.path.join(base, "releases", release)]
    argv += ["--sample", str(sample), "--repair", "--record", record]
    try:
        proc = subprocess.run(argv, capture_output=True, timeout=VERIFY_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return {"when": now(), "error": f"verify did not finish in {VERIFY_TIMEOUT} s"}
    try:
        lines = proc.stdout.decode(errors="replace").strip().splitlines()
        doc: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    except ValueError:
        doc = {}
    if proc.returncode != 0 or "error" in doc:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return {"when": now(), "error": str(doc.get("error") or tail[0])[:300]}
    return {k: doc.get(k) for k in ("when", "seconds", "mode", "checked", "wrong", "repaired", "newer")}


def materialize_once(base: str, every: int, default_env: str = "", sample: int = 1000) -> dict[str, Any]:
    """One incremental materialization through the serving release's feature
    server, then a sampled verify that repairs what it finds."""
    state = _materialize_once(base, every)
    cur = current(base)
    state.pop("last_verify", None)
    if state.get("last_status") == "ok" and cur and sample > 0:
        state["last_verify"] = verify_sample(base, cur, default_env, sample)
        if state["last_verify"].get("error"):
            print(f"featctl schedule: verify failed: {state['last_verify']['error']}", file=sys.stderr, flush=True)
    return state


def _materialize_once(base: str, every: int) -> dict[str, Any]:
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
        state = materialize_once(args.base, args.every, args.default_env, args.verify_sample)
        state["next_run"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started + args.every))
        write(_schedule_file(args.base), json.dumps(state))
        time.sleep(max(1.0, started + args.every - time.time()))


def cmd_materialize_once(args: argparse.Namespace) -> dict[str, Any]:
    state = materialize_once(args.base, args.every, args.default_env, args.verify_sample)
    state["next_run"] = None
    write(_schedule_file(args.base), json.dumps(state))
    return state
