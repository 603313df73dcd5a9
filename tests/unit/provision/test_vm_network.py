"""The vm target's network: the /28 each deployment gets (benchmarking range
only, deterministic, past every network this machine has, kept once chosen)
and what destroy checks is gone."""

from __future__ import annotations

import ipaddress
import subprocess

import pytest

from featctl.errors import ExitCode, UsageError
from featctl.provision import vmnet
from featctl.workspace import Workspace

N = ipaddress.IPv4Network

#: `ip -j -4 addr show` and `ip -j -4 route show table all` as iproute2 prints them (trimmed).
ADDRESSES = [
    {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
    {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "192.0.2.2", "prefixlen": 24}]},
    {"ifname": "fcbrmine000000", "addr_info": [{"family": "inet", "local": "198.19.40.1", "prefixlen": 28}]},
    {"ifname": "docker0", "addr_info": [{"family": "inet", "local": "198.19.0.1", "prefixlen": 24}]},
]
ROUTES = [
    {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
    {"dst": "192.0.2.0/24", "dev": "eth0", "prefsrc": "192.0.2.2"},
    {"dst": "198.19.128.0/20", "gateway": "192.0.2.1", "dev": "eth0"},
    {"type": "local", "dst": "198.19.40.1", "dev": "fcbrmine000000", "table": "local"},
    {"type": "broadcast", "dst": "198.19.40.15", "dev": "fcbrmine000000", "table": "local"},
]


def test_this_machines_networks_are_every_address_and_route_but_the_default():
    taken = vmnet.taken_networks(ADDRESSES, ROUTES)
    assert N("198.19.128.0/20") in taken and N("192.0.2.0/24") in taken and N("198.19.0.0/24") in taken
    assert N("198.19.40.0/28") in taken and N("198.19.40.15/32") in taken
    assert not [n for n in taken if n.prefixlen == 0]
    # The deployment's own bridge (left by an earlier run) does not count against it.
    mine = vmnet.taken_networks(ADDRESSES, ROUTES, ignore="fcbrmine000000")
    assert not [n for n in mine if n.overlaps(N("198.19.40.0/28"))]


def test_iproute2s_own_output_parses():
    """What `ip -j` prints on this very machine reads without error."""
    taken = vmnet.machine_networks()
    assert all(isinstance(n, ipaddress.IPv4Network) for n in taken)
    assert N("127.0.0.0/8") in taken


def test_a_subnet_is_a_28_of_198_19_deterministic_and_past_what_is_taken():
    first = vmnet.allocate("seed", [])
    assert first.prefixlen == 28 and first.subnet_of(N("198.19.0.0/16")) and first.subnet_of(vmnet.ALLOWED)
    assert vmnet.allocate("seed", []) == first  # the same workspace, the same subnet
    assert vmnet.allocate("other seed", []) != first
    # Taken (an address, a route, a wider route around it): the next free /28.
    for taken in ([first], [N(f"{first.network_address + 5}/32")], [first.supernet(new_prefix=20)]):
        got = vmnet.allocate("seed", taken)
        assert not any(got.overlaps(t) for t in taken) and got.subnet_of(N("198.19.0.0/16"))
    # The default route (0.0.0.0/0) takes nothing.
    assert vmnet.allocate("seed", [N("0.0.0.0/0")]) == first


def test_a_full_pool_is_one_line():
    with pytest.raises(UsageError) as info:
        vmnet.allocate("seed", [N("198.19.0.0/16")])
    assert info.value.exit_code == ExitCode.USAGE and "\n" not in str(info.value.message)
    assert "198.19.0.0/16" in str(info.value.message)


def test_the_network_variable_is_chosen_once_and_kept(tmp_path):
    ws = Workspace(tmp_path / "ws")
    seen = []

    def taken(ignore: str) -> list[ipaddress.IPv4Network]:
        seen.append(ignore)
        return [vmnet.allocate(str(ws.root.resolve()), [])]  # its first choice is taken

    v = vmnet.network_variable(ws, {}, taken=taken)
    assert seen == [vmnet.bridge_name(ws)] and v["bridge"] == vmnet.bridge_name(ws)
    assert len(v["bridge"]) <= vmnet.IFNAMSIZ and v["bridge"].startswith("fcbr")
    assert N(v["cidr"]) != vmnet.allocate(str(ws.root.resolve()), [])
    # Recorded: kept as it is, without looking at the machine again (its own bridge is there now).
    assert vmnet.network_variable(ws, {"network": v}, taken=lambda ignore: pytest.fail("looked again")) == v


def test_what_destroy_finds_left(tmp_path):
    (tmp_path / "fcbrleft0000000").mkdir()
    left = vmnet.leftovers({"bridge": "fcbrleft0000000", "table": ""}, sys_class_net=str(tmp_path))
    assert left == ["bridge fcbrleft0000000"]
    assert vmnet.leftovers({"bridge": "fcbrgone0000000", "table": "featctl_fcbrgone0000000"}, str(tmp_path)) == []


def test_ip_failing_is_one_line(monkeypatch):
    def broken(*args, **kwargs):
        return subprocess.CompletedProcess(args, 1, "", 'Error: something\nObject "addr" is unknown\n')

    monkeypatch.setattr(vmnet.subprocess, "run", broken)
    with pytest.raises(UsageError, match=r'^--target vm: ip -j -4 addr show failed: Object "addr" is unknown$'):
        vmnet.machine_networks()
