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

import posixpath
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featctl import FEAST_VERSION
from featctl.errors import FeastError, FeatctlError, HostKeyMismatch, SSHError, TerraformError, UsageError
from featctl.provision.targets import CONTRACT_OUTPUTS, HostKeys, stack_variables
from featctl.provision.terraform import Stack
from featctl.query.server import FeatureServer
from featctl.remote import host as remote
from featctl.remote import releases, schedule, service
from featctl.remote.host import Layout
from featctl.remote.keys import fingerprint, generate_ed25519, pin_host_key
from featctl.remote.ssh import q
from featctl.session import Session
from featctl.workspace import Deployment

if TYPE_CHECKING:
    from featctl.remote.ssh import Connection

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
    release: str | None = None
    previous_release: str | None = None
    cleaned: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.uploaded or self.deleted or self.installed_feast or self.applied or self.restarted_server)


def check_repo(repo: Path) -> None:
    if not repo.is_dir():
        raise UsageError(f"feature repository {repo} does not exist", hint="pass --repo PATH")
    if not (repo / "feature_store.yaml").is_file():
        raise UsageError(f"{repo} is not a Feast feature repository: it has no feature_store.yaml")


DATA_FILES = ("data/driver_stats.parquet", "data/driver_stats_with_productivity.parquet")


def prepare_sample_data(repo: Path, checked: Path | None = None) -> list[str]:
    """Generate the driver sample data when the repository uses it and it is missing.

    Existing files are checked (their columns) once per content: ``checked``
    remembers the size and mtime of files already found good, so a redeploy
    does not pay for importing pandas and pyarrow again.
    """
    import json

    uses = any("driver_stats" in p.read_text(errors="ignore") for p in repo.glob("*.py"))
    if not uses:
        return []

    def stamp() -> dict[str, Any]:
        out: dict[str, Any] = {"repo": str(repo)}
        for rel in DATA_FILES:
            st = (repo / rel).stat()
            out[rel] = [st.st_size, st.st_mtime_ns]
        return out

    try:
        if checked is not None and json.loads(checked.read_text()) == stamp():
            return [f"kept existing {rel} (unchanged since the last check)" for rel in DATA_FILES]
    except (OSError, ValueError):
        pass
    from featctl.store.sampledata import SampleDataError, ensure_sample_data

    try:
        messages = list(ensure_sample_data(repo))
    except SampleDataError as exc:
        raise UsageError(str(exc)) from None
    if checked is not None:
        from featctl.workspace import write_private

        write_private(checked, json.dumps(stamp()))
    return messages


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


def parse_host_spec(spec: str) -> tuple[str, str, int]:
    """``user@host[:port]`` (``[v6]:port`` too) to (user, host, port)."""
    user, at, rest = spec.rpartition("@")
    if not at or not user or not rest:
        raise UsageError(f"--host {spec!r} is not user@host[:port]")
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = rest.partition(":")
    try:
        port = int(port_text) if port_text else 22
    except ValueError:
        raise UsageError(f"--host {spec!r} has a port that is not a number") from None
    if not host or not 1 <= port <= 65535:
        raise UsageError(f"--host {spec!r} is not user@host[:port]")
    return user, host, port


