"""The whole path on the local target: terraform + sshd + Feast + feature server.

One deployment serves every test in this module (a deploy costs tens of
seconds); the last test destroys it and checks nothing is left running.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, featctl, readme_tour
from tests.integration.conftest import processes_under
from tests.integration.expected import as_of, latest, load

pytestmark = pytest.mark.integration

DRIVERS = (1001, 1002)


def test_deploy_reports_and_keeps_secrets_private(deployment):
    err = deployment.first_deploy.stderr
    assert "deployed release " in err and " to local host 127.0.0.1:" in err
    assert "installed Feast" in err and "applied" in err
    assert "materialized driver_quality_metrics (all data)" in err
    ws = deployment.workspace
    secrets = [
        ws / "deployment.json",
        ws / "known_hosts",
        ws / "keys" / "client_ed25519",
        ws / "keys" / "host_ed25519",
        ws / "terraform" / "local" / "terraform.tfstate",
    ]
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    private = (ws / "keys" / "client_ed25519").read_text()
    assert "PRIVATE KEY" in private
    # No secret reaches the terminal.
    body = private.splitlines()[1]
    assert body not in err and body not in deployment.first_deploy.stdout
    # The sample data was generated, hourly up to now.
    assert (deployment.repo / "data" / "driver_stats.parquet").exists()
    assert (deployment.repo / "data" / "driver_stats_with_productivity.parquet").exists()


def test_score_matches_pandas(deployment):
    rows = deployment.json("score", "--weights", "conv_rate=0.7,acc_rate=0.3", "--driver", "1001", "--driver", "1002")
    df = load(deployment.repo / "data" / "driver_stats.parquet")
    assert [r["driver_id"] for r in rows] == list(DRIVERS)
    for row in rows:
        want = latest(df, row["driver_id"])
        assert row["conv_rate"] == pytest.approx(float(want.conv_rate), rel=1e-6)
        assert row["acc_rate"] == pytest.approx(float(want.acc_rate), rel=1e-6)
        assert row["conv_rate_coef"] == 0.7 and row["acc_rate_coef"] == 0.3
        expected = 0.7 * float(want.conv_rate) + 0.3 * float(want.acc_rate)
        assert row["linear_combination"] == pytest.approx(expected, rel=1e-6)


def _run_as_typed(root: Path, command: str) -> subprocess.CompletedProcess[str]:
    """A README command line through bash, as a user types it in the repository: its
    `.venv/bin/featctl` is this featctl (a shim to the interpreter running the tests)."""
    shim = root / ".venv" / "bin" / "featctl"
    if not shim.exists():
        shim.parent.mkdir(parents=True)
        shim.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m featctl "$@"\n')
        shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "FEATCTL_CONFIG"}
    return subprocess.run(
        ["bash", "-c", f".venv/bin/featctl {command}"],
        cwd=root,
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


def test_readme_tour_runs_and_matches_pandas(deployment):
    """README.md's five-minute tour, read from the README: every command exits 0 and its
    values are pandas' (not a terminal, so each prints JSON). Its deploy is this module's
    deployment (the same command); its destroy is test_destroy_leaves_nothing_running's."""
    tour = readme_tour()
    assert tour[0] == "deploy" and tour[-1] == "destroy --yes", tour
    out = {}
    for command in tour[1:-1]:
        res = _run_as_typed(deployment.root, command)
        assert res.returncode == 0, f"{command}: exit {res.returncode}\n{res.stderr}"
        out[command.split()[0]] = json.loads(res.stdout)
    assert set(out) == {"score", "online", "historical", "status"}
    df = load(deployment.repo / "data" / "driver_stats.parquet")

    def drivers(name: str) -> list[int]:
        args = shlex.split(next(c for c in tour if c.startswith(name + " ")).replace("$(", "x("))
        return [int(args[i + 1]) for i, a in enumerate(args) if a == "--driver"]

    # score: the weighted features are the newest rows, the score their weighted sum.
    assert [r["driver_id"] for r in out["score"]] == drivers("score")
    for row in out["score"]:
        want = latest(df, row["driver_id"])
        weights = {k.removesuffix("_coef"): v for k, v in row.items() if k.endswith("_coef")}
        assert weights, row
        for feature in weights:
            assert row[feature] == pytest.approx(float(want[feature]), rel=1e-6)
        total = sum(w * float(want[f]) for f, w in weights.items())
        assert row["linear_combination"] == pytest.approx(total, rel=1e-6)
    # online: every feature asked for, the newest value.
    assert [r["driver_id"] for r in out["online"]] == drivers("online")
    for row in out["online"]:
        want = latest(df, row["driver_id"])
        features = [k for k in row if k != "driver_id"]
        assert features, row
        for feature in features:
            assert row[feature] == pytest.approx(float(want[feature]), rel=1e-6), feature
    # historical: each row's value as of its time, within its view's TTL (from the tour's status).
    ttl = {v["view"]: v["ttl_seconds"] for v in out["status"]["feature_views"]}
    refs = shlex.split(next(c for c in tour if c.startswith("historical ")).replace("$(", "x("))
    refs = [ref for i, a in enumerate(refs) if a == "--features" for ref in refs[i + 1].split(",")]
    assert [r["driver_id"] for r in out["historical"]] == drivers("historical")
    for row in out["historical"]:
        ts = pd.Timestamp(row["event_timestamp"])
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        assert abs(pd.Timestamp.now(tz="UTC") - timedelta(days=1) - ts) < timedelta(minutes=10), ts
        for ref in refs:
            view, feature = ref.split(":")
            want = as_of(df, row["driver_id"], ts, timedelta(seconds=ttl[view]))
            assert want is not None and row[feature] == pytest.approx(float(want[feature]), rel=1e-6), ref
    # status: the deployment answers and serves what the tour read.
    info = out["status"]["deployment"]
    assert info["target"] == "local" and info["ssh"] == "answers"
    assert info["feature_server"].startswith("healthy")
    assert {r.split(":")[0] for r in refs} <= set(ttl)


