"""An application host for tests: a network namespace joined to this machine
by a veth pair, addresses only in 198.18.0.0/15 (the benchmarking range),
torn down after. This side gets ``.1`` of a /30, the namespace ``.2``."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass


def sh(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


@dataclass(frozen=True)
class AppNet:
    name: str
    here: str  # this machine's address on the link (where the endpoint listens)
    there: str  # the application's address
    subnet: str

    def run(self, *argv: str, timeout: float = 300, check: bool = False) -> subprocess.CompletedProcess[str]:
        """Run a command on the application host."""
        return sh("ip", "netns", "exec", self.name, *argv, check=check, timeout=timeout)


@contextlib.contextmanager
def app_network(name: str, third_octet: int) -> Iterator[AppNet]:
    """Namespace ``name`` on 198.18.<third_octet>.0/30."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        raise RuntimeError("an application network needs root and iproute2 (ip netns)")
    here_if, there_if = f"{name[:10]}-h", f"{name[:10]}-n"
    net = AppNet(name, f"198.18.{third_octet}.1", f"198.18.{third_octet}.2", f"198.18.{third_octet}.0/30")
    sh("ip", "netns", "del", name, check=False)
    sh("ip", "link", "del", here_if, check=False)
    try:
        sh("ip", "netns", "add", name)
        sh("ip", "link", "add", here_if, "type", "veth", "peer", "name", there_if)
        sh("ip", "link", "set", there_if, "netns", name)
        sh("ip", "addr", "add", f"{net.here}/30", "dev", here_if)
        sh("ip", "link", "set", here_if, "up")
        net.run("ip", "addr", "add", f"{net.there}/30", "dev", there_if, check=True)
        net.run("ip", "link", "set", there_if, "up", check=True)
        net.run("ip", "link", "set", "lo", "up", check=True)
        for _ in range(50):  # IPv4 addresses are usable at once; the link takes a moment
            if "UP" in sh("ip", "-br", "link", "show", here_if).stdout.split()[1:2][0]:
                break
            time.sleep(0.1)
        yield net
    finally:
        sh("ip", "netns", "del", name, check=False)
        sh("ip", "link", "del", here_if, check=False)
