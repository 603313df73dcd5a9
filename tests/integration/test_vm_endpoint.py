"""The application endpoint on the vm target, as it runs in the cloud: two
systemd guests on the deployment's own network (its bridge), each with its own
HAProxy (TLS, tokens, paths, limits) in front of its own Feast feature server,
and featctl's layer-4 balancer on this machine in front of the guests, playing
the cloud's network load balancer on [endpoint] listen. The application is a
network namespace joined to this machine by a veth pair (198.18.9.0/30).
Values are the original project's data, compared with pandas.

One deployment for the module; the fault tests restore what they break.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REFERENCE_DATA, ROOT, featctl
from tests.integration import intruder
from tests.integration.appnet import AppNet, app_network
from tests.integration.conftest import Deployed
from tests.integration.expected import latest, load
from tests.integration.test_endpoint import DRIVERS, TIMEOUT, Endpoint, _body, rows_of, sdk_read
from tests.integration.vmnet import on_bridge

pytestmark = pytest.mark.integration

PORT = 8443


@pytest.fixture(scope="module")
def net() -> Iterator[AppNet]:
    with app_network("fctl-vmep", 9) as n:
        yield n


@pytest.fixture(scope="module")
def ep(tmp_path_factory, net: AppNet) -> Iterator[Endpoint]:
    from featctl.provision.vm import unavailable

    why = unavailable()
    if why is not None:
        pytest.fail(f"the vm target cannot run here: it {why}")
    root = tmp_path_factory.mktemp("vmep")
    shutil.copytree(
        ROOT / "feature_repo", root / "feature_repo", ignore=shutil.ignore_patterns("*.db", "*.parquet", "__pycache__")
    )
    for name in ("driver_stats.parquet", "driver_stats_with_productivity.parquet"):
        shutil.copy(REFERENCE_DATA / name, root / "feature_repo" / "data" / name)
    (root / "featctl.toml").write_text(
        'target = "vm"\nserver_workers = 1\nstores = ["redis", "postgres"]\nhosts = 2\n\n'
        f'[endpoint]\nlisten = "{net.here}"\nport = {PORT}\nallow = ["{net.subnet}"]\ntimeout = {TIMEOUT}\n'
    )
    dep = Deployed(root)
    dep.first_deploy = featctl("deploy", cwd=root, timeout=1500)
    try:
        dep.first_deploy.ok()
        yield Endpoint(dep, net, PORT)
    finally:
        if (dep.workspace / "deployment.json").exists():
            featctl("destroy", "--yes", cwd=root, timeout=600).ok()
        # destroy leaves nothing of the endpoint: no HAProxy here, no files, nothing listening.
        assert not (dep.workspace / "endpoint").exists()
        assert not [p for p in intruder.processes_of([root]) if "haproxy" in Path(f"/proc/{p}/cmdline").read_text()]


def guest(dep: Deployed, index: int, command: str) -> str:
    """``command`` on guest ``index`` over SSH, as featctl does (its key, the pinned host keys only)."""
    rec = dep.record()
    view = rec if index == 0 else {**rec, **rec["hosts"][index]}
    proc = subprocess.run(
        ["ssh", "-i", str(dep.workspace / "keys" / "client_ed25519"),
         "-o", f"UserKnownHostsFile={dep.workspace / 'known_hosts'}", "-o", "StrictHostKeyChecking=yes",
         "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-p", str(view["port"]), f"{view['user']}@{view['host']}",
         command],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, f"{command}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc.stdout


def signal_server(dep: Deployed, index: int, sig: str) -> None:
    """``sig`` to every process of guest ``index``'s serving feature server unit."""
    units = [u for u in guest(dep, index, "ls /etc/systemd/system").split() if "-server-" in u]
    assert len(units) == 1, units
    guest(dep, index, f"sudo -n systemctl kill -s {sig} {units[0]} || systemctl kill -s {sig} {units[0]}")


def states(ep: Endpoint) -> dict[str, str]:
    return {b["name"]: b["state"] for b in ep.dep.json("endpoint")["backends"]}


