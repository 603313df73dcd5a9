"""Releases on the host: each deploy builds a new release directory and
switches ``current`` to it only once it is applied and its server is healthy.

The bookkeeping runs on the host (the agent's ``releases`` and ``lock``
modules, stdlib only) so each step is one SSH round trip and every switch is a
rename(2) there.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from featctl.errors import SSHError, UsageError
from featctl.remote.agent import hostops
from featctl.remote.layout import DEFAULT_ENV, Layout
from featctl.remote.ssh import Connection, q
from featctl.repo.bundle import Bundle

KEEP_RELEASES = 5
META = ".featctl"


@dataclass
class Release:
    id: str
    state: str
    port: int | None
    created: str | None
    #: Its live supervisor (or systemd's main pid).
    server_pid: int | None
    #: The live process group of its server; set without ``server_pid`` when the
    #: supervisor was killed and the server runs on unsupervised.
    server_group: int | None = None
    #: What a health check reads (``agent probe``), when it was computed.
    probe: dict[str, Any] | None = None
    #: The Feast environment (under envs/) it runs with; None: the default one.
    env: str | None = None
    #: Its running extra servers (ui, registry, offline) -> supervisor pid (or unit's main pid).
    services: dict[str, int] = field(default_factory=dict)
    #: The systemd unit that runs its server (None: featctl's supervisor does).
    unit: str | None = None
    #: The identity of the online store its materialization filled (agent
    #: ``describe``); None for releases from before featctl recorded it.
    online_store: str | None = None
    #: Its feature server's newest restart by featctl's supervisor: UTC time,
    #: and `` (by a new supervisor)`` when the keeper had replaced a killed one.
    restarted: str | None = None
    #: Its feature server's worker processes (None: from before featctl recorded them).
    workers: int | None = None

    @property
    def running(self) -> bool:
        return self.server_pid is not None or self.server_group is not None

    @property
    def unsupervised(self) -> bool:
        return self.server_pid is None and self.server_group is not None


_RELEASE_FIELDS = set(Release.__dataclass_fields__)


@dataclass
class HostState:
    current: str | None
    releases: list[Release]
    #: path -> sha256 of the serving release's files as they are now
    manifest: dict[str, str]
    lock: dict[str, Any] | None
    schedule: dict[str, Any] | None = None
    #: The last ``featctl verify`` (or the schedule's): its summary.
    verify: dict[str, Any] | None = None
    #: path -> sha256 of what featctl uploaded (differs from ``manifest`` where
    #: the host changed a file since, e.g. Feast appending offline pushes)
    uploaded: dict[str, str] = field(default_factory=dict)
    #: The pid of the deployment's keeper (agent/keeper.py), while it runs.
    keeper: int | None = None

    def release(self, release_id: str | None) -> Release | None:
        return next((r for r in self.releases if r.id == release_id), None)

    @property
    def current_release(self) -> Release | None:
        return self.release(self.current)


def state(conn: Connection, layout: Layout) -> HostState:
    data = hostops(conn, layout, "state")
    return HostState(
        current=data.get("current"),
        releases=[Release(**{k: v for k, v in r.items() if k in _RELEASE_FIELDS}) for r in data.get("releases", [])],
        manifest={str(k): str(v) for k, v in (data.get("manifest") or {}).items()},
        lock=data.get("lock"),
        schedule=data.get("schedule"),
        verify=data.get("verify"),
        uploaded={str(k): str(v) for k, v in (data.get("uploaded") or {}).items()},
        keeper=data.get("keeper"),
    )


def new_release_id(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z"


@dataclass
class Upload:
    uploaded: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    bytes: int = 0


def prepare(conn: Connection, layout: Layout, release_id: str, *, fresh: bool = False) -> None:
    """A new release: a copy of the serving one (``fresh``: only its uploaded files,
    none of Feast's state, so apply and materialization start from scratch)."""
    hostops(conn, layout, "prepare", "--id", release_id, *(["--fresh"] if fresh else []), timeout=600)


#: What deploy does with a file the host changed since featctl uploaded it.
DATA_POLICIES = ("ask", "keep", "overwrite")


@dataclass
class FilePlan:
    """What a new release takes from this machine and what it keeps of the host's."""

    #: release paths to upload (new, changed here, or missing on the host)
    upload: list[str] = field(default_factory=list)
    #: release paths the repository no longer has
    remove: list[str] = field(default_factory=list)
    #: changed on the host since featctl uploaded them (offline pushes): the host's copy stays
    kept: list[str] = field(default_factory=list)
    #: of ``kept`` those that changed here too (``ask`` stops on them)
    conflicts: list[str] = field(default_factory=list)
    #: the manifest the new release records: what featctl uploaded for each file
    manifest: dict[str, str] = field(default_factory=dict)
    #: path -> the host's sha256 for each kept file
    kept_digests: dict[str, str] = field(default_factory=dict)

    @property
    def changes(self) -> bool:
        return bool(self.upload or self.remove)


def file_plan(bundle: Bundle, host: HostState, data: str = "ask") -> FilePlan:
    """Compare this machine's files with the serving release's.

    A file whose host copy differs from what featctl uploaded was written on
    the host (Feast appends offline pushes to a FileSource's file) and is never
    overwritten silently: unchanged here, the host's copy is kept; changed here
    too, ``data`` decides (``ask``: listed in ``conflicts`` for the caller to
    stop on; ``keep``: the host's copy stays; ``overwrite``: this machine's).
    """
    if data not in DATA_POLICIES:
        raise ValueError(data)
    plan = FilePlan(manifest=dict(bundle.manifest))
    for rel, here in sorted(bundle.manifest.items()):
        now = host.manifest.get(rel)
        if now is None:  # new here, or gone from the host
            plan.upload.append(rel)
            continue
        sent = host.uploaded.get(rel) or now
        if now == here:
            continue
        if now == sent:  # the host's copy is what featctl uploaded: this machine's is newer
            plan.upload.append(rel)
            continue
        if data == "overwrite":
            plan.upload.append(rel)
            continue
        plan.kept.append(rel)
        plan.kept_digests[rel] = now
        plan.manifest[rel] = sent
        if here != sent:
            plan.conflicts.append(rel)
    plan.remove = sorted(set(host.manifest) - set(bundle.manifest))
    return plan


def conflict_message(plan: FilePlan) -> str:
    first = plan.conflicts[0]
    more = f" (and {len(plan.conflicts) - 1} more)" if len(plan.conflicts) > 1 else ""
    return (
        f"{first}{more} changed on the host since featctl uploaded it (Feast writes offline pushes there) "
        "and changed here too; rerun with --keep-host-data to keep the host's rows (this machine's copy is "
        "not uploaded) or --overwrite-data to replace them with this machine's file"
    )


def upload_size(bundle: Bundle, paths: list[str]) -> int:
    return sum(len(s) if isinstance(s := bundle.source(rel), bytes) else s.stat().st_size for rel in paths)


def upload(
    conn: Connection,
    bundle: Bundle,
    layout: Layout,
    release_id: str,
    files: FilePlan,
    *,
    on_file: Callable[[str, int], None] | None = None,
    on_bytes: Callable[[int], None] | None = None,
) -> Upload:
    """Upload into the new release what ``files`` says (a copy of the serving one)."""
    import tempfile

    dest = layout.release(release_id)
    todo = list(files.upload)
    result = Upload(uploaded=todo)
    with tempfile.TemporaryDirectory(prefix="featctl-upload-") as tmp:
        pairs = []
        for i, rel in enumerate(todo):
            src = bundle.source(rel)
            if isinstance(src, bytes):  # rewritten for the release (see bundle.py)
                local = Path(tmp) / str(i)
                local.write_bytes(src)
                os.chmod(local, 0o644)
                src = local
            pairs.append((src, posixpath.join(dest, rel)))
        result.bytes = conn.put_files(pairs, on_file=on_file, on_bytes=on_bytes)
    doc = {"manifest": files.manifest, "kept": files.kept_digests}
    done = hostops(conn, layout, "finish-upload", "--id", release_id, stdin=json.dumps(doc).encode())
    result.removed = list(done.get("removed", []))
    return result


def set_meta(
    conn: Connection,
    layout: Layout,
    release_id: str,
    *,
    state: str | None = None,
    port: int | None = None,
    env: str | None = None,
    online_store: str | None = None,
    workers: int | None = None,
) -> None:
    args = ["--id", release_id]
    if state:
        args += ["--state", state]
    if port:
        args += ["--port", str(port)]
    if env:
        args += ["--env", env]
    if online_store:
        args += ["--online-store", online_store]
    if workers:
        args += ["--workers", str(workers)]
    hostops(conn, layout, "set", *args)


def switch(conn: Connection, layout: Layout, release_id: str) -> None:
    hostops(conn, layout, "switch", "--id", release_id)


def cleanup(
    conn: Connection, layout: Layout, *, spare: str = "", stop_idle: bool = False, prune_envs: bool = False
) -> list[dict[str, Any]]:
    """Remove unfinished, failed and old releases; with ``stop_idle`` also stop the
    server of every release but the current one (none may run outside a deploy);
    with ``prune_envs`` remove Feast environments no kept release uses."""
    args = ["--keep", str(KEEP_RELEASES), "--spare", spare, *(["--stop-idle"] if stop_idle else [])]
    if prune_envs:
        args += ["--prune-envs", "--default-env", DEFAULT_ENV]
    return list(hostops(conn, layout, "cleanup", *args, timeout=300).get("removed", []))


@contextmanager
def deploy_lock(conn: Connection, layout: Layout, holder: dict[str, Any]) -> Iterator[None]:
    """Hold the host's deploy lock for the duration (released when the channel closes)."""
    try:
        chan = conn.transport.open_session(timeout=30)
        chan.exec_command(
            f"{layout.agent_shell(layout.host_python())} lock --base {q(layout.base)} --holder {q(json.dumps(holder))}"
        )
        chan.settimeout(60)
        line = b""
        while not line.endswith(b"\n"):
            chunk = chan.recv(4096)
            if not chunk:
                break
            line += chunk
    except SSHError:
        raise
    except Exception as exc:
        raise SSHError(f"cannot take the deploy lock on {conn.endpoint}: {exc}") from None
    try:
        answer = json.loads(line.decode() or "{}")
    except ValueError:
        answer = {}
    if "busy" in answer:
        chan.close()
        h = answer["busy"] or {}
        raise UsageError(
            f"another deploy holds the lock on the host (by {h.get('user', '?')}@{h.get('client', '?')} "
            f"pid {h.get('pid', '?')}, {h.get('command', 'deploy')} since {h.get('since', '?')})",
            hint="wait for it; if no deploy is running, clear the stale lock with `featctl unlock`",
        )
    if "locked" not in answer:
        chan.close()
        raise SSHError(f"cannot take the deploy lock on {conn.endpoint}: {line.decode(errors='replace').strip()}")
    try:
        yield
    finally:
        try:
            chan.shutdown_write()
            chan.close()
        except Exception:
            pass


def unlock(conn: Connection, layout: Layout) -> dict[str, Any]:
    return hostops(conn, layout, "unlock")
