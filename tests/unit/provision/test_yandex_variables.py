"""The Yandex stack's input validations, run by Terraform itself.

``terraform plan`` of variables.tf alone (see tfeval.plan_variables) needs no
provider, so each case below is the real plan-time outcome of a value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.provision.tfeval import plan_variables

CLIENT_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG3VQ0nRzWZ9Q0XtZ0bW8m0qH8C3rZQyZkY6nqg6m9Yk featctl-client"
HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGYLDLWlS77wabFkbXHhAUgi39Gj8K0ZqXVZwbSvD4AZ featctl-host"


@pytest.fixture
def valid(tmp_path: Path) -> dict[str, Any]:
    """A complete, valid variable set (what featctl passes, plus [yandex] settings)."""
    private = tmp_path / "host_ed25519"
    private.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n")
    return {
        "name": "drivers",
        "ssh_public_key": CLIENT_KEY,
        "host_private_key_path": str(private),
        "host_public_key": HOST_KEY,
        "ssh_allowed_cidrs": ["203.0.113.7/32"],
    }


def _plan(values: dict[str, Any], tmp_path: Path) -> tuple[bool, str]:
    proc = plan_variables(values, tmp_path / "plan")
    return proc.returncode == 0, proc.stdout + proc.stderr


def test_valid_values_plan(valid: dict[str, Any], tmp_path: Path) -> None:
    ok, out = _plan(valid, tmp_path)
    assert ok, out


@pytest.mark.parametrize("cidr", ["10.10.0.0/24", "172.16.0.0/16", "192.168.5.0/28", "172.31.255.240/28"])
def test_subnet_cidr_accepts(cidr: str, valid: dict[str, Any], tmp_path: Path) -> None:
    ok, out = _plan({**valid, "subnet_cidr": cidr}, tmp_path)
    assert ok, out


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        ("10.0.0.0/15", "between /16 and /28"),
        ("10.0.0.0/29", "between /16 and /28"),
        ("10.0.0.0/8", "between /16 and /28"),
        ("10.10.0.1/24", "network address"),
        ("10.10.0.0", "IPv4 CIDR block"),
        ("fd00::/64", "IPv4 CIDR block"),
        ("not-a-cidr", "IPv4 CIDR block"),
        ("8.8.8.0/24", "private range"),
        ("172.32.0.0/16", "private range"),
    ],
)
def test_subnet_cidr_rejects(cidr: str, message: str, valid: dict[str, Any], tmp_path: Path) -> None:
    ok, out = _plan({**valid, "subnet_cidr": cidr}, tmp_path)
    assert not ok, f"{cidr} was accepted"
    assert "Invalid value for variable" in out, out
    assert message in " ".join(out.split()), out
