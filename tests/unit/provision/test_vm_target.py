"""The vm target's variables and its check of this machine (before anything runs)."""

from __future__ import annotations

import pytest

from featctl.errors import ExitCode, UsageError
from featctl.provision import vm
from featctl.provision.targets import CONTRACT_VARS, HostKeys, stack_variables
from featctl.provision.terraform import stack_source
from featctl.workspace import Workspace

KEYS = HostKeys(client_public="ssh-ed25519 AAAAclient c", hosts=(("/k/h0", "ssh-ed25519 AAAA0 h"), ("/k/h1", "ssh-ed25519 AAAA1 h")))


def vm_vars(ws, previous=None, target_vars=None):
    return stack_variables(
        "vm", name="featctl", keys=KEYS, workspace=ws, target_vars=target_vars or {}, previous=previous
    )


def test_vm_guests_get_the_contract_their_own_machines_and_network_kept(tmp_path):
    import ipaddress

    ws = Workspace(tmp_path / "ws")
    v = vm_vars(ws)
    assert set(CONTRACT_VARS) <= set(v)
    assert v["ssh_user"] == "featctl" and v["remote_base_dir"] == "/opt/featctl"  # as on a Yandex VM
    names = [m["machine"] for m in v["machines"]]
    assert len(set(names)) == 2 and all(n.startswith("featctl-") for n in names)
    assert v["machines"] == [{"machine": n, "machine_dir": f"{vm.MACHINES_DIR}/{n}"} for n in names]
    # A network of their own, in the benchmarking range only, chosen once and kept.
    net = ipaddress.IPv4Network(v["network"]["cidr"])
    assert net.prefixlen == 28 and net.subnet_of(ipaddress.IPv4Network("198.19.0.0/16"))
    assert len(v["network"]["bridge"]) <= 15 and "listen_address" not in v
    again = vm_vars(ws, previous=v)
    assert again["machines"] == v["machines"] and again["network"] == v["network"]
    # Another workspace on this machine (same deployment name) gets other guests and another bridge.
    other = vm_vars(Workspace(tmp_path / "other"))
    assert not {m["machine"] for m in other["machines"]} & set(names)
    assert other["network"]["bridge"] != v["network"]["bridge"]


def test_vm_guests_run_the_yandex_stacks_own_user_data_template(tmp_path):
    v = vm_vars(Workspace(tmp_path / "ws"))
    assert v["user_data_template"] == str(stack_source("yandex") / "cloud-init.yaml.tftpl")
    assert not list(stack_source("vm").rglob("*.tftpl")), "the vm stack must not carry a copy of the template"


def test_the_guests_always_get_the_stores_ca_and_stores_get_servers_on_this_machine(tmp_path):
    from pathlib import Path

    ws = Workspace(tmp_path / "ws")
    bare = vm_vars(ws)
    # No store yet: the CA exists anyway (the user-data fetches it; a store
    # enabled later must not change the user-data and so replace the guests).
    ca = Path(bare["tls"]["ca_cert"])
    assert ca.read_text().startswith("-----BEGIN CERTIFICATE-----") and ca.stat().st_mode & 0o777 == 0o600
    assert bare["stores"] == [] and bare["store_ports"] == {}
    v = stack_variables(
        "vm", name="featctl", keys=KEYS, workspace=ws, target_vars={}, previous=bare, stores=("redis", "postgres")
    )
    assert v["tls"]["ca_cert"] == str(ca) and ca.read_text() == Path(bare["tls"]["ca_cert"]).read_text()
    assert set(v["store_ports"]) == {"redis", "postgres"} and set(v["store_dirs"]) == {"redis", "postgres"}
    assert v["machines"] == bare["machines"]
    # The guests reach the stores at the bridge's address (.1 of their subnet):
    # the server certificate names it, and no loopback address.
    import ipaddress

    from cryptography import x509

    gateway = str(next(ipaddress.IPv4Network(v["network"]["cidr"]).hosts()))
    cert = x509.load_pem_x509_certificate(Path(v["tls"]["server_cert"]).read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)} == {gateway}


def test_this_machines_extra_cas_reach_the_guests(tmp_path):
    cas = tmp_path / "ca-certificates"
    (cas / "sub").mkdir(parents=True)
    (cas / "proxy.crt").write_text("x")
    (cas / "sub" / "corp.crt").write_text("y")
    (cas / "README").write_text("z")
    assert vm.trusted_ca_files(str(cas)) == [str(cas / "proxy.crt"), str(cas / "sub" / "corp.crt")]
    assert vm.trusted_ca_files(str(tmp_path / "none")) == []
    v = vm_vars(Workspace(tmp_path / "ws"), target_vars={"trusted_ca_files": []})
    assert v["trusted_ca_files"] == []


