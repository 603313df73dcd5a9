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

from featctl.errors import ConfigError
from featctl.workspace import Workspace

# Variables featctl owns; a featctl.toml table may not override them.
CONTRACT_VARS = (
    "name",
    "ssh_public_key",
    "host_private_key_path",
    "host_public_key",
    "host_keys",
    "ssh_user",
    "remote_base_dir",
)

# Outputs every stack provides (see terraform/*/outputs.tf).
CONTRACT_OUTPUTS = ("target", "host", "port", "user", "host_public_key", "remote_base_dir")


@dataclass(frozen=True)
class HostKeys:
    client_public: str
    host_private_path: str
    host_public: str


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


def stack_variables(
    target: str,
    *,
    name: str,
    keys: HostKeys,
    workspace: Workspace,
    target_vars: Mapping[str, Any],
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The full variable set for ``target``'s stack.

    ``previous`` holds the variables of the last apply, so values chosen once
    (the local port) stay the same and a rerun converges.
    """
    previous = previous or {}
    extra = dict(target_vars)
    clash = sorted(set(extra) & set(CONTRACT_VARS) - {"ssh_user", "remote_base_dir"})
    if clash:
        raise ConfigError(f"[{target}] in featctl.toml may not set {', '.join(clash)}: featctl manages them")
    common = {"name": name, "ssh_public_key": keys.client_public}
    if target == "local":
        state_dir = workspace.local_dir / "sshd"
        port = extra.pop("port", None) or previous.get("port") or free_loopback_port()
        return {
            **common,
            "host_private_key_path": keys.host_private_path,
            "host_public_key": keys.host_public,
            "ssh_user": getpass.getuser(),
            "remote_base_dir": str(workspace.local_dir / "host"),
            "state_dir": str(state_dir),
            "listen_address": extra.pop("listen_address", previous.get("listen_address", "127.0.0.1")),
            "port": int(port),
            "uv_path": extra.pop("uv_path", local_uv()),
            **extra,
        }
    if target == "yandex":
        return {
            **common,
            # One element per host (the stack creates one VM each).
            "host_keys": [{"private_key_path": keys.host_private_path, "public_key": keys.host_public}],
            "ssh_user": extra.pop("ssh_user", "featctl"),
            "remote_base_dir": extra.pop("remote_base_dir", "/opt/featctl"),
            **extra,
        }
    raise ConfigError(f"unknown target {target!r}")
