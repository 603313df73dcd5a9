"""Getting a host: Terraform for the local and cloud targets, a confirmed
host key for the ``ssh`` target. Either way the result is a deployment
record whose host key is pinned before the first connection."""

from __future__ import annotations

import os
import posixpath
import re
import socket
from pathlib import Path
from typing import Any

from featctl import FEAST_VERSION
from featctl.config import PROCESS_TARGETS
from featctl.errors import HostKeyMismatch, TerraformError, UsageError
from featctl.provision.targets import CONTRACT_OUTPUTS, HOST_OUTPUT_KEYS, HostKeys, stack_variables
from featctl.provision.terraform import Stack
from featctl.remote.keys import fingerprint, generate_ed25519, pin_host_key
from featctl.remote.ssh import q
from featctl.session import Session
from featctl.workspace import Deployment


def ensure_keys(session: Session, count: int | None = None) -> HostKeys:
    """The client key and one generated host key per host (kept once made)."""
    ws = session.workspace
    name = session.settings.name
    count = count or session.settings.hosts
    client = generate_ed25519(ws.client_key, f"featctl-client@{name}")
    hosts = []
    for i in range(count):
        path = ws.host_key_for(i)
        hosts.append((str(path), generate_ed25519(path, f"featctl-host{i or ''}@{name}")))
    return HostKeys(client_public=client, hosts=tuple(hosts))


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on host:port (2 s)."""
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _check_outputs(outputs: dict[str, Any], keys: HostKeys) -> list[dict[str, Any]]:
    """The stack's hosts, checked against the contract and the keys featctl made."""
    missing = [k for k in CONTRACT_OUTPUTS if outputs.get(k) is None or outputs.get(k) == ""]
    if missing:
        raise TerraformError(f"the Terraform stack did not output {', '.join(missing)}")
    hosts = outputs["hosts"]
    if not isinstance(hosts, list) or len(hosts) != len(keys.hosts):
        raise TerraformError(f"the Terraform stack reports {len(hosts)} host(s), not the {len(keys.hosts)} asked for")
    for i, (h, (_path, public)) in enumerate(zip(hosts, keys.hosts)):
        absent = [k for k in HOST_OUTPUT_KEYS if not isinstance(h, dict) or h.get(k) in (None, "")]
        if absent:
            raise TerraformError(f"the Terraform stack's hosts[{i}] has no {', '.join(absent)}")
        if str(h["host_public_key"]).split()[:2] != public.split()[:2]:
            raise TerraformError(
                f"the Terraform stack reports a host key for host {i} other than the one featctl generated"
            )
    return [{k: h[k] for k in HOST_OUTPUT_KEYS} for h in hosts]


#: Where the local stack's store servers live (terraform/modules/stores).
STORES_MODULE = "module.stores"


def _dead_servers(record: Deployment, sys_class_net: str = "/sys/class/net") -> list[tuple[str, str]]:
    """Local and vm targets: (resource, what) for each process Terraform
    records but nothing answers for (after a reboot or a crash): its sshd (the
    local target) or its guest (vm) per host, the stores' servers. Replacing
    those restarts them on the same data (a guest boots on the same disk).
    The vm target's bridge too: a new one restarts the guests and the stores."""
    bridge = str((record.outputs.get("network") or {}).get("bridge") or "") if record.target == "vm" else ""
    if bridge and not Path(sys_class_net, bridge).exists():
        # This machine rebooted: a new network restarts what runs on it (the
        # guests, the stores). Nothing is probed: without the bridge their
        # addresses would be routed out of this machine.
        return [("terraform_data.network", f"the guests' network (bridge {bridge}, the guests and stores on it)")]
    dead = []
    hosts = record.hosts or [{"host": record.host, "port": record.port}]
    for i, h in enumerate(hosts):
        if h.get("host") and not port_open(str(h["host"]), int(h["port"])):
            if record.target == "vm":
                dead.append((f"terraform_data.guest[{i}]", f"guest {i}"))
            else:
                dead.append((f"terraform_data.sshd[{i}]", f"sshd of local host {i}"))
    for store, where in sorted(record.stores.items()):
        if not port_open(str(where["host"]), int(where["port"])):
            dead.append((f"{STORES_MODULE}.terraform_data.{store}_server[0]", f"the {store} server"))
    return dead


