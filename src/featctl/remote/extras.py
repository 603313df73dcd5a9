"""Feast's other servers, per release, next to its feature server: the web UI
(``feast ui``), the registry server (gRPC) and the offline server (Arrow
Flight). Each listens on a Unix socket in the deployment's 0700 ``run/s``
(named by its port: ``Layout.socket``), never on TCP, and is reached through SSH;
each runs in the release directory as a systemd unit where the host has
systemd (as the feature server does), under featctl's supervisor otherwise,
and is stopped with the release (``agent stop`` stops every service of a
release).
"""

from __future__ import annotations

import posixpath
import time

from featctl.errors import FeastError, FeatctlError, RemoteCommandError
from featctl.remote.agent import hostops
from featctl.remote.host import free_port
from featctl.remote.layout import Layout
from featctl.remote.service import service_manager
from featctl.remote.ssh import Connection, q

SERVICES = ("ui", "registry", "offline")
#: Where each listens when the host is a machine of its own (cloud, ssh target).
DEFAULT_PORTS = {"ui": 8888, "registry": 6570, "offline": 8815}
START_SECONDS = 120.0


def command(layout: Layout, name: str, port: int) -> list[str]:
    if name == "ui":
        return [*layout.agent_argv(layout.python, "featctl_agent.feast_cli", bind=port), "ui", "--host", "127.0.0.1", "--port", str(port)]
    if name == "offline":
        # Through featctl's wrapper: offline pushes from the SDK land here (agent/compat.py).
        return [
            *layout.agent_argv(layout.python, "featctl_agent.feast_cli", bind=port),
            "serve_offline",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    if name == "registry":
        return [*layout.agent_argv(layout.python, "featctl_agent.serve_registry", bind=port), str(port)]
    raise ValueError(name)


def _meta(layout: Layout, release_id: str, name: str) -> str:
    return posixpath.join(layout.release(release_id), ".featctl", name)


def start(conn: Connection, layout: Layout, release_id: str, name: str, port: int) -> None:
    """Start a service of the release and wait until its port answers."""
    freed = free_port(conn, layout, port)
    if not freed.get("free"):
        who = f" (pid {freed['owner']})" if freed.get("owner") else ""
        raise FeastError(f"the socket {layout.socket(port)} on the host, for Feast's {name} server, is held by another program{who}")
    rdir = layout.release(release_id)
    log = _meta(layout, release_id, name + ".log")
    if service_manager(conn, layout) == "systemd":
        try:
            args = ["--id", release_id, "--service", name, "--log", log]
            hostops(conn, layout, "unit-start", *args, "--", *command(layout, name, port), timeout=90)
        except RemoteCommandError as exc:
            raise FeastError(f"Feast's {name} server of release {release_id} did not start: {exc.message}") from None
    else:
        cmd = " ".join(q(a) for a in command(layout, name, port))
        supervised = layout.supervise_shell(_meta(layout, release_id, name + ".pid"), log, rdir)
        conn.run(f"cd {q(rdir)} && {supervised} {cmd} </dev/null >/dev/null 2>&1", timeout=60)
    deadline = time.monotonic() + START_SECONDS
    while True:
        try:
            conn.open_unix(layout.socket(port), timeout=5).close()
            return
        except FeatctlError:
            pass
        # Its supervisor lives, or its systemd unit has a main process.
        alive = conn.run(
            f'p=$(cat {q(_meta(layout, release_id, name + ".pid"))} 2>/dev/null) && kill -0 "$p" 2>/dev/null && echo up && exit 0; '
            f'u=$(cat {q(_meta(layout, release_id, name + ".unit"))} 2>/dev/null) && '
            f'[ "$(systemctl show -p MainPID --value "$u" 2>/dev/null)" != 0 ] && echo up; true',
            timeout=30,
            check=False,
        ).text.strip()
        if alive != "up" or time.monotonic() > deadline:
            tail = conn.run(f"tail -n 3 {q(log)} 2>/dev/null", timeout=30, check=False)
            last = " ".join(tail.text.split())[-300:] or "no log"
            raise FeastError(f"Feast's {name} server of release {release_id} did not start: {last}")
        time.sleep(0.5)


def stop(conn: Connection, layout: Layout, release_id: str, name: str) -> bool:
    return bool(hostops(conn, layout, "stop", "--id", release_id, "--service", name, timeout=60).get("stopped"))