def test_weight_not_given_is_zero(deployment):
    rows = deployment.json("score", "--weights", "acc_rate=2", "--driver", "1003")
    df = load(deployment.repo / "data" / "driver_stats.parquet")
    want = latest(df, 1003)
    assert rows[0]["conv_rate_coef"] == 0.0
    assert rows[0]["linear_combination"] == pytest.approx(2 * float(want.acc_rate), rel=1e-6)


def test_online_features_and_unknown_driver(deployment):
    res = deployment.run(
        "online",
        "--driver",
        "1001,424242",
        "--features",
        "driver_hourly_stats:avg_daily_trips,driver_productivity_metrics:productivity",
        "--output",
        "json",
    ).ok()
    rows = json.loads(res.stdout)
    df = load(deployment.repo / "data" / "driver_stats_with_productivity.parquet")
    want = latest(df, 1001)
    assert rows[0]["avg_daily_trips"] == int(want.avg_daily_trips)
    assert rows[0]["productivity"] == pytest.approx(float(want.productivity), rel=1e-5)
    assert rows[1] == {"driver_id": 424242, "avg_daily_trips": None, "productivity": None}
    assert "424242: not found" in res.stderr


def test_the_score_beside_a_namesake_of_its_inputs_is_not_null(deployment):
    """driver_hourly_stats:conv_rate beside the score, whose inputs are
    driver_quality_metrics' conv_rate and acc_rate: Feast 0.67's server answers
    such a request with a null score (HTTP 200), and drops it with full names;
    featctl asks for them apart and gets the values pandas gives."""
    hourly = load(deployment.repo / "data" / "driver_stats.parquet")
    quality = load(deployment.repo / "data" / "driver_stats_with_productivity.parquet")
    weights = ["--request", "conv_rate_coef=0.7", "--request", "acc_rate_coef=0.3"]
    score = "driver_activity_rates_linear_combination_fv:linear_combination"
    rows = deployment.json("online", "-d", "1001,1002", "-f", f"driver_hourly_stats:conv_rate,{score}", *weights)
    both = deployment.json(
        "online", "-d", "1001,1002", "-f", f"driver_hourly_stats:conv_rate,driver_quality_metrics:conv_rate,{score}", *weights
    )
    for row, full in zip(rows, both):
        q, h = latest(quality, row["driver_id"]), latest(hourly, row["driver_id"])
        want = 0.7 * float(q.conv_rate) + 0.3 * float(q.acc_rate)
        assert row["linear_combination"] == pytest.approx(want, rel=1e-6)
        assert row["conv_rate"] == pytest.approx(float(h.conv_rate), rel=1e-6)
        assert full["driver_activity_rates_linear_combination_fv__linear_combination"] == pytest.approx(want, rel=1e-6)
        assert full["driver_hourly_stats__conv_rate"] == pytest.approx(float(h.conv_rate), rel=1e-6)
        assert full["driver_quality_metrics__conv_rate"] == pytest.approx(float(q.conv_rate), rel=1e-6)