def _which(missing=()):
    return lambda tool: None if tool in missing else f"/usr/bin/{tool}"


OVERLAY = "nodev\tsysfs\nnodev\toverlay\n\text4\n"


def test_a_machine_that_can_boot_guests_passes(tmp_path):
    (tmp_path / "loop-control").touch()
    assert vm.unavailable(euid=0, which=_which(), filesystems=OVERLAY, loop_control=str(tmp_path / "loop-control")) is None


@pytest.mark.parametrize(
    ("kwargs", "why"),
    [
        ({"euid": 1000}, "needs root"),
        ({"which": _which({"systemd-nspawn"})}, "systemd-nspawn (apt-get install systemd-container)"),
        ({"which": _which({"mmdebstrap"})}, "mmdebstrap (apt-get install mmdebstrap)"),
        ({"filesystems": "nodev\tsysfs\n\text4\n"}, "needs overlayfs"),
        ({"loop_control": "/nonexistent/loop-control"}, "needs loop devices"),
    ],
)
def test_a_machine_that_cannot_says_why_in_one_line(kwargs, why, tmp_path):
    (tmp_path / "loop-control").touch()
    args = {"euid": 0, "which": _which(), "filesystems": OVERLAY, "loop_control": str(tmp_path / "loop-control"), **kwargs}
    message = vm.unavailable(**args)
    assert message is not None and why in message and "\n" not in message


def test_preflight_is_a_usage_error(monkeypatch):
    monkeypatch.setattr(vm, "unavailable", lambda: "needs root: reasons")
    with pytest.raises(UsageError) as info:
        vm.preflight()
    assert info.value.exit_code == ExitCode.USAGE
    assert str(info.value.message) == "--target vm cannot run on this machine: it needs root: reasons"


def test_vm_guests_have_their_own_network_so_servers_take_the_default_ports():
    from featctl.lifecycle.common import choose_server_ports

    assert choose_server_ports("vm", 6566, "default", None) == [6566, 6567]
    assert choose_server_ports("vm", 7000, "featctl.toml", None) == [7000, 7001]


def test_deploy_on_a_machine_that_cannot_boot_a_guest_changes_nothing(tmp_path, monkeypatch):
    from featctl.config import load_settings
    from featctl.lifecycle.deploy import deploy
    from featctl.session import Session

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "feature_store.yaml").write_text("project: p\n")
    monkeypatch.setattr(vm, "unavailable", lambda: "needs root: systemd-nspawn boots the guest")
    settings = load_settings({"target": "vm", "repo": str(repo), "workspace": str(tmp_path / "ws")}, environ={})
    with pytest.raises(UsageError, match=r"^--target vm cannot run on this machine: it needs root"):
        deploy(Session(settings))
    assert not (tmp_path / "ws").exists()


def test_a_missing_bridge_brings_the_network_back_without_probing_the_guests(monkeypatch, tmp_path):
    """After a reboot the bridge is gone: probing the guests' addresses would
    route them out of this machine, so the network alone is replaced (the
    guests and stores restart with it by their triggers)."""
    from featctl.provision import machine
    from featctl.workspace import Deployment

    monkeypatch.setattr(machine, "port_open", lambda host, port: pytest.fail(f"probed {host}:{port}"))
    record = Deployment(
        target="vm",
        name="n",
        host="198.19.7.18",
        outputs={"network": {"bridge": "fcbrnothere0000"}},
        stores={"redis": {"host": "198.19.7.17", "port": 40001}},
    )
    [(resource, what)] = machine._dead_servers(record, sys_class_net=str(tmp_path))
    assert resource == "terraform_data.network" and "fcbrnothere0000" in what
    # The bridge there: the guests and stores are probed as before.
    (tmp_path / "fcbrnothere0000").mkdir()
    probed = []
    monkeypatch.setattr(machine, "port_open", lambda host, port: probed.append((host, port)) or host != "198.19.7.18")
    assert machine._dead_servers(record, sys_class_net=str(tmp_path)) == [("terraform_data.guest[0]", "guest 0")]
    assert probed == [("198.19.7.18", 22), ("198.19.7.17", 40001)]
