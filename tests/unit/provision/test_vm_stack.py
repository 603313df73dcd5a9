"""The vm stack, evaluated by Terraform itself (it uses only built-ins, so
``terraform init``/``console``/``plan`` run offline): the contract every stack
shares, the yandex stack's own user-data byte for byte, vendor-data that
cloud-init's validator accepts, the guests' network-config as cloud-init
renders it for systemd-networkd, and no secret in an output or the plan."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.unit.provision.hclstack import load_dir, named, resource_types
from tests.unit.provision.test_yandex_cloud_init import CLIENT_PUBLIC_KEY, _cloud_init, _host_key
from tests.unit.provision.tfeval import TEMPLATE, TF_ENV, render_template, terraform

ROOT = Path(__file__).resolve().parents[3]
VM_DIR = ROOT / "terraform" / "vm"
CONTRACT_INPUTS = ("name", "ssh_public_key", "host_keys", "ssh_user", "remote_base_dir", "stores", "store_password_files")
CONTRACT_OUTPUTS = ("target", "hosts", "host", "port", "user", "host_public_key", "remote_base_dir", "stores")
NETWORK = {"bridge": "fcbr0123456789", "cidr": "198.19.37.16/28"}
GATEWAY, GUEST0 = "198.19.37.17", "198.19.37.18"


def _tf(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([terraform(), *args], cwd=cwd, input=stdin, env=TF_ENV, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The stack copied into a scratch directory with realistic variables, initialised."""
    work = tmp_path_factory.mktemp("vm-stack")
    shutil.copytree(VM_DIR, work / "vm")
    shutil.copytree(VM_DIR.parent / "modules", work / "modules")  # as Stack.prepare lays them out
    private, public = _host_key()
    key = work / "host_ed25519"
    key.write_text(private)
    ca = work / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    proxy = work / "proxy.crt"
    proxy.write_text("-----BEGIN CERTIFICATE-----\nPROXY\n-----END CERTIFICATE-----\n")
    variables = {
        "name": "drivers",
        "ssh_public_key": CLIENT_PUBLIC_KEY,
        "host_keys": [{"private_key_path": str(key), "public_key": public}],
        "ssh_user": "featctl",
        "remote_base_dir": "/opt/featctl",
        "machines": [{"machine": "featctl-0123456789-0", "machine_dir": "/var/lib/featctl/vm/featctl-0123456789-0"}],
        "network": NETWORK,
        "user_data_template": str(TEMPLATE),
        "tls": {"ca_cert": str(ca), "server_cert": str(ca), "server_key": str(ca), "digest": "d"},
        "trusted_ca_files": [str(proxy)],
        "image_cache_dir": str(work / "cache"),
    }
    (work / "vm" / "featctl.auto.tfvars.json").write_text(json.dumps(variables))
    init = _tf(["init", "-input=false", "-no-color"], work / "vm")
    assert init.returncode == 0, init.stdout + init.stderr
    return {"dir": work / "vm", "private": private, "public": public, "variables": variables, "proxy": proxy.read_text()}


def _console(stack, expression: str) -> str:
    proc = _tf(["console"], stack["dir"], stdin=f"jsonencode({expression})\n")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(json.loads(proc.stdout.strip()))


def test_the_stack_takes_and_gives_the_contract_with_builtins_only():
    doc = load_dir(VM_DIR)
    variables, outputs = named(doc, "variable"), named(doc, "output")
    assert not [v for v in CONTRACT_INPUTS if v not in variables]
    assert not [o for o in CONTRACT_OUTPUTS if o not in outputs]
    assert resource_types(doc) == {"terraform_data"}
    assert [m for block in doc["module"] for m in block] == ["stores"]  # the local stack's servers, shared
    assert "provider" not in doc and not any("required_providers" in t for t in doc.get("terraform", []))
    for name, body in outputs.items():
        assert body.get("sensitive") is not True, name
        assert "user_data" not in str(body["value"]) and "private" not in str(body["value"]), name


def test_guests_get_the_yandex_user_data_byte_for_byte(stack, tmp_path):
    rendered = _console(stack, "local.user_data[0]")
    values = {
        "ssh_user": "featctl",
        "ssh_public_key": CLIENT_PUBLIC_KEY,
        "host_private_key": stack["private"],
        "host_public_key": stack["public"],
        "remote_base_dir": "/opt/featctl",
        "ca_url": "file:///run/host/featctl-ca/ca.crt",
        "ca_dir": "/opt/featctl/tls",
        "ca_file": "/opt/featctl/tls/featctl-ca.crt",
    }
    assert rendered == render_template(TEMPLATE, values, tmp_path / "tf")
    doc = yaml.safe_load(rendered)
    assert doc["ssh_keys"]["ed25519_private"] == stack["private"]
    [fetch] = [c for c in doc["runcmd"] if c[0] == "curl"]
    assert fetch[-1] == "file:///run/host/featctl-ca/ca.crt"


@pytest.fixture(scope="module")
def vendor_data(stack):
    return _console(stack, "local.vendor_data[0]")


def test_vendor_data_holds_only_what_this_machine_adds(stack, vendor_data):
    assert vendor_data.startswith("#cloud-config\n")
    doc = yaml.safe_load(vendor_data)
    # No sshd override: the guest has a network of its own, sshd on port 22 as on a cloud VM.
    assert set(doc) == {"locale", "manage_etc_hosts", "ca_certs"}
    assert doc["locale"] == "C.UTF-8"
    assert doc["ca_certs"]["trusted"] == [stack["proxy"]]
    # Nothing of the user-data's (user-data would win on a clash anyway).
    assert not set(doc) & set(yaml.safe_load(_console(stack, "local.user_data[0]")))


