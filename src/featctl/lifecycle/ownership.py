"""One deployment, one workspace: a copied workspace must not take over a host
that another workspace deploys to.

Every deployment gets an id (kept in the workspace record and on the host in
``run/owner.json``) and a generation that grows with every change. The host
records which workspace made the last change; a workspace that is not that one
but carries the same id is a copy, and is refused before Terraform runs (its
Terraform state would replace the host) unless the user takes over on purpose.
"""

from __future__ import annotations

import socket
import uuid
from typing import Any

from featctl.errors import FeatctlError, HostKeyMismatch, SSHError, UsageError
from featctl.remote import host
from featctl.remote.layout import Layout
from featctl.remote.ssh import Connection
from featctl.session import Session
from featctl.workspace import Deployment, Workspace

TAKE_OVER_HINT = "if that workspace is gone for good (moved or deleted), pass --take-over"


def identity(workspace: Workspace) -> str:
    """This workspace as the host records it: machine and absolute path."""
    return f"{socket.gethostname()}:{workspace.root.resolve()}"


def ensure_id(record: Deployment) -> None:
    if not record.deployment_id:
        record.deployment_id = uuid.uuid4().hex[:16]


def conflict(owner: dict[str, Any] | None, record: Deployment, me: str) -> str | None:
    """Why this workspace may not change the deployment, or None (pure; unit-tested)."""
    if not owner or not owner.get("deployment_id"):
        return None
    theirs = str(owner.get("workspace") or "?")
    gen = int(owner.get("generation") or 0)
    if record.deployment_id and owner["deployment_id"] != record.deployment_id:
        return (
            f"the host holds another deployment ({owner['deployment_id']}, last deployed from {theirs}), "
            f"not this workspace's {record.deployment_id}"
        )
    if theirs != me and gen >= record.generation:
        return (
            f"this workspace ({me}) is a copy: deployment {owner['deployment_id']} was last changed from {theirs} "
            f"(change {gen}; this copy knows change {record.generation}); changing it from a copy could replace "
            f"or destroy that deployment's host; use that workspace"
        )
    return None


def _busy_message(h: dict[str, Any]) -> str:
    return (
        f"another deploy holds the lock on the host (by {h.get('user', '?')}@{h.get('client', '?')} "
        f"pid {h.get('pid', '?')}, {h.get('command', 'deploy')} since {h.get('since', '?')})"
    )


def check(
    conn: Connection, layout: Layout, record: Deployment, workspace: Workspace, *, take_over: bool
) -> dict[str, Any] | None:
    """Refuse a copied workspace and a held deploy lock (raises UsageError);
    return the owner the host records."""
    try:
        state = host.owner(conn, layout)
    except FeatctlError:
        return None  # an agent from before owners existed: nothing recorded yet
    if not take_over:
        why = conflict(state.get("owner"), record, identity(workspace))
        if why:
            raise UsageError(why, hint=TAKE_OVER_HINT)
    owner = state.get("owner") or {}
    if not record.deployment_id and owner.get("deployment_id"):
        record.deployment_id = str(owner["deployment_id"])  # adopted (take-over or the same workspace)
    if state.get("lock"):
        raise UsageError(
            _busy_message(state["lock"]),
            hint="wait for it; if no deploy is running, clear the stale lock with `featctl unlock`",
        )
    return state.get("owner")


def precheck(session: Session, record: Deployment | None, *, take_over: bool) -> None:
    """The check above before Terraform runs, when the host answers at once.

    A host that does not answer (its sshd is down) is not checked here:
    Terraform restarts it and the check runs again once connected.
    """
    if record is None or not record.host:
        return
    from featctl.remote.ssh import connect

    try:
        conn = connect(session.endpoint(record), timeout=5.0)
    except HostKeyMismatch:
        raise
    except SSHError:
        return
    try:
        check(conn, session.layout(record), record, session.workspace, take_over=take_over)
    finally:
        conn.close()


def claim(
    conn: Connection,
    layout: Layout,
    record: Deployment,
    workspace: Workspace,
    *,
    changed: bool = True,
    known: dict[str, Any] | None = None,
) -> None:
    """Record this workspace as the deployment's last writer. A run that changed
    nothing writes only when the host's record (``known``, from ``check``) differs."""
    ensure_id(record)
    owner = known or {}
    if (
        not changed
        and owner.get("deployment_id") == record.deployment_id
        and owner.get("workspace") == identity(workspace)
        and int(owner.get("generation") or 0) == record.generation
    ):
        return
    record.generation += 1
    host.owner(
        conn,
        layout,
        claim={"deployment_id": record.deployment_id, "workspace": identity(workspace), "generation": record.generation},
    )