def wait_states(ep: Endpoint, want: dict[str, str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (got := states(ep)) != want:
        assert time.monotonic() < deadline, f"backends {got}, wanted {want}"
        time.sleep(0.5)


def _failures(results: list[dict]) -> list[dict]:
    return [r for r in results if r["status"] != 200]


def test_deploy_brings_up_an_haproxy_on_every_guest_and_the_balancer_here(ep: Endpoint) -> None:
    out = ep.dep.first_deploy.stdout + ep.dep.first_deploy.stderr
    assert ep.url in out
    info = ep.dep.json("endpoint")
    assert info["url"] == ep.url and info["ca_file"].endswith(".pem")
    rec = ep.dep.record()
    guests = [rec["host"], rec["hosts"][1]["host"]]
    assert [b["address"] for b in info["backends"]] == [f"{g}:{PORT}" for g in guests]
    assert states(ep) == {"h0": "up", "h1": "up"}
    for i in (0, 1):
        listening = guest(ep.dep, i, "ss -Hltn")
        assert f"{guests[i]}:{PORT} " in listening, listening  # the guest's own HAProxy, on its own address
        files = guest(ep.dep, i, f"stat -c '%a %n' {rec['remote_base_dir']}/run/endpoint "
                                 f"{rec['remote_base_dir']}/run/endpoint/edge.pem "
                                 f"{rec['remote_base_dir']}/run/endpoint/tokens.map")  # fmt: skip
        assert [line.split()[0] for line in files.splitlines()] == ["700", "600", "600"], files


def test_values_from_the_application_host_equal_pandas_on_both_guests(ep: Endpoint) -> None:
    hourly = load(ep.dep.repo / "data" / "driver_stats.parquet")
    quality = load(ep.dep.repo / "data" / "driver_stats_with_productivity.parquet")
    for _ in range(4):  # round robin: both guests answer
        status, text = ep.curl("/get-online-features", _body(), ep.token("reader"))
        assert status == 200, text
        got = rows_of(json.loads(text))
        assert got["driver_id"] == DRIVERS
        for i, driver in enumerate(DRIVERS):
            h, q = latest(hourly, driver), latest(quality, driver)
            assert got["conv_rate"][i] == pytest.approx(float(q.conv_rate), rel=1e-6)
            assert got["avg_daily_trips"][i] == int(h.avg_daily_trips)
            assert got["productivity"][i] == pytest.approx(float(q.productivity), rel=1e-6)
            want = 0.7 * float(q.conv_rate) + 0.3 * float(q.acc_rate)
            assert got["linear_combination"][i] == pytest.approx(want, rel=1e-6)


def test_plan_after_the_deploy_has_no_endpoint_change(ep: Endpoint) -> None:
    plan = ep.dep.json("plan")
    assert plan["endpoint"] == [], plan["endpoint"]


def test_what_is_refused_and_a_revoked_token_on_every_guest(ep: Endpoint) -> None:
    reader, writer = ep.token("reader"), ep.token("writer", "--write")
    for token in (None, "fct_not-a-token", reader + "x"):
        status, text = ep.curl("/get-online-features", _body(), token)
        assert status == 401 and json.loads(text)["error"], (token, status, text)
    push = {"push_source_name": "driver_stats_push_source", "df": {"driver_id": [1005]}, "to": "online"}
    assert ep.curl("/push", push, reader)[0] == 403
    for path in ("/materialize-incremental", "/health", "/docs", "/"):
        assert ep.curl(path, {}, writer)[0] in (403, 404), path
    big = {"features": ["x"], "entities": {"driver_id": list(range(200_000))}}
    assert ep.curl("/get-online-features", big, reader)[0] == 413
    assert ep.curl("/get-online-features", _body(), reader, ca=None)[0] == 0
    doomed = ep.token("doomed")
    assert [ep.curl("/get-online-features", _body(), doomed)[0] for _ in range(2)] == [200, 200]
    started = time.monotonic()
    ep.dep.run("token", "revoke", "doomed").ok()
    assert time.monotonic() - started < 10
    # Four requests, round robin over two guests: each guest refuses it.
    assert [ep.curl("/get-online-features", _body(), doomed)[0] for _ in range(4)] == [401] * 4
    assert [ep.curl("/get-online-features", _body(), reader)[0] for _ in range(2)] == [200, 200]


def test_the_guests_admit_only_the_balancer(ep: Endpoint) -> None:
    """A machine on the guests' own subnet reaches neither guest's HAProxy
    directly (as a cloud load balancer's targets admit only it)."""
    rec = ep.dep.record()
    network = rec["stack_vars"]["network"]
    with on_bridge(network["bridge"], network["cidr"]) as run_in:
        for host in (rec["host"], rec["hosts"][1]["host"]):
            probe = subprocess.run(
                [*run_in, "curl", "-s", "-k", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}",
                 f"https://{host}:{PORT}/get-online-features"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert probe.stdout.strip() in ("000", ""), probe
            # ... although the guest itself is reachable from there (its sshd answers): not a dead route.
            banner = subprocess.run(
                [*run_in, sys.executable, "-c",
                 f"import socket; print(socket.create_connection(({host!r}, 22), timeout=5).recv(4).decode())"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert banner.stdout.strip() == "SSH-", banner


def test_feasts_sdk_reads_through_the_bundle_from_the_application_host(ep: Endpoint, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    ep.dep.run("client-config", "sdk-app", "--out", str(bundle)).ok()
    got = sdk_read(ep.net, bundle)
    quality = load(ep.dep.repo / "data" / "driver_stats_with_productivity.parquet")
    for i, driver in enumerate(DRIVERS):
        q = latest(quality, driver)
        assert got["linear_combination"][i] == pytest.approx(
            0.7 * float(q.conv_rate) + 0.3 * float(q.acc_rate), rel=1e-6
        )


def test_a_killed_guest_server_costs_at_most_one_read_in_200(ep: Endpoint) -> None:
    """The balancer here cannot retry a read (layer 4): the guest's HAProxy
    passes what its own dead server refuses on to the other guest's."""
    results = ep.load(10, during=lambda: signal_server(ep.dep, 1, "KILL"))
    assert len(results) == 200
    assert len(_failures(results)) <= 1, _failures(results)
    wait_states(ep, {"h0": "up", "h1": "up"}, 90)  # systemd starts it again


def test_a_hung_guest_server_holds_no_read_past_the_timeout(ep: Endpoint) -> None:
    try:
        results = ep.load(8, during=lambda: signal_server(ep.dep, 1, "STOP"))
        slowest = max(r["latency"] for r in results)
        assert slowest <= TIMEOUT + 0.5, sorted(r["latency"] for r in results)[-5:]
        assert states(ep) == {"h0": "up", "h1": "down"}
    finally:
        signal_server(ep.dep, 1, "CONT")
    wait_states(ep, {"h0": "up", "h1": "up"}, 15)


def test_both_guest_servers_down_answer_503_within_3_s(ep: Endpoint) -> None:
    try:
        for i in (0, 1):
            signal_server(ep.dep, i, "STOP")
        time.sleep(4.0)  # both guests' checks, then the balancer's
        started = time.monotonic()
        status, text = ep.curl("/get-online-features", _body(), ep.token("reader"))
        assert status == 503 and time.monotonic() - started < 3.0, (status, text)
        assert json.loads(text)["error"]
    finally:
        for i in (0, 1):
            signal_server(ep.dep, i, "CONT")
    wait_states(ep, {"h0": "up", "h1": "up"}, 20)


def test_a_redeploy_under_reads_drops_none(ep: Endpoint) -> None:
    """A changed feature view: a new release on both guests, switched one at a
    time under 20 reads per second; each guest's HAProxy reloads onto its new
    server before the old one stops."""
    features = ep.dep.repo / "features.py"
    features.write_text(
        features.read_text().replace('description="Average daily trips"', 'description="Average daily trips (v2)"')
    )
    before = ep.dep.record()["release"]
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("FEATCTL_CONFIG", None)
    deploy = subprocess.Popen(
        [sys.executable, "-m", "featctl", "deploy"], cwd=ep.dep.root, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    results: list[dict] = []
    try:
        while deploy.poll() is None:
            results += ep.load(10)
        results += ep.load(5)
        out = deploy.communicate()[0]
    finally:
        if deploy.poll() is None:
            deploy.kill()
    assert deploy.returncode == 0, out[-2000:]
    assert ep.dep.record()["release"] != before
    assert len(results) >= 300 and _failures(results) == []
    assert states(ep) == {"h0": "up", "h1": "up"}