def provision_existing(session: Session, record: Deployment | None) -> Deployment:
    """The ``ssh`` target: a host Terraform did not create. Its key must be
    confirmed (by fingerprint, or a yes on a terminal) before featctl trusts it."""
    from featctl.remote.keys import known_hosts_name
    from featctl.remote.ssh import probe_host_key

    s = session.settings
    ws = session.workspace
    opts = dict(s.target_vars.get("ssh", {}))
    spec = opts.get("host") or (f"{record.user}@{record.host}:{record.port}" if record and record.host else None)
    if not spec:
        raise UsageError("--target ssh needs --host user@host[:port]")
    user, host, port = parse_host_spec(str(spec))
    identity = opts.get("identity") or (record.identity if record else None)
    if identity and not Path(str(identity)).expanduser().is_file():
        raise UsageError(f"--identity {identity} does not exist")
    pinned = record.host_public_key if record and (record.host, record.port) == (host, port) else None
    if pinned is None:
        session.reporter.step(f"reading the host key of {known_hosts_name(host, port)}")
        offered = probe_host_key(host, port)
        fp = fingerprint(offered)
        expected = opts.get("host_key_fingerprint")
        if expected:
            if str(expected).strip() != fp:
                raise HostKeyMismatch(
                    f"host key of {known_hosts_name(host, port)} is {fp}, not the expected {expected}; refusing to connect"
                )
        elif session.confirm is None or not session.confirm(
            f"The host key of {known_hosts_name(host, port)} is {fp}. Trust it and pin it?"
        ):
            raise UsageError(
                f"first connection to {known_hosts_name(host, port)}: its host key is {fp}; "
                "check it on the host (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and pass "
                "--host-key-fingerprint with it"
            )
        pinned = offered
    ws.ensure()
    pin_host_key(ws.known_hosts, host, port, pinned)
    base = record or Deployment(target="ssh", name=s.name)
    base.target, base.name, base.host, base.port, base.user = "ssh", s.name, host, port, user
    base.host_public_key = pinned
    base.identity = str(identity) if identity else None
    base.repo = str(s.repo)
    base.feast_version = FEAST_VERSION
    from featctl.remote.ssh import wait_for_ssh

    session.adopt(wait_for_ssh(session.endpoint(base), deadline_seconds=s.ssh_wait_seconds))
    conn = session.connection(base)
    remote_dir = opts.get("remote_base_dir") or base.remote_base_dir
    if not remote_dir:
        home = conn.run('printf %s "$HOME"', timeout=30).text.strip() or f"/home/{user}"
        remote_dir = posixpath.join(home, "featctl")
    base.remote_base_dir = str(remote_dir)
    conn.run(f"mkdir -p {q(base.remote_base_dir)}", timeout=30)
    base.outputs = {"target": "ssh", "host": host, "port": port, "user": user, "remote_base_dir": base.remote_base_dir}
    return base


def prepared_stack(session: Session, record: Deployment | None, keys: HostKeys) -> tuple[Stack, dict[str, Any]]:
    """The target's stack, copied into the workspace and initialised, with its variables."""
    s = session.settings
    stack = Stack(s.target, session.workspace.terraform_dir(s.target))
    stack.prepare()
    stack.init()
    variables = stack_variables(
        s.target,
        name=s.name,
        keys=keys,
        workspace=session.workspace,
        target_vars=s.target_vars.get(s.target, {}),
        previous=record.stack_vars if record else None,
    )
    return stack, variables


def provision(session: Session, record: Deployment | None, keys: HostKeys) -> Deployment:
    """Run Terraform for the target and return the updated deployment record."""
    s = session.settings
    ws = session.workspace
    session.reporter.step(f"terraform: {s.target} stack")
    stack, variables = prepared_stack(session, record, keys)
    replace: list[str] = []
    if s.target == "local" and stack.has_state and record and record.host:
        # The local host's sshd is a process: after a reboot or a crash
        # Terraform still records it while nothing listens. Restart it (and
        # only it: what runs on the "machine" is left alone).
        if not _port_open(record.host, int(record.port)):
            session.reporter.info("sshd of the local host is not running; Terraform will restart it")
            replace = ["terraform_data.sshd"]
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


def _holder(command: str) -> dict[str, Any]:
    import getpass
    import os

    return {"user": getpass.getuser(), "client": socket.gethostname(), "pid": os.getpid(), "command": command}


@contextmanager
def _shielded() -> Iterator[None]:
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


