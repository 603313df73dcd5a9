"""Static checks of the Terraform stacks' featctl contract (no provider download).

python-hcl2 8.x keeps HCL syntax in the values it returns: block labels and
string literals keep their quotes ('"name"', '"TCP"') and expressions are wrapped
in '${...}'. ``_norm`` strips both so the assertions do not depend on that.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest

ROOT = Path(__file__).resolve().parents[3]
YANDEX_DIR = ROOT / "terraform" / "yandex"
LOCAL_DIR = ROOT / "terraform" / "local"
TEMPLATE = YANDEX_DIR / "cloud-init.yaml.tftpl"

CONTRACT_INPUTS = (
    "name",
    "ssh_public_key",
    "host_private_key_path",
    "host_public_key",
    "ssh_user",
    "remote_base_dir",
)
CONTRACT_OUTPUTS = ("host", "port", "user", "host_public_key", "remote_base_dir", "target")

SECRET_MARKERS = re.compile(
    r"private|secret|password|token|file\(|templatefile\(|metadata|user-data|user_data",
    re.IGNORECASE,
)


# --------------------------------------------------------------------------- helpers


def _norm(value: Any) -> Any:
    """Strip python-hcl2's quoting / ${} wrapping, recursively; drop __is_block__."""
    if isinstance(value, str):
        s = value.strip()
        if s.startswith("${") and s.endswith("}"):
            s = s[2:-1].strip()
        elif len(s) >= 2 and s[0] == s[-1] == '"':
            s = s[1:-1]
        return s
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {_norm(k): _norm(v) for k, v in value.items() if k != "__is_block__"}
    return value


def _load_dir(directory: Path) -> dict[str, list[dict]]:
    """Parse every .tf file of a directory; merge the top-level block lists."""
    merged: dict[str, list[dict]] = {}
    files = sorted(directory.glob("*.tf"))
    assert files, f"no .tf files in {directory}"
    for tf in files:
        with tf.open(encoding="utf-8") as fp:
            doc = _norm(hcl2.load(fp))
        for kind, blocks in doc.items():
            merged.setdefault(kind, []).extend(blocks)
    return merged


def _named(doc: dict, kind: str) -> dict[str, dict]:
    """{label: body} for single-label blocks (variable, output)."""
    out: dict[str, dict] = {}
    for block in doc.get(kind, []):
        for label, body in block.items():
            assert label not in out, f"duplicate {kind} {label!r}"
            out[label] = body
    return out


def _resources(doc: dict, rtype: str, kind: str = "resource") -> dict[str, dict]:
    """{name: body} of all resources (or data sources) of one type."""
    out: dict[str, dict] = {}
    for block in doc.get(kind, []):
        for typ, by_name in block.items():
            if typ == rtype:
                out.update(by_name)
    return out


def _one(doc: dict, rtype: str) -> dict:
    found = _resources(doc, rtype)
    assert len(found) == 1, f"expected exactly one {rtype}, got {sorted(found)}"
    return next(iter(found.values()))


def _blocks(body: dict, key: str) -> list[dict]:
    value = body.get(key, [])
    return value if isinstance(value, list) else [value]


@pytest.fixture(scope="module")
def yandex() -> dict:
    return _load_dir(YANDEX_DIR)


# --------------------------------------------------------------------------- contract


def test_expected_files_exist() -> None:
    for name in ("versions.tf", "variables.tf", "main.tf", "outputs.tf", "cloud-init.yaml.tftpl", "README.md"):
        assert (YANDEX_DIR / name).is_file(), name


def test_provider_and_terraform_version_pinned(yandex: dict) -> None:
    tf = yandex["terraform"][0]
    assert tf["required_version"].startswith(">=")
    yc = tf["required_providers"][0]["yandex"]
    assert yc["source"] == "yandex-cloud/yandex"
    assert yc["version"].startswith("~>")


def test_contract_inputs(yandex: dict) -> None:
    variables = _named(yandex, "variable")
    missing = [v for v in CONTRACT_INPUTS if v not in variables]
    assert not missing, f"missing contract variables: {missing}"
    # featctl always passes these: they must not silently default.
    for v in ("name", "ssh_public_key", "host_private_key_path", "host_public_key"):
        assert "default" not in variables[v], v
    assert variables["ssh_user"].get("default") == "featctl"
    assert variables["remote_base_dir"].get("default") == "/opt/featctl"
    name_validation = " ".join(str(b["condition"]) for b in _blocks(variables["name"], "validation"))
    assert "^[a-z][a-z0-9-]{0,40}$" in name_validation


