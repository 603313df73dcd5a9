"""The Yandex stack's outputs, evaluated by Terraform from stand-in resources.

The provider cannot be installed here, so the resources cannot be planned. But
every output is an expression over resource attributes, variables and locals:
the test inlines the stack's own locals, replaces each resource reference by a
literal shaped like the provider's schema (with the provider's sensitive
attributes marked sensitive()), and has ``terraform console`` evaluate all
outputs at once. A result that Terraform considers sensitive would print as
"(sensitive value)" and fail the test: an output must never need sensitive =
true.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.provision.tfeval import YANDEX_DIR, console, hcl_expr, inline, raw_blocks

REMOTE_BASE_DIR = "/srv/featctl"
CA_FILE = f"{REMOTE_BASE_DIR}/tls/YandexInternalRootCA.crt"
HOST_KEYS = [
    {"private_key_path": "/ws/keys/host_0", "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA0 host-0\n"},
    {"private_key_path": "/ws/keys/host_1", "public_key": "  ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA1 host-1"},
]
NAT_IPS = ["198.51.100.10", "198.51.100.11"]
# The keys of every element of the `hosts` output, the same in every stack.
HOSTS_KEYS = {"host", "port", "host_public_key", "remote_base_dir"}
REDIS_FQDN = "rc1a-redis0000000000.mdb.yandexcloud.net"
POSTGRES_FQDN = "rc1a-pg0000000000000.mdb.yandexcloud.net"
ENDPOINT_ADDRESS = "10.10.0.30"


def _hcl(value: Any) -> str:
    """A Python value as an HCL literal (JSON is valid HCL for these)."""
    return json.dumps(value)


def _instances(count: int) -> str:
    return (
        "["
        + ", ".join(
            f'{{ network_interface = [{{ nat_ip_address = "{NAT_IPS[i]}", ip_address = "10.10.0.{10 + i}" }}],'
            f' metadata = {{ user-data = sensitive("private key {i}") }} }}'
            for i in range(count)
        )
        + "]"
    )


def _redis(enabled: bool) -> str:
    if not enabled:
        return "[]"
    return (
        f'[{{ hosts = {{ a = {{ fqdn = "{REDIS_FQDN}", zone = "ru-central1-a" }} }},'
        ' config = { password = sensitive("redis-password"), version = "8.1-valkey" } }]'
    )


def _postgres(enabled: bool) -> dict[str, str]:
    refs = {
        "yandex_mdb_postgresql_cluster.this": f'[{{ host = [{{ fqdn = "{POSTGRES_FQDN}", zone = "ru-central1-a" }}] }}]',
        "yandex_mdb_postgresql_database.this": '[{ name = "feast", owner = "feast" }]',
        "yandex_mdb_postgresql_user.this": '[{ name = "feast", password = sensitive("pg-password") }]',
    }
    return refs if enabled else dict.fromkeys(refs, "[]")


def evaluate_outputs(scenarios: list[dict[str, str]], scratch: Path) -> list[dict[str, Any]]:
    """Every output of the stack, for each scenario of stand-in bindings, in one console call."""
    outputs = raw_blocks(YANDEX_DIR, "output")
    local_values = raw_blocks(YANDEX_DIR, "locals")
    objects = []
    for bindings in scenarios:
        fields = ", ".join(
            f'"{name}" = ({inline(hcl_expr(body["value"]), bindings, local_values)})' for name, body in outputs.items()
        )
        objects.append(f"{{ {fields} }}")
    return json.loads(console(f"jsonencode([{', '.join(objects)}])", scratch))


def _load_balancer(enabled: bool) -> str:
    """The provider's yandex_lb_network_load_balancer (count 0 or 1): listener and
    internal_address_spec are sets, one element each; the address is allocated."""
    if not enabled:
        return "[]"
    spec = f'{{ subnet_id = "e9b-subnet", address = "{ENDPOINT_ADDRESS}", ip_version = "ipv4" }}'
    listener = f'{{ name = "endpoint", port = 9443, target_port = 9443, protocol = "tcp", internal_address_spec = [{spec}], external_address_spec = [] }}'
    return f'[{{ type = "internal", listener = [{listener}] }}]'


def scenario(*, hosts: int = 1, redis: bool = False, postgres: bool = False, endpoint: bool = False) -> dict[str, str]:
    return {
        "var.host_keys": _hcl(HOST_KEYS[:hosts]),
        "var.ssh_user": _hcl("featctl"),
        "var.remote_base_dir": _hcl(REMOTE_BASE_DIR),
        "var.endpoint_port": "9443",
        "var.endpoint_health_port": "9442",
        "yandex_compute_instance.this": _instances(hosts),
        "yandex_mdb_redis_cluster_v2.this": _redis(redis),
        "yandex_lb_network_load_balancer.endpoint": _load_balancer(endpoint),
        **_postgres(postgres),
    }


SCENARIOS = {
    "one_host_no_stores": scenario(),
    "two_hosts_redis": scenario(hosts=2, redis=True),
    "postgres": scenario(postgres=True),
    "both_stores": scenario(hosts=2, redis=True, postgres=True),
    "endpoint": scenario(hosts=2, endpoint=True),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    values = evaluate_outputs(list(SCENARIOS.values()), tmp_path_factory.mktemp("outputs"))
    return dict(zip(SCENARIOS, values, strict=True))


REDIS = {"host": REDIS_FQDN, "port": 6380, "tls": True, "ca_file": CA_FILE}
POSTGRES = {
    "host": POSTGRES_FQDN,
    "port": 6432,
    "database": "feast",
    "user": "feast",
    "sslmode": "verify-full",
    "ca_file": CA_FILE,
}


def test_outputs_without_stores(results: dict[str, dict[str, Any]]) -> None:
    out = results["one_host_no_stores"]
    assert out == {
        "target": "yandex",
        "hosts": [
            {
                "host": NAT_IPS[0],
                "port": 22,
                "host_public_key": HOST_KEYS[0]["public_key"].strip(),
                "remote_base_dir": REMOTE_BASE_DIR,
            }
        ],
        "host": NAT_IPS[0],
        "port": 22,
        "host_public_key": HOST_KEYS[0]["public_key"].strip(),
        "user": "featctl",
        "remote_base_dir": REMOTE_BASE_DIR,
        "stores": {},
        "endpoint": None,
    }


def test_hosts_in_host_keys_order_and_host_0_compat(results: dict[str, dict[str, Any]]) -> None:
    out = results["two_hosts_redis"]
    assert out["hosts"] == [
        {
            "host": NAT_IPS[i],
            "port": 22,
            "host_public_key": HOST_KEYS[i]["public_key"].strip(),
            "remote_base_dir": REMOTE_BASE_DIR,
        }
        for i in range(2)
    ]
    # host 0's entry is what the top-level outputs say.
    assert {k: out[k] for k in HOSTS_KEYS} == out["hosts"][0]


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_hosts_element_has_the_contract_keys(name: str, results: dict[str, dict[str, Any]]) -> None:
    hosts = results[name]["hosts"]
    assert hosts and all(set(h) == HOSTS_KEYS for h in hosts), hosts


@pytest.mark.parametrize(
    ("name", "stores"),
    [
        ("two_hosts_redis", {"redis": REDIS}),
        ("postgres", {"postgres": POSTGRES}),
        ("both_stores", {"redis": REDIS, "postgres": POSTGRES}),
    ],
)
def test_store_endpoints(name: str, stores: dict[str, Any], results: dict[str, dict[str, Any]]) -> None:
    assert results[name]["stores"] == stores


def test_endpoint_output(results: dict[str, dict[str, Any]]) -> None:
    """The listener's internal address and the ports featctl configures HAProxy
    with; null unless the endpoint is enabled."""
    assert results["endpoint"]["endpoint"] == {
        "address": ENDPOINT_ADDRESS,
        "port": 9443,
        "health_port": 9442,
        "health_path": "/healthz",
    }
    for name in SCENARIOS:
        if name != "endpoint":
            assert results[name]["endpoint"] is None, name


def test_no_output_value_carries_a_stand_in_secret(results: dict[str, dict[str, Any]]) -> None:
    text = json.dumps(results)
    for secret in ("private key", "redis-password", "pg-password", "PRIVATE"):
        assert secret not in text
