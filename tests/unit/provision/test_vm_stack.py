"""The vm stack, evaluated by Terraform itself (it uses only built-ins, so
``terraform init``/``console``/``plan`` run offline): the contract every stack
shares, the yandex stack's own user-data byte for byte, vendor-data that
cloud-init's validator accepts, and no secret in an output or the plan."""

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
PORT = 40123


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
        "machines": [{"machine": "featctl-0123456789-0", "machine_dir": "/var/lib/featctl/vm/featctl-0123456789-0", "port": PORT}],
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
    assert set(doc) == {"locale", "manage_etc_hosts", "write_files", "ca_certs"}
    assert doc["locale"] == "C.UTF-8"
    [sshd] = doc["write_files"]
    assert sshd["path"] == "/etc/ssh/sshd_config.d/10-featctl-vm.conf"
    assert f"ListenAddress 127.0.0.1:{PORT}\n" in sshd["content"]
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
    assert changes == {"terraform_data.image", "terraform_data.machine[0]", "terraform_data.guest[0]"}


def test_with_stores_the_guests_get_the_yandex_stores_contract(stack):
    """The stores run on this machine (the local target's module); the guests,
    sharing its network, reach them at the listen address with the CA their
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
    assert stores["redis"] == {"host": "127.0.0.1", "port": 40001, "tls": True, "ca_file": ca_file}
    assert stores["postgres"]["sslmode"] == "verify-full" and stores["postgres"]["ca_file"] == ca_file
