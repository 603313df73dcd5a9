"""The Yandex stack's input validations, run by Terraform itself.

variables.tf needs no provider, so one ``terraform plan`` calls it once per
case below (see tfeval.check_variables): each outcome is the real plan-time
result of those values, not a reading of the condition's text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.provision.tfeval import check_variables

CLIENT_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG3VQ0nRzWZ9Q0XtZ0bW8m0qH8C3rZQyZkY6nqg6m9Yk featctl-client"
MAX_HOSTS = 9


def _public(i: int) -> str:
    return f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{i:043d} featctl-host-{i}"


def _host_keys(count: int) -> list[dict[str, str]]:
    # Paths are relative to the scratch directory, where the fixture creates them.
    return [{"private_key_path": f"keys/host_{i}", "public_key": _public(i)} for i in range(count)]


PASSWORDS = {"redis": "keys/pw_good", "postgres": "keys/pw_good"}
PASSWORD_FILES = {
    "pw_good": "Xk3-vQ9_pL2@mN7=wR4+\n",  # a trailing newline is ignored
    "pw_short": "abc123",
    "pw_slash": "abc/def+ghi=jkl",  # base64's '/' is not allowed by Yandex
}

VALID: dict[str, Any] = {
    "name": "drivers",
    "ssh_public_key": CLIENT_KEY,
    "host_keys": _host_keys(1),
    "ssh_allowed_cidrs": ["203.0.113.7/32"],
}


def _with(**overrides: Any) -> dict[str, Any]:
    return {**VALID, **overrides}


def _replace_key(count: int, index: int, **fields: str) -> list[dict[str, str]]:
    keys = _host_keys(count)
    keys[index] = {**keys[index], **fields}
    return keys


# case name -> (values, None if accepted else a fragment of the expected error)
CASES: dict[str, tuple[dict[str, Any], str | None]] = {
    "valid": (VALID, None),
    # subnet_cidr: Yandex VPC takes RFC 1918 ranges from /16 to /28.
    "subnet_24": (_with(subnet_cidr="10.10.0.0/24"), None),
    "subnet_16": (_with(subnet_cidr="172.16.0.0/16"), None),
    "subnet_28": (_with(subnet_cidr="192.168.5.0/28"), None),
    "subnet_28_high": (_with(subnet_cidr="172.31.255.240/28"), None),
    "subnet_15": (_with(subnet_cidr="10.0.0.0/15"), "between /16 and /28"),
    "subnet_29": (_with(subnet_cidr="10.0.0.0/29"), "between /16 and /28"),
    "subnet_8": (_with(subnet_cidr="10.0.0.0/8"), "between /16 and /28"),
    "subnet_host_bits": (_with(subnet_cidr="10.10.0.1/24"), "network address"),
    "subnet_no_prefix": (_with(subnet_cidr="10.10.0.0"), "IPv4 CIDR block"),
    "subnet_ipv6": (_with(subnet_cidr="fd00::/64"), "IPv4 CIDR block"),
    "subnet_garbage": (_with(subnet_cidr="not-a-cidr"), "IPv4 CIDR block"),
    "subnet_public": (_with(subnet_cidr="8.8.8.0/24"), "private range"),
    "subnet_172_32": (_with(subnet_cidr="172.32.0.0/16"), "private range"),
    # host_keys: one element per host, 1 to 9, each its own existing ed25519 key.
    "hosts_2": (_with(host_keys=_host_keys(2)), None),
    "hosts_3": (_with(host_keys=_host_keys(3), static_address_quota=3), None),
    "hosts_9": (_with(host_keys=_host_keys(MAX_HOSTS), static_address_quota=MAX_HOSTS), None),
    # Each host has its own static public address; a cloud may reserve 2 by
    # default (Yandex VPC quotas): more hosts need a raised quota, declared here.
    "hosts_3_default_quota": (_with(host_keys=_host_keys(3)), "static public IPv4 addresses"),
    "hosts_5_quota_4": (_with(host_keys=_host_keys(5), static_address_quota=4), "static public IPv4 addresses"),
    "quota_0": (_with(static_address_quota=0), "at least 1"),
    "hosts_0": (_with(host_keys=[]), "1 to 9 elements"),
    "hosts_10": (_with(host_keys=_host_keys(MAX_HOSTS + 1)), "1 to 9 elements"),
    "hosts_missing_file": (_with(host_keys=_replace_key(2, 1, private_key_path="keys/nowhere")), "existing file"),
    "hosts_rsa_key": (_with(host_keys=_replace_key(2, 1, public_key="ssh-rsa AAAAB3NzaC1yc2E host-1")), "ssh-ed25519"),
    # The same key under another comment is still the same key.
    "hosts_same_public_key": (
        _with(
            host_keys=_replace_key(3, 2, public_key=_public(0).replace("featctl-host-0", "other")),
            static_address_quota=3,
        ),
        "its own host key",
    ),
    "hosts_same_private_key": (
        _with(host_keys=_replace_key(3, 2, private_key_path="keys/host_0"), static_address_quota=3),
        "its own host key",
    ),
    # No usable default: featctl.toml must say who may reach SSH. (The default
    # is [], see test_yandex_stack; an unset input's error names no module call,
    # so the case passes [] itself.)
    "ssh_cidrs_empty": (_with(ssh_allowed_cidrs=[]), "ssh_allowed_cidrs list is empty"),
    "ssh_cidrs_bad": (_with(ssh_allowed_cidrs=["203.0.113.7"]), "IPv4 CIDR block"),
    # stores and their password files. (That every enabled store has a file is
    # a precondition on the store resources: it needs both inputs.)
    "stores_both": (_with(stores=["redis", "postgres"], store_password_files=PASSWORDS), None),
    "stores_unknown": (_with(stores=["mysql"]), 'one of "redis", "postgres", "spark"'),
    "stores_repeated": (_with(stores=["redis", "redis"], store_password_files=PASSWORDS), "must not repeat"),
    "stores_spark": (_with(stores=["spark"]), "does not create a Spark"),
    "passwords_unknown_store": (_with(store_password_files={"mysql": "keys/pw_good"}), "must be store names"),
    "passwords_missing_file": (_with(store_password_files={"redis": "keys/nowhere"}), "existing file"),
    "passwords_too_short": (_with(store_password_files={"redis": "keys/pw_short"}), "8 to 128 characters"),
    "passwords_bad_chars": (_with(store_password_files={"postgres": "keys/pw_slash"}), "8 to 128 characters"),
    "redis_version_old_style": (_with(redis_version="7.2"), "Valkey version"),
    "postgres_14": (_with(postgres_version="14"), '"15", "16", "17", "18"'),
    "postgres_18": (_with(postgres_version="18"), None),
    "postgres_user_reserved": (_with(postgres_user="admin"), "reserves"),
    "postgres_user_pg_prefix": (_with(postgres_user="pg_feast"), "pg_"),
    "postgres_database_reserved": (_with(postgres_database="template1"), "not postgres, template0 or template1"),
    # Managed PostgreSQL host classes (yandex.cloud/en/docs/managed-postgresql/concepts/instance-types):
    # b3-c1-m4 is a Valkey class, which Managed PostgreSQL does not have.
    "postgres_preset_b2_medium": (_with(postgres_resource_preset="b2.medium"), None),
    "postgres_preset_b1_medium": (_with(postgres_resource_preset="b1.medium"), None),
    "postgres_preset_s3": (_with(postgres_resource_preset="s3-c2-m8"), None),
    "postgres_preset_s2": (_with(postgres_resource_preset="s2.micro"), None),
    "postgres_preset_c4a": (_with(postgres_resource_preset="c4a-c2-m4"), None),
    "postgres_preset_valkey_class": (_with(postgres_resource_preset="b3-c1-m4"), "Managed PostgreSQL host class"),
    "postgres_preset_retired": (_with(postgres_resource_preset="b2.nano"), "Managed PostgreSQL host class"),
    "postgres_preset_garbage": (_with(postgres_resource_preset="large"), "Managed PostgreSQL host class"),
    # The application endpoint ([endpoint] in featctl.toml).
    "endpoint_on": (_with(endpoint_enabled=True), None),
    "endpoint_on_all": (
        _with(endpoint_enabled=True, endpoint_port=443, endpoint_health_port=65535, endpoint_allow=["10.20.0.0/16", "192.168.7.9/32"]),
        None,
    ),
    "endpoint_port_1": (_with(endpoint_port=1), None),
    "endpoint_port_0": (_with(endpoint_port=0), "1 to 65535"),
    "endpoint_port_65536": (_with(endpoint_port=65536), "1 to 65535"),
    "endpoint_port_fraction": (_with(endpoint_port=8443.5), "whole number"),
    "endpoint_port_ssh": (_with(endpoint_port=22), "not be 22"),
    "endpoint_health_port_0": (_with(endpoint_health_port=0), "1 to 65535"),
    "endpoint_health_port_is_endpoint_port": (_with(endpoint_port=9000, endpoint_health_port=9000), "differ from endpoint_port"),
    "endpoint_health_port_ssh": (_with(endpoint_health_port=22), "differ from endpoint_port and from 22"),
    "endpoint_allow_no_prefix": (_with(endpoint_allow=["10.20.0.7"]), "IPv4 CIDR block"),
    "endpoint_allow_ipv6": (_with(endpoint_allow=["fd00::/64"]), "IPv4 CIDR block"),
    "endpoint_allow_garbage": (_with(endpoint_allow=["10.20.0.0/16", "office"]), "IPv4 CIDR block"),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    scratch = tmp_path_factory.mktemp("variables")
    (scratch / "keys").mkdir()
    for i in range(MAX_HOSTS + 1):
        (scratch / "keys" / f"host_{i}").write_text(
            "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n"
        )
    for name, content in PASSWORD_FILES.items():
        (scratch / "keys" / name).write_text(content)
    return check_variables({name: values for name, (values, _) in CASES.items()}, scratch)


@pytest.mark.parametrize("case", [name for name, (_, error) in CASES.items() if error is None])
def test_accepted(case: str, outcomes: dict[str, list[str]]) -> None:
    assert outcomes[case] == [], f"{case}: {CASES[case][0]}"


@pytest.mark.parametrize("case", [name for name, (_, error) in CASES.items() if error is not None])
def test_rejected(case: str, outcomes: dict[str, list[str]]) -> None:
    expected = CASES[case][1]
    assert outcomes[case], f"{case} was accepted: {CASES[case][0]}"
    assert any(expected in error for error in outcomes[case]), outcomes[case]


def test_host_public_keys_in_cases_are_distinct() -> None:
    """The cases themselves must not trip the distinct-key rule by accident."""
    keys = [k["public_key"] for k in _host_keys(MAX_HOSTS + 1)]
    assert len(set(keys)) == len(keys)
    assert all(Path(k["private_key_path"]).name.startswith("host_") for k in _host_keys(2))