def test_yandex_specific_inputs(yandex: dict) -> None:
    variables = _named(yandex, "variable")
    expected_defaults = {
        "folder_id": None,
        "zone": "ru-central1-a",
        "subnet_cidr": "10.10.0.0/24",
        "image_family": "ubuntu-2404-lts",
        "platform_id": "standard-v3",
        "cores": 2,
        "memory": 4,
        "core_fraction": 100,
        "disk_size": 20,
        "preemptible": False,
    }
    for var, default in expected_defaults.items():
        assert var in variables, var
        got = variables[var].get("default")
        assert got == default or (default is None and got == "null"), (var, got)
    cidrs = variables["ssh_allowed_cidrs"]
    assert cidrs.get("default") == []
    conditions = [str(b["condition"]) for b in _blocks(cidrs, "validation")]
    assert any(re.search(r"length\(var\.ssh_allowed_cidrs\)\s*>\s*0", c) for c in conditions), conditions


def test_contract_outputs(yandex: dict) -> None:
    outputs = _named(yandex, "output")
    assert set(CONTRACT_OUTPUTS) <= set(outputs), sorted(set(CONTRACT_OUTPUTS) - set(outputs))
    assert outputs["target"]["value"] == "yandex"
    assert outputs["port"]["value"] == 22
    assert outputs["user"]["value"] == "var.ssh_user"
    assert outputs["host_public_key"]["value"] == "var.host_public_key"
    assert outputs["remote_base_dir"]["value"] == "var.remote_base_dir"
    assert "nat_ip_address" in outputs["host"]["value"]


def test_no_output_leaks_secrets(yandex: dict) -> None:
    for name, body in _named(yandex, "output").items():
        assert not re.search(r"private|secret|password|token", name, re.IGNORECASE), name
        assert body.get("sensitive") is not True, f"output {name} is sensitive: outputs must not hold secrets"
        value = str(body["value"])
        assert not SECRET_MARKERS.search(value), f"output {name} may expose a secret: {value}"


def test_security_group_only_ssh_ingress(yandex: dict) -> None:
    sg = _one(yandex, "yandex_vpc_security_group")
    ingress = _blocks(sg, "ingress")
    assert len(ingress) == 1, ingress
    rule = ingress[0]
    assert str(rule["protocol"]).upper() == "TCP"
    assert rule.get("port") == 22
    assert "from_port" not in rule and "to_port" not in rule
    assert rule["v4_cidr_blocks"] == "var.ssh_allowed_cidrs"
    egress = _blocks(sg, "egress")
    assert len(egress) == 1 and str(egress[0]["protocol"]).upper() == "ANY"


def test_instance_wiring(yandex: dict) -> None:
    vm = _one(yandex, "yandex_compute_instance")
    assert _blocks(vm, "scheduling_policy")[0]["preemptible"] == "var.preemptible"
    res = _blocks(vm, "resources")[0]
    assert (res["cores"], res["memory"], res["core_fraction"]) == ("var.cores", "var.memory", "var.core_fraction")
    init = _blocks(_blocks(vm, "boot_disk")[0], "initialize_params")[0]
    assert init["image_id"].startswith("data.yandex_compute_image.")
    assert init["size"] == "var.disk_size"
    nic = _blocks(vm, "network_interface")[0]
    assert nic["nat"] is True  # the provider ignores nat_ip_address without it
    assert nic["subnet_id"].startswith("yandex_vpc_subnet.")
    assert "yandex_vpc_security_group." in str(nic["security_group_ids"])
    assert vm["platform_id"] == "var.platform_id"

    images = _resources(yandex, "yandex_compute_image", kind="data")
    assert [b["family"] for b in images.values()] == ["var.image_family"]
    subnet = _one(yandex, "yandex_vpc_subnet")
    assert subnet["v4_cidr_blocks"] == ["var.subnet_cidr"]


def _locals(doc: dict) -> dict:
    merged: dict = {}
    for block in doc.get("locals", []):
        merged.update({k: v for k, v in block.items() if k != "__comments__"})
    return merged


