"""Deploy, destroy, status and materialize: the lifecycle of a deployment.

Every target runs the same steps; only the Terraform stack differs:

1. Terraform creates (or converges) the host, with the host key featctl made.
2. featctl pins that key and waits for SSH.
3. It installs its host agent and the pinned Feast environment (uv).
4. It uploads what changed in the feature repository and runs ``feast apply``.
5. It (re)starts the feature server under supervision and checks ``/health``.
6. It materializes: all the data on a view's first run, incremental after.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from featctl import FEAST_VERSION
from featctl.errors import FeastError, FeatctlError, HostKeyMismatch, SSHError, TerraformError, UsageError
from featctl.provision.targets import CONTRACT_OUTPUTS, HostKeys, stack_variables
from featctl.provision.terraform import Stack
from featctl.remote import host as remote
from featctl.remote.keys import fingerprint, generate_ed25519, pin_host_key
from featctl.session import Session
from featctl.workspace import Deployment

#: Where a view's first materialization starts: before any data in its sources.
EPOCH = "1970-01-01T00:00:00+00:00"
HEALTH_WAIT_SECONDS = 120.0


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat()


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
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.uploaded or self.deleted or self.installed_feast or self.applied or self.restarted_server)


def check_repo(repo: Path) -> None:
    if not repo.is_dir():
        raise UsageError(f"feature repository {repo} does not exist", hint="pass --repo PATH")
    if not (repo / "feature_store.yaml").is_file():
        raise UsageError(f"{repo} is not a Feast feature repository: it has no feature_store.yaml")


def prepare_sample_data(repo: Path) -> list[str]:
    """Generate the driver sample data when the repository uses it and it is missing."""
    uses = any("driver_stats" in p.read_text(errors="ignore") for p in repo.glob("*.py"))
    if not uses:
        return []
    from featctl.store.sampledata import SampleDataError, ensure_sample_data

    try:
        return list(ensure_sample_data(repo))
    except SampleDataError as exc:
        raise UsageError(str(exc)) from None


def ensure_keys(session: Session) -> HostKeys:
    ws = session.workspace
    name = session.settings.name
    client = generate_ed25519(ws.client_key, f"featctl-client@{name}")
    host = generate_ed25519(ws.host_key, f"featctl-host@{name}")
    return HostKeys(client_public=client, host_private_path=str(ws.host_key), host_public=host)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _check_outputs(outputs: dict[str, Any], keys: HostKeys) -> None:
    missing = [k for k in CONTRACT_OUTPUTS if outputs.get(k) in (None, "")]
    if missing:
        raise TerraformError(f"the Terraform stack did not output {', '.join(missing)}")
    if str(outputs["host_public_key"]).split()[:2] != keys.host_public.split()[:2]:
        raise TerraformError("the Terraform stack reports a host key other than the one featctl generated")


def provision(session: Session, record: Deployment | None, keys: HostKeys) -> Deployment:
    """Run Terraform for the target and return the updated deployment record."""
    s = session.settings
    ws = session.workspace
    stack = Stack(s.target, ws.terraform_dir(s.target))
    session.reporter.step(f"terraform: {s.target} stack")
    stack.prepare()
    stack.init()
    variables = stack_variables(
        s.target,
        name=s.name,
        keys=keys,
        workspace=ws,
        target_vars=s.target_vars.get(s.target, {}),
        previous=record.stack_vars if record else None,
    )
    replace: list[str] = []
    if s.target == "local" and stack.has_state and record and record.host:
        # The local host is a process: after a reboot Terraform still records
        # it while nothing listens. Replace it rather than wait for SSH forever.
        if not _port_open(record.host, int(record.port)):
            session.reporter.info("the local host is not running; Terraform will recreate it")
            replace = ["terraform_data.host"]
    stack.apply(variables, replace=replace)
    outputs = stack.outputs()
    _check_outputs(outputs, keys)
    host, port = str(outputs["host"]), int(outputs["port"])
    pin_host_key(ws.known_hosts, host, port, keys.host_public)
    base = record or Deployment(target=s.target, name=s.name)
    base.target = s.target
    base.name = s.name
    base.host, base.port, base.user = host, port, str(outputs["user"])
    base.remote_base_dir = str(outputs["remote_base_dir"])
    base.host_public_key = keys.host_public
    base.outputs = outputs
    base.stack_vars = variables
    base.repo = str(s.repo)
    base.feast_version = FEAST_VERSION
    return base


def deploy(session: Session) -> DeployResult:
    s = session.settings
    ws = session.workspace
    rep = session.reporter
    check_repo(s.repo)
    started = time.monotonic()
    ws.ensure()
    with ws.lock():
        record = ws.load()
        if record and record.target != s.target:
            raise UsageError(
                f"{ws.root} holds a {record.target} deployment; destroy it first or use another --workspace"
            )
        was_deployed = bool(record and record.ready)
        previous_port = record.server_port if record and record.host else None
        data_messages = prepare_sample_data(s.repo)
        keys = ensure_keys(session)
        record = provision(session, record, keys)
        port = choose_server_port(s.target, s.server_port, s.sources.get("server_port", "default"), previous_port)
        port_changed = previous_port is not None and previous_port != port
        record.server_port = port
        record.stage = "provisioned"
        ws.save(record)

        from featctl.remote.ssh import wait_for_ssh

        endpoint = session.endpoint(record)
        rep.step(f"waiting for SSH on {endpoint}")
        session.adopt(wait_for_ssh(endpoint, deadline_seconds=s.ssh_wait_seconds))
        conn = session.connection(record)
        layout = session.layout(record)
        result = DeployResult(
            target=s.target,
            host=record.host,
            port=record.port,
            remote_base_dir=record.remote_base_dir,
            host_key_fingerprint=fingerprint(keys.host_public),
            data_messages=data_messages,
        )

        rep.step("installing featctl's host agent")
        remote.install_agent(conn, layout)
        rep.step(f"installing Feast {FEAST_VERSION} with uv")
        result.installed_feast = remote.ensure_feast_env(conn, layout, on_line=rep.detail, timeout=s.command_timeout)

        rep.step("uploading the feature repository")
        sync = remote.sync_repo(conn, s.repo, layout, on_file=lambda path, size: rep.detail(f"{path} ({size} bytes)"))
        result.uploaded, result.deleted = sync.uploaded, sync.deleted

        if sync.changed or result.installed_feast or not was_deployed:
            rep.step("feast apply")
            remote.feast_apply(conn, layout, timeout=s.command_timeout)
            result.applied = True

        running = remote.server_pid(conn, layout) is not None
        server = session.server(record)
        if result.applied or port_changed or not running or not server.healthy():
            rep.step("starting the feature server")
            session.close_server()
            remote.start_server(conn, layout, port=record.server_port, workers=s.server_workers, user=record.user)
            wait_healthy(session, record)
            result.restarted_server = True

        rep.step("materializing")
        result.materialized = materialize_views(session, record)
        record.registry = remote.run_agent(conn, layout, "describe", timeout=120)
        record.last_materialized = max((m["end"] for m in result.materialized), default=record.last_materialized)
        record.stage = "deployed"
        record.deployed_at = iso(utcnow())
        ws.save(record)
        result.seconds = time.monotonic() - started
        return result


def choose_server_port(target: str, configured: int, source: str, previous: int | None) -> int:
    """The feature server's port on the host.

    Every local deployment shares this machine's loopback, so unless the user
    set a port, a local deployment takes a free one once and keeps it.
    """
    if source != "default" or target != "local":
        return configured
    if previous is not None:
        return previous
    from featctl.provision.targets import free_loopback_port

    return free_loopback_port()


def wait_health_deadline() -> float:
    return time.monotonic() + HEALTH_WAIT_SECONDS


def wait_healthy(session: Session, record: Deployment) -> None:
    conn = session.connection(record)
    layout = session.layout(record)
    deadline = wait_health_deadline()
    while True:
        if session.server(record).healthy():
            return
        if remote.server_pid(conn, layout) is None:
            raise FeastError(f"the feature server exited: {remote.tail_log(conn, layout, 1) or 'no log'}")
        if time.monotonic() > deadline:
            raise FeastError(
                f"the feature server did not become healthy within {HEALTH_WAIT_SECONDS:.0f} s: "
                f"{remote.tail_log(conn, layout, 1) or 'no log'}"
            )
        time.sleep(0.5)


def materialize_views(
    session: Session,
    record: Deployment,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    views: list[str] | None = None,
) -> list[dict[str, Any]]:
    """Materialize through the running feature server (no Feast start-up cost).

    With ``start`` and ``end`` the range is materialized. Otherwise views that
    were never materialized get all their data (from the epoch: Feast's
    incremental mode would start at now minus the TTL and leave older rows
    out), and the others are materialized incrementally up to now.
    """
    if (start is None) != (end is None):
        raise UsageError("--start and --end go together: give both for a range, or neither for incremental")
    conn = session.connection(record)
    layout = session.layout(record)
    desc = remote.run_agent(conn, layout, "describe", timeout=120)
    online = [v for v in desc.get("feature_views", []) if v.get("online", True)]
    known = {v["name"] for v in online}
    if views:
        unknown = [v for v in views if v not in known]
        if unknown:
            raise UsageError(f"unknown feature view(s) {', '.join(unknown)}; deployed: {', '.join(sorted(known))}")
        online = [v for v in online if v["name"] in views]
    if not online:
        return []
    server = session.server(record)
    timeout = session.settings.command_timeout
    end_ts = end or utcnow()
    done: list[dict[str, Any]] = []
    if start is not None:
        if start >= end_ts:
            raise UsageError("--start must be before --end")
        names = [v["name"] for v in online]
        server.materialize(iso(start), iso(end_ts), names, timeout=timeout)
        done = [{"view": n, "mode": "range", "start": iso(start), "end": iso(end_ts)} for n in names]
    else:
        first = [v["name"] for v in online if not v.get("last_materialized")]
        rest = [v for v in online if v.get("last_materialized")]
        if first:
            server.materialize(EPOCH, iso(end_ts), first, timeout=timeout)
            done += [{"view": n, "mode": "all data", "start": EPOCH, "end": iso(end_ts)} for n in first]
        if rest:
            server.materialize_incremental(iso(end_ts), [v["name"] for v in rest], timeout=timeout)
            done += [
                {"view": v["name"], "mode": "incremental", "start": v["last_materialized"], "end": iso(end_ts)}
                for v in rest
            ]
    return done


def materialize(
    session: Session, *, start: datetime | None = None, end: datetime | None = None, views: list[str] | None = None
) -> list[dict[str, Any]]:
    record = session.deployment()
    ws = session.workspace
    with ws.lock():
        done = materialize_views(session, record, start=start, end=end, views=views)
        record.registry = remote.run_agent(session.connection(record), session.layout(record), "describe", timeout=120)
        if done:
            record.last_materialized = max(d["end"] for d in done)
        ws.save(record)
    return done


@dataclass
class Status:
    info: dict[str, Any]
    views: list[dict[str, Any]]


def status(session: Session) -> Status:
    """What is deployed and whether it answers. Never imports Feast locally."""
    record = session.workspace.require()
    info: dict[str, Any] = {
        "target": record.target,
        "name": record.name,
        "stage": record.stage,
        "host": f"{record.user}@{record.host}:{record.port}" if record.host else None,
        "remote_base_dir": record.remote_base_dir or None,
        "host_key": fingerprint(record.host_public_key) if record.host_public_key else None,
        "feast_version": record.feast_version or None,
        "deployed_at": record.deployed_at,
        "repo": record.repo,
        "terraform_outputs": {k: v for k, v in record.outputs.items() if k != "host_public_key"},
    }
    views: list[dict[str, Any]] = []
    try:
        conn = session.connection(record)
        info["ssh"] = "answers"
    except HostKeyMismatch:
        raise  # a security problem, not a status line
    except SSHError as exc:
        info["ssh"] = f"no answer: {exc}"
        info["feature_server"] = "unknown (no SSH)"
        return Status(info, _views_from(record.registry, stale=True))
    layout = session.layout(record)
    pid = remote.server_pid(conn, layout)
    if pid is None:
        info["feature_server"] = "not running"
    else:
        healthy = session.server(record).healthy()
        info["feature_server"] = (
            f"healthy on 127.0.0.1:{record.server_port} (host side)" if healthy else "running but not healthy"
        )
    try:
        desc = remote.run_agent(conn, layout, "describe", timeout=120)
        views = _views_from(desc)
        info["project"] = desc.get("project")
    except FeatctlError as exc:
        info["registry"] = f"unavailable: {exc}"
        views = _views_from(record.registry, stale=True)
    return Status(info, views)


def _views_from(desc: dict[str, Any], *, stale: bool = False) -> list[dict[str, Any]]:
    rows = []
    for v in desc.get("feature_views", []):
        rows.append(
            {
                "view": v["name"],
                "kind": "feature view",
                "features": ", ".join(f["name"] for f in v.get("features", [])),
                "ttl_seconds": v.get("ttl_seconds"),
                "last_materialized": v.get("last_materialized") or ("never" if not stale else None),
            }
        )
    for v in desc.get("on_demand_feature_views", []):
        rows.append(
            {
                "view": v["name"],
                "kind": "on-demand view",
                "features": ", ".join(f["name"] for f in v.get("features", [])),
                "ttl_seconds": None,
                "last_materialized": None,
            }
        )
    return rows


@dataclass
class DestroyResult:
    target: str
    destroyed: bool
    stopped_server: bool
    messages: list[str] = field(default_factory=list)


def destroy(session: Session) -> DestroyResult:
    s = session.settings
    ws = session.workspace
    record = ws.load()
    target = record.target if record else s.target
    stack = Stack(target, ws.terraform_dir(target))
    if record is None and not stack.has_state:
        return DestroyResult(
            target, destroyed=False, stopped_server=False, messages=[f"nothing is deployed from {ws.root}"]
        )
    result = DestroyResult(target, destroyed=False, stopped_server=False)
    with ws.lock():
        if record and record.host:
            session.reporter.step("stopping the feature server")
            try:
                conn = session.connection(record)
                result.stopped_server = remote.stop_server(conn, session.layout(record))
                remote.remove_service(conn)
            except FeatctlError as exc:
                result.messages.append(
                    f"could not stop the feature server over SSH ({exc}); Terraform removes the host"
                )
            finally:
                session.close()
        if stack.has_state:
            session.reporter.step(f"terraform destroy ({target})")
            stack.prepare()
            stack.init()
            variables = dict(record.stack_vars) if record and record.stack_vars else None
            if variables is None:
                keys = ensure_keys(session)
                variables = stack_variables(
                    target, name=s.name, keys=keys, workspace=ws, target_vars=s.target_vars.get(target, {})
                )
            stack.destroy(variables)
            result.destroyed = True
        ws.forget(target)
        result.messages.append("removed the deployment's keys, pinned host key and Terraform state")
    return result
