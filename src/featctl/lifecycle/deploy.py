"""``featctl deploy``: every target runs the same steps; only the Terraform
stack differs.

1. Terraform creates (or converges) the host, with the host key featctl made.
2. featctl pins that key and waits for SSH.
3. It installs its host agent and the pinned Feast environment (uv).
4. When anything changed it builds a new release (release.py): uploads what
   changed, ``feast apply``, starts that release's feature server, checks
   ``/health``, materializes, and switches ``current`` to it.
5. Running it again with nothing changed changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from featctl.errors import FeatctlError, UsageError
from featctl.lifecycle import endpoint, hosts, ownership
from featctl.lifecycle.common import check_repo, choose_server_ports, connect_host, holder, server_differs
from featctl.lifecycle.health import Health, materialized_views, release_health
from featctl.lifecycle.release import build_release
from featctl.provision.machine import ensure_keys, provision, provision_existing
from featctl.remote import agent, releases
from featctl.remote.keys import fingerprint
from featctl.remote.layout import DEFAULT_ENV
from featctl.repo import feature_store
from featctl.repo.bundle import Bundle
from featctl.repo.bundle import build as build_bundle
from featctl.session import Session
from featctl.store.prepare import prepare_sample_data
from featctl.workspace import Deployment


@dataclass
class DeployResult:
    target: str
    host: str
    port: int
    remote_base_dir: str
    host_key_fingerprint: str
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    installed_feast: bool = False
    applied: bool = False
    restarted_server: bool = False
    materialized: list[dict[str, Any]] = field(default_factory=list)
    data_messages: list[str] = field(default_factory=list)
    release: str | None = None
    previous_release: str | None = None
    cleaned: list[dict[str, Any]] = field(default_factory=list)
    #: The serving release was unhealthy and this deploy replaced it.
    repaired: bool = False
    #: PostgreSQL tables loaded from parquet sources (stores = postgres).
    loaded: list[dict[str, Any]] = field(default_factory=list)
    #: Hosts after the first (hosts = N): index, release, whether it changed.
    hosts: list[dict[str, Any]] = field(default_factory=list)
    #: Files the host changed since featctl uploaded them (offline pushes), kept as they are there.
    kept: list[str] = field(default_factory=list)
    #: The application endpoint ([endpoint] in featctl.toml), when it has one.
    endpoint: Any = None
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(
            self.uploaded
            or self.deleted
            or self.installed_feast
            or self.applied
            or self.restarted_server
            or any(h.get("changed") for h in self.hosts)
        )


def deploy(session: Session, *, take_over: bool = False, data: str = "ask") -> DeployResult:
    """Deploy the repository (see the module docstring).

    ``data`` says what happens to a file the host changed since featctl
    uploaded it (Feast appends offline pushes to a FileSource's file): kept
    when it is unchanged here; changed here too, ``ask`` stops (exit 2) before
    anything changes, ``keep`` keeps the host's copy, ``overwrite`` uploads this
    machine's.
    """
    s = session.settings
    ws = session.workspace
    rep = session.reporter
    check_repo(s.repo)
    if s.endpoint is not None and s.target not in ("local", "vm", "yandex"):
        raise UsageError(
            f"[endpoint] runs on the local, vm and yandex targets (this deployment's target: {s.target}); "
            "remove the table from featctl.toml to deploy"
        )
    if s.target == "vm":
        from featctl.provision.vm import preflight

        preflight()  # this machine can boot a guest, or one line before anything changes
    started = time.monotonic()
    ws.ensure()
    with ws.lock():
        record = ws.load()
        if record and record.target != s.target:
            raise UsageError(
                f"{ws.root} holds a {record.target} deployment; destroy it first or use another --workspace"
            )
        previous_ports = list(record.server_ports) if record and record.host and record.server_ports else None
        cfg = feature_store.load(s.repo)
        if "spark" in s.stores and s.target == "yandex":
            raise UsageError(
                "stores = spark on the yandex target needs Yandex Data Proc, which the stack does not create yet; "
                "use redis and postgres there (spark runs in local mode on the local and ssh targets)"
            )
        data_messages = prepare_sample_data(s.repo, ws.root / "data-checked.json") if cfg.is_demo else []
        # Bad paths, links and store settings fail before Terraform.
        bundle = build_bundle(s.repo, workspace=ws.root, stores=s.stores, spark=dict(s.spark))
        assert bundle.config is not None
        hosts.check_shared(s.hosts, bundle.config)
        if s.target == "ssh":
            record = provision_existing(session, record)
            host_fp = fingerprint(record.host_public_key)
        else:
            # A copied workspace's Terraform would replace the host: refuse it first.
            ownership.precheck(session, record, take_over=take_over)
            keys = ensure_keys(session)
            record = provision(session, record, keys)
            host_fp = fingerprint(keys.host_public)
        record.server_ports = choose_server_ports(
            s.target, s.server_port, s.sources.get("server_port", "default"), previous_ports
        )
        if record.stage == "new":
            record.stage = "provisioned"
        ownership.ensure_id(record)
        ws.save(record)

        conn = connect_host(session, record)
        layout = session.layout(record)
        result = DeployResult(
            target=s.target,
            host=record.host,
            port=record.port,
            remote_base_dir=record.remote_base_dir,
            host_key_fingerprint=host_fp,
            data_messages=data_messages + bundle.notes,
        )
        rep.step("installing featctl's host agent")
        agent.install_agent(conn, layout)
        owner = ownership.check(conn, layout, record, ws, take_over=take_over)
        hosts.write_stores_env(session, conn, layout, record)
        with releases.deploy_lock(conn, layout, holder("deploy")):
            # The environment follows the repository: its stores' extras and
            # [host] requirements, each set in an environment of its own.
            spec = agent.EnvSpec(tuple(bundle.config.extras), tuple(s.host_requirements))
            single = bundle.config.single_process_online if bundle.config else None
            if single and s.server_workers != 1:
                rep.info(f"the feature server runs with 1 worker, not {s.server_workers}: {single}")
            new_layout = layout.with_env(spec.name)
            result.installed_feast = agent.ensure_feast_env(
                conn, new_layout, spec, on_line=rep.detail, timeout=s.command_timeout, on_install=rep.step
            )
            used = [st for st in s.stores if st in record.stores or st == "spark"]
            if used:
                rep.step(f"checking the shared stores ({', '.join(sorted(used))}) from the host")
                try:
                    hosts.check_stores(conn, new_layout, used)
                except FeatctlError as exc:
                    exc.message = f"deploy stopped before any change (the serving release is untouched): {exc.message}"
                    raise
            # No server outside a deploy: a release left running by an interrupted
            # switch or a killed supervisor is stopped here.
            result.cleaned = releases.cleanup(conn, layout, stop_idle=True)
            host = releases.state(conn, layout)
            local = bundle
            files = releases.file_plan(local, host, data)
            if files.conflicts and data == "ask":
                raise UsageError(releases.conflict_message(files))
            result.kept = files.kept
            cur = host.current_release
            healthy, registry = (
                release_health(conn, layout.with_env(cur.env), cur, patient=True)
                if cur is not None
                else (Health(False, "nothing serves"), None)
            )
            stale = _stale_server_code(conn, cur) if cur is not None and healthy else None
            if stale:
                rep.info(stale)
            differs = server_differs(cur, s) if cur is not None else None
            if differs and healthy and cur is not None:
                rep.info(f"release {cur.id}'s feature server runs with {differs}: starting a new release with it")
            if (
                cur is not None
                and healthy
                and not stale
                and not differs
                and not files.changes
                and (cur.env or DEFAULT_ENV) == spec.name
                and cur.port in record.server_ports
            ):
                record.release, record.server_port, record.stage = cur.id, cur.port, "deployed"
                record.env_name = spec.name
                record.registry = registry or record.registry
                record.probe = cur.probe or record.probe
                ownership.claim(conn, layout, record, ws, changed=False, known=owner)
                ws.save(record)
                result.release = cur.id
                _follow(session, record, result, local, spec, cur.probe)
                result.endpoint = endpoint.sync(session, record)
                result.seconds = time.monotonic() - started
                return result
            if cur is not None and not healthy:
                rep.info(
                    f"release {cur.id} is unhealthy ({healthy.reason}); "
                    "building a new release whose online store is loaded from the offline data"
                )
            built = build_release(session, record, host, local, new_layout, files, fresh=cur is not None and not healthy)
            result.uploaded, result.deleted, result.materialized = built.uploaded, built.removed, built.materialized
            result.applied = result.restarted_server = True
            result.cleaned += built.cleaned
            result.release, result.previous_release = built.id, built.previous
            result.repaired = cur is not None and not healthy
            result.loaded = built.loaded
            record.probe = built.probe or {}
            ownership.claim(conn, layout, record, ws)
            ws.save(record)
            _follow(session, record, result, local, spec, built.probe)
            result.endpoint = endpoint.sync(session, record)
        result.seconds = time.monotonic() - started
        return result


def _stale_server_code(conn: Any, cur: Any) -> str | None:
    """Why the serving release's feature server must be replaced although nothing
    in the repository changed: it runs featctl's host code (its endpoints, the
    fixes for Feast) of another featctl version than this one. None when current."""
    from featctl.query.server import FeatureServer
    from featctl.remote.agent import agent_digest

    server = FeatureServer(conn, int(cur.port or 0))
    try:
        info = server.featctl_info()
    except FeatctlError:
        return None  # the health check already read it; a hiccup is no reason to rebuild
    finally:
        server.close()
    if info is not None and info.get("agent") == agent_digest():
        return None
    return (
        f"release {cur.id}'s feature server runs featctl's host code of another version; "
        "starting a new release with this version's"
    )


def _follow(
    session: Session,
    record: Deployment,
    result: DeployResult,
    local: Bundle,
    spec: agent.EnvSpec,
    probe: dict[str, Any] | None,
) -> None:
    """Hosts after the first serve what host 0 serves, switched one at a time."""
    materialized = materialized_views(record.registry or {})
    for index in range(1, record.host_count):
        outcome = hosts.follow(session, record, index, local, spec, probe, materialized)
        result.hosts.append({"host": index, "release": outcome.release, "changed": outcome.changed})
        for message in outcome.messages:
            session.reporter.info(message)
        session.workspace.save(record)