#: Where terraform/modules/stores' scripts keep each store server's supervisor
#: (featctl's supervise.py): its pid file and the log it records restarts in,
#: relative to the store's data directory.
STORE_SUPERVISORS = {
    "redis": ("supervise.pid", "supervise.log"),
    "postgres": ("featctl/supervise.pid", "postgres.log"),
}
_RESTARTED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) supervise: restarted\b", re.M)


def store_servers(record: Deployment) -> dict[str, str]:
    """Local and vm targets: store -> who keeps its server on this machine and
    its newest restart (from its supervisor's log), for ``featctl status``."""
    if record.target not in PROCESS_TARGETS:
        return {}
    dirs = dict((record.stack_vars or {}).get("store_dirs") or {})
    out = {}
    for store in sorted(record.stores):
        if store not in STORE_SUPERVISORS or not dirs.get(store):
            continue
        pidfile, log = (Path(str(dirs[store])) / name for name in STORE_SUPERVISORS[store])
        try:
            pid = pidfile.read_text().strip()
            os.kill(int(pid), 0)
            line = f"featctl's supervisor (pid {pid})"
        except (OSError, ValueError):
            line = "no supervisor (the next deploy starts it again if it is down)"
        try:
            with log.open("rb") as fh:
                fh.seek(max(0, log.stat().st_size - 262144))
                found = _RESTARTED.findall(fh.read().decode(errors="replace"))
        except OSError:
            found = []
        if found:
            line += f"; restarted at {found[-1]}"
        out[store] = line
    return out


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
    conn.base = base.remote_base_dir
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
        # A store the settings no longer name keeps running (with its data)
        # until destroy: earlier releases use it, and rollback returns to them.
        stores=tuple(dict.fromkeys((*s.stores, *(record.stores if record else {})))),
        endpoint=s.endpoint,
    )
    return stack, variables


def provision(session: Session, record: Deployment | None, keys: HostKeys) -> Deployment:
    """Run Terraform for the target and return the updated deployment record."""
    s = session.settings
    ws = session.workspace
    session.reporter.step(f"terraform: {s.target} stack")
    stack, variables = prepared_stack(session, record, keys)
    replace: list[str] = []
    if s.target in PROCESS_TARGETS and stack.has_state and record and record.host:
        # The local hosts' sshd and the stores' servers are processes: after a
        # reboot or a crash Terraform still records them while nothing listens.
        # Restart them (and only them: what runs on the "machine" and the
        # stores' data are left alone).
        for resource, what in _dead_servers(record):
            if stack.has_resource(resource):
                session.reporter.info(f"{what} is not running; Terraform will restart it")
                replace.append(resource)
    stack.apply(variables, replace=replace)
    outputs = stack.outputs()
    hosts = _check_outputs(outputs, keys)
    for h in hosts:
        pin_host_key(ws.known_hosts, str(h["host"]), int(h["port"]), str(h["host_public_key"]))
    base = record or Deployment(target=s.target, name=s.name)
    before = {i: dict(h) for i, h in enumerate(base.hosts)}
    base.target = s.target
    base.name = s.name
    base.host, base.port, base.user = str(hosts[0]["host"]), int(hosts[0]["port"]), str(outputs["user"])
    base.remote_base_dir = str(hosts[0]["remote_base_dir"])
    base.host_public_key = keys.host_public
    # A host that stays keeps what featctl learnt of it (ports, release).
    base.hosts = [
        {**(before.get(i, {}) if before.get(i, {}).get("remote_base_dir") == h["remote_base_dir"] else {}), **h}
        for i, h in enumerate(hosts)
    ]
    base.stores = dict(outputs.get("stores") or {})
    base.outputs = {k: v for k, v in outputs.items() if k not in ("hosts", "stores")}
    base.stack_vars = variables
    base.repo = str(s.repo)
    base.feast_version = FEAST_VERSION
    return base
