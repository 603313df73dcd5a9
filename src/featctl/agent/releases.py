"""featctl's release bookkeeping on the host (stdlib only).

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
import json
import os
import shutil
import sqlite3
import sys
from typing import Any

from .common import alive, now, read, stop_pid, write
from .lock import lock_holder
from .output import InputError

META = ".featctl"


def current(base: str) -> str | None:
    link = os.path.join(base, "current")
    target = os.readlink(link) if os.path.islink(link) else None
    return os.path.basename(target.rstrip("/")) if target else None


def releases(base: str) -> list[dict[str, Any]]:
    root = os.path.join(base, "releases")
    out = []
    for rid in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        meta = os.path.join(root, rid, META)
        pid = read(os.path.join(meta, "server.pid"))
        out.append(
            {
                "id": rid,
                "state": read(os.path.join(meta, "state"), "unknown"),
                "port": int(read(os.path.join(meta, "port"), "0") or 0) or None,
                "created": read(os.path.join(meta, "created")) or None,
                "server_pid": int(pid) if alive(pid) else None,
            }
        )
    return out


def cmd_state(args: argparse.Namespace) -> dict[str, Any]:
    base = args.base
    cur = current(base)
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
        "releases": releases(base),
        "manifest": manifest,
        "lock": lock_holder(base),
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


def cmd_prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Create releases/<id> as a copy of the current release (without its metadata)."""
    base = args.base
    dest = os.path.join(base, "releases", args.id)
    if os.path.exists(dest):
        raise InputError(f"release {args.id} already exists")
    os.makedirs(os.path.join(dest, META))
    write(os.path.join(dest, META, "state"), "preparing")
    write(os.path.join(dest, META, "created"), now())
    cur = current(base)
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


def cmd_finish_upload(args: argparse.Namespace) -> dict[str, Any]:
    """Remove files the new manifest dropped and record the manifest (read from stdin)."""
    base = args.base
    rel_dir = os.path.join(base, "releases", args.id)
    new = json.load(sys.stdin)
    old = {}
    with contextlib.suppress(OSError, ValueError), open(os.path.join(rel_dir, META, "manifest.json")) as fh:
        old = json.load(fh)
    cur = current(base)
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
    write(os.path.join(rel_dir, META, "manifest.json"), json.dumps(new, sort_keys=True))
    return {"removed": removed}


def cmd_set(args: argparse.Namespace) -> dict[str, Any]:
    meta = os.path.join(args.base, "releases", args.id, META)
    if not os.path.isdir(meta):
        raise InputError(f"no release {args.id}")
    if args.state:
        write(os.path.join(meta, "state"), args.state)
    if args.port:
        write(os.path.join(meta, "port"), str(args.port))
    return {"release": args.id}


def cmd_switch(args: argparse.Namespace) -> dict[str, Any]:
    """Point ``current`` at the release, atomically, and mark it ready."""
    base = args.base
    target = os.path.join("releases", args.id)
    if not os.path.isdir(os.path.join(base, target)):
        raise InputError(f"no release {args.id}")
    write(os.path.join(base, target, META, "state"), "ready")
    tmp = os.path.join(base, f".current.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, os.path.join(base, "current"))
    return {"current": args.id}


def cmd_stop(args: argparse.Namespace) -> dict[str, Any]:
    meta = os.path.join(args.base, "releases", args.id, META)
    pid = read(os.path.join(meta, "server.pid"))
    was = alive(pid)
    stop_pid(pid)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(meta, "server.pid"))
    return {"stopped": was}


def cmd_cleanup(args: argparse.Namespace) -> dict[str, Any]:
    """Remove unfinished and failed releases and all but the newest ``keep`` ready ones."""
    base = args.base
    cur = current(base)
    removed = []
    ready = [r for r in releases(base) if r["state"] == "ready"]
    keep = {r["id"] for r in ready[-args.keep :]} | ({cur} if cur else set())
    for r in releases(base):
        if r["id"] in keep or r["id"] == args.spare:
            continue
        meta = os.path.join(base, "releases", r["id"], META)
        stop_pid(read(os.path.join(meta, "server.pid")))
        shutil.rmtree(os.path.join(base, "releases", r["id"]), ignore_errors=True)
        removed.append({"id": r["id"], "state": r["state"]})
    return {"removed": removed}
