"""Feast's own tools against the deployment: its web UI in a real headless
Chromium (`featctl ui`), and unmodified Feast SDK code (`featctl connect`)
whose values equal featctl's own queries row for row."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, featctl
from tests.integration.conftest import Deployed
from tests.integration.helpers import touch

pytestmark = pytest.mark.integration

FEAST_PY = ROOT / ".venv-feast" / "bin" / "python"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=15000",
]


@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    root = tmp_path_factory.mktemp("feast-tools")
    shutil.copytree(
        ROOT / "feature_repo", root / "feature_repo", ignore=shutil.ignore_patterns("*.db", "*.parquet", "__pycache__")
    )
    (root / "featctl.toml").write_text("server_workers = 1\n")
    d = Deployed(root)
    try:
        # A failed first deploy is destroyed too: nothing of it may outlive the module.
        d.first_deploy = featctl("deploy", cwd=root, timeout=1200).ok()
        yield d
    finally:
        featctl("destroy", "--yes", cwd=root, timeout=300)


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium is missing: run .ci/run or scripts/bootstrap --dev")
    return found


def dump_dom(url: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        res = subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
        )
    return res.stdout


def listen_addresses(port: int) -> set[str]:
    """The addresses something listens on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            addr, _, hexport = cols[1].rpartition(":")
            if cols[3] == "0A" and int(hexport, 16) == port:
                if len(addr) == 8:
                    found.add(socket.inet_ntoa(bytes.fromhex(addr)[::-1]))
                else:
                    found.add("::" if set(addr) == {"0"} else addr)
    return found


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_ui_in_headless_chromium(dep):
    proc = subprocess.Popen(
        [sys.executable, "-m", "featctl", "ui", "--no-browser"],
        cwd=dep.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        url = proc.stdout.readline().strip()  # the first line is the URL
        assert url.startswith("http://127.0.0.1:") and url.endswith("/p/featctl_drivers/feature-view"), url
        port = int(url.split(":")[2].split("/")[0])
        views = dump_dom(url)
        for name in ("driver_hourly_stats", "driver_quality_metrics", "driver_activity_rates_linear_combination_fv"):
            assert f"/feature-view/{name}" in views, name
        services = dump_dom(url.replace("/feature-view", "/feature-service"))
        assert "/feature-service/driver_activity_rates_linear_combination" in services
        # The UI listens on the host's Unix socket only (run/s/<its port>), never on TCP.
        host_port = dep.record()["services"]["ui"]
        assert host_port != port
        assert listen_addresses(host_port) == set()
        assert (Path(dep.record()["remote_base_dir"]) / "run" / "s" / str(host_port)).is_socket()
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    assert not port_open(port), "the local forward must close with featctl ui"
    assert "closed the forward" in proc.stderr.read()


WORKFLOW = textwrap.dedent(
    """
    # The original project's kind of workflow script, unmodified Feast SDK code.
    import json, sys
    import pandas as pd
    from feast import FeatureStore

    store = FeatureStore(repo_path=sys.argv[1])
    entity_df = pd.read_csv(sys.argv[2], parse_dates=["event_timestamp"])
    service = store.get_feature_service("driver_activity_rates_linear_combination")
    training = store.get_historical_features(entity_df=entity_df, features=service).to_df()
    online = store.get_online_features(
        features=service,
        entity_rows=[{"driver_id": d, "conv_rate_coef": 0.7, "acc_rate_coef": 0.3} for d in (1001, 1002, 1003)],
    ).to_dict()
    print(json.dumps({
        "views": sorted(v.name for v in store.list_feature_views()),
        "historical": json.loads(training.drop(columns=["event_timestamp"]).to_json(orient="records")),
        "online": online,
    }))
    """
)


def run_workflow(client: Path, entities: Path) -> dict:
    res = subprocess.run(
        [str(FEAST_PY), "-c", WORKFLOW, str(client), str(entities)], capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def entity_file(dep: Deployed, path: Path) -> Path:
    df = pd.read_parquet(dep.repo / "data" / "driver_stats.parquet")
    newest = df.event_timestamp.max()
    pd.DataFrame(
        {
            "driver_id": [1003, 1001, 1002],
            "event_timestamp": [(newest - pd.Timedelta(hours=h)).isoformat() for h in (1, 2, 3)],
            "conv_rate_coef": [0.7, 1.0, 0.2],
            "acc_rate_coef": [0.3, 0.0, 0.8],
        }
    ).to_csv(path, index=False)
    return path


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a == pytest.approx(b, rel=1e-6)
    return a == b


def check_sdk_equals_featctl(dep: Deployed, client: Path, entities: Path) -> None:
    got = run_workflow(client, entities)
    assert got["views"] == ["driver_hourly_stats", "driver_productivity_metrics", "driver_quality_metrics"]
    ours = dep.json(
        "historical", "--entities", str(entities), "--feature-service", "driver_activity_rates_linear_combination"
    )
    theirs = sorted(got["historical"], key=lambda r: [x["driver_id"] for x in ours].index(r["driver_id"]))
    assert len(theirs) == len(ours) == 3
    for mine, sdk in zip(ours, theirs):
        for col, value in sdk.items():
            assert same(mine[col], value), (col, mine[col], value)
    online = dep.json("score", "-w", "conv_rate=0.7,acc_rate=0.3", "-d", "1001,1002,1003")
    for i, row in enumerate(online):
        for col in ("driver_id", "conv_rate", "acc_rate", "linear_combination"):
            assert same(row[col], got["online"][col][i]), (col, row[col], got["online"][col][i])


def test_connect_gives_feast_sdk_the_same_values(dep, tmp_path):
    out = tmp_path / "client"
    res = featctl("connect", "--out", str(out), cwd=dep.root).ok()
    assert res.stdout.strip() == str(out.resolve())
    assert (out / "feature_store.yaml").exists()
    status = dep.json("status")["deployment"]
    assert "forwarding" in status["connect"] and status["feast_servers"]["registry"].startswith("running")
    entities = entity_file(dep, tmp_path / "entities.csv")
    check_sdk_equals_featctl(dep, out, entities)
    # A release switch moves the feature server to the other port and restarts
    # the registry and offline servers: the same client keeps working.
    touch(dep, "switch under connect")
    dep.run("deploy").ok()
    check_sdk_equals_featctl(dep, out, entities)
    forwards = json.loads((dep.workspace / "connect.json").read_text())["forwards"]
    assert "closed the forward" in featctl("connect", "--stop", cwd=dep.root).ok().stderr
    assert not any(port_open(p) for p in forwards.values())
    assert not (out / "feature_store.yaml").exists()
    assert "connect" not in dep.json("status")["deployment"]