def connect_host(session: Session, record: Deployment) -> Connection:
    from featctl.remote.ssh import wait_for_ssh

    endpoint = session.endpoint(record)
    session.reporter.step(f"waiting for SSH on {endpoint}")
    session.adopt(wait_for_ssh(endpoint, deadline_seconds=session.settings.ssh_wait_seconds))
    return session.connection(record)


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
        previous_ports = list(record.server_ports) if record and record.host and record.server_ports else None
        data_messages = prepare_sample_data(s.repo, ws.root / "data-checked.json")
        if s.target == "ssh":
            record = provision_existing(session, record)
            host_fp = fingerprint(record.host_public_key)
        else:
            keys = ensure_keys(session)
            record = provision(session, record, keys)
            host_fp = fingerprint(keys.host_public)
        record.server_ports = choose_server_ports(
            s.target, s.server_port, s.sources.get("server_port", "default"), previous_ports
        )
        if record.stage == "new":
            record.stage = "provisioned"
        ws.save(record)

        conn = connect_host(session, record)
        layout = session.layout(record)
        result = DeployResult(
            target=s.target,
            host=record.host,
            port=record.port,
            remote_base_dir=record.remote_base_dir,
            host_key_fingerprint=host_fp,
            data_messages=data_messages,
        )
        rep.step("installing featctl's host agent")
        remote.install_agent(conn, layout)
        with releases.deploy_lock(conn, layout, _holder("deploy")):
            rep.step(f"installing Feast {FEAST_VERSION} with uv")
            result.installed_feast = remote.ensure_feast_env(
                conn, layout, on_line=rep.detail, timeout=s.command_timeout
            )
            result.cleaned = releases.cleanup(conn, layout)
            host = releases.state(conn, layout)
            local = releases.local_manifest(s.repo)
            cur = host.current_release
            if (
                cur is not None
                and local == host.manifest
                and not result.installed_feast
                and cur.port in record.server_ports
                and cur.server_pid is not None
                and FeatureServer(conn, cur.port).healthy()
            ):
                record.release, record.server_port, record.stage = cur.id, cur.port, "deployed"
                ws.save(record)
                result.release = cur.id
                result.seconds = time.monotonic() - started
                return result
            build_release(session, record, result, host, local)
        result.seconds = time.monotonic() - started
        return result


def build_release(
    session: Session, record: Deployment, result: DeployResult, host: releases.HostState, local: dict[str, str]
) -> None:
    """Build a new release beside the serving one and switch to it when it is healthy.

    Any failure leaves the previous release serving and names the failed step.
    """
    s = session.settings
    rep = session.reporter
    conn = session.connection(record)
    layout = session.layout(record)
    cur = host.current_release
    new_id = releases.new_release_id()
    port = next(p for p in record.server_ports if cur is None or p != cur.port)
    step = "preparing the release"
    try:
        rep.step(f"preparing release {new_id}")
        releases.prepare(conn, layout, new_id)
        step = "the upload"
        rep.step("uploading the feature repository")
        up = releases.upload(
            conn,
            s.repo,
            layout,
            new_id,
            local,
            host.manifest,
            on_file=lambda path, size: rep.detail(f"{path} ({size} bytes)"),
        )
        result.uploaded, result.deleted = up.uploaded, up.removed
        if cur is not None:
            remote.run_agent(
                conn, layout, "rebase", ["--from", layout.release(cur.id)], timeout=120, repo=layout.release(new_id)
            )
        step = "feast apply"
        rep.step("feast apply")
        remote.feast_apply(conn, layout, layout.release(new_id), timeout=s.command_timeout)
        result.applied = True
        step = "starting the feature server"
        rep.step(f"starting the feature server of release {new_id}")
        releases.set_meta(conn, layout, new_id, port=port)
        service.start(conn, layout, new_id, port=port, workers=s.server_workers, user=record.user)
        server = FeatureServer(conn, port)
        wait_healthy(conn, layout, new_id, server)
        step = "materialization"
        rep.step("materializing")
        result.materialized = materialize_views(session, record, repo=layout.release(new_id), server=server)
        registry = remote.run_agent(conn, layout, "describe", timeout=120, repo=layout.release(new_id))
        server.close()
    except BaseException as exc:
        _abandon(conn, layout, new_id)
        if isinstance(exc, FeatctlError):
            kept = f"release {cur.id} keeps serving" if cur else "nothing was serving before"
            exc.message = f"deploy failed at {step}; {kept}: {exc.message}"
        raise
    step = "the switch"
    with _shielded():
        rep.step(f"switching to release {new_id}")
        releases.switch(conn, layout, new_id)
        record.release, record.server_port, record.registry, record.stage = new_id, port, registry, "deployed"
        record.last_materialized = max((m["end"] for m in result.materialized), default=record.last_materialized)
        record.deployed_at = iso(utcnow())
        session.workspace.save(record)
    session.close_server()
    if cur is not None:
        rep.step(f"stopping release {cur.id}")
        service.stop(conn, layout, cur.id)
    result.cleaned += releases.cleanup(conn, layout)
    result.release, result.previous_release = new_id, cur.id if cur else None
    result.restarted_server = True


