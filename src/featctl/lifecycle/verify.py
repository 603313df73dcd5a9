"""``featctl verify``: are the values served the offline data's newest ones?

The health check reads one entity per view; this reads every entity (or a
random sample) and compares it with what a full materialization would write
(the host agent's verify.py: Feast's own pipeline, its as-of rules). With
``repair`` the wrong rows are written again from the offline data and read
back, under the host's deploy lock (no deploy switches the store meanwhile).
The summary is kept on the host (``run/verify.json``) for ``featctl status``.
"""

from __future__ import annotations

import posixpath
from typing import Any

from featctl.errors import UsageError
from featctl.lifecycle.common import holder, refuse_unknown_views
from featctl.remote import agent, releases
from featctl.session import Session


def verify(
    session: Session,
    *,
    views: list[str] | None = None,
    sample: int | None = None,
    repair: bool = False,
    include_newer: bool = False,
    seed: int | None = None,
) -> dict[str, Any]:
    """The agent's verify document: ``views`` (per-view counts), ``rows`` (each
    wrong value: view, entity, feature, online, offline, their event times,
    problem, repaired), and the totals ``checked``, ``wrong``, ``repaired``, ``newer``."""
    if sample is not None and sample < 1:
        raise UsageError("--sample must be at least 1")
    record = session.deployment()
    online = {v["name"] for v in (record.registry or {}).get("feature_views", []) if v.get("online", True)}
    refuse_unknown_views(views, online, "not an online feature view:", "online views")
    args: list[str] = []
    for v in views or []:
        args += ["--views", v]
    if sample is not None:
        args += ["--sample", str(sample)]
    if seed is not None:
        args += ["--seed", str(seed)]
    if include_newer:
        args.append("--include-newer")
    conn = session.connection(record)
    layout = session.layout(record)
    args += ["--record", posixpath.join(layout.run_dir, "verify.json")]
    timeout = session.settings.command_timeout
    if not repair:
        return agent.run_agent(conn, layout, "verify", args, timeout=timeout)
    with session.workspace.lock(), releases.deploy_lock(conn, layout, holder("verify --repair")):
        return agent.run_agent(conn, layout, "verify", [*args, "--repair"], timeout=timeout)
