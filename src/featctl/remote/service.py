"""The feature server of a release, run as a supervised service on the host:
a systemd unit where the host runs systemd and featctl may manage units (the
agent's units.py), featctl's own supervisor (supervise.py) otherwise.

Each release has its own server, on its own port, so a new release is started
and checked while the previous one keeps serving (blue/green). The port only
names the slot: the server listens on the Unix socket ``run/s/<port>`` in the
deployment's directory (``Layout.socket``), never on TCP, so no other account
on the host can reach it; featctl reaches it through SSH (streamlocal) and the
application endpoint's HAProxy through the socket.
"""

from __future__ import annotations

import posixpath
import time

from featctl.errors import FeastError, RemoteCommandError
from featctl.remote.agent import hostops
from featctl.remote.host import free_port
from featctl.remote.layout import Layout, socket_name
from featctl.remote.ssh import Connection, q


def pidfile(layout: Layout, release_id: str) -> str:
    return posixpath.join(layout.release(release_id), ".featctl", "server.pid")


def log_path(layout: Layout, release_id: str) -> str:
    return posixpath.join(layout.release(release_id), ".featctl", "server.log")


#: The batch server's CPU priority: below the serving workers, so a 100k-row
#: historical request does not take the serving workers' core time.
BATCH_NICE = 10


def server_command(layout: Layout, release_id: str, port: int, workers: int, *, batch: bool = False) -> list[str]:
    """``feast serve`` through featctl's wrapper (agent/feast_cli.py: the stores'
    variables and featctl's fixes for Feast, which gunicorn's workers inherit;
    the Unix socket of ``port`` instead of --host/--port). ``batch``: the
    release's batch server, one worker at a lower priority on ``<port>-batch``:
    historical and batch scoring go there, online reads never do."""
    nice = ["/usr/bin/nice", "-n", str(BATCH_NICE)] if batch else []
    return [
        *nice,
        *layout.agent_argv(layout.python, module="featctl_agent.feast_cli", bind=socket_name(port, batch=batch)),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--max-requests",
        "0",
        "--max-requests-jitter",
        "0",
        "--registry_ttl_sec",
        "5",
    ]


def service_manager(conn: Connection, layout: Layout) -> str:
    """``systemd`` where the host runs it and featctl may manage units (root or
    passwordless sudo), else ``supervise`` (featctl's own supervisor). The host
    agent decides (``agent/units.py``), so the client never guesses."""
    return "systemd" if hostops(conn, layout, "manager").get("manager") == "systemd" else "supervise"


def running_pid(conn: Connection, layout: Layout, release_id: str) -> int | None:
    """The live supervisor of the release's server, or its systemd unit's main pid."""
    meta = posixpath.join(layout.release(release_id), ".featctl")
    out = conn.run(
        f'p=$(cat {q(pidfile(layout, release_id))} 2>/dev/null) && kill -0 "$p" 2>/dev/null && echo "$p" && exit 0; '
        f"u=$(cat {q(posixpath.join(meta, 'server.unit'))} 2>/dev/null) && "
        f'p=$(systemctl show -p MainPID --value "$u" 2>/dev/null) && [ "$p" != 0 ] && echo "$p"; true',
        timeout=30,
    ).text.strip()
    return int(out) if out.isdigit() else None


def start(conn: Connection, layout: Layout, release_id: str, *, port: int, workers: int) -> None:
    """Start the release's feature server and its batch server; refuse a socket
    another program holds.

    A server of this deployment on the socket (left by a killed supervisor or an
    interrupted switch) is stopped first: only a foreign program is an error.
    The batch server is not fatal: without it historical requests go to the
    feature server, as before there was one.
    """
    for batch in (False, True):
        freed = free_port(conn, layout, socket_name(port, batch=batch))
        if not freed.get("free"):
            who = f" (pid {freed['owner']})" if freed.get("owner") else ""
            raise FeastError(
                f"the feature server's socket {layout.socket(socket_name(port, batch=batch))} on the host is held by another program{who}",
                hint="stop that program, or set server_port in featctl.toml or FEATCTL_SERVER_PORT",
            )
    systemd = service_manager(conn, layout) == "systemd"
    for service, command in (
        ("server", server_command(layout, release_id, port, workers)),
        ("batch", server_command(layout, release_id, port, 1, batch=True)),
    ):
        _launch(conn, layout, release_id, service, command, systemd=systemd)
    deadline = time.monotonic() + 10
    while running_pid(conn, layout, release_id) is None:
        if time.monotonic() > deadline:
            raise FeastError(f"the feature server did not start: {tail_log(conn, layout, release_id, 1)}")
        time.sleep(0.2)


def _launch(
    conn: Connection, layout: Layout, release_id: str, service: str, command: list[str], *, systemd: bool
) -> None:
    rdir = layout.release(release_id)
    meta = posixpath.join(rdir, ".featctl")
    log = posixpath.join(meta, f"{service}.log")
    if systemd:
        try:
            hostops(
                conn,
                layout,
                "unit-start",
                "--id",
                release_id,
                "--service",
                service,
                "--log",
                log,
                "--",
                *command,
                timeout=90,
            )
        except RemoteCommandError as exc:
            if service == "server":
                raise FeastError(f"the feature server did not start: {exc.message}") from None
        return
    cmd = " ".join(q(a) for a in command)
    supervised = layout.supervise_shell(posixpath.join(meta, service + ".pid"), log, rdir)
    conn.run(f"cd {q(rdir)} && {supervised} {cmd} </dev/null >/dev/null 2>&1", timeout=60)


def stop(conn: Connection, layout: Layout, release_id: str) -> bool:
    """Stop the release's server and everything it started (its supervisors or
    its systemd units, whichever runs them); True if one ran."""
    return bool(hostops(conn, layout, "stop", "--id", release_id, timeout=120).get("stopped"))


def tail_log(conn: Connection, layout: Layout, release_id: str | None, lines: int = 50) -> str:
    path = log_path(layout, release_id) if release_id else posixpath.join(layout.current, ".featctl", "server.log")
    return conn.run(f"tail -n {int(lines)} {q(path)} 2>/dev/null || true", timeout=30).text.strip()