def test_vendor_data_passes_cloud_init_schema(vendor_data, tmp_path):
    exe = _cloud_init()
    path = tmp_path / "vendor-data.yaml"
    path.write_text(vendor_data)
    proc = subprocess.run([exe, "schema", "--config-file", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_new_seed_is_a_new_instance(stack):
    meta = yaml.safe_load(_console(stack, "local.meta_data[0]"))
    assert meta["local-hostname"] == "drivers-vm-0"
    assert meta["instance-id"].startswith("featctl-0123456789-0-")


def test_the_plan_shows_no_secret(stack):
    plan = _tf(["plan", "-input=false", "-no-color", "-out=plan.bin"], stack["dir"])
    assert plan.returncode == 0, plan.stdout + plan.stderr
    shown = _tf(["show", "-json", "plan.bin"], stack["dir"])
    assert shown.returncode == 0, shown.stderr
    body = stack["private"].splitlines()[1]
    assert body not in plan.stdout and body not in shown.stdout
    changes = {c["address"] for c in json.loads(shown.stdout)["resource_changes"]}
    assert changes == {
        "terraform_data.image",
        "terraform_data.network",
        "terraform_data.firewall",
        "terraform_data.machine[0]",
        "terraform_data.guest[0]",
    }
    outputs = {k: v.get("value") for k, v in json.loads(shown.stdout)["planned_values"]["outputs"].items()}
    # featctl logs in at the guest's own address, port 22, never at a port of this machine's loopback.
    assert [(h["host"], h["port"]) for h in outputs["hosts"]] == [(GUEST0, 22)]
    assert (outputs["host"], outputs["port"]) == (GUEST0, 22)
    assert outputs["network"] == {**NETWORK, "gateway": GATEWAY, "table": "featctl_fcbr0123456789"}


def test_with_stores_the_guests_get_the_yandex_stores_contract(stack):
    """The stores run on this machine (the local target's module), listening on
    the bridge's address, where the guests reach them with the CA their
    user-data fetched: the settings of a Yandex VM."""
    from tests.unit.provision.test_local_stack import _plan_outputs
    from tests.unit.provision.test_yandex_outputs import POSTGRES, REDIS

    variables = {
        **stack["variables"],
        "stores": ["redis", "postgres"],
        "store_password_files": {"redis": "/ws/secrets/redis.password", "postgres": "/ws/secrets/postgres.password"},
        "store_dirs": {"redis": "/ws/local/redis", "postgres": "/var/tmp/featctl-postgres-x"},
        "store_ports": {"redis": 40001, "postgres": 40002},
    }
    try:
        outputs, err = _plan_outputs(stack["dir"], variables)
    finally:
        (stack["dir"] / "featctl.auto.tfvars.json").write_text(json.dumps(stack["variables"]))
    assert outputs is not None, err
    stores = outputs["stores"]
    ca_file = "/opt/featctl/tls/featctl-ca.crt"
    assert set(stores["redis"]) == set(REDIS) and set(stores["postgres"]) == set(POSTGRES)
    assert stores["redis"] == {"host": GATEWAY, "port": 40001, "tls": True, "ca_file": ca_file}
    assert stores["postgres"]["host"] == GATEWAY
    assert stores["postgres"]["sslmode"] == "verify-full" and stores["postgres"]["ca_file"] == ca_file


def test_the_guests_address_comes_in_the_seeds_network_config(stack, tmp_path):
    """NoCloud's network-config (version 2), as cloud-init in the guest reads
    it: rendered by cloud-init's own networkd renderer (the image has
    systemd-networkd and no ifupdown), host0 gets the guest's address and
    the bridge as its gateway."""
    text = _console(stack, "local.network_config[0]")
    doc = yaml.safe_load(text)
    assert doc == {
        "version": 2,
        "ethernets": {
            "host0": {
                "match": {"name": "host0"},
                "addresses": [f"{GUEST0}/28"],
                "routes": [{"to": "0.0.0.0/0", "via": GATEWAY}],
            }
        },
    }
    exe = _cloud_init()
    (tmp_path / "network-config").write_text(text)
    out = tmp_path / "out"
    proc = subprocess.run(
        [exe, "devel", "net-convert", "-p", str(tmp_path / "network-config"), "-k", "yaml",
         "-D", "debian", "-O", "networkd", "-d", str(out)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [unit] = list(out.rglob("*.network"))
    rendered = unit.read_text()
    assert "Name=host0" in rendered
    assert f"Address={GUEST0}/28" in rendered and f"Gateway={GATEWAY}" in rendered, rendered
    # A new network-config is a new instance (cloud-init applies it once per instance).
    meta = yaml.safe_load(_console(stack, "local.meta_data[0]"))
    assert meta["instance-id"].startswith("featctl-0123456789-0-")


@pytest.mark.parametrize(
    ("cidr", "why"),
    [
        ("10.0.0.0/28", "198.18.0.0/15"),
        ("192.168.1.0/28", "198.18.0.0/15"),
        ("172.16.0.0/28", "198.18.0.0/15"),
        ("198.20.0.0/28", "198.18.0.0/15"),
        ("198.19.37.17/28", "network address"),
        ("198.19.0.0/16", "/24 to /29"),
    ],
)
def test_the_network_is_only_ever_in_the_benchmarking_range(stack, cidr, why):
    from tests.unit.provision.test_local_stack import _plan_outputs

    try:
        outputs, err = _plan_outputs(stack["dir"], {**stack["variables"], "network": {**NETWORK, "cidr": cidr}})
    finally:
        (stack["dir"] / "featctl.auto.tfvars.json").write_text(json.dumps(stack["variables"]))
    assert outputs is None and why in " ".join(err.split()), err
