"""Helpers the integration tests share: drive a deployment and look at its host."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tests.conftest import agent_command
from tests.integration.conftest import Deployed

AGENT, AGENT_ENV = agent_command()


def touch(d: Deployed, tag: str) -> None:
    """Change the repository so that the next deploy builds a release."""
    with (d.repo / "features.py").open("a") as fh:
        fh.write(f"\n# {tag} {time.time()}\n")


def score(d: Deployed, driver: int = 1001) -> float:
    rows = d.json("score", "-w", "conv_rate=0.5,acc_rate=0.5", "-d", str(driver))
    assert rows[0]["linear_combination"] is not None
    return rows[0]["linear_combination"]


def host_state(d: Deployed) -> dict:
    base = d.record()["remote_base_dir"]
    out = subprocess.run([*AGENT, "state", "--base", base], capture_output=True, text=True, env=AGENT_ENV)
    return json.loads(out.stdout)


def running_servers(d: Deployed) -> list[str]:
    return [r["id"] for r in host_state(d)["releases"] if r["server_pid"]]


def last_line(res) -> str:
    return res.stderr.strip().splitlines()[-1]


def start_deploy(d: Deployed) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "featctl", "deploy", "-v"],
        cwd=d.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for(proc: subprocess.Popen, marker: str, seen: list[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            return
        assert time.monotonic() < deadline, f"no {marker!r} in {''.join(seen)}"
    raise AssertionError(f"deploy ended before {marker!r}: {''.join(seen)}")
