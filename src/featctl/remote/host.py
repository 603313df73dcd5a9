"""Who and what is on the host: the deployment's processes, who holds a port,
and which workspace last changed the deployment (the agent's ``procs``,
``free-port`` and ``owner`` commands)."""

from __future__ import annotations

import json
from typing import Any

from featctl.remote.agent import hostops
from featctl.remote.layout import Layout
from featctl.remote.ssh import Connection


def processes(conn: Connection, layout: Layout, *, kill: bool = False) -> list[dict[str, Any]]:
    """The deployment's live processes on the host; with ``kill``, what is left
    after stopping them all."""
    data = hostops(conn, layout, "procs", *(["--kill"] if kill else []), timeout=120)
    return list(data.get("processes", []))


def free_port(conn: Connection, layout: Layout, port: int | str) -> dict[str, Any]:
    """Free server ``port``'s Unix socket (or a socket name such as ``6566-batch``)
    of this deployment's own servers; says who holds it otherwise."""
    return hostops(conn, layout, "free-port", "--port", str(port), timeout=60)


def owner(conn: Connection, layout: Layout, claim: dict[str, Any] | None = None) -> dict[str, Any]:
    """``{"owner": ..., "lock": ...}``: the last writer recorded on the host and the
    deploy lock's holder; with ``claim``, this workspace becomes the last writer."""
    args = ["--claim", json.dumps(claim)] if claim is not None else []
    return hostops(conn, layout, "owner", *args, timeout=60)
