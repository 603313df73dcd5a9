"""The application endpoint (issue #22): HAProxy in front of every serving
host's feature server, TLS with the deployment's CA, bearer tokens.

What deploy, destroy and plan call:

* ``sync(session, record)``: bring the endpoint to what featctl.toml's
  [endpoint] says (certificate, haproxy.cfg, ``haproxy -c``, start or hitless
  reload); without [endpoint], stop it and remove its files but the tokens;
* ``teardown(workspace_root)``: stop it and remove everything, tokens too;
* ``plan_rows(settings, record)``: what ``sync`` would change;
* ``backends(record)``: each host's serving feature server socket.

On the local target every host is a directory on this machine, so the one
HAProxy here reaches each host's socket directly. On the vm and yandex
targets every host runs its own HAProxy (``lifecycle/endpoint_hosts.py``)
behind a layer-4 load balancer: on vm featctl's, here, on yandex the cloud's.
The files of this machine's HAProxy live in
``<workspace>/endpoint/`` (0700, see ``provision/haproxy.py``); what was last
applied is ``endpoint/state.json`` (no secret), which ``plan_rows`` compares.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import shutil
import socket
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from featctl.config import EndpointSettings, Settings
from featctl.errors import FeatctlError, UsageError
from featctl.lifecycle import endpoint_hosts, tokens
from featctl.provision import haproxy, tls
from featctl.remote.layout import Layout
from featctl.session import Session
from featctl.workspace import Deployment, Workspace, write_private

STATE = "state.json"
#: Files of the endpoint directory that outlive an endpoint removed from featctl.toml.
KEPT = ("tokens.map",)


@dataclass(frozen=True)
class BackendStatus:
    name: str
    address: str
    #: up, down or unknown (HAProxy not running)
    state: str
    #: When HAProxy last saw the state change (None: unknown).
    since: datetime | None = None


@dataclass(frozen=True)
class EndpointStatus:
    url: str
    ca_file: str
    backends: list[BackendStatus]
    tokens_live: int
    #: This command started HAProxy (it was not running).
    started: bool = False
    log_file: str = ""


@dataclass(frozen=True)
class EndpointChange:
    """One planned change; the fields of lifecycle/plan.py's PlanRow."""

    kind: str
    name: str
    change: str
    fields: tuple[str, ...] = field(default_factory=tuple)


def files_of(root: Path) -> haproxy.Files:
    return tokens.endpoint_files(root)


def backends(record: Deployment, settings: Settings | None = None) -> list[haproxy.Backend]:
    """``h<i>``: host i's serving feature server socket (vm and yandex: host i's HAProxy)."""
    if settings is not None and settings.endpoint is not None and endpoint_hosts.on_hosts(settings):
        port = settings.endpoint.port
        return [haproxy.Backend(f"h{i}", f"{record.for_host(i).host}:{port}") for i in range(record.host_count)]
    out = []
    for i in range(record.host_count):
        view = record.for_host(i)
        out.append(haproxy.Backend(f"h{i}", Layout(view.remote_base_dir).socket(int(view.server_port))))
    return out


def allowed(settings: Settings, record: Deployment | None = None) -> list[str]:
    """[endpoint] allow, else the deployment's own network: loopback on the
    local target, the VPC subnet on yandex, the listen address's /24 elsewhere."""
    ep = _require(settings)
    if ep.allow:
        return list(ep.allow)
    if settings.target == "local":
        return ["127.0.0.0/8"]
    if settings.target == "yandex":
        stack = (record.stack_vars if record else {}) or {}
        subnet = stack.get("subnet_cidr") or settings.target_vars.get("yandex", {}).get("subnet_cidr")
        return [str(subnet or "10.10.0.0/24")]
    prefix = 24 if ipaddress.ip_address(ep.listen).version == 4 else 64
    return [str(ipaddress.ip_interface(f"{ep.listen}/{prefix}").network)]


def url(ep: EndpointSettings) -> str:
    host = f"[{ep.listen}]" if ipaddress.ip_address(ep.listen).version == 6 else ep.listen
    return f"https://{host}:{ep.port}"


def _require(settings: Settings) -> EndpointSettings:
    if settings.endpoint is None:
        raise UsageError("the endpoint is not enabled", hint="add an [endpoint] table to featctl.toml and deploy")
    return settings.endpoint


def effective(settings: Settings, record: Deployment) -> EndpointSettings:
    """[endpoint] with the address applications connect to (yandex: its load balancer's)."""
    _require(settings)
    return endpoint_hosts.effective(settings, record)


