"""``featctl ui`` and ``featctl connect``: Feast's own web UI and SDK against
the deployment, through SSH.

The servers (``remote/extras.py``) run per release on the host's loopback; a
deployment records which are enabled and on which host ports
(``Deployment.services``), and deploy and rollback start them for the release
they switch to. The client side is a local forward (``remote/forward.py``):
in the foreground for ``ui``, as a background process for ``connect``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featctl.errors import FeatctlError, UsageError
from featctl.lifecycle.common import holder
from featctl.remote import extras, releases
from featctl.remote.forward import RECORD, listen, serve
from featctl.remote.layout import Layout
from featctl.remote.ssh import Connection
from featctl.session import Session
from featctl.workspace import Deployment, write_private


def _host_port(record: Deployment, name: str) -> int:
    """A host port for ``name``, chosen once per deployment: on the local target
    the "host" is this machine, shared with other deployments: a free port (so
    on the vm target, whose guests share this machine's network)."""
    from featctl.config import LOOPBACK_TARGETS

    if name in record.services:
        return int(record.services[name])
    if record.target in LOOPBACK_TARGETS:
        from featctl.provision.targets import free_loopback_port

        taken = set(record.services.values()) | set(record.server_ports)
        port = free_loopback_port()
        while port in taken:
            port = free_loopback_port()
        return port
    return extras.DEFAULT_PORTS[name]


def ensure(session: Session, record: Deployment, names: tuple[str, ...]) -> dict[str, int]:
    """Start ``names`` for the serving release unless they run; record them as
    enabled so later releases start them too. Returns name -> host port."""
    conn = session.connection(record)
    layout = session.layout(record)
    with releases.deploy_lock(conn, layout, holder("services")):
        host = releases.state(conn, layout)
        cur = host.current_release
        if cur is None:
            raise UsageError("nothing is serving on the host; run `featctl deploy`")
        ports = {}
        running = getattr(cur, "services", {}) or {}
        for name in names:
            port = _host_port(record, name)
            if name not in running:
                session.reporter.step(f"starting Feast's {name} server of release {cur.id}")
                extras.start(conn, layout.with_env(cur.env), cur.id, name, port)
            ports[name] = port
    record.services.update(ports)
    session.workspace.save(record)
    return ports


def restart_for(conn: Connection, layout: Layout, record: Deployment, release_id: str) -> list[str]:
    """After a switch: the enabled services for the new release (the old one's
    were stopped with it). A service that fails is reported, not fatal: the
    feature server already serves."""
    problems = []
    for name, port in sorted(record.services.items()):
        try:
            extras.start(conn, layout, release_id, name, int(port))
        except FeatctlError as exc:
            problems.append(exc.message)
    return problems


# --- featctl ui ------------------------------------------------------------------------


def ui(
    session: Session,
    *,
    port: int | None,
    on_url: Callable[[str], None],
    stop: threading.Event,
) -> None:
    """Serve Feast's UI of the deployment on this machine's 127.0.0.1:``port``
    until ``stop`` is set (Ctrl-C); the forward closes with it."""
    record = session.deployment()
    host_port = ensure(session, record, ("ui",))["ui"]
    listener = listen(port or 0)
    try:
        local = listener.getsockname()[1]
        project = (record.registry or {}).get("project", "")
        on_url(f"http://127.0.0.1:{local}/p/{project}/feature-view" if project else f"http://127.0.0.1:{local}/")
        conn = session.connection(record)

        def up() -> bool:
            try:
                return bool(conn.transport.is_active())
            except FeatctlError:
                return False

        serve(conn.open_server, {listener: lambda: host_port}, stop, up)
        if not stop.is_set():
            raise FeatctlError("the SSH connection to the host was lost; run `featctl ui` again")
    finally:
        listener.close()


# --- featctl connect ---------------------------------------------------------------------


@dataclass
class Connected:
    out: Path
    forwards: dict[str, int]
    pid: int


CLIENT_YAML = """\
# Written by `featctl connect`: Feast's SDK against the deployment through SSH.
# Valid while `featctl connect` runs (`featctl connect --stop` ends it).
project: {project}
provider: local
registry:
    registry_type: remote
    path: 127.0.0.1:{registry}
offline_store:
    type: remote
    host: 127.0.0.1
    port: {offline}
online_store:
    type: remote
    path: http://127.0.0.1:{online}
entity_key_serialization_version: 3
"""


def _free_local_port() -> int:
    sock = listen(0)
    try:
        return int(sock.getsockname()[1])
    finally:
        sock.close()


def connect(session: Session, out: Path | None) -> Connected:
    """Registry and offline servers on the host, a background forward for them
    and the feature server, and a client feature_store.yaml in ``out``."""
    ws = session.workspace
    record = session.deployment()
    project = (record.registry or {}).get("project")
    if not project:
        raise UsageError("the deployment's registry summary is missing; run `featctl deploy` once more")
    out = (out or ws.root / "client").resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is not a directory")
    disconnect(session, stop_servers=False)
    ensure(session, record, ("registry", "offline"))
    forwards = {name: _free_local_port() for name in ("online", "registry", "offline")}
    write_private(ws.root / RECORD, json.dumps({"pid": 0, "forwards": forwards, "out": str(out)}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "featctl.remote.forward", str(ws.root)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
    )
    write_private(ws.root / RECORD, json.dumps({"pid": proc.pid, "forwards": forwards, "out": str(out)}))
    deadline = time.monotonic() + 15
    while not all(_listening(p) for p in forwards.values()):
        if proc.poll() is not None or time.monotonic() > deadline:
            disconnect(session, stop_servers=False)
            raise FeatctlError("the local forward for `featctl connect` did not start")
        time.sleep(0.1)
    out.mkdir(parents=True, exist_ok=True)
    (out / "feature_store.yaml").write_text(CLIENT_YAML.format(project=project, **forwards))
    return Connected(out, forwards, proc.pid)


def _listening(port: int) -> bool:
    import socket

    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def connection_info(workspace: Path) -> dict[str, Any] | None:
    """The running connect forward, if any (for status)."""
    try:
        info = json.loads((workspace / RECORD).read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError):
        return None
    return dict(info)


def disconnect(session: Session, *, stop_servers: bool = True) -> bool:
    """Stop the forward (and, with ``stop_servers``, the host's registry and
    offline servers); remove the client yaml. True if a forward ran."""
    ws = session.workspace
    was = False
    try:
        info = json.loads((ws.root / RECORD).read_text())
    except (OSError, ValueError):
        info = {}
    pid = int(info.get("pid") or 0)
    if pid:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
            was = True
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(0.05)
    (ws.root / RECORD).unlink(missing_ok=True)
    if info.get("out"):
        (Path(info["out"]) / "feature_store.yaml").unlink(missing_ok=True)
    if stop_servers:
        record = ws.load()
        if record is not None and record.host and any(n in record.services for n in ("registry", "offline")):
            conn = session.connection(record)
            layout = session.layout(record)
            cur = releases.state(conn, layout).current_release
            for name in ("registry", "offline"):
                if cur is not None:
                    extras.stop(conn, layout, cur.id, name)
                record.services.pop(name, None)
            ws.save(record)
    return was
