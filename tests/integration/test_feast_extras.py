"""``feast[aws]`` installs beside the pinned lock, as the host installs it
(``-r requirements.txt`` plus the extra): a dry run with uv against PyPI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from featctl import FEAST_VERSION
from tests.conftest import ROOT

pytestmark = pytest.mark.integration

LOCK = ROOT / "src" / "featctl" / "agent" / "requirements.txt"


def test_feast_aws_installs_with_the_lock(tmp_path):
    uv = Path(sys.executable).parent / "uv"
    subprocess.run([str(uv), "venv", "--quiet", "--python", sys.executable, str(tmp_path / "env")], check=True)
    res = subprocess.run(
        [
            str(uv),
            "pip",
            "install",
            "--dry-run",
            "--python",
            str(tmp_path / "env" / "bin" / "python"),
            "-r",
            str(LOCK),
            f"feast[aws]=={FEAST_VERSION}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "UV_SYSTEM_CERTS": "1", "UV_PYTHON_DOWNLOADS": "never"},
    )
    assert res.returncode == 0, res.stderr
    assert " boto3==" in res.stderr and " feast==" in res.stderr
