"""The small verbs: ``schedule``, ``unlock`` and ``logs``."""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Any

from featctl.errors import UsageError
from featctl.remote import releases, schedule, service
from featctl.session import Session


def set_schedule(session: Session, every: int | None, verify_sample: int = 1000) -> str:
    record = session.deployment()
    conn = session.connection(record)
    layout = session.layout(record)
    if every is None:
        return "removed the materialization schedule" if schedule.disable(conn, layout) else "no schedule was set"
    how = schedule.enable(conn, layout, every, verify_sample)
    then = (
        f", then verifying {verify_sample} entities per view and repairing what is wrong"
        if verify_sample
        else " (no verify)"
    )
    return f"materializing incrementally every {every} s on the host ({how}){then}"


def holder_alive(h: dict[str, Any]) -> str | None:
    """Why the lock's holder may still live (None: it is gone). A holder on this
    machine is checked (a stopped process is alive); one elsewhere cannot be."""
    pid = h.get("pid")
    client = h.get("client")
    if not isinstance(pid, int) or not client:
        return "its holder is unknown"
    if client != socket.gethostname():
        return f"its holder runs on {client} (pid {pid}), which featctl cannot check from here"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    state = ""
    with contextlib.suppress(OSError, IndexError), open(f"/proc/{pid}/stat") as fh:
        state = fh.read().rsplit(")", 1)[1].split()[0]
    how = "stopped (Ctrl-Z?)" if state in ("T", "t") else "still running"
    return f"its holder, pid {pid} on this machine ({h.get('command', 'deploy')}), is {how}"


def unlock(session: Session, *, force: bool = False) -> dict[str, Any]:
    """Break a stale deploy lock on the host (its holder is gone); a live holder
    only with ``force``."""
    record = session.deployment()
    conn = session.connection(record)
    layout = session.layout(record)
    held = releases.state(conn, layout).lock
    if held and not force:
        why = holder_alive(held)
        if why:
            raise UsageError(
                f"the deploy lock is not stale: {why}",
                hint="let it finish, or stop it; `featctl unlock --force` clears the lock anyway",
            )
    return releases.unlock(conn, layout)


def logs(session: Session, lines: int) -> str:
    record = session.deployment()
    conn = session.connection(record)
    layout = session.layout(record)
    host = releases.state(conn, layout)
    if host.current is None:
        raise UsageError("nothing is serving on the host; run `featctl deploy`")
    return service.tail_log(conn, layout, host.current, lines)

