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
import hashlib
import json
import os
import shutil
import sqlite3
import sys
from typing import Any

from . import keeper, supervise, units
from .common import alive, now, read, stop_pid, write
from .lock import lock_holder
from .output import InputError
from .procs import group_alive, kill_groups

META = ".featctl"


def current(base: str) -> str | None:
    link = os.path.join(base, "current")
    target = os.readlink(link) if os.path.islink(link) else None
    return os.path.basename(target.rstrip("/")) if target else None


def releases(base: str) -> list[dict[str, Any]]:
    """Every release with its state, port and server: ``server_pid`` is its live
    supervisor, ``server_group`` the live process group of the server itself
    (alive without a supervisor when the supervisor was killed)."""
    root = os.path.join(base, "releases")
    out = []
    # A directory without featctl's metadata is not a release featctl made: never listed, never removed.
    ids = [r for r in sorted(os.listdir(root)) if os.path.isdir(os.path.join(root, r, META))] if os.path.isdir(root) else []
    # Services systemd runs (one systemctl call for all): their main pids.
    unit_of = {rid: units.release_units(base, rid) for rid in ids}
    unit_pids = units.main_pids([u for found in unit_of.values() for u in found.values()])
    for rid in ids:
        meta = os.path.join(root, rid, META)
        found = unit_of[rid]
        pid = read(os.path.join(meta, "server.pid")) or str(unit_pids.get(found.get("server", ""), ""))
        group = read(os.path.join(meta, "server-group.pid"))
        probe = None
        with contextlib.suppress(OSError, ValueError), open(os.path.join(meta, "probe.json")) as fh:
            probe = json.load(fh)
        out.append(
            {
                "id": rid,
                "state": read(os.path.join(meta, "state"), "unknown"),
                "port": int(read(os.path.join(meta, "port"), "0") or 0) or None,
                "created": read(os.path.join(meta, "created")) or None,
                "server_pid": int(pid) if alive(pid) else None,
                "server_group": int(group) if group_alive(group) else None,
                "probe": probe,
                "env": read(os.path.join(meta, "env")) or None,
                "online_store": read(os.path.join(meta, "online_store")) or None,
                "workers": int(read(os.path.join(meta, "workers"), "0") or 0) or None,
                "services": {
                    **{
                        name: int(read(os.path.join(meta, f"{name}.pid")))
                        for name in ("ui", "registry", "offline")
                        if alive(read(os.path.join(meta, f"{name}.pid")))
                    },
                    **{name: unit_pids[u] for name, u in found.items() if name != "server" and u in unit_pids},
                },
                # The systemd unit of its feature server (None: featctl's supervisor runs it).
                "unit": found.get("server"),
                # Its feature server's newest restart by featctl's supervisor (UTC, how).
                "restarted": supervise.last_restart(os.path.join(meta, "server.log")),
            }
        )
    return out


def stop_server(base: str, release_id: str) -> bool:
    """Stop every service of a release (its feature server, and its UI, registry
    and offline servers when they run): each supervisor and each service's whole
    process group; True if any ran. Works when a supervisor is gone and only its
    service is left."""
    meta = os.path.join(base, "releases", release_id, META)
    if not os.path.isdir(meta):
        return units.stop_release(base, release_id)
    with keeper.keep_lock(meta):
        keeper.forget(meta)  # before its supervisors go: the keeper must not start them again
        return _stop_server(base, release_id, meta)


def _stop_server(base: str, release_id: str, meta: str) -> bool:
    was = units.stop_release(base, release_id)
    names = sorted(n for n in os.listdir(meta) if n.endswith(".pid")) if os.path.isdir(meta) else []
    for name in [n for n in names if not n.endswith("-group.pid")]:
        pid = read(os.path.join(meta, name))
        was = alive(pid) or was
        stop_pid(pid)  # a supervisor stops its service's group itself
    for name in names:
        path = os.path.join(meta, name)
        group = read(path)
        if name.endswith("-group.pid") and group_alive(group):
            was = True
            kill_groups({int(group)})
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    return was