def _abandon(conn: Connection, layout: Layout, release_id: str) -> None:
    """Stop and mark a release that did not make it (best effort: the next deploy cleans up)."""
    try:
        service.stop(conn, layout, release_id)
        releases.set_meta(conn, layout, release_id, state="failed")
    except (FeatctlError, OSError):
        pass


@dataclass
class PlanResult:
    target: str
    terraform: list[dict[str, Any]] = field(default_factory=list)
    upload: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    install_feast: bool = False
    registry: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(self.terraform or self.upload or self.remove or self.install_feast)


def plan(session: Session) -> PlanResult:
    """What ``deploy`` would change: the Terraform plan, the files, the Feast registry diff.

    Changes nothing: the registry diff comes from ``feast plan`` run in a
    scratch copy of the serving release, removed afterwards.
    """
    import tempfile

    s = session.settings
    ws = session.workspace
    check_repo(s.repo)
    record = ws.load()
    if record and record.target != s.target:
        raise UsageError(f"{ws.root} holds a {record.target} deployment; destroy it first or use another --workspace")
    result = PlanResult(target=s.target)
    with ws.lock(), tempfile.TemporaryDirectory(prefix="featctl-plan-") as tmp:
        if ws.client_key.exists() and ws.host_key.exists():
            keys = HostKeys(
                client_public=ws.client_key.with_suffix(".pub").read_text().strip(),
                host_private_path=str(ws.host_key),
                host_public=ws.host_key.with_suffix(".pub").read_text().strip(),
            )
        else:  # not deployed yet: plan with throwaway keys, keep none of them
            client = generate_ed25519(Path(tmp) / "client", "plan")
            host_pub = generate_ed25519(Path(tmp) / "host", "plan")
            keys = HostKeys(client_public=client, host_private_path=str(Path(tmp) / "host"), host_public=host_pub)
        stack, variables = prepared_stack(session, record, keys)
        result.terraform = stack.plan(variables)
        local = releases.local_manifest(s.repo)
        if not (record and record.host and record.stage == "deployed"):
            result.upload = sorted(local)
            result.registry = "everything in the repository (first feast apply)"
            result.notes.append("nothing is deployed from this workspace yet")
            return result
        try:
            conn = session.connection(record)
        except HostKeyMismatch:
            raise
        except SSHError as exc:
            result.notes.append(f"the host did not answer ({exc}); file and registry changes unknown")
            return result
        layout = session.layout(record)
        host = releases.state(conn, layout)
        result.upload = sorted(rel for rel, digest in local.items() if host.manifest.get(rel) != digest)
        result.remove = sorted(set(host.manifest) - set(local))
        ready = conn.run(f"cat {layout.env}/.featctl-ready 2>/dev/null || true", timeout=30).text.strip()
        result.install_feast = not ready
        if not (result.upload or result.remove) or host.current is None:
            result.registry = "no changes" if host.current else None
            return result
        scratch = f"plan-{releases.new_release_id()}"
        with releases.deploy_lock(conn, layout, _holder("plan")):
            try:
                releases.prepare(conn, layout, scratch)
                releases.upload(conn, s.repo, layout, scratch, local, host.manifest)
                remote.run_agent(
                    conn,
                    layout,
                    "rebase",
                    ["--from", layout.release(host.current)],
                    timeout=120,
                    repo=layout.release(scratch),
                )
                result.registry = remote.feast_plan(conn, layout, layout.release(scratch), timeout=s.command_timeout)
            finally:
                conn.run(f"rm -rf {layout.release(scratch)}", timeout=120, check=False)
    return result


