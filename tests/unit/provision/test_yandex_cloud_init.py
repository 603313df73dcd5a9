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

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.unit.provision.tfeval import TEMPLATE, render_templates, user_data

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


UNUSUAL = {"ssh_user": "feast_ops-1", "remote_base_dir": "/srv/feat.ctl/base-dir"}
BROKEN = "#cloud-config\nssh_deletekeys: true\nssh_genkeytypes: []\n"


@pytest.fixture(scope="module")
def renderings(host_key: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The default rendering and one with unusual but valid values (one terraform
    console run), and both as the stack sends them with the endpoint enabled
    (main.tf's user_data: the same document plus HAProxy, encoded again)."""
    private, public = host_key
    values = [template_values(private, public), template_values(private, public, **UNUSUAL)]
    default, unusual = render_templates(TEMPLATE, values, tmp_path_factory.mktemp("tf"))
    endpoint, endpoint_unusual = user_data([default, unusual], True, tmp_path_factory.mktemp("endpoint"))
    return {"default": default, "unusual": unusual, "endpoint": endpoint, "endpoint_unusual": endpoint_unusual}


@pytest.fixture(scope="module")
def rendered(renderings: dict[str, str]) -> str:
    return renderings["default"]


def _cloud_init() -> str:
    exe = shutil.which("cloud-init")
    if exe is None:
        hint = "install it: apt-get install -y --no-install-recommends cloud-init"
        if os.environ.get("CI") == "true":
            pytest.fail(f"cloud-init's schema validator is required under CI; {hint}")
        pytest.skip(f"cloud-init not installed ({hint})")
    return exe


@pytest.fixture(scope="module")
def verdicts(renderings: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    """``cloud-init schema --config-file`` on each document, run side by side: (exit code, output)."""
    exe = _cloud_init()
    where = tmp_path_factory.mktemp("cloud-init")
    running = {}
    for name, text in {**renderings, "broken": BROKEN}.items():
        path = where / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        running[name] = subprocess.Popen(
            [exe, "schema", "--config-file", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    verdicts = {}
    for name, proc in running.items():
        out, _ = proc.communicate(timeout=60)
        verdicts[name] = (proc.returncode, out)
    return verdicts


def test_rendered_user_data_passes_cloud_init_schema(verdicts: dict[str, tuple[int, str]]) -> None:
    code, out = verdicts["default"]
    assert code == 0, f"cloud-init rejects the rendered user-data:\n{out}"
    assert "Valid cloud-config" in out, out


def test_validator_rejects_what_broke_cloud_init(verdicts: dict[str, tuple[int, str]]) -> None:
    """The validator used above does catch the defect issue 11 fixed."""
    code, out = verdicts["broken"]
    assert code != 0
    assert "ssh_genkeytypes" in out


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


@pytest.mark.parametrize("name", ["endpoint", "endpoint_unusual"])
def test_user_data_with_the_endpoint_passes_cloud_init_schema(
    name: str, renderings: dict[str, str], verdicts: dict[str, tuple[int, str]]
) -> None:
    code, out = verdicts[name]
    assert code == 0, f"cloud-init rejects the endpoint's user-data:\n{out}"
    assert "Valid cloud-config" in out, out
    doc = yaml.safe_load(renderings[name])
    assert "haproxy" in doc["packages"]
    assert doc["runcmd"][-1] == ["systemctl", "disable", "--now", "haproxy"]


def test_endpoint_keeps_unusual_values_as_they_were(renderings: dict[str, str]) -> None:
    """Encoded again as YAML, nothing changes type or text (a user "feast_ops-1",
    mode "0755" stays a string, the key stays byte for byte)."""
    for base, with_endpoint in (("default", "endpoint"), ("unusual", "endpoint_unusual")):
        before, after = yaml.safe_load(renderings[base]), yaml.safe_load(renderings[with_endpoint])
        assert after["runcmd"][:-1] == before["runcmd"]
        assert after["packages"][:-1] == before["packages"]
        assert {k: v for k, v in after.items() if k not in ("runcmd", "packages")} == {
            k: v for k, v in before.items() if k not in ("runcmd", "packages")
        }


def test_unusual_but_valid_values_stay_valid(renderings: dict[str, str], verdicts: dict[str, tuple[int, str]]) -> None:
    doc = yaml.safe_load(renderings["unusual"])
    assert doc["users"][0]["name"] == "feast_ops-1"
    assert ["chown", "feast_ops-1:", "/srv/feat.ctl/base-dir"] in doc["runcmd"]
    code, out = verdicts["unusual"]
    assert code == 0, out
