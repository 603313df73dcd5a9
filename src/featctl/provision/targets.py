"""What differs between targets: the Terraform variables each stack gets.

Everything after Terraform (SSH, upload, Feast, the service) is the same code
for every target; only the stack and these variables differ.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from featctl.config import EndpointSettings
from featctl.errors import ConfigError, UsageError
from featctl.workspace import Workspace

# Variables featctl owns; a featctl.toml table may not override them.
CONTRACT_VARS = (
    "name",
    "ssh_public_key",
    "host_keys",
    "ssh_user",
    "remote_base_dir",
    "stores",
    "store_password_files",
)

# Outputs every stack provides (see terraform/*/outputs.tf).
CONTRACT_OUTPUTS = ("target", "hosts", "host", "port", "user", "host_public_key", "remote_base_dir", "stores")
#: Keys of each element of the ``hosts`` output.
HOST_OUTPUT_KEYS = ("host", "port", "host_public_key", "remote_base_dir")
#: Stores Terraform runs (spark runs inside the Feast environment).
SERVER_STORES = ("redis", "postgres")


@dataclass(frozen=True)
class HostKeys:
    client_public: str
    #: (private key path, public line) per host, host 0 first.
    hosts: tuple[tuple[str, str], ...]

    @property
    def host_private_path(self) -> str:
        return self.hosts[0][0]

    @property
    def host_public(self) -> str:
        return self.hosts[0][1]

    def variable(self) -> list[dict[str, str]]:
        return [{"private_key_path": path, "public_key": pub} for path, pub in self.hosts]


def free_loopback_port(address: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


def local_uv() -> str:
    """featctl's own uv (bootstrap installs it beside featctl), else one on PATH, else ""."""
    import shutil
    import sys
    from pathlib import Path

    beside = Path(sys.executable).with_name("uv")
    if beside.is_file():
        return str(beside)
    return shutil.which("uv") or ""


def store_password(workspace: Workspace, store: str) -> str:
    """The path of ``store``'s password file, generated once (0600): 32 letters
    and digits, starting with a letter, so it is safe in a URL, a YAML value and
    Yandex's password rules alike."""
    import secrets
    import string

    from featctl.workspace import write_private

    path = workspace.store_password_file(store)
    if not path.is_file() or len(path.read_text().strip()) < 16:
        alphabet = string.ascii_letters + string.digits
        word = secrets.choice(string.ascii_letters) + "".join(secrets.choice(alphabet) for _ in range(31))
        write_private(path, word + "\n")
    return str(path)


#: As root, the local PostgreSQL's data directory is ``<this><random>/data``.
ROOT_POSTGRES_PREFIX = "/var/tmp/featctl-postgres-"


def _local_store_dir(workspace: Workspace, store: str, previous: Mapping[str, Any]) -> str:
    """PostgreSQL refuses to run as root: as root the cluster runs as the
    ``postgres`` user, which cannot enter the 0700 workspace, so its data lives
    in ``data`` of a directory of its own under /var/tmp whose name is random,
    chosen once and kept in the stack's variables (``previous``):
    start-postgres.sh makes that directory with mkdir, root's and 0711, and
    refuses one that is a link or someone else's, so another local user can
    neither guess the name nor plant a link there (the name was a digest of the
    workspace's path, and root followed links planted beside it). Terraform's
    destroy removes it. A directory of the old predictable form is not kept."""
    import os
    import re
    import secrets

    if store == "postgres" and os.geteuid() == 0:
        kept = str((previous.get("store_dirs") or {}).get("postgres") or "")
        if re.fullmatch(re.escape(ROOT_POSTGRES_PREFIX) + r"[0-9a-f]{32}/data", kept):
            return kept
        return f"{ROOT_POSTGRES_PREFIX}{secrets.token_hex(16)}/data"
    return str(workspace.local_dir / store)


def _local_host_dirs(
    workspace: Workspace, count: int, previous: Mapping[str, Any], first_port: Any
) -> list[dict[str, Any]]:
    before = list(previous.get("host_dirs") or [])
    dirs = []
    for i in range(count):
        suffix = "" if i == 0 else f"-{i}"
        if i < len(before):
            port = before[i]["port"]
        elif i == 0:
            port = first_port or previous.get("port") or free_loopback_port()
        else:
            port = free_loopback_port()
        dirs.append(
            {
                "state_dir": str(workspace.local_dir / f"sshd{suffix}"),
                "remote_base_dir": str(workspace.local_dir / f"host{suffix}"),
                "port": int(port),
            }
        )
    return dirs


def _vm_machines(workspace: Workspace, count: int) -> list[dict[str, Any]]:
    """One element per vm guest: its machine name and directory (its address
    is its index's in the deployment's network: terraform/vm)."""
    from featctl.provision import vm

    names = [vm.machine_name(workspace, i) for i in range(count)]
    return [{"machine": n, "machine_dir": f"{vm.MACHINES_DIR}/{n}"} for n in names]