def desired_state(settings: Settings, record: Deployment) -> dict[str, Any]:
    ep = effective(settings, record)
    return {
        "listen": ep.listen,
        "port": ep.port,
        "allow": allowed(settings, record),
        "backends": [asdict(b) for b in backends(record, settings)],
        "max_body": ep.max_body,
        "timeout": ep.timeout,
        "names": tls.endpoint_names(ep.listen, ep.names),
        "health_port": ep.health_port,
    }


def applied_state(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((files_of(root).root / STATE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def plan_rows(settings: Settings, record: Deployment) -> list[EndpointChange]:
    """What ``sync`` would change: the endpoint added, removed, or the fields that differ."""
    old = applied_state(settings.workspace)
    if settings.endpoint is None:
        return [EndpointChange("endpoint", old["listen"], "remove")] if old else []
    try:
        new = desired_state(settings, record)
        name = url(effective(settings, record))
    except FeatctlError:  # yandex before its load balancer exists: its address is not known yet
        return [EndpointChange("endpoint", f"load balancer :{settings.endpoint.port}", "add" if old is None else "change")]
    if old is None:
        return [EndpointChange("endpoint", name, "add", tuple(new))]
    differ = tuple(k for k in new if new[k] != old.get(k))
    return [EndpointChange("endpoint", name, "change", differ)] if differ else []


def _listening(ep: EndpointSettings, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection((ep.listen, ep.port), timeout=1.0):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise haproxy.EndpointError(f"the endpoint does not listen on {url(ep)}: {exc.strerror or exc}") from None
            time.sleep(0.05)


def sync(session: Session, record: Deployment) -> EndpointStatus | None:
    """Bring the endpoint to featctl.toml's [endpoint]; None when it has none
    (HAProxy stopped, its files removed but tokens.map and tokens.json)."""
    settings = session.settings
    root = settings.workspace
    files = files_of(root)
    hosted = endpoint_hosts.on_hosts(settings)
    if settings.endpoint is None:
        with tokens.endpoint_lock(root):
            if hosted and applied_state(root) is not None:
                endpoint_hosts.stop(session, record)
            _remove(files, keep=KEPT)
        return None
    if settings.target not in ("local", *endpoint_hosts.HOST_TARGETS):
        raise UsageError(
            f"[endpoint] runs on the local, vm and yandex targets (this deployment's target: {settings.target})",
            hint="remove [endpoint] from featctl.toml",
        )
    ep = effective(settings, record)
    state = desired_state(settings, record)
    cfg: str | None
    if not hosted:
        cfg = haproxy.render(ep, allow=state["allow"], backends=backends(record), state_dir=files.root)
    elif settings.target == "vm":
        cfg = endpoint_hosts.front_config(settings, record, state["allow"], files.root)
    else:
        cfg = None  # yandex: the cloud's load balancer is in front
    with tokens.endpoint_lock(root):
        files.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        files.root.chmod(0o700)
        before = _read(files.cfg), _read(files.edge_pem)
        tls.ensure_endpoint_cert(Workspace(root), state["names"], files.root, label=settings.name, client=hosted)
        tokens.write_map(root, tokens.load(root))
        if hosted:
            session.reporter.step(f"bringing the endpoint's HAProxy on {record.host_count} host(s) up to date")
            endpoint_hosts.push(session, record, state["allow"], files)
        if cfg is None:
            write_private(files.root / STATE, json.dumps(state, indent=2) + "\n")
            return _status(settings, record, session=session)
        staged = files.root / ".haproxy.cfg.new"
        write_private(staged, cfg)
        try:
            haproxy.check(staged)
        except haproxy.EndpointError:
            staged.unlink()
            raise
        staged.replace(files.cfg)
        started = False
        if not haproxy.running(files):
            if before[0] is not None:
                session.reporter.info(f"the endpoint {url(ep)} was not running: starting it again")
            session.reporter.step(f"starting the endpoint {url(ep)}")
            haproxy.stop(files)  # whatever is left of an earlier run
            haproxy.start(files)
            started = True
        elif before != (_read(files.cfg), _read(files.edge_pem)):
            session.reporter.step(f"reloading the endpoint {url(ep)}")
            try:
                haproxy.reload(files, checked=True)
            except haproxy.EndpointError:
                if before[0] is not None:  # what the running HAProxy serves, for the next deploy to retry
                    write_private(files.cfg, before[0])
                raise
        write_private(files.root / STATE, json.dumps(state, indent=2) + "\n")
    _listening(ep)
    return _status(settings, record, started=started, session=session)


def token_edges(session: Session) -> list[tokens.Edge] | None:
    """Where a token change goes at once: every host's HAProxy on the vm and
    yandex targets, else this machine's (None, ``tokens``' default)."""
    settings = session.settings
    if settings.endpoint is None or not endpoint_hosts.on_hosts(settings):
        return None
    if applied_state(settings.workspace) is None:
        return []  # not deployed yet: the hosts get tokens.map with the endpoint
    return list(endpoint_hosts.edges(session, session.workspace.require()))


def after_switch(session: Session, record: Deployment) -> None:
    """A host switched releases: point the endpoint at its new feature server
    (a hitless reload) before the old server stops, so no read is dropped. A
    failure is reported, not raised: the switch is done and serving goes on
    through the tunnel; the deploy's closing ``sync`` tries again and fails
    loudly."""
    settings = session.settings
    if settings.endpoint is None:
        return
    if endpoint_hosts.on_hosts(settings):
        if applied_state(settings.workspace) is None:
            return
    elif not haproxy.running(files_of(settings.workspace)):
        return
    try:
        sync(session, record)
    except FeatctlError as exc:
        session.reporter.info(f"warning: the endpoint still points at the old release: {exc.message}")


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _status(
    settings: Settings, record: Deployment, *, started: bool = False, session: Session | None = None
) -> EndpointStatus:
    ep = effective(settings, record)
    files = files_of(settings.workspace)
    seen: dict[str, haproxy.ServerState] = {}
    if settings.target == "yandex":
        seen = endpoint_hosts.host_states(session, record) if session else {}
    elif haproxy.running(files):
        seen = {s.name: s for s in haproxy.show_stat(files)}
    now = datetime.now(timezone.utc).replace(microsecond=0)
    rows = []
    for b in backends(record, settings):
        s = seen.get(b.name)
        state = "unknown" if s is None else ("up" if s.up else "down")
        since = None if s is None or s.since_seconds is None else now - timedelta(seconds=s.since_seconds)
        rows.append(BackendStatus(b.name, b.address, state, since))
    return EndpointStatus(
        url=url(ep),
        ca_file=str(files.ca_pem),
        backends=rows,
        tokens_live=tokens.live_count(settings.workspace),
        started=started,
        log_file=str(files.log),
    )


def ensure_running(session: Session) -> bool:
    """Start HAProxy again when it died (a reboot, a kill); True when it did.
    Nothing to do when the endpoint is off or not deployed yet."""
    ep = session.settings.endpoint
    files = files_of(session.settings.workspace)
    if ep is None or not files.cfg.exists() or haproxy.running(files):
        return False
    with tokens.endpoint_lock(session.settings.workspace):
        if haproxy.running(files):
            return False
        tokens.write_map(session.settings.workspace, tokens.load(session.settings.workspace))
        haproxy.stop(files)
        haproxy.start(files)
    session.reporter.info(f"the endpoint {url(ep)} was not running: started it again")
    return True


def log_lines(settings: Settings, lines: int) -> str:
    """The end of HAProxy's log (requests, health check changes, reloads)."""
    _require(settings)
    return "\n".join(haproxy.log_tail(files_of(settings.workspace), lines))


def status(session: Session) -> EndpointStatus:
    """``featctl endpoint``: URL, CA file, each backend as HAProxy sees it, live tokens."""
    _require(session.settings)
    record = session.workspace.require()
    if applied_state(session.settings.workspace) is None:
        raise UsageError("the endpoint is enabled but not deployed yet", hint="run `featctl deploy`")
    started = ensure_running(session)
    return _status(session.settings, record, started=started, session=session)


def _remove(files: haproxy.Files, keep: tuple[str, ...] = ()) -> None:
    haproxy.stop(files)
    if not files.root.exists():
        return
    for p in files.root.iterdir():
        if p.name in keep:
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    with contextlib.suppress(OSError):
        files.root.rmdir()  # only when nothing was kept


def teardown(workspace_root: Path) -> None:
    """Stop HAProxy and remove every file of the endpoint, tokens included (destroy)."""
    files = files_of(workspace_root)
    if not workspace_root.exists():
        return
    with tokens.endpoint_lock(workspace_root):
        _remove(files)
        tokens.forget(workspace_root)
    with contextlib.suppress(FileNotFoundError):
        (workspace_root / "endpoint.lock").unlink()
