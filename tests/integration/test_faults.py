"""Faults featctl must survive, on the real local target (issue: deploy like production).

Each test asserts what the user sees and that nothing was lost: queries still
answer from the previous release, or a rerun converges and a second rerun
reports no changes. One deployment (with a larger data set, so that
materialization takes long enough to overlap with queries) serves the module.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, featctl
from tests.integration.conftest import Deployed, processes_under
from tests.integration.helpers import (
    AGENT,
    AGENT_ENV,
    hold_server_socket,
    host_state,
    last_line,
    running_servers,
    score,
    server_post,
    start_deploy,
    touch,
    wait_for,
)

pytestmark = pytest.mark.integration



@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    from featctl.store.sampledata import add_productivity, generate_driver_stats

    root = tmp_path_factory.mktemp("faults")
    import shutil

    shutil.copytree(
        ROOT / "feature_repo", root / "feature_repo", ignore=shutil.ignore_patterns("*.db", "*.parquet", "__pycache__")
    )
    now = datetime.now(timezone.utc)
    stats = generate_driver_stats(now, drivers=tuple(range(1001, 4001)), days=2)
    stats.to_parquet(root / "feature_repo" / "data" / "driver_stats.parquet", index=False)
    add_productivity(stats).to_parquet(
        root / "feature_repo" / "data" / "driver_stats_with_productivity.parquet", index=False
    )
    d = Deployed(root)
    try:
        # A failed first deploy is destroyed too: nothing of it may outlive the module.
        d.first_deploy = featctl("deploy", cwd=root, timeout=1200).ok()
        yield d
    finally:
        featctl("destroy", "--yes", cwd=root, timeout=300)
        assert processes_under(root) == []


def test_broken_repository_keeps_the_old_release_serving(dep):
    before = dep.record()["release"]
    value = score(dep)
    features = dep.repo / "features.py"
    original = features.read_text()
    features.write_text(original + "\nbroken = undefined_name_in_a_definition\n")
    try:
        res = dep.run("deploy")
        assert res.returncode == 5, res.stderr
        line = last_line(res)
        assert f"deploy failed at feast apply; release {before} keeps serving" in line
        assert "undefined_name_in_a_definition" in line
        assert score(dep) == value and dep.record()["release"] == before
    finally:
        features.write_text(original)
    fsy = dep.repo / "feature_store.yaml"
    yaml_text = fsy.read_text()
    fsy.write_text(yaml_text.replace("type: sqlite", "type: no_such_store"))
    try:
        res = dep.run("deploy")
        assert res.returncode == 5, res.stderr
        assert f"deploy failed at feast apply; release {before} keeps serving" in last_line(res)
        assert "no_such_store" in res.stderr
        assert score(dep) == value
    finally:
        fsy.write_text(yaml_text)
    # Back to what serves: nothing to do, and the failed releases are cleaned up.
    res = dep.run("deploy").ok()
    assert "nothing changed" in res.stderr and "removed failed release" in res.stderr
    assert running_servers(dep) == [before]


def test_unhealthy_new_server_leaves_the_old_one_serving(dep):
    before = dep.record()["release"]
    cur_port = dep.record()["server_port"]
    other = next(p for p in dep.record()["server_ports"] if p != cur_port)
    blocker = hold_server_socket(dep, other)  # a foreign program on the next release's socket
    try:
        touch(dep, "port-taken")
        res = dep.run("deploy")
        assert res.returncode == 5, res.stderr
        line = last_line(res)
        assert f"deploy failed at starting the feature server; release {before} keeps serving" in line
        assert f"run/s/{other}" in line and "held by another program" in line
        score(dep)
        assert running_servers(dep) == [before]
    finally:
        blocker.close()
    res = dep.run("deploy").ok()
    assert "deployed release" in res.stderr and "removed failed release" in res.stderr
    assert "nothing changed" in dep.run("deploy").ok().stderr


def test_interrupted_deploys_then_rerun_converges(dep):
    """Ctrl-C at each stage of building a release; one rerun then converges."""
    before = dep.record()["release"]
    for stage in ("uploading the feature repository", "feast apply", "starting the feature server", "materializing"):
        touch(dep, f"interrupt at {stage}")
        proc = start_deploy(dep)
        seen: list[str] = []
        wait_for(proc, f"• {stage}", seen)
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C on a terminal does
        rest = proc.stderr.read()
        assert proc.wait(timeout=120) == 130, "".join(seen) + rest
        assert "featctl: interrupted" in rest
        assert dep.record()["release"] == before, stage
        assert score(dep)  # the serving release never noticed
        assert running_servers(dep) == [before], stage  # nothing half-started is left running
    res = dep.run("deploy").ok()
    assert "deployed release" in res.stderr
    assert "nothing changed" in dep.run("deploy").ok().stderr
    assert running_servers(dep) == [dep.record()["release"]]
    assert [r["state"] for r in host_state(dep)["releases"]].count("preparing") == 0
    score(dep)


def test_sshd_killed_during_the_upload(dep):
    before = dep.record()["release"]
    big = dep.repo / "data" / "big.bin"
    big.write_bytes(os.urandom(48 * 1024 * 1024))
    try:
        proc = start_deploy(dep)
        seen: list[str] = []
        wait_for(proc, "• uploading the feature repository", seen)
        time.sleep(0.2)
        sshd_pid = int((dep.workspace / "local" / "sshd" / "sshd.pid").read_text())
        subprocess.run(["pkill", "-KILL", "-P", str(sshd_pid)])
        os.kill(sshd_pid, signal.SIGKILL)
        rest = proc.stderr.read()
        code = proc.wait(timeout=120)
        assert code == 4, "".join(seen) + rest
        assert rest.strip().splitlines()[-1].startswith("featctl: error:")
        # The previous release still serves on the host (ask it directly: sshd is gone).
        body = {"features": ["driver_quality_metrics:conv_rate"], "entities": {"driver_id": [1001]}}
        status, _ = server_post(dep, "/get-online-features", body, timeout=10)
        assert status == 200
        assert dep.record()["release"] == before
    finally:
        big.unlink()
    res = dep.run("deploy").ok()
    assert "Terraform will restart it" in res.stderr
    score(dep)
    assert "nothing changed" in dep.run("deploy").ok().stderr


def test_two_deploys_at_once(dep):
    touch(dep, "concurrent")
    first = start_deploy(dep)
    seen: list[str] = []
    wait_for(first, "• installing featctl's host agent", seen)
    second = dep.run("deploy")
    assert second.returncode == 2 and "another featctl command is changing the deployment" in second.stderr
    assert first.wait(timeout=600) == 0, "".join(seen) + first.stderr.read()
    # Another client holding the host's lock (a hung deploy elsewhere).
    base = dep.record()["remote_base_dir"]
    holder = subprocess.Popen(
        [
            *AGENT,
            "lock",
            "--base",
            base,
            "--holder",
            json.dumps({"user": "ci", "client": "elsewhere", "pid": 1, "command": "deploy"}),
        ],
        stdin=subprocess.PIPE,
        env=AGENT_ENV,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    threading.Thread(target=holder.wait, daemon=True).start()
    assert "locked" in holder.stdout.readline()
    try:
        blocked = dep.run("deploy")
        assert blocked.returncode == 2
        assert "another deploy holds the lock on the host (by ci@elsewhere" in blocked.stderr
        assert "featctl unlock" in blocked.stderr
        assert "ci@elsewhere" in dep.json("status")["deployment"]["deploy_lock"]
        # featctl cannot see a holder on another machine: it does not break the lock unasked.
        refused = dep.run("unlock")
        assert refused.returncode == 2 and "cannot check" in refused.stderr and "--force" in refused.stderr
        cleared = dep.run("unlock", "--force").ok()
        assert "cleared the deploy lock held by ci@elsewhere" in cleared.stderr
    finally:
        if holder.poll() is None:
            holder.kill()
    assert "nothing changed" in dep.run("deploy").ok().stderr


def test_large_remote_output_does_not_hang_and_commands_time_out(dep):
    from featctl.errors import RemoteCommandError
    from featctl.remote.ssh import Endpoint, connect

    r = dep.record()
    ep = Endpoint(
        r["host"], r["port"], r["user"], dep.workspace / "keys" / "client_ed25519", dep.workspace / "known_hosts",
        r["remote_base_dir"],
    )
    with connect(ep) as conn:
        mib3 = 3 * 1024 * 1024
        script = (
            'python3 -c "import sys\nfor i in range(48):\n'
            " sys.stdout.write('o' * 65536); sys.stdout.flush(); sys.stderr.write('e' * 65536); sys.stderr.flush()\""
        )
        started = time.monotonic()
        res = conn.run(script, timeout=60)
        assert len(res.stdout) == mib3 and len(res.stderr) == mib3
        assert set(res.stdout) == {ord("o")} and set(res.stderr) == {ord("e")}
        assert time.monotonic() - started < 30
        started = time.monotonic()
        with pytest.raises(RemoteCommandError, match="timed out after 1 s"):
            conn.run("sleep 30", timeout=1)
        assert time.monotonic() - started < 10


def test_materialization_while_queries_arrive(dep):
    from featctl.query.server import FeatureServer
    from featctl.remote.ssh import Endpoint, connect

    r = dep.record()
    ep = Endpoint(
        r["host"], r["port"], r["user"], dep.workspace / "keys" / "client_ed25519", dep.workspace / "known_hosts",
        r["remote_base_dir"],
    )
    results: list[object] = []
    with connect(ep) as conn:
        server = FeatureServer(conn, r["server_port"])
        mat = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "featctl",
                "materialize",
                "--start",
                "1970-01-01",
                "--end",
                datetime.now(timezone.utc).isoformat(),
                "-o",
                "json",
            ],
            cwd=dep.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        while mat.poll() is None:
            try:
                cols = server.online_features(
                    {"driver_id": [1001, 2500]}, features=["driver_quality_metrics:conv_rate"]
                )
                results.append(cols["conv_rate"])
            except Exception as exc:  # every failure is a finding
                results.append(exc)
        out, err = mat.communicate()
        server.close()
    assert mat.returncode == 0, err
    assert len(json.loads(out)) == 3
    failures = [x for x in results if isinstance(x, Exception) or None in x]
    assert len(results) >= 5, f"only {len(results)} queries overlapped the materialization"
    assert failures == [], failures[:3]


def test_schedule_runs_and_status_shows_it(dep):
    """Each scheduled run materializes, then verifies a sample of every view and
    repairs what it finds: a value pushed over a driver's row (with that row's
    own event time, so nothing looks newer) is served again as the pandas
    reference says within one run, and status shows the verify."""
    from tests.integration.expected import latest, load

    df = load(Path(dep.record()["remote_base_dir"]) / "current" / "data" / "driver_stats.parquet")
    probed = dep.record()["probe"]["views"]["driver_quality_metrics"]["entity"]["driver_id"]
    victim = next(int(v) for v in sorted(df.driver_id.unique()) if v != probed)
    right = latest(df, victim)
    dep.run(
        "push", "--view", "driver_stats_push_source", "-e", f"driver_id={victim}", "--set", "conv_rate=42.0",
        "--set", "acc_rate=42.0", "--at", right.event_timestamp.isoformat(), "--to", "online",
    ).ok()  # fmt: skip
    assert dep.json("online", "-d", str(victim), "-f", "driver_quality_metrics:conv_rate")[0]["conv_rate"] == 42.0

    res = dep.run("schedule", "--every", "1m", "--verify-sample", "10000").ok()  # more than the 3,000 drivers
    assert "every 60 s" in res.stderr and "verifying 10000 entities per view" in res.stderr
    deadline = time.monotonic() + 120  # the run's verify starts Feast (~10-20 s here)
    sched = None
    while time.monotonic() < deadline:
        sched = dep.json("status")["deployment"].get("schedule")
        if sched and sched.get("last_verify"):
            break
        time.sleep(1)
    assert sched and sched["last_status"] == "ok" and sched["next_run"], sched
    checked = sched["last_verify"]
    assert checked.get("error") is None and checked["wrong"] >= 1 and checked["repaired"] == checked["wrong"], checked
    assert checked["mode"] == "sample 10000" and checked["checked"] == 3 * 3000
    served = dep.json("online", "-d", str(victim), "-f", "driver_quality_metrics:conv_rate")[0]["conv_rate"]
    assert served == pytest.approx(float(right.conv_rate), rel=1e-6)
    assert dep.status()["deployment"]["last_verify"]["repaired"] == checked["wrong"]
    assert dep.run("schedule", "--off").ok().stderr.strip().endswith("removed the materialization schedule")
    assert "schedule" not in dep.json("status")["deployment"]
    bad = dep.run("schedule", "--every", "5s")
    assert bad.returncode == 2 and "shorter than a minute" in bad.stderr


def test_nan_and_unknown_drivers_give_strict_json(dep):
    # A NaN lands in the online store the way new data does: the serving release's
    # source file gains a row, and an incremental materialization picks it up (no
    # redeploy needed; the file is restored afterwards, so the host matches the repo).
    path = Path(dep.record()["remote_base_dir"]) / "current" / "data" / "driver_stats.parquet"
    original = path.read_bytes()
    df = pd.read_parquet(path)
    row = df[df.driver_id == 1003].tail(1).copy()
    row["event_timestamp"] = pd.Timestamp.now(tz="UTC").floor("s")
    row["conv_rate"] = float("nan")
    pd.concat([df, row]).to_parquet(path, index=False)
    try:
        dep.run("materialize").ok()
        for args in (
            ("score", "-w", "conv_rate=1,acc_rate=1", "-d", "1003", "-d", "99999999"),
            ("online", "-d", "1003", "-f", "driver_quality_metrics:conv_rate"),
        ):
            res = dep.run(*args, "-o", "json").ok()
            rows = json.loads(res.stdout, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
            assert rows[0]["conv_rate"] is None
            if args[0] == "score":
                assert rows[1]["linear_combination"] is None and "99999999: not found" in res.stderr
    finally:
        path.write_bytes(original)
    assert "nothing changed" in dep.run("deploy").ok().stderr


def test_logs_show_the_serving_release(dep):
    res = dep.run("logs", "-n", "20").ok()
    assert "Application startup complete" in res.stdout or "Booting worker" in res.stdout


def test_terraform_failure_then_rerun_converges(dep):
    """A provisioner that fails part-way (sshd cannot start): the serving release is
    untouched, a rerun converges, and Terraform then plans no change."""
    toml = dep.root / "featctl.toml"
    toml.write_text('[local]\nsshd_path = "/nonexistent/sshd"\n')
    try:
        res = featctl("deploy", cwd=dep.root)
        assert res.returncode == 3, res.stderr
        assert "terraform apply failed" in last_line(res) and "/nonexistent/sshd" in last_line(res)
    finally:
        toml.unlink()
    featctl("deploy", cwd=dep.root, timeout=1200).ok()
    score(dep)
    plan = json.loads(featctl("plan", "-o", "json", cwd=dep.root).ok().stdout)
    assert plan["changes"] is False and plan["terraform"] == []
    tf = subprocess.run(
        [
            "terraform",
            "plan",
            "-detailed-exitcode",
            "-input=false",
            "-no-color",
            "-var-file=featctl.auto.tfvars.json",
        ],
        cwd=dep.workspace / "terraform" / "local",
        capture_output=True,
        text=True,
    )
    assert tf.returncode == 0, tf.stdout + tf.stderr