def store_server_variables(
    workspace: Workspace,
    servers: list[str],
    previous: Mapping[str, Any],
    *,
    names: list[str],
    label: str,
) -> dict[str, Any]:
    """The variables of terraform/modules/stores (featctl's own TLS-only Redis
    and PostgreSQL on this machine) for any stack that runs them: data
    directories, ports chosen once (kept from ``previous``), and the CA and
    server certificate for ``names``, the addresses the hosts reach them at."""
    ports = dict(previous.get("store_ports") or {})
    for store in servers:
        ports.setdefault(store, free_loopback_port())
    out: dict[str, Any] = {
        "store_dirs": {s: _local_store_dir(workspace, s, previous) for s in servers},
        "store_ports": {s: int(ports[s]) for s in servers},
    }
    if servers:
        from featctl.provision.tls import ensure_store_tls

        out["tls"] = ensure_store_tls(workspace, names, label=label)
    return out


def stack_variables(
    target: str,
    *,
    name: str,
    keys: HostKeys,
    workspace: Workspace,
    target_vars: Mapping[str, Any],
    previous: Mapping[str, Any] | None = None,
    stores: tuple[str, ...] = (),
    endpoint: EndpointSettings | None = None,
) -> dict[str, Any]:
    """The full variable set for ``target``'s stack: one host per element of
    ``keys.hosts``, and the shared ``stores``. ``endpoint`` ([endpoint] of
    featctl.toml): the vm and yandex stacks install HAProxy on every host and
    yandex's makes its load balancer.

    ``previous`` holds the variables of the last apply, so values chosen once
    (the local ports) stay the same and a rerun converges.
    """
    previous = previous or {}
    extra = dict(target_vars)
    clash = sorted(set(extra) & set(CONTRACT_VARS) - {"ssh_user", "remote_base_dir"})
    if clash:
        raise ConfigError(f"[{target}] in featctl.toml may not set {', '.join(clash)}: featctl manages them")
    servers = [s for s in stores if s in SERVER_STORES]
    common = {
        "name": name,
        "ssh_public_key": keys.client_public,
        "host_keys": keys.variable(),
        "stores": servers,
        "store_password_files": {s: store_password(workspace, s) for s in servers},
    }
    if target == "local":
        if servers and "\n" in str(workspace.local_dir):
            raise UsageError(f"the workspace path {workspace.local_dir!r} holds a newline; use another (--workspace)")
        host_dirs = _local_host_dirs(workspace, len(keys.hosts), previous, extra.pop("port", None))
        listen = str(extra.pop("listen_address", previous.get("listen_address", "127.0.0.1")))
        return {
            **common,
            "ssh_user": getpass.getuser(),
            "remote_base_dir": host_dirs[0]["remote_base_dir"],
            "host_dirs": host_dirs,
            "listen_address": listen,
            "uv_path": extra.pop("uv_path", local_uv()),
            # The hosts reach the stores at listen_address: verify-full checks that name.
            **store_server_variables(workspace, servers, previous, names=[listen, "localhost"], label=name),
            **extra,
        }
    if target == "vm":
        import ipaddress

        from featctl.provision import vm, vmnet
        from featctl.provision.tls import ensure_store_tls

        network = vmnet.network_variable(workspace, previous)
        # The guests have a network of their own: they reach the stores at the
        # bridge's address (.1), which the stores listen on and the server
        # certificate names. The CA exists without stores too: every guest's
        # user-data fetches it, as a Yandex VM fetches Yandex's (enabling a
        # store later must not change the user-data).
        names = [str(next(ipaddress.IPv4Network(network["cidr"]).hosts()))]
        return {
            **common,
            "ssh_user": extra.pop("ssh_user", "featctl"),
            "remote_base_dir": extra.pop("remote_base_dir", "/opt/featctl"),
            "machines": _vm_machines(workspace, len(keys.hosts)),
            "network": network,
            "user_data_template": vm.user_data_template(),
            "trusted_ca_files": extra.pop("trusted_ca_files", vm.trusted_ca_files()),
            **store_server_variables(workspace, servers, previous, names=names, label=name),
            "tls": ensure_store_tls(workspace, names, label=name),
            "endpoint_enabled": endpoint is not None,
            **extra,
        }
    if target == "yandex":
        out = {
            **common,
            "ssh_user": extra.pop("ssh_user", "featctl"),
            "remote_base_dir": extra.pop("remote_base_dir", "/opt/featctl"),
            "endpoint_enabled": endpoint is not None,
        }
        if endpoint is not None:
            out["endpoint_port"] = endpoint.port
            out["endpoint_health_port"] = host_health_port(endpoint)
            out["endpoint_peer_port"] = host_peer_port(endpoint)
            out["endpoint_allow"] = list(endpoint.allow)
        return {**out, **extra}
    raise ConfigError(f"unknown target {target!r}")


def host_health_port(endpoint: EndpointSettings) -> int:
    """Where every host's HAProxy answers the load balancer's ``GET /healthz``
    on the vm and yandex targets: [endpoint] health_port, else the port below
    the endpoint's (yandex's default pair: 8443 and 8442)."""
    if endpoint.health_port is not None:
        return endpoint.health_port
    return endpoint.port - 1 if endpoint.port > 1 else endpoint.port + 1


def host_peer_port(endpoint: EndpointSettings) -> int:
    """Where every host's HAProxy takes the reads another host's HAProxy passes
    on (mutual TLS, the deployment's CA): the port above the endpoint's, or
    the next free one."""
    taken = {endpoint.port, host_health_port(endpoint)}
    return next(p for p in (endpoint.port + 1, endpoint.port + 2, endpoint.port - 2) if p not in taken and 0 < p < 65536)
