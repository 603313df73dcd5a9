"""The small verbs: ``schedule``, ``unlock`` and ``logs``."""

from __future__ import annotations

from typing import Any

from featctl.errors import UsageError
from featctl.remote import releases, schedule, service
from featctl.session import Session


def set_schedule(session: Session, every: int | None) -> str:
    record = session.deployment()
    conn = session.connection(record)
    layout = session.layout(record)
    if every is None:
        return "removed the materialization schedule" if schedule.disable(conn, layout) else "no schedule was set"
    how = schedule.enable(conn, layout, every, record.user)
    return f"materializing incrementally every {every} s on the host ({how})"


def unlock(session: Session) -> dict[str, Any]:
    """Break a stale deploy lock on the host (its holder is gone)."""
    record = session.deployment()
    conn = session.connection(record)
    return releases.unlock(conn, session.layout(record))


def logs(session: Session, lines: int) -> str:
    record = session.deployment()
    conn = session.connection(record)
    layout = session.layout(record)
    host = releases.state(conn, layout)
    if host.current is None:
        raise UsageError("nothing is serving on the host; run `featctl deploy`")
    return service.tail_log(conn, layout, host.current, lines)

