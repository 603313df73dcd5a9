"""Shared test helpers: run the real featctl CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# CI lays shared/ beside the clone; FEATCTL_REFERENCE_DATA points elsewhere.
REFERENCE_DATA = Path(os.environ.get("FEATCTL_REFERENCE_DATA") or ROOT.parent / "shared" / "reference-data")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def ok(self) -> Run:
        assert self.returncode == 0, f"exit {self.returncode}\nstdout:\n{self.stdout}\nstderr:\n{self.stderr}"
        return self


def featctl(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 900, stdin: str | None = None
) -> Run:
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    full_env.pop("FEATCTL_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "featctl", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        input=stdin if stdin is not None else "",
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def readme_tour() -> list[str]:
    """The featctl commands of README.md's five-minute tour, in order, as typed
    after ``.venv/bin/featctl `` (shell syntax such as ``$(date ...)`` kept)."""
    import re

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## A five-minute tour\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```console\n(.*?)```", section, re.DOTALL)
    prefix = "$ .venv/bin/featctl "
    return [line[len(prefix) :] for block in blocks for line in block.splitlines() if line.startswith(prefix)]


@pytest.fixture
def run_featctl():
    return featctl


_AGENT_COPY: Path | None = None


def agent_command(python: str | os.PathLike[str] = sys.executable) -> tuple[list[str], dict[str, str]]:
    """argv prefix and environment that run featctl's host agent the way a host
    does: the package copied alone as ``featctl_agent`` and run as a module."""
    global _AGENT_COPY
    if _AGENT_COPY is None:
        import shutil
        import tempfile

        _AGENT_COPY = Path(tempfile.mkdtemp(prefix="featctl-agent-"))
        shutil.copytree(
            ROOT / "src" / "featctl" / "agent", _AGENT_COPY / "featctl_agent", ignore=shutil.ignore_patterns("__pycache__")
        )
    env = {**os.environ, "PYTHONPATH": str(_AGENT_COPY)}
    return [str(python), "-m", "featctl_agent"], env