def test_online_feature_service_needing_request_data_is_a_clear_error(deployment):
    # The service includes the on-demand view, whose weights come with the request:
    # `online` has none to send, so the server's refusal must reach the user in one line.
    res = deployment.run(
        "online", "-d", "1002", "--feature-service", "driver_activity_rates_linear_combination", "--output", "csv"
    )
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "conv_rate_coef" in lines[0], res.stderr
    assert res.stdout == ""


def test_historical_keeps_every_row_in_order(deployment, tmp_path):
    df = load(deployment.repo / "data" / "driver_stats.parquet")
    newest = df.event_timestamp.max()
    times = [newest - timedelta(hours=h, minutes=30) for h in (1, 5, 30, 1, 200)]
    entities = pd.DataFrame(
        {
            "driver_id": [1002, 1001, 1003, 1002, 1004, 1001, 1002],
            "event_timestamp": [times[0], times[1], times[2], times[0], times[4], times[1], times[3]],
        }
    )
    # Naive timestamps in the file are UTC.
    entities["event_timestamp"] = entities["event_timestamp"].dt.tz_convert("UTC").dt.tz_localize(None)
    src = tmp_path / "entities.csv"
    entities.to_csv(src, index=False)
    out = tmp_path / "result.parquet"
    res = deployment.run(
        "historical",
        "--entities",
        str(src),
        "--features",
        "driver_hourly_stats:conv_rate",
        "--features",
        "driver_quality_metrics:acc_rate",
        "--out",
        str(out),
    ).ok()
    assert "wrote 7 rows" in res.stderr
    got = pd.read_parquet(out)
    assert len(got) == len(entities)
    assert list(got.driver_id) == list(entities.driver_id)
    for i, ent in entities.iterrows():
        ts = pd.Timestamp(ent.event_timestamp, tz="UTC")
        hourly = as_of(df, ent.driver_id, ts, timedelta(days=1))
        quality = as_of(df, ent.driver_id, ts, timedelta(days=2))
        if hourly is None:
            assert pd.isna(got.conv_rate[i])
        else:
            assert got.conv_rate[i] == pytest.approx(float(hourly.conv_rate), rel=1e-6)
        if quality is None:
            assert pd.isna(got.acc_rate[i])
        else:
            assert got.acc_rate[i] == pytest.approx(float(quality.acc_rate), rel=1e-6)
    # 200 h back is past both TTLs: no values, but the row is there.
    assert pd.isna(got.conv_rate[4]) and pd.isna(got.acc_rate[4])
    # Duplicated entity rows come back duplicated.
    assert got.iloc[0].to_dict() == got.iloc[3].to_dict()


def test_score_point_in_time_with_per_row_weights(deployment, tmp_path):
    df = load(deployment.repo / "data" / "driver_stats.parquet")
    ts = df.event_timestamp.max() - timedelta(hours=3, minutes=30)
    src = tmp_path / "weights.csv"
    pd.DataFrame(
        {
            "driver_id": [1001, 1002, 1001],
            "event_timestamp": [ts.isoformat()] * 3,
            "conv_rate_coef": [0.7, 1.0, 0.7],
            "acc_rate_coef": [0.3, 0.0, 0.3],
        }
    ).to_csv(src, index=False)
    rows = deployment.json("score", "--entities", str(src))
    assert [r["driver_id"] for r in rows] == [1001, 1002, 1001]
    for r in rows:
        want = as_of(df, r["driver_id"], ts, timedelta(days=2))
        expected = r["conv_rate_coef"] * float(want.conv_rate) + r["acc_rate_coef"] * float(want.acc_rate)
        assert r["linear_combination"] == pytest.approx(expected, rel=1e-6)


def test_materialize_incremental_then_range(deployment):
    rows = deployment.json("materialize")
    assert {r["mode"] for r in rows} == {"incremental"}
    assert {r["view"] for r in rows} == {"driver_hourly_stats", "driver_quality_metrics", "driver_productivity_metrics"}
    rows = deployment.json(
        "materialize",
        "--start",
        "2020-01-01T00:00:00",
        "--end",
        "2020-01-02T00:00:00Z",
        "--view",
        "driver_quality_metrics",
    )
    assert rows == [
        {
            "view": "driver_quality_metrics",
            "mode": "range",
            "start": "2020-01-01T00:00:00+00:00",
            "end": "2020-01-02T00:00:00+00:00",
        }
    ]
    bad = deployment.run("materialize", "--start", "2020-01-01")
    assert bad.returncode == 2 and "--start and --end go together" in bad.stderr


