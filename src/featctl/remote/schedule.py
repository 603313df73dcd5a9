"""Scheduled incremental materialization on the host.

A systemd timer where the host runs systemd (and featctl may manage units),
featctl's supervised loop otherwise. Either way each run asks the serving
release's feature server to materialize, so serving goes on meanwhile, and
records its outcome in ``run/schedule.json`` for ``featctl status``.
"""

from __future__ import annotations

import posixpath

from featctl.remote.layout import Layout
from featctl.remote.service import _sudo, service_manager
from featctl.remote.ssh import Connection, q

UNIT = "featctl-materialize"


def _pidfile(layout: Layout) -> str:
    return posixpath.join(layout.run_dir, "schedule.pid")


def _loop_command(layout: Layout, every: int, mode: str) -> str:
    agent = " ".join(q(a) for a in layout.agent_argv("python3"))
    return f"{agent} {mode} --base {q(layout.base)} --every {every}"


def timer_units(layout: Layout, user: str, every: int) -> tuple[str, str]:
    service = f"""[Unit]
Description=featctl incremental materialization ({layout.base})

[Service]
Type=oneshot
User={user}
ExecStart={_loop_command(layout, every, "materialize-once")}
"""
    timer = f"""[Unit]
Description=featctl incremental materialization every {every} s

[Timer]
OnActiveSec={every}s
OnUnitActiveSec={every}s
Persistent=true

[Install]
WantedBy=timers.target
"""
    return service, timer


def enable(conn: Connection, layout: Layout, every: int, user: str) -> str:
    disable(conn, layout)
    conn.run(f"mkdir -p {q(layout.run_dir)}", timeout=30)
    if service_manager(conn) == "systemd":
        service, timer = timer_units(layout, user, every)
        conn.put_text(posixpath.join(layout.run_dir, f"{UNIT}.service"), service)
        conn.put_text(posixpath.join(layout.run_dir, f"{UNIT}.timer"), timer)
        sudo = _sudo(conn)
        conn.run(
            f"{sudo}install -m 0644 {q(layout.run_dir)}/{UNIT}.service {q(layout.run_dir)}/{UNIT}.timer /etc/systemd/system/ && "
            f"{sudo}systemctl daemon-reload && {sudo}systemctl enable --now {UNIT}.timer >/dev/null 2>&1",
            timeout=60,
        )
        return "systemd timer"
    log = posixpath.join(layout.run_dir, "schedule.log")
    conn.run(
        f"{layout.agent_shell(module='featctl_agent.supervise')} --pidfile {q(_pidfile(layout))} --log {q(log)} -- "
        f"{_loop_command(layout, every, 'materialize-loop')} </dev/null >/dev/null 2>&1",
        timeout=60,
    )
    return "supervised loop"


def disable(conn: Connection, layout: Layout) -> bool:
    """Remove the schedule; True when one was installed."""
    sudo = _sudo(conn)
    res = conn.run(
        f"was=0; if [ -f /etc/systemd/system/{UNIT}.timer ]; then was=1; "
        f"{sudo}systemctl disable --now {UNIT}.timer >/dev/null 2>&1 || true; "
        f"{sudo}rm -f /etc/systemd/system/{UNIT}.timer /etc/systemd/system/{UNIT}.service; {sudo}systemctl daemon-reload; fi; "
        f"p=$(cat {q(_pidfile(layout))} 2>/dev/null); "
        f'if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then was=1; kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p"; '
        f'i=0; while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.1; done; fi; '
        f"rm -f {q(_pidfile(layout))} {q(posixpath.join(layout.run_dir, 'schedule.json'))}; echo $was",
        timeout=60,
    )
    return res.text.strip().endswith("1")
