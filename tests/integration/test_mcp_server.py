"""Feast's MCP feature server (``feature_server: type: mcp``, as
examples/agent_feature_store configures it): deploy installs the extra it
needs (``feast[mcp]``, resolved with the lock), and the serving feature server
answers MCP on /mcp beside its usual endpoints, whose values stay right."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import Deployed, _deploy
from tests.integration.expected import latest, load

pytestmark = pytest.mark.integration

MCP = "feature_server:\n  type: mcp\n  enabled: true\n  mcp_enabled: true\n  mcp_server_name: featctl-test\n  mcp_transport: http\n"


@pytest.fixture(scope="module")
def mcp(tmp_path_factory) -> Iterator[Deployed]:
    root = tmp_path_factory.mktemp("mcp")
    shutil.copytree(
        ROOT / "feature_repo", root / "feature_repo", ignore=shutil.ignore_patterns("*.db", "*.parquet", "__pycache__")
    )
    cfg = root / "feature_repo" / "feature_store.yaml"
    cfg.write_text(cfg.read_text() + MCP)
    yield from _deploy(root)


def _socket(dep: Deployed) -> str:
    rec = dep.record()
    return str(Path(rec["remote_base_dir"]) / "run" / "s" / str(rec["server_port"]))


def test_deploy_installs_the_mcp_extra_and_the_server_answers_mcp(mcp: Deployed) -> None:
    assert "extras mcp" in mcp.first_deploy.stderr, mcp.first_deploy.stderr[-2000:]
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    res = subprocess.run(
        ["curl", "-s", "--max-time", "20", "--unix-socket", _socket(mcp), "-o", "-", "-w", "\n%{http_code}",
         "-H", "Content-Type: application/json", "-H", "Accept: application/json, text/event-stream",
         "--data-binary", json.dumps(init), "http://featctl/mcp"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    body, _, code = res.stdout.rpartition("\n")
    assert code not in ("404", "000", ""), (code, body, res.stderr)
    assert "featctl-test" in body, body  # the MCP server's own name, from its initialize answer


def test_the_usual_endpoints_still_serve_right_values(mcp: Deployed) -> None:
    rows = mcp.json("score", "-w", "conv_rate=0.7,acc_rate=0.3", "-d", "1001,1002")
    data = load(mcp.repo / "data" / "driver_stats.parquet")
    for row in rows:
        q = latest(data, row["driver_id"])
        assert row["linear_combination"] == pytest.approx(0.7 * float(q.conv_rate) + 0.3 * float(q.acc_rate), rel=1e-6)


def test_an_unknown_feature_server_type_is_one_line_at_plan(tmp_path: Path) -> None:
    from tests.conftest import featctl

    shutil.copytree(
        ROOT / "feature_repo",
        tmp_path / "feature_repo",
        ignore=shutil.ignore_patterns("*.db", "*.parquet", "__pycache__"),
    )
    cfg = tmp_path / "feature_repo" / "feature_store.yaml"
    cfg.write_text(cfg.read_text() + "feature_server:\n  type: lambda\n")
    res = featctl("plan", cwd=tmp_path, timeout=300)
    assert res.returncode == 2 and "feature_server type 'lambda'" in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not (tmp_path / ".featctl" / "deployment.json").exists()
