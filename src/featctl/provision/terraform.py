"""The Terraform adapter: every call to the ``terraform`` binary goes through here.

It wraps python-terraform and keeps that library's surprises in one place:

* ``destroy`` passes ``-force`` by default, which Terraform 1.x rejects: we pass
  ``force=IsNotFlagged`` and ``-auto-approve`` instead.
* ``apply`` only auto-approves with ``skip_plan=True``.
* a ``var`` dict becomes a temporary ``.tfvars.json`` in the system temp dir
  with default permissions: we write our own 0600 var file in the workspace.
* ``plan -detailed-exitcode`` exits 2 when there are changes; that is not a
  failure.

The stack is copied into the workspace and run there, so its state lives with
the deployment's other secrets (0600) and never in the source tree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from featctl.errors import TerraformError, UsageError
from featctl.workspace import secure_tree, write_private

VAR_FILE = "featctl.auto.tfvars.json"
#: The modules the stacks share (terraform/modules), copied beside the stack.
MODULES = "modules"


def stack_source(target: str) -> Path:
    """The directory holding the Terraform stack for ``target`` (or the shared ``modules``)."""
    packaged = resources.files("featctl") / "_stacks" / target
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parents[3] / "terraform" / target
    if checkout.is_dir():
        return checkout
    raise UsageError(f"no Terraform stack for target {target!r}")


def build_args(
    command: str,
    *,
    var_file: str | None = None,
    replace: Sequence[str] = (),
    detailed_exitcode: bool = False,
    out: str | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """Positional args and python-terraform options for ``command``.

    A pure function, so the flags featctl gives Terraform are table-tested
    without the binary.
    """
    from python_terraform import IsFlagged, IsNotFlagged

    opts: dict[str, Any] = {"no_color": IsFlagged, "input": False, "var": None}
    if command in ("apply", "destroy", "plan"):
        opts["var_file"] = var_file
        opts["lock_timeout"] = "0s"
    if command == "apply":
        opts["skip_plan"] = True  # python-terraform's name for -auto-approve
        opts["replace"] = list(replace) or None
    elif command == "destroy":
        opts["force"] = IsNotFlagged  # python-terraform would pass -force
        opts["auto_approve"] = IsFlagged
    elif command == "plan":
        opts["detailed_exitcode"] = IsFlagged if detailed_exitcode else IsNotFlagged
        opts["replace"] = list(replace) or None
        opts["out"] = out
    elif command == "init":
        opts = {"no_color": IsFlagged, "input": False, "backend": True, "reconfigure": IsNotFlagged}
    return [], opts


_ERROR_RE = re.compile(r"^[│\s]*Error:\s*(.+)$")


def summarize_error(stderr: str) -> str:
    """Terraform's first ``Error:``, with what explains it.

    For a failed provisioner that is the command's own output (``Output: ...``);
    otherwise the first detail line that is not a source reference.
    """
    lines = [ln.strip("│ ").rstrip() for ln in stderr.splitlines()]
    for i, line in enumerate(lines):
        m = _ERROR_RE.match(line)
        if not m:
            continue
        block: list[str] = []
        for ln in lines[i + 1 :]:
            if _ERROR_RE.match(ln):
                break
            block.append(ln.strip())
        text = " ".join(b for b in block if b and b not in ("╵", "╷"))
        if "Output:" in text:
            return f"{m.group(1)}: {text.split('Output:', 1)[1].strip()}"
        detail = next(
            (b for b in block if b and not re.match(r"^(with |on |\d+:|\(and )", b) and not b.startswith(("╵", "╷"))),
            "",
        )
        return f"{m.group(1)}: {detail}" if detail else m.group(1)
    tail = [ln for ln in lines if ln.strip() and "CLI configuration" not in ln]
    return tail[-1] if tail else "terraform failed"


def plan_changes(show_json: str) -> list[dict[str, Any]]:
    """Resource changes from ``terraform show -json PLAN`` (no-ops left out)."""
    try:
        data = json.loads(show_json or "{}")
    except ValueError:
        raise TerraformError("terraform show -json returned invalid JSON") from None
    changes = []
    for rc in data.get("resource_changes") or []:
        actions = list((rc.get("change") or {}).get("actions") or [])
        if actions and actions != ["no-op"] and actions != ["read"]:
            changes.append({"address": rc.get("address"), "actions": actions})
    return changes


_LOCK_HINT = "another Terraform run holds the state lock"


@dataclass
class Stack:
    """One target's Terraform stack, run inside the workspace."""

    target: str
    workdir: Path

    def prepare(self) -> None:
        """Copy (or refresh) the stack's files into the working directory, and
        the modules the stacks share beside it (``../modules``, as in the source
        tree). Files are never removed: a destroy-time provisioner of an older
        state may still name a script of an earlier version."""
        self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        _copy_tree(stack_source(self.target), self.workdir)
        modules = stack_source(MODULES)
        _copy_tree(modules, self.workdir.parent / MODULES)
        _copy_agent(self.workdir.parent / MODULES / "stores" / "agent" / "featctl_agent")

    def _tf(self) -> Any:
        from python_terraform import Terraform

        return Terraform(working_dir=str(self.workdir), terraform_bin_path=terraform_binary())

    def _run(
        self, command: str, opts: Mapping[str, Any], *, ok: Sequence[int] = (0,), args: Sequence[str] = ()
    ) -> tuple[int, str, str]:
        tf = self._tf()
        old = os.umask(0o077)  # state, backups and var files are created 0600
        try:
            if command == "apply":
                code, out, err = tf.apply(**opts)
            elif command == "destroy":
                code, out, err = tf.destroy(**opts)
            elif command == "plan":
                code, out, err = tf.plan(**opts)
            elif command == "init":
                code, out, err = tf.init(**opts)
            else:
                code, out, err = tf.cmd(command, *args, **opts)
        except FileNotFoundError:
            raise TerraformError(
                "the terraform binary was not found", hint="install Terraform >= 1.5 and put it on PATH"
            ) from None
        finally:
            os.umask(old)
            secure_tree(self.workdir)
        if code not in ok:
            message = summarize_error(err or out or "")
            if "state lock" in message.lower():
                raise TerraformError(
                    f"terraform {command} refused: {_LOCK_HINT} ({message})",
                    hint="wait for it; if none runs, `terraform force-unlock` in the workspace's terraform/ directory",
                )
            raise TerraformError(f"terraform {command} failed: {message}")
        return code, out or "", err or ""

    def write_vars(self, variables: Mapping[str, Any]) -> str:
        path = self.workdir / VAR_FILE
        write_private(path, json.dumps(dict(variables), indent=2, sort_keys=True))
        return VAR_FILE

    def init(self) -> None:
        """``terraform init`` once per working directory and version of the stack's
        Terraform files (a new module call needs it; built-in-only stacks need
        no download)."""
        marker = self.workdir / ".featctl-initialised"
        digest = self._config_digest()
        if marker.exists() and marker.read_text().strip() == digest:
            return
        _, opts = build_args("init")
        self._run("init", opts)
        write_private(marker, digest + "\n")

    def _config_digest(self) -> str:
        import hashlib

        h = hashlib.sha256()
        for tf in sorted(self.workdir.glob("*.tf")):
            h.update(tf.name.encode() + b"\0" + tf.read_bytes() + b"\0")
        return h.hexdigest()

    def apply(self, variables: Mapping[str, Any], *, replace: Sequence[str] = ()) -> None:
        _, opts = build_args("apply", var_file=self.write_vars(variables), replace=replace)
        self._run("apply", opts)

    def plan(self, variables: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The changes ``apply`` would make, read from ``terraform show -json``.

        ``plan -detailed-exitcode`` exits 2 when there are changes: not a failure.
        """
        plan_file = ".featctl.tfplan"
        _, opts = build_args("plan", var_file=self.write_vars(variables), detailed_exitcode=True, out=plan_file)
        try:
            code, _, _ = self._run("plan", opts, ok=(0, 2))
            if code == 0:
                return []
            _, out, _ = self._run("show", {"json": _flag(), "no_color": _flag()}, args=[plan_file])
        finally:
            (self.workdir / plan_file).unlink(missing_ok=True)
        return plan_changes(out)

    def destroy(self, variables: Mapping[str, Any]) -> None:
        _, opts = build_args("destroy", var_file=self.write_vars(variables))
        self._run("destroy", opts)

    def outputs(self) -> dict[str, Any]:
        _, out, _ = self._run("output", {"json": _flag(), "no_color": _flag()})
        try:
            raw = json.loads(out or "{}")
        except ValueError:
            raise TerraformError("terraform output returned invalid JSON") from None
        return {k: v.get("value") for k, v in raw.items() if not v.get("sensitive")}

    def has_resource(self, address: str) -> bool:
        """Whether the state holds ``address`` (``[module.<name>.]type.name[[i]]``)."""
        import re

        m = re.fullmatch(r"((?:module\.[\w-]+\.)*)([\w-]+)\.([\w-]+)(?:\[(\d+)\])?", address)
        if m is None:
            return False
        module = m[1].rstrip(".") or None
        try:
            resources = json.loads((self.workdir / "terraform.tfstate").read_text()).get("resources", [])
        except (OSError, ValueError):
            return False
        for r in resources:
            if (r.get("module"), r.get("mode", "managed"), r.get("type"), r.get("name")) != (module, "managed", m[2], m[3]):
                continue
            keys = [inst.get("index_key") for inst in r.get("instances", [])]
            return (m[4] is None and keys == [None]) or (m[4] is not None and int(m[4]) in keys)
        return False

    @property
    def has_state(self) -> bool:
        state = self.workdir / "terraform.tfstate"
        if not state.exists():
            return False
        try:
            return bool(json.loads(state.read_text()).get("resources"))
        except ValueError:
            return True


def _copy_tree(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    for item in src.iterdir():
        if item.name.startswith((".terraform", "terraform.tfstate")) or item.name == "README.md":
            continue
        if item.is_dir():
            shutil.copytree(item, dest / item.name, dirs_exist_ok=True)
        else:
            shutil.copy2(item, dest / item.name)


def _copy_agent(dest: Path) -> None:
    """featctl's agent package, for the store servers' supervisor
    (terraform/modules/stores runs them under its supervise.py)."""
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    for entry in resources.files("featctl.agent").iterdir():
        if entry.name.endswith(".py"):
            target = dest / entry.name
            text = entry.read_text()
            if not target.exists() or target.read_text() != text:
                write_private(target, text)


def _flag() -> Any:
    from python_terraform import IsFlagged

    return IsFlagged


def terraform_binary() -> str:
    found = shutil.which(os.environ.get("FEATCTL_TERRAFORM", "terraform"))
    if not found:
        raise TerraformError("the terraform binary was not found", hint="install Terraform >= 1.5 and put it on PATH")
    return found
