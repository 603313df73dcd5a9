"""The vm target on this machine: a Debian guest per host, booted by
systemd-nspawn with systemd as PID 1, whose cloud-init runs the yandex stack's
user-data (terraform/vm does the work; this module chooses its variables and
checks, before anything runs, that this machine can boot a guest at all).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any

from featctl.errors import UsageError
from featctl.workspace import Workspace

#: Each guest's directory on this machine (disk layers, NoCloud seed, logs).
MACHINES_DIR = "/var/lib/featctl/vm"
#: Where a TLS-intercepting proxy's CA is installed (Debian's update-ca-certificates).
LOCAL_CA_DIR = "/usr/local/share/ca-certificates"
#: What the guests need on this machine, and the package that has it.
TOOLS = {
    "systemd-nspawn": "systemd-container",
    "mmdebstrap": "mmdebstrap",
    "mkfs.ext4": "e2fsprogs",
    "losetup": "mount",
    "flock": "util-linux",
    # The deployment's own network: its bridge, and NAT for the guests (terraform/vm/network.tf).
    "ip": "iproute2",
    "nft": "nftables",
}


def unavailable(
    *,
    euid: int | None = None,
    which: Any = shutil.which,
    filesystems: str | None = None,
    loop_control: str = "/dev/loop-control",
) -> str | None:
    """Why this machine cannot boot a vm guest, or None when it can."""
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        return "needs root: systemd-nspawn boots the guest and mounts its disk (run featctl as root)"
    missing = [f"{tool} (apt-get install {pkg})" for tool, pkg in TOOLS.items() if which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)}; scripts/bootstrap --dev installs them"
    if filesystems is None:
        try:
            filesystems = Path("/proc/filesystems").read_text()
        except OSError:
            filesystems = ""
    if not any(line.split()[-1:] == ["overlay"] for line in filesystems.splitlines()):
        return "needs overlayfs in the kernel (each guest's disk is an overlay over the cached image)"
    if not os.path.exists(loop_control):
        return f"needs loop devices ({loop_control} is missing): each guest's disk is an image file"
    return None


def preflight() -> None:
    """One line (exit 2) when this machine cannot run the vm target, before anything changes."""
    why = unavailable()
    if why is not None:
        raise UsageError(f"--target vm cannot run on this machine: it {why}")


def machine_name(workspace: Workspace, index: int) -> str:
    """systemd-nspawn's machine name of guest ``index``: unique on this machine
    (deployments in other workspaces may share the deployment name)."""
    digest = hashlib.sha256(str(workspace.root.resolve()).encode()).hexdigest()[:10]
    return f"featctl-{digest}-{index}"


def trusted_ca_files(directory: str = LOCAL_CA_DIR) -> list[str]:
    """This machine's own additions to its CA store (a TLS-intercepting proxy's):
    the guests trust them too, or apt and PyPI fail inside them."""
    root = Path(directory)
    return sorted(str(p) for p in root.rglob("*.crt") if p.is_file()) if root.is_dir() else []


def user_data_template() -> str:
    """The yandex stack's cloud-init template, where featctl is installed (the
    vm guests run the same file, never a copy)."""
    from featctl.provision.terraform import stack_source

    return str(stack_source("yandex") / "cloud-init.yaml.tftpl")
