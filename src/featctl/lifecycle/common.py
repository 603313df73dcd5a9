"""What every lifecycle verb shares: time stamps, the lock holder record,
Ctrl-C shielding, the SSH wait and the repository check."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featctl.errors import UsageError
from featctl.session import Session
from featctl.workspace import Deployment

if TYPE_CHECKING:
    from featctl.remote.ssh import Connection


EPOCH = "1970-01-01T00:00:00+00:00"


def refuse_unknown_views(views: list[str] | None, known: set[str], unknown_says: str, known_says: str) -> None:
    """Refuse requested ``views`` not in ``known`` (the record's cached registry
    summary) before any connection; an empty summary (an old record) checks nothing."""
    unknown = [v for v in views or [] if v not in known]
    if known and unknown:
        raise UsageError(
            f"{unknown_says} {', '.join(unknown)}; {known_says}: {', '.join(sorted(known))}",
            hint="`featctl status` lists the views",
        )


def server_workers(settings: Any) -> int:
    """The feature server's worker processes: featctl.toml's server_workers, or
    1 where the repository's online store is a file only one process may open."""
    from featctl.errors import FeatctlError
    from featctl.repo.feature_store import load

    try:
        single = load(settings.repo).single_process_online
    except FeatctlError:
        return int(settings.server_workers)
    return 1 if single else int(settings.server_workers)


def server_differs(release: Any, settings: Any) -> str | None:
    """How the serving release's feature server runs otherwise than featctl.toml
    says (a deploy starts a new release for it), or None. A release from before
    featctl recorded its workers counts as the default's."""
    from featctl.config import _DEFAULTS

    workers = getattr(release, "workers", None) or _DEFAULTS["server_workers"]
    wanted = server_workers(settings)
    if workers != wanted:
        return f"server_workers {workers} -> {wanted}"
    return None


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat()


def check_repo(repo: Path) -> None:
    if not repo.is_dir():
        raise UsageError(f"feature repository {repo} does not exist", hint="pass --repo PATH")
    if not (repo / "feature_store.yaml").is_file():
        raise UsageError(f"{repo} is not a Feast feature repository: it has no feature_store.yaml")


def holder(command: str) -> dict[str, Any]:
    import getpass
    import os

    return {"user": getpass.getuser(), "client": socket.gethostname(), "pid": os.getpid(), "command": command}


@contextmanager
def shielded() -> Iterator[None]:
    """Defer Ctrl-C across a few steps that must happen together (switch + record)."""
    import signal

    got: list[int] = []
    try:
        old = signal.signal(signal.SIGINT, lambda sig, frame: got.append(sig))
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if got:
            raise KeyboardInterrupt


#: Targets whose hosts are set up by cloud-init (the yandex stack's user-data).
CLOUD_INIT_TARGETS = ("yandex", "vm")


def connect_host(session: Session, record: Deployment, index: int = 0) -> Connection:
    """Host ``index`` once SSH answers and, on a target whose hosts cloud-init
    sets up, once cloud-init has finished: before anything else touches the
    host (its deployment directory is made by the user-data's runcmd, after
    packages). The connection skips ``Session.connection_to``'s agent check:
    the caller installs the agent next."""
    from featctl.remote.ssh import wait_for_ssh

    view = record.for_host(index)
    endpoint = session.endpoint(view)
    who = f"host {index}: " if index else ""
    session.reporter.step(f"{who}waiting for SSH on {endpoint}")
    conn = wait_for_ssh(endpoint, deadline_seconds=session.settings.ssh_wait_seconds)
    session.adopt(conn, index)
    if record.target in CLOUD_INIT_TARGETS:
        from featctl.remote.cloudinit import wait_for_cloud_init

        session.reporter.step(f"{who}waiting for cloud-init to finish on the host")
        if "degraded" in (wait_for_cloud_init(conn) or ""):
            session.reporter.info(
                f"{who}warning: cloud-init finished with recoverable errors (see /var/log/cloud-init.log)"
            )
    return conn


def choose_server_ports(target: str, configured: int, source: str, previous: list[int] | None) -> list[int]:
    """Two ports for the feature servers of consecutive releases (blue/green).

    Every local deployment (and every vm guest: they share this machine's
    network) uses this machine's loopback, so unless the user set a port, such
    a deployment takes two free ones once and keeps them.
    """
    from featctl.config import LOOPBACK_TARGETS

    if source != "default" or target not in LOOPBACK_TARGETS:
        return [configured, configured + 1 if configured < 65535 else configured - 1]
    if previous and len(previous) == 2:
        return list(previous)
    from featctl.provision.targets import free_loopback_port

    first = free_loopback_port()
    second = free_loopback_port()
    while second == first:
        second = free_loopback_port()
    return [first, second]
