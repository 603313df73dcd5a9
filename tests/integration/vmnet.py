"""Helpers of test_vm.py for the guests' network: this machine's listening
sockets, and a network namespace joined to a deployment's bridge (what an
application VM in the guests' subnet is)."""

from __future__ import annotations

import ipaddress
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager


def listeners() -> list[tuple[str, int]]:
    """(local address, pid) of every listening TCP socket of this machine's network namespace."""
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        local = line.split()[3]
        for pid in (p.split("=")[1] for p in line.replace(",", " ").split() if p.startswith("pid=")):
            found.append((local, int(pid)))
    return found


@contextmanager
def on_bridge(bridge: str, cidr: str) -> Iterator[list[str]]:
    """A network namespace with the subnet's last address, its veth on
    ``bridge``; yields the argv prefix that runs a command in it."""
    net = ipaddress.IPv4Network(cidr)
    ns, here, there = f"fct{os.getpid()}", f"fcta{os.getpid()}", f"fctb{os.getpid()}"

    def sh(*argv: str) -> None:
        subprocess.run(argv, check=True, capture_output=True, timeout=30)

    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "link", "add", here, "type", "veth", "peer", "name", there)
        sh("ip", "link", "set", there, "netns", ns)
        sh("ip", "link", "set", here, "master", bridge, "up")
        sh("ip", "-n", ns, "addr", "add", f"{net.broadcast_address - 1}/{net.prefixlen}", "dev", there)
        sh("ip", "-n", ns, "link", "set", there, "up")
        yield ["ip", "netns", "exec", ns]
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["ip", "link", "del", here], capture_output=True)
