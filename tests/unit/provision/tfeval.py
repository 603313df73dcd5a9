"""Evaluate parts of the Yandex stack with Terraform itself, offline.

The stack's provider cannot be installed here, but Terraform's built-in
functions need none: ``terraform console`` in an empty scratch directory
renders the templates with templatefile(), and ``terraform plan`` of
variables.tf alone runs every variable validation. Neither needs
``terraform init`` or network. Values for the console travel base64-encoded
both ways, so no HCL or console quoting can change them.

The stack's own expressions (locals, outputs, what a dynamic block generates)
are evaluated the same way: ``inline`` puts the stack's locals in place and
replaces each resource or variable reference by a literal standing in for it
(see test_yandex_outputs.py), and the console evaluates the result.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.unit.provision.hclstack import BLOCK, parse_file

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


def literal(value: Any) -> str:
    """Any JSON value as an HCL expression that yields it exactly (strings included)."""
    if isinstance(value, str):
        return f'base64decode("{_b64(value)}")'
    return f'jsondecode(base64decode("{_b64(json.dumps(value))}"))'


def render_templates(template: Path, renderings: Sequence[Mapping[str, Any]], scratch: Path) -> list[str]:
    """templatefile(template, values) for each set of values, exactly as Terraform renders it."""
    calls = []
    for values in renderings:
        args = ", ".join(f"{name} = {literal(value)}" for name, value in sorted(values.items()))
        calls.append(f'templatefile(base64decode("{_b64(str(template))}"), {{ {args} }})')
    rendered = json.loads(console(f"jsonencode([{', '.join(calls)}])", scratch))
    assert isinstance(rendered, list) and all(isinstance(r, str) for r in rendered)
    return rendered


def render_template(template: Path, values: Mapping[str, Any], scratch: Path) -> str:
    [rendered] = render_templates(template, [values], scratch)
    return rendered


def evaluate(expressions: list[str], scratch: Path) -> list[Any]:
    """The values of HCL expressions (with no references left), in one console call."""
    return json.loads(console(f"jsonencode([{', '.join(f'({e})' for e in expressions)}])", scratch))


def raw_blocks(directory: Path, kind: str) -> dict[str, Any]:
    """name -> python-hcl2's raw value for the named blocks of one kind ("locals", "output")."""
    merged: dict[str, Any] = {}
    for tf in sorted(directory.glob("*.tf")):
        for block in parse_file(tf).get(kind, []):
            for name, value in block.items():
                if not name.startswith("__"):
                    merged[name.strip('"')] = value
    return merged


def hcl_expr(raw: Any) -> str:
    """python-hcl2's value back to HCL expression text."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (int, float)):
        return str(raw)
    if raw is None:
        return "null"
    if isinstance(raw, list):
        return "[" + ", ".join(hcl_expr(v) for v in raw) + "]"
    if isinstance(raw, dict):
        return "{" + ", ".join(f"{k} = {hcl_expr(v)}" for k, v in raw.items() if not k.startswith("__")) + "}"
    assert isinstance(raw, str), raw
    if raw.startswith("${") and raw.endswith("}") and not raw.startswith('"'):
        return raw[2:-1]
    return raw  # a quoted string or template, already HCL


def _replace(pattern: str, text: str, expr: str) -> str:
    """re.sub with ``text`` taken as is (no backslash or group escapes)."""
    return re.sub(pattern, lambda _: text, expr)


def inline(expr: str, bindings: Mapping[str, str], local_values: Mapping[str, Any]) -> str:
    """``expr`` with every reference replaced: a reference in ``bindings`` by its
    literal (a bound ``local.X`` too), any other ``local.X`` by that local's own
    expression, until none is left; an unbound reference fails the test."""
    for _ in range(10):
        before = expr
        for ref in sorted(bindings, key=len, reverse=True):
            expr = _replace(rf"(?<![\w.]){re.escape(ref)}\b", f"({bindings[ref]})", expr)
        expr = re.sub(
            r"(?<![\w.])local\.([A-Za-z_]\w*)",
            lambda m: f"({hcl_expr(local_values[m.group(1)])})",
            expr,
        )
        if expr == before:
            break
    unresolved = re.findall(r"(?<![\w.\"])(?:local|var|yandex_\w+|terraform_data|data)\.\w+", expr)
    assert not unresolved, f"no stand-in for {sorted(set(unresolved))} in {expr}"
    return expr


def dynamic_content(body: Mapping[str, Any], label: str) -> list[str]:
    """For each `dynamic "<label>"` block of a resource body (python-hcl2's raw
    parse), an HCL expression of the blocks it generates: a list of objects, one
    per element of its for_each, with the content's arguments evaluated for it."""
    found = []
    for item in body.get("dynamic", []):
        for key, dyn in item.items():
            if key.strip('"') != label:
                continue
            iterator = hcl_expr(dyn.get("iterator", label))
            [content] = dyn["content"]
            fields = []
            for name, value in content.items():
                if name == BLOCK or name.startswith("__"):
                    continue
                value_expr = re.sub(rf"(?<![\w.]){re.escape(iterator)}\.value\b", "each_value__", hcl_expr(value))
                value_expr = re.sub(rf"(?<![\w.]){re.escape(iterator)}\.key\b", "each_key__", value_expr)
                fields.append(f"{name} = ({value_expr})")
            found.append(f"[for each_key__, each_value__ in ({hcl_expr(dyn['for_each'])}) : {{ {', '.join(fields)} }}]")
    return found


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


def raw_resource(rtype: str, name: str) -> dict[str, Any]:
    """python-hcl2's raw body of one resource of the Yandex stack."""
    found = [
        by_name[f'"{name}"']
        for tf in sorted(YANDEX_DIR.glob("*.tf"))
        for block in parse_file(tf).get("resource", [])
        for typ, by_name in block.items()
        if typ == f'"{rtype}"' and f'"{name}"' in by_name
    ]
    assert len(found) == 1, f"expected one {rtype}.{name}, got {len(found)}"
    return found[0]


def user_data(rendered: list[str], endpoint_enabled: bool, scratch: Path) -> list[str]:
    """The stack's local.user_data for the given renderings of the template (one
    per host), evaluated by Terraform from main.tf's own expression."""
    local_values = raw_blocks(YANDEX_DIR, "locals")
    bindings = {
        "local.rendered_user_data": literal(rendered),
        "var.endpoint_enabled": literal(endpoint_enabled),
    }
    [value] = evaluate([inline(hcl_expr(local_values["user_data"]), bindings, local_values)], scratch)
    assert isinstance(value, list) and all(isinstance(doc, str) for doc in value), value
    return value