def test_cloud_init_metadata(yandex: dict) -> None:
    vm = _one(yandex, "yandex_compute_instance")
    assert vm["metadata"]["user-data"] == "local.user_data"
    user_data = str(_locals(yandex)["user_data"])
    assert "templatefile(" in user_data and "cloud-init.yaml.tftpl" in user_data
    assert "file(var.host_private_key_path)" in user_data
    # The rendered user-data holds the host private key: keep it out of plans.
    assert user_data.startswith("sensitive(")


def test_user_data_change_replaces_vm(yandex: dict) -> None:
    """cloud-init runs users/ssh_keys/runcmd once per instance and metadata updates
    in place: only a new VM gets new user-data. A terraform_data holding the
    user-data's hash changes with it and triggers the VM's replacement."""
    data = _resources(yandex, "terraform_data")
    hashers = {name: body for name, body in data.items() if "local.user_data" in str(body.get("input"))}
    assert len(hashers) == 1, data
    [(name, body)] = hashers.items()
    # Only a hash reaches the plan, never the user-data (private key) itself.
    assert re.fullmatch(r"(nonsensitive\()?sha256\(local\.user_data\)\)?", body["input"]), body["input"]
    assert "triggers_replace" not in body
    vm = _one(yandex, "yandex_compute_instance")
    [lifecycle] = _blocks(vm, "lifecycle")
    assert f"terraform_data.{name}" in lifecycle["replace_triggered_by"], lifecycle


def test_cloud_init_template() -> None:
    assert TEMPLATE.is_file()
    text = TEMPLATE.read_text(encoding="utf-8")
    assert text.startswith("#cloud-config")
    for needle in (
        "ssh_keys:",
        "ed25519_private:",
        "ed25519_public:",
        "host_private_key",
        "host_public_key",
        "ssh_authorized_keys:",
        "NOPASSWD:ALL",
        "remote_base_dir",
    ):
        assert needle in text, needle
    assert re.search(r"^ssh_deletekeys:\s*true\s*$", text, re.MULTILINE)
    # ssh_keys alone stops key generation; ssh_genkeytypes: [] is invalid (minItems 1).
    assert not re.search(r"^ssh_genkeytypes:", text, re.MULTILINE)
    for pkg in ("python3", "python3-venv", "curl"):
        assert re.search(rf"^\s*-\s*{re.escape(pkg)}\s*$", text, re.MULTILINE), pkg
    # Every template variable must be one main.tf passes to templatefile().
    used: set[str] = set()
    for expr in re.findall(r"\$\{([^\n]*?)\}", text):
        used.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", re.sub(r'"[^"$]*"', "", expr)))
    passed = {"ssh_user", "ssh_public_key", "host_private_key", "host_public_key", "remote_base_dir"}
    assert used - {"jsonencode"} == passed, used ^ passed


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform not on PATH")
def test_terraform_fmt() -> None:
    proc = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", str(YANDEX_DIR)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0, f"terraform fmt would change: {proc.stdout}{proc.stderr}"


def test_local_stack_shares_contract() -> None:
    if not LOCAL_DIR.is_dir() or not list(LOCAL_DIR.glob("*.tf")):
        pytest.skip("terraform/local has no .tf files yet")
    local = _load_dir(LOCAL_DIR)
    variables = _named(local, "variable")
    outputs = _named(local, "output")
    assert not [v for v in CONTRACT_INPUTS if v not in variables], "local stack misses contract inputs"
    assert not [o for o in CONTRACT_OUTPUTS if o not in outputs], "local stack misses contract outputs"
    for name, body in outputs.items():
        assert body.get("sensitive") is not True, name
        assert "host_private_key" not in str(body["value"]), f"local output {name} may expose a secret"


def test_static_public_address(yandex: dict) -> None:
    """A preemptible VM loses a dynamic public address on every stop: pin a reserved one."""
    address = _one(yandex, "yandex_vpc_address")
    [external] = _blocks(address, "external_ipv4_address")
    assert external["zone_id"] == "var.zone"
    vm = _one(yandex, "yandex_compute_instance")
    assert vm["zone"] == "var.zone"
    nic = _blocks(vm, "network_interface")[0]
    assert nic["nat_ip_address"] == "yandex_vpc_address.this.external_ipv4_address[0].address"
