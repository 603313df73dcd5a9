"""Getting a host: Terraform for the local and cloud targets, a confirmed
host key for the ``ssh`` target. Either way the result is a deployment
record whose host key is pinned before the first connection."""

from __future__ import annotations

import posixpath
import socket
from pathlib import Path
from typing import Any

from featctl import FEAST_VERSION
from featctl.errors import HostKeyMismatch, TerraformError, UsageError
from featctl.provision.targets import CONTRACT_OUTPUTS, HostKeys, stack_variables
from featctl.provision.terraform import Stack
from featctl.remote.keys import fingerprint, generate_ed25519, pin_host_key
from featctl.remote.ssh import q
from featctl.session import Session
from featctl.workspace import Deployment


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

