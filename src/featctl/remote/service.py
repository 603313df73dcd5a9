"""The feature server of a release, run as a supervised service on the host:
a systemd unit where the host runs systemd and featctl may manage units,
featctl's own supervisor (supervise.py) otherwise.

Each release has its own server, on its own port, so a new release is started
and checked while the previous one keeps serving (blue/green).
"""

from __future__ import annotations

import posixpath
import time

from featctl.errors import FeastError
from featctl.remote.agent import hostops
from featctl.remote.host import free_port
from featctl.remote.layout import Layout
from featctl.remote.ssh import Connection, q

UNIT_PREFIX = "featctl-feature-server-"


def unit_name(release_id: str) -> str:
    return f"{UNIT_PREFIX}{release_id.lower()}"


def pidfile(layout: Layout, release_id: str) -> str:
    return posixpath.join(layout.release(release_id), ".featctl", "server.pid")


def log_path(layout: Layout, release_id: str) -> str:
    return posixpath.join(layout.release(release_id), ".featctl", "server.log")


def server_command(layout: Layout, release_id: str, port: int, workers: int) -> list[str]:
    """``feast serve`` through featctl's wrapper (agent/feast_cli.py: the stores'
    variables and featctl's fixes for Feast, which gunicorn's workers inherit)."""
    return [
        *layout.agent_argv(layout.python, module="featctl_agent.feast_cli"),
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


def systemd_unit(layout: Layout, release_id: str, user: str, command: list[str]) -> str:
    """The unit file for one release's feature server (pure; unit-tested)."""
    exec_start = " ".join(q(a) for a in command)
    log = log_path(layout, release_id)
    return f"""[Unit]
Description=Feast feature server deployed by featctl (release {release_id})
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
WorkingDirectory={layout.release(release_id)}
EnvironmentFile=-{layout.stores_env}
ExecStart={exec_start}
Restart=always
RestartSec=2
StandardOutput=append:{log}
StandardError=append:{log}
KillMode=control-group
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
"""


def service_manager(conn: Connection) -> str:
    """``systemd`` where the host runs it and featctl may manage units, else ``supervise``."""
    out = conn.run(
        "if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 && "
        '{ [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then echo systemd; else echo supervise; fi',
        timeout=30,
    ).text.strip()
    return "systemd" if out == "systemd" else "supervise"


def _sudo(conn: Connection) -> str:
    return "" if conn.run("id -u", timeout=30).text.strip() == "0" else "sudo -n "


def running_pid(conn: Connection, layout: Layout, release_id: str) -> int | None:
    unit = unit_name(release_id)
    out = conn.run(
        f'p=$(cat {q(pidfile(layout, release_id))} 2>/dev/null) && kill -0 "$p" 2>/dev/null && echo "$p" && exit 0; '
        f"if [ -f /etc/systemd/system/{unit}.service ]; then "
        f'p=$(systemctl show -p MainPID --value {unit} 2>/dev/null); [ "$p" != 0 ] && echo "$p"; fi; true',
        timeout=30,
    ).text.strip()
    return int(out) if out.isdigit() else None


def start(conn: Connection, layout: Layout, release_id: str, *, port: int, workers: int, user: str) -> None:
    """Start the release's server; refuse a port another program holds.

    A server of this deployment on the port (left by a killed supervisor or an
    interrupted switch) is stopped first: only a foreign program is an error.
    """
    freed = free_port(conn, layout, port)
    if not freed.get("free"):
        who = f" (pid {freed['owner']})" if freed.get("owner") else ""
        raise FeastError(
            f"port {port} on the host is already in use by another program{who}",
            hint="set server_port in featctl.toml or FEATCTL_SERVER_PORT",
        )
    command = server_command(layout, release_id, port, workers)
    rdir = layout.release(release_id)
    if service_manager(conn) == "systemd":
        unit = unit_name(release_id)
        staged = posixpath.join(rdir, ".featctl", f"{unit}.service")
        conn.put_text(staged, systemd_unit(layout, release_id, user, command))
        sudo = _sudo(conn)
        conn.run(
            f"{sudo}install -m 0644 {q(staged)} /etc/systemd/system/{unit}.service && {sudo}systemctl daemon-reload && "
            f"{sudo}systemctl enable {unit} >/dev/null 2>&1 && {sudo}systemctl restart {unit}",
            timeout=60,
        )
    else:
        cmd = " ".join(q(a) for a in command)
        conn.run(
            f"cd {q(rdir)} && {layout.agent_shell(module='featctl_agent.supervise')} --pidfile {q(pidfile(layout, release_id))} "
            f"--log {q(log_path(layout, release_id))} --cwd {q(rdir)} -- {cmd} </dev/null >/dev/null 2>&1",
            timeout=60,
        )
    deadline = time.monotonic() + 10
    while running_pid(conn, layout, release_id) is None:
        if time.monotonic() > deadline:
            raise FeastError(f"the feature server did not start: {tail_log(conn, layout, release_id, 1)}")
        time.sleep(0.2)


def stop(conn: Connection, layout: Layout, release_id: str) -> bool:
    """Stop the release's server and everything it started; True if one ran."""
    unit = unit_name(release_id)
    was = running_pid(conn, layout, release_id) is not None
    if conn.run(f"test -f /etc/systemd/system/{unit}.service", timeout=30, check=False).exit_status == 0:
        sudo = _sudo(conn)
        conn.run(
            f"{sudo}systemctl disable --now {unit} >/dev/null 2>&1 || true; "
            f"{sudo}rm -f /etc/systemd/system/{unit}.service; {sudo}systemctl daemon-reload",
            timeout=60,
        )
        return was
    return bool(hostops(conn, layout, "stop", "--id", release_id, timeout=60).get("stopped")) or was


def tail_log(conn: Connection, layout: Layout, release_id: str | None, lines: int = 50) -> str:
    path = log_path(layout, release_id) if release_id else posixpath.join(layout.current, ".featctl", "server.log")
    return conn.run(f"tail -n {int(lines)} {q(path)} 2>/dev/null || true", timeout=30).text.strip()