def choose_server_ports(target: str, configured: int, source: str, previous: list[int] | None) -> list[int]:
    """Two ports for the feature servers of consecutive releases (blue/green).

    Every local deployment shares this machine's loopback, so unless the user
    set a port, a local deployment takes two free ones once and keeps them.
    """
    if source != "default" or target != "local":
        return [configured, configured + 1 if configured < 65535 else configured - 1]
    if previous and len(previous) == 2:
        return list(previous)
    from featctl.provision.targets import free_loopback_port

    first = free_loopback_port()
    second = free_loopback_port()
    while second == first:
        second = free_loopback_port()
    return [first, second]


def wait_healthy(conn: Connection, layout: Layout, release_id: str, server: FeatureServer) -> None:
    deadline = time.monotonic() + HEALTH_WAIT_SECONDS
    while True:
        if server.healthy():
            return
        if service.running_pid(conn, layout, release_id) is None:
            raise FeastError(f"the feature server exited: {service.tail_log(conn, layout, release_id, 1) or 'no log'}")
        if time.monotonic() > deadline:
            raise FeastError(
                f"the feature server did not become healthy within {HEALTH_WAIT_SECONDS:.0f} s: "
                f"{service.tail_log(conn, layout, release_id, 1) or 'no log'}"
            )
        time.sleep(0.5)


