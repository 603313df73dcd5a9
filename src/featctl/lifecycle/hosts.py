"""Several serving hosts on shared stores (``hosts = N``), and what every host
needs of the stores: their variables in ``run/stores.env``.

Host 0 leads: it applies the registry, loads data and materializes (once, into
the shared stores). Every other host then runs a feature server on the same
content, built and checked beside its serving one and switched one host at a
time, so some host always serves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from featctl.config import LOOPBACK_TARGETS
from featctl.errors import FeastError, FeatctlError, UsageError
from featctl.lifecycle import endpoint, health
from featctl.lifecycle.common import choose_server_ports, connect_host, holder, server_differs, server_workers, shielded
from featctl.lifecycle.release import wait_healthy
from featctl.query.server import FeatureServer
from featctl.remote import agent, releases, service
from featctl.remote.layout import DEFAULT_ENV, Layout
from featctl.remote.ssh import Connection, q
from featctl.repo import feature_store
from featctl.repo.bundle import Bundle
from featctl.session import Session
from featctl.workspace import Deployment


def check_shared(settings_hosts: int, cfg: feature_store.RepoConfig) -> None:
    """``hosts > 1`` needs stores every host shares (one line, before Terraform)."""
    if settings_hosts <= 1:
        return
    online = str(cfg.online_store.get("type", "sqlite"))
    if online == "sqlite" or cfg.registry_type == "file":
        raise UsageError(
            f'hosts = {settings_hosts} needs shared stores: set stores = ["redis", "postgres"] '
            "(a sqlite online store and a file registry on each host's disk would diverge)"
        )


def write_stores_env(session: Session, conn: Connection, layout: Layout, record: Deployment) -> None:
    """The stores' FEATCTL_* variables on a host (0600; never printed)."""
    from featctl.repo.stores import env_lines, for_host

    passwords = {s: session.workspace.store_password_file(s).read_text().strip() for s in record.stores}
    stores = for_host(record.stores, record.remote_base_dir, layout.base)
    aliases = _ca_aliases(conn, stores)
    for where in stores.values():
        if where.get("ca_file") in aliases:
            where["ca_file"] = aliases[where["ca_file"]]
    text = env_lines(stores, passwords)
    if text:
        conn.put_text(layout.stores_env, text, 0o600)
    else:
        conn.run(f"rm -f {q(layout.stores_env)}", timeout=30)


#: A path stores.env and Feast's Redis connection string carry as it is (no comma, quote or space).
SAFE_PATH = re.compile(r"[A-Za-z0-9_./+@%=:-]+")


def remove_ca_aliases(conn: Connection, record: Deployment, layout: Layout) -> None:
    """destroy: the links ``_ca_aliases`` made on this host go with the deployment."""
    from featctl.repo.stores import for_host

    links = _ca_aliases(conn, for_host(record.stores, record.remote_base_dir, layout.base), make=False)
    if links:
        conn.run("rm -f " + " ".join(q(a) for a in links.values()), timeout=30, check=False)


def _ca_aliases(conn: Connection, stores: dict[str, dict[str, Any]], *, make: bool = True) -> dict[str, str]:
    """CA path -> a link to it at a path the hosts' store settings can carry,
    for each CA that needs one: a workspace whose path holds a comma or a quote
    (the local target's hosts live under it) keeps its CA there, and Feast's
    Redis connection string splits on commas. The links live in the SSH user's
    home (``~/.featctl/ca``, 0700); one command makes them all."""
    import hashlib

    cas = {w["ca_file"] for w in stores.values() if isinstance(w.get("ca_file"), str)}
    cas = {ca for ca in cas if not SAFE_PATH.fullmatch(ca)}
    if not cas:
        return {}
    home = conn.run("cd && pwd -P", timeout=30).text.strip()
    aliases = {ca: f"{home}/.featctl/ca/{hashlib.sha256(ca.encode()).hexdigest()[:16]}.crt" for ca in sorted(cas)}
    if not SAFE_PATH.fullmatch(home):
        raise UsageError(
            f"the stores' CA file {min(cas)} holds a comma or quote and so does the home {home}: use a "
            "workspace path without them (--workspace)"
        )
    if make:
        links = " && ".join(f"ln -sfn {q(ca)} {q(alias)}" for ca, alias in aliases.items())
        conn.run(f"umask 077 && mkdir -p {q(home + '/.featctl/ca')} && {links}", timeout=30)
    return aliases


