"""Scheduled incremental materialization on the host.

A systemd timer where the host runs systemd (and featctl may manage units:
the agent's units.py), featctl's supervised loop otherwise. Either way each
run asks the serving release's feature server to materialize, so serving goes
on meanwhile, and records its outcome in ``run/schedule.json`` for
``featctl status``.
"""

from __future__ import annotations

import posixpath

from featctl.remote.agent import hostops
from featctl.remote.layout import Layout
from featctl.remote.service import service_manager
from featctl.remote.ssh import Connection, q


def _pidfile(layout: Layout) -> str:
    return posixpath.join(layout.run_dir, "schedule.pid")


def loop_argv(layout: Layout, every: int, mode: str, verify_sample: int = 1000) -> list[str]:
    """The agent's ``materialize-once`` (a timer's run) or ``materialize-loop``."""
    return [
        *layout.agent_argv("python3"),
        mode,
        "--base",
        layout.base,
        "--every",
        str(every),
        "--default-env",
        layout.env_name,
        "--verify-sample",
        str(verify_sample),
    ]


def enable(conn: Connection, layout: Layout, every: int, verify_sample: int = 1000) -> str:
    """Install the schedule: every ``every`` seconds an incremental
    materialization, then a ``verify --repair`` of ``verify_sample`` entities
    per view (0: no verify)."""
    disable(conn, layout)
    conn.run(f"mkdir -p {q(layout.run_dir)}", timeout=30)
    if service_manager(conn, layout) == "systemd":
        hostops(
            conn,
            layout,
            "timer-start",
            "--every",
            str(every),
            "--",
            *loop_argv(layout, every, "materialize-once", verify_sample),
            timeout=120,
        )
        return "systemd timer"
    log = posixpath.join(layout.run_dir, "schedule.log")
    loop = " ".join(q(a) for a in loop_argv(layout, every, "materialize-loop", verify_sample))
    conn.run(f"{layout.supervise_shell(_pidfile(layout), log)} {loop} </dev/null >/dev/null 2>&1", timeout=60)
    return "supervised loop"


def disable(conn: Connection, layout: Layout) -> bool:
    """Remove the schedule (its timer or its supervised loop); True when one was installed."""
    timer = bool(hostops(conn, layout, "timer-stop", timeout=120).get("removed"))
    res = conn.run(
        # Its record first: the deployment's keeper must not start it again.
        f"rm -f {q(posixpath.join(layout.run_dir, 'schedule.argv'))}; was=0; p=$(cat {q(_pidfile(layout))} 2>/dev/null); "
        f'if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then was=1; kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p"; '
        f'i=0; while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do i=$((i+1)); sleep 0.1; done; fi; '
        f"rm -f {q(_pidfile(layout))} {q(posixpath.join(layout.run_dir, 'schedule.json'))}; echo $was",
        timeout=60,
    )
    return timer or res.text.strip().endswith("1")
