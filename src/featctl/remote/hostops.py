"""featctl's release and lock bookkeeping on the host (stdlib only).

Uploaded with hostagent.py and run as ``python3 hostops.py <command> --base DIR``.
Prints one JSON document on stdout; exits 0, or 1 with {"error": ...}, or 3
when the deploy lock is held by someone else.

Releases live in ``releases/<id>/`` with featctl's metadata in
``releases/<id>/.featctl/``::

    state           preparing | ready | failed
    manifest.json   path -> sha256 of every file featctl uploaded
    port            the port its feature server listens on
    server.pid      the supervisor of its feature server (when running)
    server.log      that server's log
    created         UTC creation time

``current`` is a symlink to the serving release, replaced with rename(2), so
it always points at a complete release.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import sqlite3
import sys
import time

META = ".featctl"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _read(path: str, default: str = "") -> str:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return default


def _write(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _alive(pid: str) -> bool:
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _current(base: str) -> str | None:
    target = os.readlink(os.path.join(base, "current")) if os.path.islink(os.path.join(base, "current")) else None
    return os.path.basename(target.rstrip("/")) if target else None


def _releases(base: str) -> list[dict]:
    root = os.path.join(base, "releases")
    out = []
    for rid in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        meta = os.path.join(root, rid, META)
        pid = _read(os.path.join(meta, "server.pid"))
        out.append(
            {
                "id": rid,
                "state": _read(os.path.join(meta, "state"), "unknown"),
                "port": int(_read(os.path.join(meta, "port"), "0") or 0) or None,
                "created": _read(os.path.join(meta, "created")) or None,
                "server_pid": int(pid) if _alive(pid) else None,
            }
        )
    return out


def cmd_state(args) -> dict:
    base = args.base
    cur = _current(base)
    manifest = {}
    if cur:
        with contextlib.suppress(OSError, ValueError):
            with open(os.path.join(base, "releases", cur, META, "manifest.json")) as fh:
                manifest = json.load(fh)
    schedule = None
    with contextlib.suppress(OSError, ValueError), open(os.path.join(base, "run", "schedule.json")) as fh:
        schedule = json.load(fh)
    return {
        "current": cur,
        "releases": _releases(base),
        "manifest": manifest,
        "lock": _lock_holder(base),
        "schedule": schedule,
    }


def _is_sqlite(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _copy_file(src: str, dst: str) -> None:
    if _is_sqlite(src):
        # A consistent snapshot even while a server writes to it.
        with (
            contextlib.closing(sqlite3.connect(f"file:{src}?mode=ro", uri=True)) as s,
            contextlib.closing(sqlite3.connect(dst)) as d,
        ):
            s.backup(d)
        shutil.copystat(src, dst)
    else:
        shutil.copy2(src, dst)


def cmd_prepare(args) -> dict:
    """Create releases/<id> as a copy of the current release (without its metadata)."""
    base = args.base
    dest = os.path.join(base, "releases", args.id)
    if os.path.exists(dest):
        raise SystemExit(_fail(f"release {args.id} already exists"))
    os.makedirs(os.path.join(dest, META))
    _write(os.path.join(dest, META, "state"), "preparing")
    _write(os.path.join(dest, META, "created"), _now())
    cur = _current(base)
    if cur:
        src = os.path.join(base, "releases", cur)
        for dirpath, dirnames, filenames in os.walk(src):
            rel = os.path.relpath(dirpath, src)
            if rel == META or rel.startswith(META + os.sep):
                dirnames[:] = []
                continue
            dirnames[:] = [d for d in dirnames if d != META or rel != "."]
            target = os.path.normpath(os.path.join(dest, rel))
            os.makedirs(target, exist_ok=True)
            for name in filenames:
                s = os.path.join(dirpath, name)
                base_db, _, suffix = name.rpartition("-")
                if suffix in ("wal", "shm", "journal") and _is_sqlite(os.path.join(dirpath, base_db)):
                    continue  # the backup of the database already holds them; copying them corrupts it
                if os.path.islink(s):
                    os.symlink(os.readlink(s), os.path.join(target, name))
                else:
                    _copy_file(s, os.path.join(target, name))
    return {"release": args.id, "path": dest, "copied_from": cur}


def cmd_finish_upload(args) -> dict:
    """Remove files the new manifest dropped and record the manifest."""
    base = args.base
    rel_dir = os.path.join(base, "releases", args.id)
    new = json.load(sys.stdin)
    old = {}
    with contextlib.suppress(OSError, ValueError), open(os.path.join(rel_dir, META, "manifest.json")) as fh:
        old = json.load(fh)
    cur = _current(base)
    if not old and cur:
        with contextlib.suppress(OSError, ValueError):
            with open(os.path.join(base, "releases", cur, META, "manifest.json")) as fh:
                old = json.load(fh)
    removed = []
    for path in sorted(set(old) - set(new)):
        full = os.path.normpath(os.path.join(rel_dir, path))
        if full.startswith(rel_dir + os.sep) and os.path.isfile(full):
            os.unlink(full)
            removed.append(path)
    _write(os.path.join(rel_dir, META, "manifest.json"), json.dumps(new, sort_keys=True))
    return {"removed": removed}


def cmd_set(args) -> dict:
    meta = os.path.join(args.base, "releases", args.id, META)
    if not os.path.isdir(meta):
        raise SystemExit(_fail(f"no release {args.id}"))
    if args.state:
        _write(os.path.join(meta, "state"), args.state)
    if args.port:
        _write(os.path.join(meta, "port"), str(args.port))
    return {"release": args.id}


def cmd_switch(args) -> dict:
    """Point ``current`` at the release, atomically, and mark it ready."""
    base = args.base
    target = os.path.join("releases", args.id)
    if not os.path.isdir(os.path.join(base, target)):
        raise SystemExit(_fail(f"no release {args.id}"))
    _write(os.path.join(base, target, META, "state"), "ready")
    tmp = os.path.join(base, f".current.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, os.path.join(base, "current"))
    return {"current": args.id}


def _stop(pid: str, timeout: float = 30.0) -> None:
    if not _alive(pid):
        return
    p = int(pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(p, sig)
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5)
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _alive(pid):
            return


def cmd_stop(args) -> dict:
    meta = os.path.join(args.base, "releases", args.id, META)
    pid = _read(os.path.join(meta, "server.pid"))
    was = _alive(pid)
    _stop(pid)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(meta, "server.pid"))
    return {"stopped": was}


def cmd_cleanup(args) -> dict:
    """Remove unfinished and failed releases and all but the newest ``keep`` ready ones."""
    base = args.base
    cur = _current(base)
    removed = []
    ready = [r for r in _releases(base) if r["state"] == "ready"]
    keep = {r["id"] for r in ready[-args.keep :]} | ({cur} if cur else set())
    for r in _releases(base):
        if r["id"] in keep or r["id"] == args.spare:
            continue
        meta = os.path.join(base, "releases", r["id"], META)
        _stop(_read(os.path.join(meta, "server.pid")))
        shutil.rmtree(os.path.join(base, "releases", r["id"]), ignore_errors=True)
        removed.append({"id": r["id"], "state": r["state"]})
    return {"removed": removed}


# --- the deploy lock ---------------------------------------------------------------


def _lock_paths(base: str) -> tuple[str, str]:
    run = os.path.join(base, "run")
    os.makedirs(run, exist_ok=True)
    return os.path.join(run, "deploy.lock"), os.path.join(run, "deploy.lock.json")


def _lock_holder(base: str) -> dict | None:
    lock, info = _lock_paths(base)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            with open(info) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return {"holder": "unknown"}
    finally:
        os.close(fd)
    return None


def cmd_lock(args) -> int:
    """Hold the deploy lock until stdin closes (the SSH channel ends)."""
    lock, info = _lock_paths(args.base)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = None
        with contextlib.suppress(OSError, ValueError), open(info) as fh:
            holder = json.load(fh)
        print(json.dumps({"busy": holder or {"holder": "unknown"}}), flush=True)
        return 3
    holder = json.loads(args.holder)
    holder.update({"lock_pid": os.getpid(), "since": _now(), "host": socket.gethostname()})
    _write(info, json.dumps(holder))
    print(json.dumps({"locked": holder}), flush=True)
    try:
        while sys.stdin.buffer.read(65536):
            pass
    finally:
        with contextlib.suppress(OSError):
            os.unlink(info)
    return 0


def cmd_unlock(args) -> dict:
    """Break a lock whose holder is gone: stop the process that holds it."""
    _, info = _lock_paths(args.base)
    holder = None
    with contextlib.suppress(OSError, ValueError), open(info) as fh:
        holder = json.load(fh)
    if _lock_holder(args.base) is None:
        with contextlib.suppress(OSError):
            os.unlink(info)
        return {"unlocked": False, "holder": None}
    pid = str((holder or {}).get("lock_pid", ""))
    _stop(pid, timeout=5)
    with contextlib.suppress(OSError):
        os.unlink(info)
    return {"unlocked": True, "holder": holder}


# --- scheduled materialization ----------------------------------------------------


def _schedule_file(base: str) -> str:
    return os.path.join(base, "run", "schedule.json")


def _load_schedule(base: str) -> dict:
    try:
        with open(_schedule_file(base)) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def materialize_once(base: str, every: int) -> dict:
    """One incremental materialization through the serving release's feature server."""
    import urllib.error
    import urllib.request

    state = _load_schedule(base)
    state.update({"every_seconds": every, "last_run": _now()})
    lock, _ = _lock_paths(base)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            state.update({"last_status": "skipped", "last_error": "a deploy held the lock"})
            return state
        cur = _current(base)
        port = _read(os.path.join(base, "releases", cur, META, "port")) if cur else ""
        if not port:
            state.update({"last_status": "error", "last_error": "no serving release"})
            return state
        end = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/materialize-incremental",
            data=json.dumps({"end_ts": end}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        started = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=3600) as resp:
                resp.read()
            state.update(
                {
                    "last_status": "ok",
                    "last_error": None,
                    "last_end": end,
                    "last_seconds": round(time.monotonic() - started, 3),
                }
            )
        except urllib.error.HTTPError as exc:
            body = exc.read().decode(errors="replace")[:300]
            state.update({"last_status": "error", "last_error": f"HTTP {exc.code}: {body}"})
        except OSError as exc:
            state.update({"last_status": "error", "last_error": str(exc)[:300]})
    finally:
        os.close(fd)
    return state


