"""Evaluate parts of the Yandex stack with Terraform itself, offline.

The stack's provider cannot be installed here, but Terraform's built-in
functions need none: ``terraform console`` in an empty scratch directory
renders the templates with templatefile(), and ``terraform plan`` of
variables.tf alone runs every variable validation. Neither needs
``terraform init`` or network. Values for the console travel base64-encoded
both ways, so no HCL or console quoting can change them.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
YANDEX_DIR = ROOT / "terraform" / "yandex"
TEMPLATE = YANDEX_DIR / "cloud-init.yaml.tftpl"

# No update check against checkpoint-api.hashicorp.com: the tests run offline.
TF_ENV = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}


def terraform() -> str:
    exe = shutil.which("terraform")
    if exe is None:
        pytest.skip("terraform not on PATH")
    return exe


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def console(expression: str, scratch: Path) -> str:
    """Evaluate ``expression`` (which must yield a string) in an empty module."""
    scratch.mkdir(parents=True, exist_ok=True)
    assert not any(scratch.glob("*.tf")), "the scratch directory must declare nothing (no providers)"
    proc = subprocess.run(
        [terraform(), "console"],
        input=f"base64encode({expression})\n",
        cwd=scratch,
        env=TF_ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"terraform console failed:\n{proc.stdout}{proc.stderr}"
    printed = proc.stdout.strip()
    assert printed.startswith('"') and printed.endswith('"'), printed
    return base64.b64decode(printed[1:-1]).decode()


def render_template(template: Path, values: Mapping[str, str], scratch: Path) -> str:
    """templatefile(template, values) exactly as Terraform renders it."""
    args = ", ".join(f'{name} = base64decode("{_b64(value)}")' for name, value in sorted(values.items()))
    return console(f'templatefile(base64decode("{_b64(str(template))}"), {{ {args} }})', scratch)


def plan_variables(values: Mapping[str, Any], scratch: Path) -> subprocess.CompletedProcess[str]:
    """``terraform plan`` of the stack's variables.tf alone, with these values.

    variables.tf uses only built-in functions, so this runs every validation
    block for real, offline and without ``terraform init``.
    """
    scratch.mkdir(parents=True, exist_ok=True)
    shutil.copy(YANDEX_DIR / "variables.tf", scratch / "variables.tf")
    (scratch / "values.tfvars.json").write_text(json.dumps(values), encoding="utf-8")
    return subprocess.run(
        [terraform(), "plan", "-input=false", "-no-color", "-lock=false", "-var-file=values.tfvars.json"],
        cwd=scratch,
        env=TF_ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
