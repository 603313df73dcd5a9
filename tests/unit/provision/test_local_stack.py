"""The local stack as featctl runs it: copied into a workspace with the shared
modules beside it, initialised and validated by Terraform itself (built-in
only, no provider download), and packaged into the wheel the same way."""

from __future__ import annotations

import re
import subprocess
import tomllib

from featctl.provision.terraform import Stack
from tests.unit.provision.hclstack import load_dir
from tests.unit.provision.tfeval import ROOT, TF_ENV, terraform

TERRAFORM = ROOT / "terraform"


def test_every_module_a_stack_calls_is_packaged_with_the_stacks():
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"][
        "force-include"
    ]
    packaged = {src: dest for src, dest in include.items() if src.startswith("terraform/")}
    for stack in sorted(p for p in TERRAFORM.iterdir() if p.is_dir()):
        assert packaged.get(f"terraform/{stack.name}") == f"featctl/_stacks/{stack.name}", stack.name
        for block in load_dir(stack).get("module", []) if list(stack.glob("*.tf")) else []:
            for call in block.values():
                source = str(call["source"])
                # A local module is found where featctl copies it: ../modules/<name>.
                assert re.fullmatch(r"\.\./modules/[a-z0-9_-]+", source), source
                assert (stack / source).resolve().is_dir(), source


def test_the_prepared_local_stack_initialises_and_validates(tmp_path, monkeypatch):
    monkeypatch.setenv("FEATCTL_TERRAFORM", terraform())
    for key, value in TF_ENV.items():
        monkeypatch.setenv(key, value)
    stack = Stack("local", tmp_path / "ws" / "terraform" / "local")
    stack.prepare()
    assert (tmp_path / "ws" / "terraform" / "modules" / "stores" / "main.tf").is_file()
    stack.init()
    marker = stack.workdir / ".featctl-initialised"
    first = marker.read_text()
    stack.init()  # nothing changed: no second init
    assert marker.read_text() == first
    proc = subprocess.run(
        [terraform(), "validate", "-no-color"], cwd=stack.workdir, env=TF_ENV, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # A changed stack (a new module call, say) is initialised again.
    (stack.workdir / "extra.tf").write_text("# changed\n")
    stack.init()
    assert marker.read_text() != first


def test_a_dead_store_server_is_found_in_the_module_it_lives_in(tmp_path):
    """featctl replaces a dead store server by its address in the state: the
    servers moved into module.stores, so the root address names nothing."""
    import json

    stack = Stack("local", tmp_path)
    (tmp_path / "terraform.tfstate").write_text(
        json.dumps(
            {
                "resources": [
                    {"mode": "managed", "type": "terraform_data", "name": "sshd", "instances": [{"index_key": 0}]},
                    {
                        "module": "module.stores",
                        "mode": "managed",
                        "type": "terraform_data",
                        "name": "redis_server",
                        "instances": [{"index_key": 0}],
                    },
                ]
            }
        )
    )
    assert stack.has_resource("terraform_data.sshd[0]") and not stack.has_resource("terraform_data.sshd[1]")
    assert stack.has_resource("module.stores.terraform_data.redis_server[0]")
    assert not stack.has_resource("terraform_data.redis_server[0]")
    assert not stack.has_resource("module.other.terraform_data.redis_server[0]")
    assert not stack.has_resource("module.stores.terraform_data.postgres_server[0]")


def _plan_outputs(workdir, variables):
    """The stack's planned outputs for ``variables`` (a plan runs no provisioner)."""
    import json

    (workdir / "featctl.auto.tfvars.json").write_text(json.dumps(variables))
    plan = subprocess.run(
        [terraform(), "plan", "-input=false", "-lock=false", "-no-color", "-out=t.plan"],
        cwd=workdir, env=TF_ENV, capture_output=True, text=True, timeout=120,
    )
    if plan.returncode != 0:
        return None, plan.stdout + plan.stderr
    show = subprocess.run(
        [terraform(), "show", "-json", "t.plan"], cwd=workdir, env=TF_ENV, capture_output=True, text=True, timeout=60
    )
    assert show.returncode == 0, show.stderr
    return {k: v.get("value") for k, v in json.loads(show.stdout)["planned_values"]["outputs"].items()}, ""


def test_local_stores_output_has_the_yandex_contract_and_tls_is_required(tmp_path, monkeypatch):
    from tests.unit.provision.test_yandex_outputs import POSTGRES, REDIS

    monkeypatch.setenv("FEATCTL_TERRAFORM", terraform())
    stack = Stack("local", tmp_path / "ws" / "terraform" / "local")
    stack.prepare()
    stack.init()
    base = "/ws/local/host"
    variables = {
        "name": "featctl",
        "ssh_public_key": "ssh-ed25519 AAAAclient c",
        "host_keys": [{"private_key_path": "/k/h0", "public_key": "ssh-ed25519 AAAA0 h"}],
        "ssh_user": "root",
        "remote_base_dir": base,
        "host_dirs": [{"state_dir": "/ws/local/sshd", "remote_base_dir": base, "port": 40000}],
        "stores": ["redis", "postgres"],
        "store_password_files": {"redis": "/ws/secrets/redis.password", "postgres": "/ws/secrets/postgres.password"},
        "store_dirs": {"redis": "/ws/local/redis", "postgres": "/ws/local/postgres"},
        "store_ports": {"redis": 40001, "postgres": 40002},
        "tls": {"ca_cert": "/ws/tls/ca.crt", "server_cert": "/ws/tls/server.crt", "server_key": "/ws/tls/server.key",
                "digest": "d1"},
    }
    outputs, err = _plan_outputs(stack.workdir, variables)
    assert outputs is not None, err
    stores = outputs["stores"]
    ca_file = f"{base}/tls/featctl-ca.crt"
    assert set(stores["redis"]) == set(REDIS) and set(stores["postgres"]) == set(POSTGRES)
    assert stores["redis"] == {"host": "127.0.0.1", "port": 40001, "tls": True, "ca_file": ca_file}
    assert stores["postgres"]["sslmode"] == "verify-full" and stores["postgres"]["ca_file"] == ca_file
    # The servers serve TLS only: without the CA and certificate the plan stops.
    outputs, err = _plan_outputs(stack.workdir, {k: v for k, v in variables.items() if k != "tls"})
    assert outputs is None and "serve TLS only" in err, err