def check_stores(conn: Connection, layout: Layout, stores: list[str]) -> list[str]:
    """Each of ``stores`` answers from this host (one line naming the first that does not)."""
    done = agent.run_agent(conn, layout, "check-stores", ["--stores", ",".join(stores)], timeout=120, repo=layout.base)
    return list(done.get("checked", []))


@dataclass
class HostOutcome:
    index: int
    release: str | None
    changed: bool = False
    messages: list[str] = field(default_factory=list)


def follow(
    session: Session,
    record: Deployment,
    index: int,
    local: Bundle,
    spec: agent.EnvSpec,
    probe: dict[str, Any] | None,
    materialized: set[str],
) -> HostOutcome:
    """Bring host ``index`` to serve ``local`` (already applied and
    materialized by host 0): its own release beside its serving one, switched
    when its server answers the same online reads host 0's did."""
    rep = session.reporter
    s = session.settings
    view = record.for_host(index)
    # The local target's hosts (and the vm guests) share this machine's loopback: ports of their own.
    shared = s.target in LOOPBACK_TARGETS
    taken = {p for i in range(record.host_count) if i != index for p in record.for_host(i).server_ports}
    if not shared:
        taken = set()
    elif s.sources.get("server_port", "default") != "default":
        raise UsageError(f"server_port cannot be set with hosts > 1 on the {s.target} target: its hosts share one loopback")
    while len(view.server_ports) != 2 or set(view.server_ports) & taken:
        view.server_ports = choose_server_ports(s.target, s.server_port, s.sources.get("server_port", "default"), None)
        if not shared:
            break
    # SSH, then cloud-init (on targets that have it) before anything else.
    conn = connect_host(session, record, index)
    layout = session.layout(view)
    # An adopted connection skipped connection_to's agent check: a new host has none yet.
    agent.install_agent(conn, layout)
    write_stores_env(session, conn, layout, record)
    outcome = HostOutcome(index, view.release)
    with releases.deploy_lock(conn, layout, holder("deploy")):
        new_layout = layout.with_env(spec.name)
        agent.ensure_feast_env(
            conn, new_layout, spec, on_line=rep.detail, timeout=s.command_timeout, on_install=rep.step
        )
        releases.cleanup(conn, layout, stop_idle=True)
        host = releases.state(conn, layout)
        cur = host.current_release
        # Host 0 decided what the release holds: a follower mirrors this machine's files.
        files = releases.file_plan(local, host, "overwrite")
        differs = server_differs(cur, s) if cur is not None else None
        if differs and cur is not None:
            outcome.messages.append(f"host {index}: release {cur.id}'s feature server runs with {differs}")
        if cur is not None and not differs and not files.changes and (cur.env or DEFAULT_ENV) == spec.name:
            server = FeatureServer(conn, int(cur.port or 0))
            try:
                ok = health.check(server, probe, materialized) if cur.port else health.Health(False, "no port")
            finally:
                server.close()
            if ok:
                view.release, view.server_port, view.env_name = cur.id, int(cur.port or 0), spec.name
                record.update_host(index, view)
                return outcome
            outcome.messages.append(f"host {index}: release {cur.id} is unhealthy ({ok.reason}); rebuilding it")
        new_id = releases.new_release_id()
        port = next(p for p in view.server_ports if cur is None or p != cur.port)
        step = "preparing the release"
        try:
            releases.prepare(conn, new_layout, new_id, fresh=True)
            step = "the upload"
            rep.step(f"host {index}: uploading the feature repository")
            releases.upload(conn, local, new_layout, new_id, files)
            step = "starting the feature server"
            rep.step(f"host {index}: starting the feature server of release {new_id}")
            releases.set_meta(conn, new_layout, new_id, port=port, env=new_layout.env_name, workers=server_workers(s))
            service.start(conn, new_layout, new_id, port=port, workers=server_workers(s))
            server = FeatureServer(conn, port)
            wait_healthy(conn, new_layout, new_id, server)
            step = "the health check"
            verdict = health.check(server, probe, materialized)
            server.close()
            if not verdict:
                raise FeastError(f"release {new_id} is unhealthy: {verdict.reason}")
        except BaseException as exc:
            try:
                service.stop(conn, new_layout, new_id)
                releases.set_meta(conn, new_layout, new_id, state="failed")
            except (FeatctlError, OSError):
                pass
            if isinstance(exc, FeatctlError):
                kept = f"release {cur.id} keeps serving there" if cur else "nothing served there before"
                exc.message = f"deploy failed on host {index} at {step}; {kept}: {exc.message}"
            raise
        with shielded():
            rep.step(f"host {index}: switching to release {new_id}")
            releases.switch(conn, new_layout, new_id)
            view.release, view.server_port, view.env_name = new_id, port, new_layout.env_name
            record.update_host(index, view)
            session.workspace.save(record)
        session.close_server(index)
        endpoint.after_switch(session, record)
        if cur is not None:
            service.stop(conn, layout, cur.id)
        releases.cleanup(conn, layout, prune_envs=True)
        outcome.release, outcome.changed = new_id, True
    return outcome


