"""The vm target's own network: one Linux bridge per deployment on this
machine, a /28 of the benchmarking range (198.18.0.0/15, RFC 2544) for it, the
bridge at .1 and the guests at .2, .3, ... (terraform/vm wires them up).

A bridge per deployment keeps one deployment's guests off another's link, and
its teardown is the bridge's own (no shared device whose last user must be
found). The /28 is chosen once, deterministically from the workspace but past
every network this machine already has an address or a route in, and kept in
the deployment's variables as the ports are.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import subprocess
from collections.abc import Iterable, Mapping
from typing import Any

from featctl.errors import UsageError
from featctl.workspace import Workspace

#: The deployments' subnets are carved out of this (inside 198.18.0.0/15).
POOL = ipaddress.IPv4Network("198.19.0.0/16")
#: The only range a vm network may use: traffic to other private ranges is not allowed here.
ALLOWED = ipaddress.IPv4Network("198.18.0.0/15")
#: 14 addresses: the bridge and up to 13 guests (a deployment has at most 9).
PREFIX = 28
#: Linux interface names hold at most 15 bytes.
IFNAMSIZ = 15


def _digest(workspace: Workspace) -> str:
    return hashlib.sha256(str(workspace.root.resolve()).encode()).hexdigest()


def bridge_name(workspace: Workspace) -> str:
    """The deployment's bridge: unique on this machine per workspace, as its machine names are."""
    return f"fcbr{_digest(workspace)[:10]}"


def taken_networks(
    addresses: Iterable[Mapping[str, Any]], routes: Iterable[Mapping[str, Any]], *, ignore: str = ""
) -> list[ipaddress.IPv4Network]:
    """Every IPv4 network this machine has an address in (``ip -j -4 addr``)
    or a route to (``ip -j -4 route show table all``), the default route and
    interface ``ignore`` (this deployment's own bridge) aside."""
    out = []
    for link in addresses:
        if ignore and link.get("ifname") == ignore:
            continue
        for a in link.get("addr_info") or []:
            if a.get("family", "inet") == "inet" and "local" in a:
                out.append(ipaddress.IPv4Network(f"{a['local']}/{a.get('prefixlen', 32)}", strict=False))
    for r in routes:
        dst = str(r.get("dst", ""))
        if not dst or dst == "default" or (ignore and r.get("dev") == ignore):
            continue
        try:
            out.append(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32", strict=False))
        except ValueError:
            continue  # a multicast/broadcast/other family entry
    return out


def allocate(seed: str, taken: Iterable[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """The first /28 of POOL from ``seed``'s slot onwards that overlaps nothing in ``taken``."""
    slots = 2 ** (PREFIX - POOL.prefixlen)
    start = int(hashlib.sha256(seed.encode()).hexdigest(), 16) % slots
    taken = [n for n in taken if n.prefixlen > 0]
    for k in range(slots):
        index = (start + k) % slots
        net = ipaddress.IPv4Network((int(POOL.network_address) + index * 2 ** (32 - PREFIX), PREFIX))
        if not any(net.overlaps(t) for t in taken):
            return net
    raise UsageError(f"--target vm: every /{PREFIX} of {POOL} is in use on this machine; destroy a vm deployment first")


def machine_networks(ignore: str = "") -> list[ipaddress.IPv4Network]:
    """This machine's networks, read with iproute2 (interface ``ignore`` aside)."""
    try:
        addresses = json.loads(_ip("-j", "-4", "addr", "show") or "[]")
        routes = json.loads(_ip("-j", "-4", "route", "show", "table", "all") or "[]")
    except ValueError as exc:
        raise UsageError(f"--target vm: cannot read this machine's networks with ip -j: {exc}") from None
    return taken_networks(addresses, routes, ignore=ignore)


def _ip(*args: str) -> str:
    try:
        proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise UsageError(f"--target vm needs iproute2's ip (apt-get install iproute2): {exc}") from None
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
        raise UsageError(f"--target vm: ip {' '.join(args)} failed: {why}")
    return proc.stdout


def network_variable(
    workspace: Workspace, previous: Mapping[str, Any], taken: Any = machine_networks
) -> dict[str, str]:
    """terraform/vm's ``network``: the bridge and its /28, chosen once and kept
    (a new subnet would be a new network for every guest)."""
    before = previous.get("network")
    if isinstance(before, Mapping) and before.get("bridge") and before.get("cidr"):
        return {"bridge": str(before["bridge"]), "cidr": str(before["cidr"])}
    bridge = bridge_name(workspace)
    # This deployment's own bridge (left by an earlier, unrecorded run) is no collision.
    return {"bridge": bridge, "cidr": str(allocate(_digest(workspace), taken(bridge)))}


def leftovers(network: Mapping[str, Any], sys_class_net: str = "/sys/class/net") -> list[str]:
    """What of a destroyed deployment's network still exists on this machine:
    its bridge, its nftables table (NAT and filter)."""
    import os
    import shutil

    left = []
    bridge = str(network.get("bridge") or "")
    if bridge and os.path.exists(f"{sys_class_net}/{bridge}"):
        left.append(f"bridge {bridge}")
    table = str(network.get("table") or "")
    nft = shutil.which("nft")
    if table and nft:
        proc = subprocess.run([nft, "list", "table", "ip", table], capture_output=True, timeout=30, check=False)
        if proc.returncode == 0:
            left.append(f"nftables table ip {table}")
    return left