def stop_service(base: str, release_id: str, service: str) -> bool:
    """Stop one service of a release (``ui``, ``registry``, ``offline``)."""
    meta = os.path.join(base, "releases", release_id, META)
    if os.path.isdir(meta):
        with keeper.keep_lock(meta):
            keeper.forget(meta, service)
            return _stop_service(base, release_id, service, meta)
    return units.stop_release(base, release_id, (service,))


def _stop_service(base: str, release_id: str, service: str, meta: str) -> bool:
    pid = read(os.path.join(meta, f"{service}.pid"))
    group = read(os.path.join(meta, f"{service}-group.pid"))
    was = units.stop_release(base, release_id, (service,))
    was = alive(pid) or group_alive(group) or was
    stop_pid(pid)
    if group_alive(group):
        kill_groups({int(group)})
    for name in (f"{service}.pid", f"{service}-group.pid"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(meta, name))
    return was


def _stat(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load_json(path: str) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError), open(path) as fh:
        data = json.load(fh)
        if isinstance(data, dict):
            return data
    return {}


def verified_manifest(base: str, release_id: str) -> dict[str, str]:
    """The release's files as they are now (path -> sha256): a file that vanished
    is left out and one whose size or mtime changed since it was recorded is
    hashed again, so a deploy uploads what the host lacks, not what featctl
    remembers sending, and sees a data file that Feast wrote on the host (an
    offline push) as changed."""
    rel_dir = os.path.join(base, "releases", release_id)
    manifest = _load_json(os.path.join(rel_dir, META, "manifest.json"))
    stats = _load_json(os.path.join(rel_dir, META, "stat.json"))
    out = {}
    for rel, digest in manifest.items():
        full = os.path.join(rel_dir, rel)
        try:
            st = _stat(full)
        except OSError:
            continue
        known = stats.get(rel)
        if isinstance(known, list) and known[:2] == st:
            # [size, mtime, digest of the content then]; releases before that kept
            # only [size, mtime] for files that were as uploaded.
            out[rel] = str(known[2]) if len(known) > 2 else str(digest)
        else:
            out[rel] = _sha256(full)
    return out


