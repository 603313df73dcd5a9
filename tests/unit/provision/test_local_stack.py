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