def roll_back_follower(session: Session, record: Deployment, index: int) -> HostOutcome:
    """Host ``index`` serves its release before the current one again (after host 0 did)."""
    rep = session.reporter
    view = record.for_host(index)
    conn = session.connection_to(record, index)
    layout = session.layout(view)
    with releases.deploy_lock(conn, layout, holder("rollback")):
        releases.cleanup(conn, layout, stop_idle=True)
        host = releases.state(conn, layout)
        cur = host.current_release
        earlier = [r for r in host.releases if cur is not None and r.state == "ready" and r.id < cur.id]
        if cur is None or not earlier:
            return HostOutcome(index, cur.id if cur else None, messages=[f"host {index}: nothing to roll back to"])
        target = earlier[-1]
        tlayout = layout.with_env(target.env)
        port = next(p for p in view.server_ports if p != cur.port)
        rep.step(f"host {index}: starting the feature server of release {target.id}")
        releases.set_meta(conn, tlayout, target.id, port=port, workers=server_workers(session.settings))
        service.start(conn, tlayout, target.id, port=port, workers=server_workers(session.settings))
        server = FeatureServer(conn, port)
        try:
            wait_healthy(conn, tlayout, target.id, server)
        except BaseException:
            service.stop(conn, tlayout, target.id)
            raise
        finally:
            server.close()
        with shielded():
            releases.switch(conn, tlayout, target.id)
            view.release, view.server_port, view.env_name = target.id, port, tlayout.env_name
            record.update_host(index, view)
            session.workspace.save(record)
        session.close_server(index)
        endpoint.after_switch(session, record)
        service.stop(conn, layout, cur.id)
        return HostOutcome(index, target.id, changed=True)


def host_status(session: Session, record: Deployment, index: int, probe: dict[str, Any] | None) -> dict[str, Any]:
    """One host's line in ``status``: SSH, release, and whether its server answers."""
    from featctl.errors import HostKeyMismatch, SSHError

    view = record.for_host(index)
    row: dict[str, Any] = {"host": index, "address": f"{view.host}:{view.port}"}
    try:
        conn = session.connection_to(record, index)
    except HostKeyMismatch:
        raise
    except SSHError as exc:
        row.update(release=view.release, feature_server=f"unknown: no SSH ({exc.message})")
        return row
    layout = session.layout(view)
    cur = releases.state(conn, layout).current_release
    row["release"] = cur.id if cur else None
    if cur is None or not cur.port:
        row["feature_server"] = "not running (nothing deployed)"
        return row
    server = FeatureServer(conn, int(cur.port))
    try:
        verdict = health.check(server, probe)
    finally:
        server.close()
    where = layout.socket(int(cur.port))
    row["feature_server"] = f"healthy on {where}" if verdict else f"unhealthy on {where}: {verdict.reason}"
    return row
