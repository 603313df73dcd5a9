"""The Yandex VM's user-data, rendered by Terraform and checked by cloud-init.

The template is rendered with Terraform's templatefile() (no provider needed,
see tfeval.py) from realistic values, including a real multi-line OpenSSH
private key, and then validated by the validator of the cloud-init package
itself (``cloud-init schema --config-file``). Under CI the validator must be
installed (Debian: ``apt-get install --no-install-recommends cloud-init``);
elsewhere the test is skipped without it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.unit.provision.tfeval import TEMPLATE, render_template

SSH_USER = "featctl"
REMOTE_BASE_DIR = "/opt/featctl"
CA_URL = "https://storage.yandexcloud.net/cloud-certs/CA.pem"
CLIENT_PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG3VQ0nRzWZ9Q0XtZ0bW8m0qH8C3rZQyZkY6nqg6m9Yk featctl-client"


def _host_key() -> tuple[str, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()
    return private, f"{public} featctl-host"


def template_values(private_key: str, public_key: str, **overrides: str) -> dict[str, str]:
    """What main.tf passes to templatefile() (test_yandex_stack checks the names)."""
    values = {
        "ssh_user": SSH_USER,
        "ssh_public_key": CLIENT_PUBLIC_KEY,
        "host_private_key": private_key,  # file() content: multi-line, trailing newline
        "host_public_key": public_key,
        "remote_base_dir": REMOTE_BASE_DIR,
        "ca_url": CA_URL,
        "ca_dir": f"{overrides.get('remote_base_dir', REMOTE_BASE_DIR)}/tls",
        "ca_file": f"{overrides.get('remote_base_dir', REMOTE_BASE_DIR)}/tls/YandexInternalRootCA.crt",
    }
    values.update(overrides)
    return values


@pytest.fixture(scope="module")
def host_key() -> tuple[str, str]:
    return _host_key()


@pytest.fixture(scope="module")
def rendered(host_key: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    private, public = host_key
    return render_template(TEMPLATE, template_values(private, public), tmp_path_factory.mktemp("tf"))


def _cloud_init() -> str:
    exe = shutil.which("cloud-init")
    if exe is None:
        hint = "install it: apt-get install -y --no-install-recommends cloud-init"
        if os.environ.get("CI") == "true":
            pytest.fail(f"cloud-init's schema validator is required under CI; {hint}")
        pytest.skip(f"cloud-init not installed ({hint})")
    return exe


def _validate(user_data: str, where: Path) -> subprocess.CompletedProcess[str]:
    path = where / "user-data.yaml"
    path.write_text(user_data, encoding="utf-8")
    return subprocess.run(
        [_cloud_init(), "schema", "--config-file", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_rendered_user_data_passes_cloud_init_schema(rendered: str, tmp_path: Path) -> None:
    proc = _validate(rendered, tmp_path)
    assert proc.returncode == 0, f"cloud-init rejects the rendered user-data:\n{proc.stdout}{proc.stderr}"
    assert "Valid cloud-config" in proc.stdout, proc.stdout


def test_validator_rejects_what_broke_cloud_init(tmp_path: Path) -> None:
    """The validator used above does catch the defect issue 11 fixed."""
    proc = _validate("#cloud-config\nssh_deletekeys: true\nssh_genkeytypes: []\n", tmp_path)
    assert proc.returncode != 0
    assert "ssh_genkeytypes" in proc.stdout + proc.stderr


def test_rendered_values_survive_yaml(rendered: str, host_key: tuple[str, str]) -> None:
    private, public = host_key
    assert rendered.startswith("#cloud-config\n")
    doc = yaml.safe_load(rendered)
    # The multi-line private key arrives byte for byte (jsonencode quoting).
    assert private.count("\n") > 3
    assert doc["ssh_keys"] == {"ed25519_private": private, "ed25519_public": public}
    assert doc["ssh_deletekeys"] is True
    assert "ssh_genkeytypes" not in doc, "with ssh_keys given it has no effect; [] is invalid"
    [user] = doc["users"]
    assert user["name"] == SSH_USER
    assert user["ssh_authorized_keys"] == [CLIENT_PUBLIC_KEY]
    assert user["lock_passwd"] is True
    assert doc["disable_root"] is True and doc["ssh_pwauth"] is False
    assert ["install", "-d", "-m", "0755", REMOTE_BASE_DIR] in doc["runcmd"]
    assert ["chown", f"{SSH_USER}:", REMOTE_BASE_DIR] in doc["runcmd"]
    # Yandex's CA certificate, for TLS to the managed stores, fetched after the
    # base directory exists (runcmd runs in order, after packages).
    ca_file = f"{REMOTE_BASE_DIR}/tls/YandexInternalRootCA.crt"
    [fetch] = [cmd for cmd in doc["runcmd"] if cmd[0] == "curl"]
    assert fetch[-2:] == [ca_file, CA_URL] and "--fail" in fetch, fetch
    assert doc["runcmd"].index(fetch) > doc["runcmd"].index(["install", "-d", "-m", "0755", f"{REMOTE_BASE_DIR}/tls"])
    assert ["chmod", "0644", ca_file] in doc["runcmd"]
    assert "curl" in doc["packages"]


def test_unusual_but_valid_values_stay_valid(host_key: tuple[str, str], tmp_path: Path) -> None:
    private, public = host_key
    values = template_values(private, public, ssh_user="feast_ops-1", remote_base_dir="/srv/feat.ctl/base-dir")
    user_data = render_template(TEMPLATE, values, tmp_path / "tf")
    doc = yaml.safe_load(user_data)
    assert doc["users"][0]["name"] == "feast_ops-1"
    assert ["chown", "feast_ops-1:", "/srv/feat.ctl/base-dir"] in doc["runcmd"]
    proc = _validate(user_data, tmp_path)
    assert proc.returncode == 0, f"{proc.stdout}{proc.stderr}"
