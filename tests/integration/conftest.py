"""Fixtures for integration tests: a real deployment on the local target
(real terraform, a real OpenSSH sshd on loopback, Feast 0.67 on the "host")."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REFERENCE_DATA, ROOT, featctl

pytestmark = pytest.mark.integration


def _require_tools() -> None:
    missing = [t for t in ("terraform",) if shutil.which(t) is None]
    if not Path("/usr/sbin/sshd").exists():
        missing.append("sshd (openssh-server)")
    if missing:
        pytest.fail(f"integration tests need {', '.join(missing)}: run .ci/run or scripts/bootstrap --dev")


def processes_under(path: Path) -> list[str]:
    out = subprocess.run(["ps", "-eww", "-o", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(path) in line]


class Deployed:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = root / "feature_repo"
        self.workspace = root / ".featctl"
        self.first_deploy: object = None

    def run(self, *args: str, **kw) -> object:
        return featctl(*args, cwd=self.root, **kw)

    def json(self, *args: str) -> object:
        res = featctl(*args, "--output", "json", cwd=self.root).ok()
        return json.loads(res.stdout)

    def status(self) -> dict:
        """``featctl status -o json``'s report; its exit code must say what the
        report says: 0 healthy, 8 (ExitCode.UNHEALTHY) otherwise."""
        res = featctl("status", "--output", "json", cwd=self.root)
        assert res.returncode in (0, 8), f"exit {res.returncode}\nstderr:\n{res.stderr}"
        doc = json.loads(res.stdout)
        served = str(doc["deployment"].get("feature_server", ""))
        healthy = served.startswith("healthy") and "repair" not in doc["deployment"]
        assert res.returncode == (0 if healthy else 8), (res.returncode, doc["deployment"])
        return doc

    def record(self) -> dict:
        return json.loads((self.workspace / "deployment.json").read_text())


def _deploy(root: Path) -> Iterator[Deployed]:
    _require_tools()
    dep = Deployed(root)
    first = featctl("deploy", cwd=root, timeout=1200)
    try:
        first.ok()
        dep.first_deploy = first
        yield dep
    finally:
        if (dep.workspace / "deployment.json").exists():
            featctl("destroy", "--yes", cwd=root, timeout=300)


@pytest.fixture(scope="session")
def deployment(tmp_path_factory) -> Iterator[Deployed]:
    """featctl's own repository with freshly generated sample data."""
    root = tmp_path_factory.mktemp("generated")
    shutil.copytree(
        ROOT / "feature_repo", root / "feature_repo", ignore=shutil.ignore_patterns("*.db", "*.parquet", "__pycache__")
    )
    yield from _deploy(root)


@pytest.fixture(scope="session")
def reference_deployment(tmp_path_factory) -> Iterator[Deployed]:
    """The original project's data files dropped into the repository."""
    if not (REFERENCE_DATA / "driver_stats.parquet").exists():
        pytest.fail(f"reference data missing at {REFERENCE_DATA}")
    root = tmp_path_factory.mktemp("reference")
    shutil.copytree(
        ROOT / "feature_repo", root / "feature_repo", ignore=shutil.ignore_patterns("*.db", "*.parquet", "__pycache__")
    )
    for name in ("driver_stats.parquet", "driver_stats_with_productivity.parquet"):
        shutil.copy(REFERENCE_DATA / name, root / "feature_repo" / "data" / name)
    (root / "featctl.toml").write_text("server_workers = 1\n")
    yield from _deploy(root)