def cmd_materialize_loop(args) -> int:
    """Run materialize_once every ``--every`` seconds (under featctl's supervisor)."""
    while True:
        started = time.time()
        state = materialize_once(args.base, args.every)
        state["next_run"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started + args.every))
        _write(_schedule_file(args.base), json.dumps(state))
        time.sleep(max(1.0, started + args.every - time.time()))


def cmd_materialize_once(args) -> dict:
    state = materialize_once(args.base, args.every)
    state["next_run"] = None
    _write(_schedule_file(args.base), json.dumps(state))
    return state


def _fail(message: str) -> int:
    print(json.dumps({"error": message}), flush=True)
    return 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hostops")
    sub = p.add_subparsers(dest="command", required=True)
    for name in (
        "state",
        "prepare",
        "finish-upload",
        "set",
        "switch",
        "stop",
        "cleanup",
        "lock",
        "unlock",
        "materialize-loop",
        "materialize-once",
    ):
        sp = sub.add_parser(name)
        sp.add_argument("--base", required=True)
        if name in ("prepare", "finish-upload", "set", "switch", "stop"):
            sp.add_argument("--id", required=True)
        if name == "set":
            sp.add_argument("--state", choices=("preparing", "ready", "failed"))
            sp.add_argument("--port", type=int)
        if name == "cleanup":
            sp.add_argument("--keep", type=int, default=5)
            sp.add_argument("--spare", default="")
        if name == "lock":
            sp.add_argument("--holder", default="{}")
        if name.startswith("materialize"):
            sp.add_argument("--every", type=int, default=3600)
    args = p.parse_args(argv)
    os.umask(0o022)
    if args.command == "lock":
        return cmd_lock(args)
    if args.command == "materialize-loop":
        return cmd_materialize_loop(args)
    handler = {
        "state": cmd_state,
        "prepare": cmd_prepare,
        "finish-upload": cmd_finish_upload,
        "set": cmd_set,
        "switch": cmd_switch,
        "stop": cmd_stop,
        "cleanup": cmd_cleanup,
        "unlock": cmd_unlock,
        "materialize-once": cmd_materialize_once,
    }[args.command]
    try:
        result = handler(args)
    except SystemExit as exc:
        return int(exc.code or 1)
    except OSError as exc:
        return _fail(f"{args.command}: {exc}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