def test_status(deployment):
    st = deployment.json("status")
    info = st["deployment"]
    assert info["target"] == "local" and info["ssh"] == "answers"
    assert info["feature_server"].startswith("healthy")
    # The check reads through each of the two workers, not only the one a connection happened to reach.
    assert info["feature_server"].endswith("(read through 2 of 2 workers)"), info["feature_server"]
    assert info["terraform_outputs"]["port"] == int(info["host"].rsplit(":", 1)[1])
    views = {v["view"]: v for v in st["feature_views"]}
    assert views["driver_quality_metrics"]["ttl_seconds"] == 2 * 86400
    assert views["driver_hourly_stats"]["last_materialized"]
    assert views["driver_activity_rates_linear_combination_fv"]["kind"] == "on-demand view"


def test_client_never_imports_feast_or_pandas(deployment, tmp_path):
    poison = tmp_path / "poison"
    for mod in ("feast", "pandas"):
        (poison / mod).mkdir(parents=True)
        (poison / mod / "__init__.py").write_text(f"raise ImportError('the client imported {mod}')\n")
    env = {"PYTHONPATH": str(poison) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for args in (
        ["--help"],
        ["score", "--help"],
        ["status", "-o", "json"],
        ["online", "-d", "1001", "-o", "json"],
        ["score", "-w", "conv_rate=1", "-d", "1001", "-o", "json"],
    ):
        res = deployment.run(*args, env=env)
        assert res.returncode == 0, (args, res.stderr)
        assert "imported" not in res.stderr
    # Once the workspace's tunnel process runs, queries do not even import paramiko.
    from featctl.query import tunnel

    deadline = time.monotonic() + 20
    while tunnel.available(deployment.workspace) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert tunnel.available(deployment.workspace), "the first query should have started the tunnel process"
    assert stat.S_IMODE((deployment.workspace / "tunnel.sock").stat().st_mode) == 0o600
    (poison / "paramiko").mkdir()
    (poison / "paramiko" / "__init__.py").write_text("raise ImportError('the client imported paramiko')\n")
    for args in (["online", "-d", "1001", "-o", "json"], ["score", "-w", "conv_rate=1", "-d", "1001", "-o", "json"]):
        res = deployment.run(*args, env=env)
        assert res.returncode == 0, (args, res.stderr)
        assert json.loads(res.stdout)[0]["driver_id"] == 1001
    # The poison works: a path that needs pandas fails with it.
    res = deployment.run("historical", "--entities", "x.csv", "-f", "driver_hourly_stats:conv_rate", env=env)
    assert res.returncode != 0 and "the client imported pandas" in res.stderr


def test_bad_input_is_one_line_exit_2_and_touches_nothing(deployment, tmp_path):
    before = (deployment.workspace / "deployment.json").read_bytes()
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"\x00not a parquet file\xff" * 10)
    no_ts = tmp_path / "no_ts.csv"
    no_ts.write_text("driver_id\n1001\n")
    no_key = tmp_path / "no_key.csv"
    no_key.write_text("event_timestamp\n2026-01-01T00:00:00\n")
    bad_ts = tmp_path / "bad_ts.csv"
    bad_ts.write_text("driver_id,event_timestamp\n1001,not-a-time\n")
    cases = [
        ("historical", "--entities", str(garbage), "-f", "driver_hourly_stats:conv_rate"),
        ("historical", "--entities", str(no_ts), "-f", "driver_hourly_stats:conv_rate"),
        ("historical", "--entities", str(no_key), "-f", "driver_hourly_stats:conv_rate"),
        ("historical", "--entities", str(bad_ts), "-f", "driver_hourly_stats:conv_rate"),
        ("historical", "--entities", str(no_ts), "-f", "driver_hourly_stats:conv_rate", "--out", "x.txt"),
        ("materialize", "--start", "2026-01-02", "--end", "2026-01-01"),
        ("schedule", "--every", "often"),
        ("score", "--weights", "conv_rate=", "-d", "1001"),
        ("score", "--weights", "conv_rate=1,,acc_rate=2", "-d", "1001"),
        ("score", "--weights", "speed=1", "-d", "1001"),
        ("score", "--weights", "conv_rate=nan", "-d", "1001"),
        ("score", "--weights", "conv_rate=1", "-d", "abc"),
        ("score", "--weights", "conv_rate=1", "-d", "1001", "--at", "yesterday"),
        ("online", "-d", "1001", "-f", "nosuchview:x"),
        ("online", "-d", "1001", "-f", "driver_hourly_stats:nosuch"),
        ("historical", "--entities", "missing.csv", "-f", "driver_hourly_stats:conv_rate"),
        ("deploy", "--target", "aws"),
        ("status", "--output", "xml"),
    ]
    for args in cases:
        res = deployment.run(*args)
        assert res.returncode == 2, (args, res.returncode, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("featctl: error:"), (args, res.stderr)
        assert res.stdout == ""
    assert (deployment.workspace / "deployment.json").read_bytes() == before


def test_bad_input_never_reaches_the_host(deployment, tmp_path):
    """Each case is one line and exit 2 before any connection: with paramiko
    poisoned and the tunnel off, a command that tried to reach the host would
    fail on the import instead."""
    poison = tmp_path / "poison"
    (poison / "paramiko").mkdir(parents=True)
    (poison / "paramiko" / "__init__.py").write_text("raise ImportError('the client imported paramiko')\n")
    env = {"PYTHONPATH": str(poison) + os.pathsep + os.environ.get("PYTHONPATH", ""), "FEATCTL_NO_TUNNEL": "1"}
    before = (deployment.workspace / "deployment.json").read_bytes()
    good = tmp_path / "good.csv"
    good.write_text("driver_id,event_timestamp\n1001,2026-01-01T00:00:00Z\n")
    (tmp_path / "a_directory.csv").mkdir()
    cases = [
        ("online", "-d", "1180591620717411303424"),
        ("score", "-w", "conv_rate=1", "-d", "1180591620717411303424"),
        ("score", "-w", "conv_rate=1", "-d", "1180591620717411303424", "--at", "2026-01-01T00:00:00Z"),
        ("score", "-w", "conv_rate=1", "-d", "1001", "--at", "0001-01-01T00:00:00Z"),
        ("score", "-w", "conv_rate=1", "-d", "1001", "--at", "9999-12-31T00:00:00Z"),
        ("score", "-w", "conv_rate=1", "-d", "1001", "--out", str(tmp_path / "s.csv")),
        ("score", "-w", "conv_rate=1", "-d", "1001", "--at", "2026-01-01", "--out", str(tmp_path / "a_directory.csv")),
        ("historical", "--entities", str(good), "-f", "driver_hourly_stats:conv_rate", "--out", str(tmp_path)),
        ("historical", "--entities", str(good), "-f", "driver_hourly_stats:conv_rate", "--out", "/proc/self/x.csv"),
        ("historical", "--entities", str(good), "-f", "driver_hourly_stats:conv_rate", "--out", "r.json"),
        ("materialize", "--view", "nope"),
        ("score", "-w", "conv_rate= 0.5", "-d", "1001"),
        ("score", "-w", "conv_rate=0.5, acc_rate=0.5", "-d", "1001"),
        ("score", "-w", "conv_rate=\u0661", "-d", "1001"),
    ]
    for i, cell in enumerate(["abc", '"=cmd|""/c calc""!A0"', str(2**70), "1.5", ""]):
        bad = tmp_path / f"bad{i}.csv"
        bad.write_text(f"driver_id,event_timestamp,conv_rate_coef\n1001,2026-01-01T00:00:00Z,1\n{cell},2026-01-01,1\n")
        cases.append(("historical", "--entities", str(bad), "-f", "driver_hourly_stats:conv_rate"))
        cases.append(("score", "--entities", str(bad)))
    for args in cases:
        res = deployment.run(*args, env=env)
        assert res.returncode == 2, (args, res.returncode, res.stderr)
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("featctl: error:"), (args, res.stderr)
        assert "paramiko" not in res.stderr and res.stdout == ""
    assert (deployment.workspace / "deployment.json").read_bytes() == before
    assert not (tmp_path / "s.csv").exists()


def test_score_overflow_is_null_with_a_warning(deployment):
    """The largest weights overflow a 64-bit float where conv_rate + acc_rate > 1:
    the score is null in JSON and CSV, with a warning, never "Infinity"."""
    df = load(deployment.repo / "data" / "driver_stats.parquet")
    row = df[(df.conv_rate.astype(float) + df.acc_rate.astype(float)) > 1.01].iloc[-1]
    big = "1.7976931348623157e308"
    args = ("score", "-w", f"conv_rate={big},acc_rate={big}", "-d", str(int(row.driver_id)))
    at = ("--at", row.event_timestamp.isoformat())
    for fmt in ("json", "csv"):
        res = deployment.run(*args, *at, "-o", fmt).ok()
        assert "Infinity" not in res.stdout and "inf" not in res.stdout.lower(), res.stdout
        assert "overflowed" in res.stderr
        if fmt == "json":
            rows = json.loads(res.stdout)
            assert rows[0]["linear_combination"] is None and rows[0]["conv_rate_coef"] == float(big)


def test_changed_host_key_is_refused_before_any_command(deployment, tmp_path):
    from featctl.remote.keys import generate_ed25519, pin_host_key

    kh = deployment.workspace / "known_hosts"
    saved = kh.read_bytes()
    record = deployment.record()
    impostor = generate_ed25519(tmp_path / "other_host_key", "impostor")
    pin_host_key(kh, record["host"], record["port"], impostor)
    try:
        for args in (("status", "-o", "json"), ("score", "-w", "conv_rate=1", "-d", "1001")):
            res = deployment.run(*args)
            assert res.returncode == 4, res.stderr
            assert "host key" in res.stderr and "refusing" in res.stderr
        # status reports what it can without SSH, and says why SSH failed.
    finally:
        kh.write_bytes(saved)
    deployment.json("status")


def test_redeploy_with_nothing_changed_converges(deployment):
    base = Path(deployment.record()["remote_base_dir"])
    release = deployment.record()["release"]
    pid_file = base / "releases" / release / ".featctl" / "server.pid"
    pid = pid_file.read_text().strip()
    res = deployment.run("deploy").ok()
    assert "nothing changed" in res.stderr and "nothing uploaded, applied or restarted" in res.stderr
    assert pid_file.read_text().strip() == pid
    assert deployment.record()["release"] == release
    assert sorted(p.name for p in (base / "releases").iterdir()) == [release]
    # One host: one sshd for this workspace.
    sshds = [p for p in processes_under(deployment.workspace) if "sshd" in p and "sshd_config" in p]
    assert len(sshds) == 1, sshds


def test_redeploy_after_a_change_uploads_only_that_file(deployment):
    features = deployment.repo / "features.py"
    original = features.read_text()
    features.write_text(original + "\n# touched by the test\n")
    try:
        before = deployment.record()["release"]
        res = deployment.run("deploy").ok()
        assert "uploaded 1 file(s)" in res.stderr and "applied" in res.stderr
        assert f"release {before} stopped" in res.stderr
        assert deployment.record()["release"] != before
        rows = deployment.json("score", "-w", "conv_rate=1", "-d", "1001")
        assert rows[0]["linear_combination"] is not None
    finally:
        features.write_text(original)


def test_ssh_target_deploys_to_an_existing_host(deployment, tmp_path):
    """The same code path on a machine Terraform did not create: here this module's
    deployment's sshd plays an existing server that we can log in to."""
    import shutil

    from featctl.remote.keys import fingerprint

    r = deployment.record()
    identity = deployment.workspace / "keys" / "client_ed25519"
    real_fp = fingerprint((deployment.workspace / "keys" / "host_ed25519.pub").read_text())
    shutil.copytree(
        ROOT / "feature_repo",
        tmp_path / "feature_repo",
        ignore=shutil.ignore_patterns("*.db", "*.parquet", "__pycache__"),
    )
    from featctl.provision.targets import free_loopback_port

    # This machine serves other deployments too: give the "existing host" free ports.
    port = free_loopback_port()
    (tmp_path / "featctl.toml").write_text(f'server_port = {port}\n[ssh]\nremote_base_dir = "{tmp_path / "hostdir"}"\n')
    target = ["--target", "ssh", "--host", f"{r['user']}@127.0.0.1:{r['port']}", "--identity", str(identity)]

    unknown = featctl("deploy", *target, cwd=tmp_path)
    assert unknown.returncode == 2 and real_fp in unknown.stderr and "--host-key-fingerprint" in unknown.stderr
    wrong = featctl("deploy", *target, "--host-key-fingerprint", "SHA256:" + "A" * 43, cwd=tmp_path)
    assert wrong.returncode == 4 and "refusing" in wrong.stderr
    assert not (tmp_path / "hostdir").exists()

    try:
        featctl("deploy", *target, "--host-key-fingerprint", real_fp, cwd=tmp_path, timeout=1200).ok()
        rows = json.loads(featctl("score", "-w", "conv_rate=1", "-d", "1001", "-o", "json", cwd=tmp_path).ok().stdout)
        assert rows[0]["linear_combination"] is not None
        st = json.loads(featctl("status", "-o", "json", cwd=tmp_path).ok().stdout)["deployment"]
        assert st["target"] == "ssh" and st["feature_server"].startswith("healthy")
        again = featctl("deploy", "--target", "ssh", cwd=tmp_path).ok()
        assert "nothing changed" in again.stderr
    finally:
        featctl("destroy", "--yes", cwd=tmp_path, timeout=300)
    assert not (tmp_path / "hostdir").exists()
    assert processes_under(tmp_path) == []
    rows = deployment.json("score", "-w", "conv_rate=0.5,acc_rate=0.5", "-d", "1001")
    assert rows[0]["linear_combination"] is not None  # the machine's own deployment is untouched


def test_a_range_into_the_future_is_refused_and_later_rows_still_load(deployment):
    """Issue #23: ``--start 2026-12-06 --end 2026-12-08``, two days ahead, was
    recorded as materialized up to 2026-12-08, so no incremental run loaded a
    row that arrived before then (``historical --at now`` and ``online``
    disagreed, status said healthy). It changes the host's source file, so it
    runs last before destroy."""

    def last_materialized() -> dict[str, pd.Timestamp]:
        views = deployment.status()["feature_views"]
        return {v["view"]: pd.Timestamp(v["last_materialized"]) for v in views if v["kind"] == "feature view"}

    now = pd.Timestamp.now(tz="UTC")
    ahead = (now + timedelta(days=2)).strftime("%Y-%m-%d")
    res = deployment.run("materialize", "--start", (now - timedelta(days=1)).strftime("%Y-%m-%d"), "--end", ahead)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith(f"featctl: error: --end {ahead}T00:00:00+00:00 is in the future (now ")
    assert len(res.stderr.splitlines()) == 1
    assert all(t <= pd.Timestamp.now(tz="UTC") for t in last_materialized().values())
    # A client whose clock runs two days ahead asks the feature server for "up to now"
    # (on its Unix socket, as the schedule does): the host loads and records up to its own clock only.
    from featctl.agent.common import unix_post

    record = deployment.record()
    sock = Path(record["remote_base_dir"]) / "run" / "s" / str(record["server_port"])
    ahead_now = (now + timedelta(days=2)).isoformat()
    status, body = unix_post(
        str(sock), "/materialize-incremental", {"end_ts": ahead_now, "feature_views": ["driver_hourly_stats"]}, 300
    )
    assert status == 200, body
    recorded = last_materialized()["driver_hourly_stats"]
    assert now <= recorded <= pd.Timestamp.now(tz="UTC"), recorded
    # A row arrives in the host's source after that (the local target's host is this machine)...
    source = Path(deployment.record()["remote_base_dir"]) / "current" / "data" / "driver_stats.parquet"
    df = pd.read_parquet(source)
    time.sleep(1.5)
    arrived = pd.Timestamp.now(tz="UTC").floor("s")
    row = df[df.driver_id == 1001].tail(1).copy()
    for col in ("event_timestamp", "created"):
        row[col] = arrived if df[col].dt.tz is not None else arrived.tz_localize(None)
    row["conv_rate"] = row["conv_rate"].astype(df.conv_rate.dtype) * 0 + 0.4321
    row["avg_daily_trips"] = row["avg_daily_trips"] * 0 + 4321
    grown = pd.concat([df, row], ignore_index=True)
    tmp = source.with_name(".driver_stats.parquet.tmp")
    grown.to_parquet(tmp, index=False)
    os.replace(tmp, source)
    time.sleep(1.5)
    # ...and the next incremental run loads it: online equals pandas' newest row.
    rows = deployment.json("materialize", "--view", "driver_hourly_stats")
    assert [r["mode"] for r in rows] == ["incremental"]
    want = latest(load(source), 1001)
    assert want is not None and want.event_timestamp == arrived and int(want.avg_daily_trips) == 4321
    online = deployment.json(
        "online", "--driver", "1001", "--features", "driver_hourly_stats:conv_rate,driver_hourly_stats:avg_daily_trips"
    )
    assert online[0]["avg_daily_trips"] == int(want.avg_daily_trips)
    assert online[0]["conv_rate"] == pytest.approx(float(want.conv_rate), rel=1e-6)
    # Point in time at now agrees with online.
    at = deployment.json(
        "historical",
        "--driver",
        "1001",
        "--at",
        pd.Timestamp.now(tz="UTC").isoformat(),
        "--features",
        "driver_hourly_stats:conv_rate,driver_hourly_stats:avg_daily_trips",
    )
    assert at[0]["avg_daily_trips"] == online[0]["avg_daily_trips"]
    assert at[0]["conv_rate"] == pytest.approx(online[0]["conv_rate"], rel=1e-6)
    assert all(t <= pd.Timestamp.now(tz="UTC") for t in last_materialized().values())


def _server_workers(dep) -> int:
    """Worker processes of the serving feature server: the gunicorn master's children."""
    rec = dep.record()
    group = Path(rec["remote_base_dir"]) / "releases" / rec["release"] / ".featctl" / "server-group.pid"
    out = subprocess.run(["pgrep", "-P", group.read_text().strip()], capture_output=True, text=True).stdout
    return len(out.split())


def test_full_feature_names_on_online_and_historical(deployment, tmp_path):
    """Two views with a feature of one name: historical refuses them in one line
    unless --full-feature-names, then names the columns view__feature; online
    takes the flag for a single view too. Values equal pandas on the release's
    own data file (an earlier test adds a row to it on the host)."""
    df = load(Path(deployment.record()["remote_base_dir"]) / "current" / "data" / "driver_stats.parquet")
    refs = "driver_hourly_stats:conv_rate,driver_quality_metrics:conv_rate"
    newest = df.event_timestamp.max()
    entities = pd.DataFrame(
        {"driver_id": [1001, 1002, 1003], "event_timestamp": [newest - timedelta(hours=h) for h in (2, 30, 40)]}
    )
    entities["event_timestamp"] = entities["event_timestamp"].dt.tz_convert("UTC").dt.tz_localize(None)
    src = tmp_path / "entities.csv"
    entities.to_csv(src, index=False)
    res = deployment.run("historical", "--entities", str(src), "--features", refs, "--output", "json")
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "--full-feature-names" in lines[0], res.stderr
    assert res.stdout == ""

    rows = deployment.json("historical", "--entities", str(src), "--features", refs, "--full-feature-names")
    assert [r["driver_id"] for r in rows] == [1001, 1002, 1003]
    for row, (_, ent) in zip(rows, entities.iterrows()):
        assert set(row) >= {"driver_hourly_stats__conv_rate", "driver_quality_metrics__conv_rate"}
        assert "conv_rate" not in row
        ts = pd.Timestamp(ent.event_timestamp, tz="UTC")
        for view, ttl in (("driver_hourly_stats", timedelta(days=1)), ("driver_quality_metrics", timedelta(days=2))):
            want = as_of(df, ent.driver_id, ts, ttl)
            got = row[f"{view}__conv_rate"]
            if want is None:
                assert got is None, (view, row)
            else:
                assert got == pytest.approx(float(want.conv_rate), rel=1e-6), (view, row)

    online = deployment.json(
        "online", "-d", "1001,1002", "-f", "driver_hourly_stats:conv_rate,driver_hourly_stats:acc_rate", "--full-feature-names"
    )
    for row in online:
        want = latest(df, row["driver_id"])
        assert set(row) == {"driver_id", "driver_hourly_stats__conv_rate", "driver_hourly_stats__acc_rate"}, row
        assert row["driver_hourly_stats__conv_rate"] == pytest.approx(float(want.conv_rate), rel=1e-6)
        assert row["driver_hourly_stats__acc_rate"] == pytest.approx(float(want.acc_rate), rel=1e-6)


def test_a_server_workers_change_is_planned_and_applied(deployment):
    """#24 item 5: what featctl.toml says runs on the host is a change plan shows and deploy makes.
    Last before destroy: the deployment is left with one worker."""
    toml = deployment.root / "featctl.toml"
    original = toml.read_text() if toml.exists() else None
    assert _server_workers(deployment) == 2
    toml.write_text((original or "") + "server_workers = 1\n")
    try:
        plan = deployment.json("plan")
        assert plan["server"] == ["server_workers 2 -> 1"] and plan["changes"] is True, plan
        before = deployment.record()["release"]
        res = deployment.run("deploy").ok()
        assert "server_workers 2 -> 1" in res.stderr
        assert deployment.record()["release"] != before
        assert _server_workers(deployment) == 1
        assert deployment.json("plan")["server"] == []
        rows = deployment.json("score", "-w", "conv_rate=1", "-d", "1001")
        assert rows[0]["linear_combination"] is not None
    finally:
        if original is None:
            toml.unlink()
        else:
            toml.write_text(original)


def test_destroy_leaves_nothing_running(deployment):
    assert processes_under(deployment.workspace), "the deployment should be running before destroy"
    refused = deployment.run("destroy")  # no terminal and no --yes: refuse, touch nothing
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert processes_under(deployment.workspace)
    # The README tour's last command, as written there.
    res = deployment.run(*shlex.split(readme_tour()[-1])).ok()
    assert "destroyed the local deployment" in res.stderr
    assert processes_under(deployment.workspace) == []
    ws = deployment.workspace
    assert not (ws / "deployment.json").exists()
    assert not (ws / "keys").exists() and not (ws / "known_hosts").exists()
    assert not (ws / "terraform" / "local").exists()
    again = deployment.run("status")
    assert again.returncode == 6 and "no deployment" in again.stderr
