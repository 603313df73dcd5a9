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


def _run(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, input=stdin, cwd=cwd, env=TF_ENV, capture_output=True, text=True, timeout=60)


def console(expression: str, scratch: Path) -> str:
    """Evaluate ``expression`` (which must yield a string) in an empty module."""
    scratch.mkdir(parents=True, exist_ok=True)
    assert not any(scratch.glob("*.tf")), "the scratch directory must declare nothing (no providers)"
    proc = _run([terraform(), "console"], scratch, stdin=f"base64encode({expression})\n")
    assert proc.returncode == 0, f"terraform console failed:\n{proc.stdout}{proc.stderr}"
    printed = proc.stdout.strip()
    assert printed.startswith('"') and printed.endswith('"'), printed
    return base64.b64decode(printed[1:-1]).decode()


def render_templates(template: Path, renderings: list[Mapping[str, str]], scratch: Path) -> list[str]:
    """templatefile(template, values) for each set of values, exactly as Terraform renders it."""
    calls = []
    for values in renderings:
        args = ", ".join(f'{name} = base64decode("{_b64(value)}")' for name, value in sorted(values.items()))
        calls.append(f'templatefile(base64decode("{_b64(str(template))}"), {{ {args} }})')
    rendered = json.loads(console(f"jsonencode([{', '.join(calls)}])", scratch))
    assert isinstance(rendered, list) and all(isinstance(r, str) for r in rendered)
    return rendered


def render_template(template: Path, values: Mapping[str, str], scratch: Path) -> str:
    [rendered] = render_templates(template, [values], scratch)
    return rendered


#: Stack files that need no provider (built-in Terraform only): variables.tf
#: and the plan-time quota check.
PROVIDERLESS_FILES = ("variables.tf", "quotas.tf")


def check_variables(cases: Mapping[str, Mapping[str, Any]], scratch: Path) -> dict[str, list[str]]:
    """Run the stack's variable validations and its plan-time quota check for
    every case: one ``terraform plan`` of all cases, then one of the cases whose
    variables passed (Terraform plans no resource, so checks no precondition,
    once a variable is invalid).

    variables.tf and quotas.tf use only built-in Terraform, so they form a module
    of their own that needs no provider: the scratch root module calls a copy of
    it per case (a precondition's error names only its file, so each case has
    its own). Relative paths in the values are relative to ``scratch``. Returns,
    for each case, the errors (summary and detail) Terraform reported for it;
    [] means accepted.
    """
    for name in cases:
        module = scratch / "cases" / name
        module.mkdir(parents=True, exist_ok=True)
        for file in PROVIDERLESS_FILES:
            shutil.copy(YANDEX_DIR / file, module / file)
    errors = _plan_cases(cases, scratch)
    valid = {name: values for name, values in cases.items() if not errors[name]}
    if valid:
        errors.update(_plan_cases(valid, scratch))
    return errors


def _plan_cases(cases: Mapping[str, Mapping[str, Any]], scratch: Path) -> dict[str, list[str]]:
    calls = {name: {"source": f"./cases/{name}", **values} for name, values in cases.items()}
    (scratch / "main.tf.json").write_text(json.dumps({"module": calls}), encoding="utf-8")
    init = _run([terraform(), "init", "-input=false", "-no-color", "-backend=false"], scratch)
    assert init.returncode == 0, f"terraform init (local modules only) failed:\n{init.stdout}{init.stderr}"
    plan = _run([terraform(), "plan", "-json", "-input=false", "-lock=false"], scratch)
    errors: dict[str, list[str]] = {name: [] for name in cases}
    for line in plan.stdout.splitlines():
        message = json.loads(line)
        diag = message.get("diagnostic") if message.get("type") == "diagnostic" else None
        if not diag or diag["severity"] != "error":
            continue
        # A validation names the module call; a precondition only its file (cases/<name>/...).
        context = (diag.get("snippet") or {}).get("context") or ""
        filename = (diag.get("range") or {}).get("filename") or ""
        if context.startswith("module."):
            name = context.removeprefix("module.")
        else:
            name = Path(filename).parent.name if Path(filename).parent.parent.name == "cases" else context
        assert name in errors, f"an error outside the cases: {diag}"
        errors[name].append(" ".join(f"{diag['summary']}: {diag['detail']}".split()))
    assert (plan.returncode == 0) == (not any(errors.values())), plan.stdout + plan.stderr
    return errors