def cmd_state(args: argparse.Namespace) -> dict[str, Any]:
    base = args.base
    cur = current(base)
    manifest = verified_manifest(base, cur) if cur else {}
    schedule = None
    with contextlib.suppress(OSError, ValueError), open(os.path.join(base, "run", "schedule.json")) as fh:
        schedule = json.load(fh)
    timer = units.timer_state(base)
    if timer is not None:
        schedule = {**(schedule or {}), **timer}
    elif schedule is not None:
        schedule["restarted"] = supervise.last_restart(os.path.join(base, "run", "schedule.log"))
    return {
        "current": cur,
        "releases": releases(base),
        "manifest": manifest,
        # What featctl uploaded (or kept) for each file: a file whose content
        # differs from it was changed on the host.
        "uploaded": _load_json(os.path.join(base, "releases", cur, META, "manifest.json")) if cur else {},
        "lock": lock_holder(base),
        "schedule": schedule,
        "verify": _load_json(os.path.join(base, "run", "verify.json")) or None,  # the last featctl verify
        # The deployment's keeper (keeper.py): its pid while it runs.
        "keeper": keeper.running(base),
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
    """Create releases/<id> as a copy of the current release (without its metadata).

    With --fresh only the files featctl uploaded are copied, none of the state
    Feast wrote (registry, online store): the new release is applied and
    materialized from scratch, as after a first deploy.
    """
    base = args.base
    dest = os.path.join(base, "releases", args.id)
    if os.path.exists(dest):
        raise InputError(f"release {args.id} already exists")
    os.makedirs(os.path.join(dest, META))
    write(os.path.join(dest, META, "state"), "preparing")
    write(os.path.join(dest, META, "created"), now())
    cur = current(base)
    if cur and args.fresh:
        src = os.path.join(base, "releases", cur)
        for rel in _load_json(os.path.join(src, META, "manifest.json")):
            s = os.path.join(src, rel)
            if os.path.isfile(s):
                os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
                shutil.copy2(s, os.path.join(dest, rel))
    elif cur:
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
    return {"release": args.id, "path": dest, "copied_from": cur, "fresh": bool(args.fresh)}


def cmd_finish_upload(args: argparse.Namespace) -> dict[str, Any]:
    """Remove files the new manifest dropped and record the manifest (read from stdin).

    stdin is ``{"manifest": {path: sha256 featctl uploaded}, "kept": {path: sha256}}``
    (or the manifest alone): a kept file is one the host changed since featctl
    uploaded it (an offline push) and whose host copy the release keeps; the
    manifest goes on recording what featctl uploaded, so the next deploy still
    sees that the host changed it.
    """
    base = args.base
    rel_dir = os.path.join(base, "releases", args.id)
    doc = json.load(sys.stdin)
    new = doc["manifest"] if isinstance(doc.get("manifest"), dict) else doc
    kept = doc.get("kept") if isinstance(doc.get("kept"), dict) else {}
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
    stats = {}
    for path, digest in new.items():
        with contextlib.suppress(OSError):
            stats[path] = [*_stat(os.path.join(rel_dir, path)), str(kept.get(path, digest))]
    write(os.path.join(rel_dir, META, "stat.json"), json.dumps(stats, sort_keys=True))
    return {"removed": removed}


def cmd_set(args: argparse.Namespace) -> dict[str, Any]:
    meta = os.path.join(args.base, "releases", args.id, META)
    if not os.path.isdir(meta):
        raise InputError(f"no release {args.id}")
    for name in ("state", "port", "env", "online_store", "workers"):
        if getattr(args, name, None):
            write(os.path.join(meta, name), str(getattr(args, name)))
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
    if args.service:
        return {"stopped": stop_service(args.base, args.id, args.service)}
    return {"stopped": stop_server(args.base, args.id)}


def cmd_cleanup(args: argparse.Namespace) -> dict[str, Any]:
    """Remove unfinished and failed releases and all but the newest ``keep`` ready
    ones; stop the server of every release that is not current (with --stop-idle:
    only a deploy or rollback in progress may run one, and they hold the lock)."""
    base = args.base
    cur = current(base)
    removed = []
    stopped = []
    ready = [r for r in releases(base) if r["state"] == "ready"]
    keep = {r["id"] for r in ready[-args.keep :]} | ({cur} if cur else set())
    for r in releases(base):
        if r["id"] == args.spare or r["id"] == cur:
            continue
        if r["id"] in keep:
            if args.stop_idle and (r["server_pid"] or r["server_group"] or r["services"]):
                stop_server(base, r["id"])
                stopped.append(r["id"])
            continue
        stop_server(base, r["id"])
        shutil.rmtree(os.path.join(base, "releases", r["id"]), ignore_errors=True)
        removed.append({"id": r["id"], "state": r["state"]})
    pruned = _prune_envs(base, args.default_env) if args.prune_envs else []
    return {"removed": removed, "stopped": stopped, "pruned_envs": pruned}


def _prune_envs(base: str, default: str) -> list[str]:
    """Remove Feast environments no kept release uses (a release without an env
    record uses the default one)."""
    used = {r["env"] or default for r in releases(base)}
    envs = os.path.join(base, "envs")
    pruned = []
    for name in sorted(os.listdir(envs)) if os.path.isdir(envs) else []:
        path = os.path.join(envs, name)
        stem = name[: -len(".requirements.txt")] if name.endswith(".requirements.txt") else name
        if stem in used:
            continue
        if os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            pruned.append(stem)
        else:
            os.unlink(path)
    return pruned