def materialize_views(
    session: Session,
    record: Deployment,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    views: list[str] | None = None,
    repo: str | None = None,
    server: FeatureServer | None = None,
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
    desc = remote.run_agent(conn, layout, "describe", timeout=120, repo=repo)
    online = [v for v in desc.get("feature_views", []) if v.get("online", True)]
    known = {v["name"] for v in online}
    if views:
        unknown = [v for v in views if v not in known]
        if unknown:
            raise UsageError(f"unknown feature view(s) {', '.join(unknown)}; deployed: {', '.join(sorted(known))}")
        online = [v for v in online if v["name"] in views]
    if not online:
        return []
    server = server or session.server(record)
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
    if (start is None) != (end is None):
        raise UsageError("--start and --end go together: give both for a range, or neither for incremental")
    if start is not None and end is not None and start >= end:
        raise UsageError("--start must be before --end")
    record = session.deployment()
    ws = session.workspace
    with ws.lock():
        done = _materialize_fast(session, record, views) if start is None else None
        if done is None:
            conn = session.connection(record)
            layout = session.layout(record)
            with releases.deploy_lock(conn, layout, _holder("materialize")):
                done = materialize_views(session, record, start=start, end=end, views=views)
        if done:
            record.last_materialized = max(d["end"] for d in done)
            ws.save(record)
    return done


def _materialize_fast(session: Session, record: Deployment, views: list[str] | None) -> list[dict[str, Any]] | None:
    """Incremental materialization as one HTTP request through the workspace's
    tunnel process: no SSH handshake and no paramiko import.

    Only when every view was materialized before (a deploy materializes each
    new view in full before it serves), so "incremental" is all there is to
    do. Returns None when the full path (SSH, host lock, registry read) is needed.
    """
    import os

    from featctl.query import tunnel

    if os.environ.get("FEATCTL_NO_TUNNEL") == "1" or tunnel.available(session.workspace.root) is None:
        tunnel.start_background(session.workspace.root)
        return None
    online = [v for v in (record.registry or {}).get("feature_views", []) if v.get("online", True)]
    if not online or any(not v.get("last_materialized") for v in online):
        return None
    known = {v["name"] for v in online}
    if views and any(v not in known for v in views):
        return None  # the full path names the unknown views
    names = list(views) if views else sorted(known)
    end_ts = iso(utcnow())
    server = session.query_server(record)
    try:
        server.materialize_incremental(end_ts, names, timeout=session.settings.command_timeout)
    except FeatctlError:
        session.close_server()
        return None  # e.g. a stale port after a deploy from elsewhere: the full path finds the right server
    return [{"view": n, "mode": "incremental", "start": None, "end": end_ts} for n in names]


@dataclass
class RollbackResult:
    release: str
    previous_release: str
    materialized: list[dict[str, Any]] = field(default_factory=list)


def rollback(session: Session) -> RollbackResult:
    """Serve the release before the current one again (blue/green, like a deploy)."""
    record = session.deployment()
    ws = session.workspace
    rep = session.reporter
    with ws.lock():
        conn = session.connection(record)
        layout = session.layout(record)
        with releases.deploy_lock(conn, layout, _holder("rollback")):
            host = releases.state(conn, layout)
            cur = host.current_release
            if cur is None:
                raise UsageError("nothing is serving on the host; run `featctl deploy`")
            earlier = [r for r in host.releases if r.state == "ready" and r.id < cur.id]
            if not earlier:
                raise UsageError(f"release {cur.id} is the oldest one kept; there is nothing to roll back to")
            target = earlier[-1]
            ports = record.server_ports or [record.server_port]
            port = next((p for p in ports if p != cur.port), ports[0])
            try:
                rep.step(f"starting the feature server of release {target.id}")
                releases.set_meta(conn, layout, target.id, port=port)
                service.start(
                    conn, layout, target.id, port=port, workers=session.settings.server_workers, user=record.user
                )
                server = FeatureServer(conn, port)
                wait_healthy(conn, layout, target.id, server)
                rep.step("materializing (catching up)")
                done = materialize_views(session, record, repo=layout.release(target.id), server=server)
                registry = remote.run_agent(conn, layout, "describe", timeout=120, repo=layout.release(target.id))
                server.close()
            except BaseException as exc:
                service.stop(conn, layout, target.id)
                if isinstance(exc, FeatctlError):
                    exc.message = f"rollback failed; release {cur.id} keeps serving: {exc.message}"
                raise
            with _shielded():
                rep.step(f"switching to release {target.id}")
                releases.switch(conn, layout, target.id)
                record.release, record.server_port, record.registry = target.id, port, registry
                record.deployed_at = iso(utcnow())
                ws.save(record)
            session.close_server()
            rep.step(f"stopping release {cur.id}")
            service.stop(conn, layout, cur.id)
    return RollbackResult(release=target.id, previous_release=cur.id, materialized=done)


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
    host = releases.state(conn, layout)
    cur = host.current_release
    info["release"] = cur.id if cur else None
    info["releases_kept"] = [r.id for r in host.releases if r.state == "ready"]
    if cur is None or cur.server_pid is None:
        info["feature_server"] = "not running"
    else:
        if cur.port and cur.port != record.server_port:
            record.server_port = cur.port  # the host is the source of truth
        healthy = session.server(record).healthy()
        info["feature_server"] = (
            f"healthy on 127.0.0.1:{cur.port} (host side)" if healthy else f"running on port {cur.port} but not healthy"
        )
    if host.lock:
        h = host.lock
        info["deploy_lock"] = (
            f"held by {h.get('user', '?')}@{h.get('client', '?')} ({h.get('command', '?')}) since {h.get('since', '?')}"
        )
    if host.schedule:
        info["schedule"] = host.schedule
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
    stack = Stack(target, ws.terraform_dir(target)) if target != "ssh" else None
    if record is None and not (stack and stack.has_state):
        return DestroyResult(
            target, destroyed=False, stopped_server=False, messages=[f"nothing is deployed from {ws.root}"]
        )
    result = DestroyResult(target, destroyed=False, stopped_server=False)
    from featctl.query import tunnel

    tunnel.stop(ws.root)
    with ws.lock():
        if record and record.host:
            session.reporter.step("stopping the feature server")
            try:
                conn = session.connection(record)
                layout = session.layout(record)
                for r in releases.state(conn, layout).releases:
                    result.stopped_server = service.stop(conn, layout, r.id) or result.stopped_server
                schedule.disable(conn, layout)
                if target == "ssh":
                    # Not featctl's machine: leave it as it was before the first deploy.
                    conn.run(f"rm -rf {q(layout.base)}", timeout=300)
                    result.destroyed = True
            except FeatctlError as exc:
                if target == "ssh":
                    raise
                result.messages.append(
                    f"could not stop the feature server over SSH ({exc}); Terraform removes the host"
                )
            finally:
                session.close()
        if stack is not None and stack.has_state:
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
        result.messages.append(
            "removed featctl's directory on the host and the pinned host key"
            if target == "ssh"
            else "removed the deployment's keys, pinned host key and Terraform state"
        )
    return result
