"""Static checks of the Yandex stack against the contract featctl relies on.

The stack's provider cannot be downloaded here, so the .tf files are parsed
with python-hcl2 (see hclstack.py) and checked for what featctl needs: its
inputs and outputs, no secret in any output, the firewall rules, and the
wiring that keeps hosts reachable and their user-data current.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.provision.hclstack import blocks, load_dir, locals_of, named, one, resources
from tests.unit.provision.tfeval import TF_ENV, YANDEX_DIR, terraform

ROOT = Path(__file__).resolve().parents[3]
LOCAL_DIR = ROOT / "terraform" / "local"
TEMPLATE = YANDEX_DIR / "cloud-init.yaml.tftpl"

# featctl always passes these; they have no default.
REQUIRED_INPUTS = ("name", "ssh_public_key", "host_keys")
CONTRACT_INPUTS = (*REQUIRED_INPUTS, "ssh_user", "remote_base_dir", "stores", "store_password_files")
# Replaced by host_keys (one key pair per host).
REMOVED_INPUTS = ("host_private_key_path", "host_public_key")
CONTRACT_OUTPUTS = ("target", "hosts", "host", "port", "user", "host_public_key", "remote_base_dir", "stores")
# The keys of every element of the `hosts` output, the same in every stack.
HOSTS_KEYS = ("host", "port", "host_public_key", "remote_base_dir")
# store -> (resource type of its cluster, the local that holds its port, the port)
STORES = {
    "redis": ("yandex_mdb_redis_cluster_v2", "redis_tls_port", 6380),
    "postgres": ("yandex_mdb_postgresql_cluster", "postgres_port", 6432),
}

SECRET_MARKERS = re.compile(
    r"private|secret|password|token|file\(|templatefile\(|metadata|user-data|user_data",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def yandex() -> dict:
    return load_dir(YANDEX_DIR)


def _expand_locals(expr: str, local_values: dict[str, Any]) -> str:
    """Inline ``local.X`` references (recursively), so checks see what an output really reads."""
    for _ in range(5):
        expanded = re.sub(
            r"\blocal\.([A-Za-z_][A-Za-z0-9_]*)",
            lambda m: f"({local_values[m.group(1)]})" if m.group(1) in local_values else m.group(0),
            expr,
        )
        if expanded == expr:
            return expr
        expr = expanded
    raise AssertionError(f"locals nest too deep: {expr}")


def _vm_security_group(doc: dict) -> tuple[str, dict]:
    vm = one(doc, "yandex_compute_instance")
    nic = blocks(vm, "network_interface")[0]
    [ref] = nic["security_group_ids"]
    match = re.fullmatch(r"yandex_vpc_security_group\.(\w+)\.id", ref)
    assert match, ref
    name = match.group(1)
    return name, resources(doc, "yandex_vpc_security_group")[name]


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
    variables = named(yandex, "variable")
    missing = [v for v in CONTRACT_INPUTS if v not in variables]
    assert not missing, f"missing contract variables: {missing}"
    for v in REQUIRED_INPUTS:
        assert "default" not in variables[v], f"{v} must not silently default"
    for v in REMOVED_INPUTS:
        assert v not in variables, f"{v} is replaced by host_keys"
    assert variables["ssh_user"].get("default") == "featctl"
    assert variables["remote_base_dir"].get("default") == "/opt/featctl"
    assert variables["stores"].get("default") == []
    assert variables["store_password_files"].get("default") == {}
    assert re.sub(r"\s+", "", str(variables["store_password_files"]["type"])) == "map(string)"
    stores_rules = " ".join(str(b["condition"]) for b in blocks(variables["stores"], "validation"))
    assert re.search(r'contains\(\["redis", ?"postgres", ?"spark"\], s\)', stores_rules), stores_rules
    name_validation = " ".join(str(b["condition"]) for b in blocks(variables["name"], "validation"))
    assert "^[a-z][a-z0-9-]{0,40}$" in name_validation


def test_host_keys_input(yandex: dict) -> None:
    host_keys = named(yandex, "variable")["host_keys"]
    compact = re.sub(r"\s+", "", str(host_keys["type"]))
    assert compact == "list(object({private_key_path=string,public_key=string}))", host_keys["type"]
    conditions = " ".join(str(b["condition"]) for b in blocks(host_keys, "validation"))
    assert re.search(r"length\(var\.host_keys\)\s*>=\s*1", conditions)
    assert re.search(r"length\(var\.host_keys\)\s*<=\s*9", conditions)
    assert "fileexists(k.private_key_path)" in conditions
    assert "distinct(" in conditions


def test_yandex_specific_inputs(yandex: dict) -> None:
    variables = named(yandex, "variable")
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
    conditions = [str(b["condition"]) for b in blocks(cidrs, "validation")]
    assert any(re.search(r"length\(var\.ssh_allowed_cidrs\)\s*>\s*0", c) for c in conditions), conditions
    assert any("cidrnetmask(c)" in c for c in conditions), conditions


def test_subnet_cidr_validated(yandex: dict) -> None:
    """Present here; test_yandex_variables runs the values through terraform plan."""
    subnet = named(yandex, "variable")["subnet_cidr"]
    conditions = " ".join(str(b["condition"]) for b in blocks(subnet, "validation"))
    assert "cidrnetmask(var.subnet_cidr)" in conditions
    assert re.search(r">=\s*16\b", conditions) and re.search(r"<=\s*28\b", conditions)


def test_contract_outputs(yandex: dict) -> None:
    outputs = named(yandex, "output")
    assert set(CONTRACT_OUTPUTS) <= set(outputs), sorted(set(CONTRACT_OUTPUTS) - set(outputs))
    assert outputs["target"]["value"] == "yandex"
    assert outputs["user"]["value"] == "var.ssh_user"
    assert outputs["remote_base_dir"]["value"] == "var.remote_base_dir"
    # host, port and host_public_key stay what they were: host 0's.
    assert outputs["hosts"]["value"] == "local.hosts"
    assert outputs["stores"]["value"] == "local.stores"
    for name in ("host", "port", "host_public_key"):
        assert outputs[name]["value"] == f"local.hosts[0].{name}", outputs[name]


def test_hosts_output_lists_every_vm_in_host_keys_order(yandex: dict) -> None:
    hosts = str(locals_of(yandex)["hosts"])
    compact = re.sub(r"\s+", " ", hosts)
    # One entry per VM, in count order = host_keys order.
    assert re.match(r"\[for (\w+), (\w+) in yandex_compute_instance\.this :", compact), compact
    index, vm = re.match(r"\[for (\w+), (\w+) in", compact).groups()  # type: ignore[union-attr]
    assert f"host = {vm}.network_interface[0].nat_ip_address" in compact
    assert "port = 22" in compact
    assert f"host_public_key = trimspace(var.host_keys[{index}].public_key)" in compact
    assert "remote_base_dir = var.remote_base_dir" in compact
    body = re.search(r" : \{(.*)\}\]$", compact)
    assert body, compact
    assert tuple(re.findall(r"(?:^|, )(\w+) = ", body.group(1))) == HOSTS_KEYS, compact


def test_no_output_leaks_secrets(yandex: dict) -> None:
    local_values = locals_of(yandex)
    for name, body in named(yandex, "output").items():
        assert not re.search(r"private|secret|password|token", name, re.IGNORECASE), name
        assert body.get("sensitive") is not True, f"output {name} is sensitive: outputs must not hold secrets"
        value = _expand_locals(str(body["value"]), local_values)
        assert not SECRET_MARKERS.search(value), f"output {name} may expose a secret: {value}"


def test_vm_security_group_only_ssh_ingress(yandex: dict) -> None:
    """Written out: SSH only. The endpoint's rules come from one dynamic block
    over local.endpoint_ingress, [] while it is off (test_yandex_endpoint)."""
    _, sg = _vm_security_group(yandex)
    dynamic = [(label, body["for_each"]) for d in blocks(sg, "dynamic") for label, body in d.items()]
    assert dynamic == [("ingress", "local.endpoint_ingress")], dynamic
    ingress = blocks(sg, "ingress")
    assert len(ingress) == 1, ingress
    rule = ingress[0]
    assert str(rule["protocol"]).upper() == "TCP"
    assert rule.get("port") == 22
    assert "from_port" not in rule and "to_port" not in rule
    assert rule["v4_cidr_blocks"] == "var.ssh_allowed_cidrs"
    assert "security_group_id" not in rule and "predefined_target" not in rule
    egress = blocks(sg, "egress")
    assert len(egress) == 1 and str(egress[0]["protocol"]).upper() == "ANY"


@pytest.mark.parametrize("store", sorted(STORES))
def test_store_security_group_only_from_subnet(store: str, yandex: dict) -> None:
    cluster_type, port_local, port = STORES[store]
    assert locals_of(yandex)[port_local] == port
    sg = resources(yandex, "yandex_vpc_security_group")[store]
    assert sg["count"] == f"local.{store}_enabled ? 1 : 0"
    assert sg["network_id"] == "yandex_vpc_network.this.id"
    [rule] = blocks(sg, "ingress")
    assert str(rule["protocol"]).upper() == "TCP"
    assert rule["port"] == f"local.{port_local}"
    assert "from_port" not in rule and "to_port" not in rule
    assert rule["v4_cidr_blocks"] == ["var.subnet_cidr"]
    assert "security_group_id" not in rule and "predefined_target" not in rule
    assert "egress" not in sg
    cluster = one(yandex, cluster_type)
    assert cluster["security_group_ids"] == [f"yandex_vpc_security_group.{store}[0].id"]
    assert cluster["network_id"] == "yandex_vpc_network.this.id"
    assert cluster["count"] == f"local.{store}_enabled ? 1 : 0"
    assert locals_of(yandex)[f"{store}_enabled"] == f'contains(var.stores, "{store}")'


def test_store_passwords_are_read_sensitive_and_only_for_enabled_stores(yandex: dict) -> None:
    passwords = re.sub(r"\s+", " ", str(locals_of(yandex)["store_passwords"]))
    match = re.fullmatch(
        r"\{for (\w+), (\w+) in var\.store_password_files : \1 => sensitive\(trimspace\(file\(\2\)\)\) "
        r'if contains\(var\.stores, \1\) && \1 != "spark"\}',
        passwords,
    )
    assert match, passwords


def _preconditions(body: dict) -> str:
    return " ".join(str(p["condition"]) for lc in blocks(body, "lifecycle") for p in blocks(lc, "precondition"))


def test_redis_store(yandex: dict) -> None:
    redis = one(yandex, "yandex_mdb_redis_cluster_v2")
    assert redis["tls_enabled"] is True
    assert redis["config"]["password"] == 'local.store_passwords["redis"]'
    assert redis["config"]["version"] == "var.redis_version"
    assert redis["resources"]["resource_preset_id"] == "var.redis_resource_preset"
    assert redis["resources"]["disk_size"] == "var.redis_disk_size"
    assert redis["hosts"] == {"a": {"zone": "var.zone", "subnet_id": "yandex_vpc_subnet.this.id"}}
    assert 'contains(keys(var.store_password_files), "redis")' in _preconditions(redis)
    defaults = named(yandex, "variable")
    assert defaults["redis_resource_preset"]["default"] == "b3-c1-m4"


def test_postgres_store(yandex: dict) -> None:
    cluster = one(yandex, "yandex_mdb_postgresql_cluster")
    [config] = blocks(cluster, "config")
    assert config["version"] == "var.postgres_version"
    [res] = blocks(config, "resources")
    assert res["resource_preset_id"] == "var.postgres_resource_preset"
    [host] = blocks(cluster, "host")
    assert host == {"zone": "var.zone", "subnet_id": "yandex_vpc_subnet.this.id"}
    assert "user" not in cluster and "database" not in cluster, "deprecated blocks: use the separate resources"
    user = one(yandex, "yandex_mdb_postgresql_user")
    assert user["password"] == 'local.store_passwords["postgres"]'
    assert user["name"] == "var.postgres_user"
    assert user["cluster_id"] == "yandex_mdb_postgresql_cluster.this[0].id"
    assert 'contains(keys(var.store_password_files), "postgres")' in _preconditions(user)
    database = one(yandex, "yandex_mdb_postgresql_database")
    assert database["name"] == "var.postgres_database"
    assert database["owner"] == "yandex_mdb_postgresql_user.this[0].name"
    version_rule = " ".join(
        str(b["condition"]) for b in blocks(named(yandex, "variable")["postgres_version"], "validation")
    )
    assert '"14"' not in version_rule and '"15"' in version_rule


def test_instance_wiring(yandex: dict) -> None:
    vm = one(yandex, "yandex_compute_instance")
    # One VM per host key, named <name>-vm-<i> (host 0 keeps index 0).
    assert vm["count"] == "length(var.host_keys)"
    assert vm["name"] == "${var.name}-vm-${count.index}"
    assert vm["hostname"] == "${var.name}-vm-${count.index}"
    assert blocks(vm, "scheduling_policy")[0]["preemptible"] == "var.preemptible"
    res = blocks(vm, "resources")[0]
    assert (res["cores"], res["memory"], res["core_fraction"]) == ("var.cores", "var.memory", "var.core_fraction")
    init = blocks(blocks(vm, "boot_disk")[0], "initialize_params")[0]
    assert init["image_id"].startswith("data.yandex_compute_image.")
    assert init["size"] == "var.disk_size"
    nic = blocks(vm, "network_interface")[0]
    assert nic["subnet_id"].startswith("yandex_vpc_subnet.")
    assert vm["platform_id"] == "var.platform_id"
    assert not resources(yandex, "yandex_compute_instance_group"), "each host needs its own key and address"

    images = resources(yandex, "yandex_compute_image", kind="data")
    assert [b["family"] for b in images.values()] == ["var.image_family"]
    subnet = one(yandex, "yandex_vpc_subnet")
    assert subnet["v4_cidr_blocks"] == ["var.subnet_cidr"]


def test_static_public_address_per_host(yandex: dict) -> None:
    """A preemptible VM loses a dynamic public address on every stop: pin a reserved one per host."""
    address = one(yandex, "yandex_vpc_address")
    assert address["count"] == "length(var.host_keys)"
    assert "count.index" in address["name"]
    [external] = blocks(address, "external_ipv4_address")
    assert external["zone_id"] == "var.zone"
    vm = one(yandex, "yandex_compute_instance")
    assert vm["zone"] == "var.zone"
    nic = blocks(vm, "network_interface")[0]
    assert nic["nat"] is True  # the provider ignores nat_ip_address without it
    assert nic["nat_ip_address"] == "yandex_vpc_address.this[count.index].external_ipv4_address[0].address"


def test_single_vm_state_moves_to_host_0(yandex: dict) -> None:
    moves = [(m["from"], m["to"]) for m in yandex.get("moved", [])]
    assert ("yandex_compute_instance.this", "yandex_compute_instance.this[0]") in moves


def test_cloud_init_metadata(yandex: dict) -> None:
    vm = one(yandex, "yandex_compute_instance")
    assert vm["metadata"]["user-data"] == "local.user_data[count.index]"
    # user_data is this rendering, with the endpoint's additions when it is on
    # (test_yandex_endpoint checks those).
    assert re.match(r"\[for (\w+) in local\.rendered_user_data : ", str(locals_of(yandex)["user_data"]))
    user_data = re.sub(r"\s+", " ", str(locals_of(yandex)["rendered_user_data"]))
    # One rendering per host, each with that host's own key pair.
    match = re.match(r"\[for (\w+) in var\.host_keys : sensitive\(templatefile\(", user_data)
    assert match, user_data
    key = match.group(1)
    assert "cloud-init.yaml.tftpl" in user_data
    assert f"host_private_key = file({key}.private_key_path)" in user_data
    assert f"host_public_key = trimspace({key}.public_key)" in user_data


def test_user_data_change_replaces_vm(yandex: dict) -> None:
    """cloud-init runs users/ssh_keys/runcmd once per instance and metadata updates
    in place: only a new VM gets new user-data. A terraform_data holding the
    user-data's hash changes with it and triggers the VM's replacement."""
    data = resources(yandex, "terraform_data")
    hashers = {name: body for name, body in data.items() if "local.user_data" in str(body.get("input"))}
    assert len(hashers) == 1, data
    [(name, body)] = hashers.items()
    assert body["count"] == "length(var.host_keys)"
    # Only a hash reaches the plan, never the user-data (private key) itself.
    assert re.fullmatch(r"(nonsensitive\()?sha256\(local\.user_data\[count\.index\]\)\)?", body["input"]), body
    assert "triggers_replace" not in body
    vm = one(yandex, "yandex_compute_instance")
    [lifecycle] = blocks(vm, "lifecycle")
    assert f"terraform_data.{name}[count.index]" in lifecycle["replace_triggered_by"], lifecycle


def test_cloud_init_template(yandex: dict) -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    assert text.startswith("#cloud-config")
    for needle in (
        "ssh_keys:",
        "ed25519_private:",
        "ed25519_public:",
        "ssh_authorized_keys:",
        "NOPASSWD:ALL",
    ):
        assert needle in text, needle
    assert re.search(r"^ssh_deletekeys:\s*true\s*$", text, re.MULTILINE)
    # ssh_keys alone stops key generation; ssh_genkeytypes: [] is invalid (minItems 1).
    assert not re.search(r"^ssh_genkeytypes:", text, re.MULTILINE)
    for pkg in ("python3", "python3-venv", "curl"):
        assert re.search(rf"^\s*-\s*{re.escape(pkg)}\s*$", text, re.MULTILINE), pkg
    # Every template variable is one main.tf passes to templatefile(), and back.
    used: set[str] = set()
    for expr in re.findall(r"\$\{([^\n]*?)\}", text):
        used.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", re.sub(r'"[^"$]*"', "", expr)))
    user_data = str(locals_of(yandex)["rendered_user_data"])
    args = user_data[user_data.index("cloud-init.yaml.tftpl") :]
    passed = set(re.findall(r"\b([a-z_]+)\s*=(?!=)", args[args.index("{") : args.rindex("}")]))
    assert {"host_private_key", "host_public_key", "ssh_user", "remote_base_dir"} <= passed, passed
    assert used - {"jsonencode"} == passed, used ^ passed


def test_terraform_fmt() -> None:
    proc = subprocess.run(
        [terraform(), "fmt", "-check", "-recursive", str(YANDEX_DIR)],
        capture_output=True,
        text=True,
        env=TF_ENV,
        timeout=30,
    )
    assert proc.returncode == 0, f"terraform fmt would change: {proc.stdout}{proc.stderr}"


def test_local_stack_shares_contract() -> None:
    if not LOCAL_DIR.is_dir() or not list(LOCAL_DIR.glob("*.tf")):
        pytest.skip("terraform/local has no .tf files yet")
    local = load_dir(LOCAL_DIR)
    variables = named(local, "variable")
    outputs = named(local, "output")
    assert not [v for v in CONTRACT_INPUTS if v not in variables], "local stack misses contract inputs"
    assert not [o for o in CONTRACT_OUTPUTS if o not in outputs], "local stack misses contract outputs"
    for name, body in outputs.items():
        assert body.get("sensitive") is not True, name
        assert not SECRET_MARKERS.search(str(body["value"])), f"local output {name} may expose a secret"
