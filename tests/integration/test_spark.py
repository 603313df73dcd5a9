"""stores = ["redis", "spark"] on the local target: Feast's Spark offline store
and Spark compute engine in local mode on the machine's Java, Redis online.

Values are checked against pandas on the repository's own data files.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from featctl.agent.watch import default_driver_memory
from tests.conftest import ROOT, featctl
from tests.integration.conftest import Deployed, processes_under
from tests.integration.expected import as_of, latest, load

pytestmark = pytest.mark.integration

DRIVERS = (1001, 1002, 1003, 1004)


@pytest.fixture(scope="module")
def spark(tmp_path_factory) -> Iterator[Deployed]:
    if shutil.which("java") is None or not Path("/usr/bin/redis-server").exists():
        pytest.fail("these tests need Java 17 and redis-server: run .ci/run or scripts/bootstrap --dev")
    root = tmp_path_factory.mktemp("spark")
    shutil.copytree(
        ROOT / "feature_repo", root / "feature_repo", ignore=shutil.ignore_patterns("*.db", "*.parquet", "__pycache__")
    )
    # A short stall limit keeps the stall tests short; jobs that run use CPU all along.
    (root / "featctl.toml").write_text(
        'server_workers = 1\nstores = ["redis", "spark"]\n\n[spark]\nstall_seconds = 20\n'
    )
    d = Deployed(root)
    try:
        # A failed first deploy is destroyed too: nothing of it may outlive the module.
        d.first_deploy = featctl("deploy", cwd=root, timeout=1500).ok()
        yield d
    finally:
        if (d.workspace / "deployment.json").exists():
            featctl("destroy", "--yes", cwd=root, timeout=300)


def test_spark_materializes_into_redis_and_online_values_match_the_data(spark: Deployed) -> None:
    assert "writing Spark-readable copies" in spark.first_deploy.stderr
    current = Path(spark.record()["remote_base_dir"]) / "current"
    assert "type: spark" in (current / "feature_store.yaml").read_text()
    assert "SparkSource(" in (current / "features.py").read_text()
    data = load(spark.repo / "data" / "driver_stats.parquet")
    rows = spark.json("online", *[a for x in DRIVERS for a in ("-d", str(x))], "-f", "driver_hourly_stats:conv_rate")
    for r in rows:
        want = latest(data, int(r["driver_id"]))
        assert want is not None and r["conv_rate"] == pytest.approx(float(want["conv_rate"]))


def test_verify_reads_spark_sources_and_finds_a_wrong_value(spark: Deployed) -> None:
    """verify reads a SparkSource through Feast's local engine (Spark's own
    engine writes from its executors): every entity of the data is checked, a
    pushed wrong value is found and repaired."""
    import json

    data = load(spark.repo / "data" / "driver_stats.parquet")
    victim = next(
        v for v in DRIVERS if v != spark.record()["probe"]["views"]["driver_quality_metrics"]["entity"]["driver_id"]
    )
    right = latest(data, victim)
    assert right is not None
    spark.run(
        "push", "--view", "driver_stats_push_source", "-e", f"driver_id={victim}", "--set", "conv_rate=42.0",
        "--set", "acc_rate=42.0", "--at", (right.event_timestamp + pd.Timedelta(seconds=1)).isoformat(),
        "--to", "online",
    ).ok()  # fmt: skip
    fixed = spark.run("verify", "--view", "driver_quality_metrics", "--repair", "--output", "json")
    assert fixed.returncode == 9, fixed.stderr
    rows = json.loads(fixed.stdout)
    assert {(r["entity"], r["feature"], r["online"]) for r in rows} == {
        (f"driver_id={victim}", "conv_rate", 42.0),
        (f"driver_id={victim}", "acc_rate", 42.0),
    }
    assert all(r["repaired"] for r in rows)
    again = spark.run("verify", "--output", "json")
    assert again.returncode == 0 and json.loads(again.stdout) == [], again.stderr
    productivity = load(spark.repo / "data" / "driver_stats_with_productivity.parquet")
    total = 2 * data.driver_id.nunique() + productivity.driver_id.nunique()
    assert f"checked {total} entities (all): 0 wrong" in again.stderr


def test_spark_historical_is_point_in_time_correct(spark: Deployed, tmp_path: Path) -> None:
    data = load(spark.repo / "data" / "driver_stats.parquet")
    ts = data["event_timestamp"].sort_values().iloc[len(data) // 2].floor("h") + pd.Timedelta(minutes=30)
    entities = pd.DataFrame(
        {"driver_id": list(DRIVERS) * 2, "event_timestamp": [ts] * 4 + [ts - pd.Timedelta(hours=5)] * 4}
    )
    path = tmp_path / "entities.parquet"
    entities.to_parquet(path)
    rows = spark.json("historical", "--entities", str(path), "-f", "driver_hourly_stats:conv_rate")
    assert len(rows) == len(entities)  # every entity row kept, in order
    for r, (_, e) in zip(rows, entities.iterrows()):
        want = as_of(data, int(e["driver_id"]), e["event_timestamp"], timedelta(days=1))
        if want is None:
            assert r["conv_rate"] is None
        else:
            assert r["conv_rate"] == pytest.approx(float(want["conv_rate"]))


# --- #23 item 5: Spark jobs that die, stall or are given up on -----------------------


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _start_historical(
    spark: Deployed, tmp_path: Path, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], int, int]:
    """A ``featctl historical`` through Spark, and (once there) the host agent's
    pid and its JVM's (the local target's host is this machine)."""
    entities = tmp_path / "entities.csv"
    entities.write_text("driver_id,event_timestamp\n1001,2026-01-01T00:00:00\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "featctl", "historical", "--entities", str(entities), "-f", "driver_hourly_stats:conv_rate"],
        cwd=spark.root, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    end = time.monotonic() + 120
    while time.monotonic() < end and proc.poll() is None:
        for line in processes_under(spark.workspace):
            pid = int(line.split()[0])
            if "featctl_agent historical" in line and (jvm := [c for c in _children(pid) if _is_java(c)]):
                return proc, pid, jvm[0]
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no Spark JVM under the agent: {proc.communicate()}")


def _is_java(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "java"
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _left_running(*pids: int, within: float = 10) -> list[int]:
    end = time.monotonic() + within
    while time.monotonic() < end and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _check_serving(spark: Deployed) -> None:
    data = load(spark.repo / "data" / "driver_stats.parquet")
    rows = spark.json("online", "-d", "1001", "-f", "driver_hourly_stats:conv_rate")
    want = latest(data, 1001)
    assert want is not None and rows[0]["conv_rate"] == pytest.approx(float(want["conv_rate"]))


def test_a_stalled_spark_job_ends_with_its_own_code_and_leaves_nothing_running(spark: Deployed, tmp_path: Path) -> None:
    proc, agent, jvm = _start_historical(spark, tmp_path)
    cmdline = Path(f"/proc/{jvm}/cmdline").read_bytes().split(b"\0")
    want = default_driver_memory(Path("/proc/meminfo").read_text())
    assert f"-Xmx{want}".encode() in cmdline and b"-XX:+ExitOnOutOfMemoryError" in b" ".join(cmdline)
    os.kill(jvm, signal.SIGSTOP)  # a JVM that makes no progress at all
    stopped = time.monotonic()
    _check_serving(spark)  # serving does not wait for the stuck job
    out, err = proc.communicate(timeout=120)
    took = time.monotonic() - stopped
    assert proc.returncode == 10, err
    assert "Spark made no progress for 20 s" in err and "[spark] stall_seconds" in err and out == ""
    assert len(err.strip().splitlines()) == 1 and took < 20 + 15
    assert _left_running(agent, jvm) == []


def test_a_killed_jvm_is_named_and_its_command_ends(spark: Deployed, tmp_path: Path) -> None:
    proc, agent, jvm = _start_historical(spark, tmp_path)
    time.sleep(3)
    os.kill(jvm, signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 10, err
    assert "Spark's JVM was killed by SIGKILL" in err and len(err.strip().splitlines()) == 1
    assert _left_running(agent) == []


def test_giving_up_on_a_job_stops_it_on_the_host(spark: Deployed, tmp_path: Path) -> None:
    """The client's timeout and Ctrl-C: the host's agent and JVM end with it (they
    kept running under PID 1 before, another pair per retry)."""
    proc, agent, jvm = _start_historical(spark, tmp_path, env={"FEATCTL_COMMAND_TIMEOUT": "15"})
    os.kill(jvm, signal.SIGSTOP)  # stuck, and the stall limit (20 s) is longer than the timeout
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 10, err
    assert "historical did not finish within 15 s; featctl stopped it" in err and "FEATCTL_COMMAND_TIMEOUT" in err
    assert _left_running(agent, jvm, within=5) == []
    proc, agent, jvm = _start_historical(spark, tmp_path)
    os.kill(jvm, signal.SIGSTOP)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert _left_running(agent, jvm, within=5) == []
    _check_serving(spark)


def test_the_feature_servers_dead_jvm_is_replaced_by_the_next_materialization(spark: Deployed) -> None:
    data = load(spark.repo / "data" / "driver_stats.parquet")
    span = [data.event_timestamp.min().isoformat(), (data.event_timestamp.max() + pd.Timedelta(seconds=1)).isoformat()]
    def server_jvms() -> list[int]:
        return [int(line.split()[0]) for line in processes_under(spark.workspace) if _is_java(int(line.split()[0]))]

    jvms = server_jvms()  # the deploy's and verify's materializations ran through the server
    if not jvms:
        spark.run("materialize", "--start", span[0], "--end", span[1]).ok()
        jvms = server_jvms()
    assert len(jvms) == 1, processes_under(spark.workspace)
    os.kill(jvms[0], signal.SIGKILL)
    time.sleep(3)
    done = spark.run("materialize", "--start", span[0], "--end", span[1])
    assert done.returncode == 0, done.stderr  # before: "Connection refused" until the next deploy
    _check_serving(spark)


def test_spark_deployment_destroys_cleanly(spark: Deployed) -> None:
    featctl("destroy", "--yes", cwd=spark.root, timeout=300).ok()
    assert processes_under(spark.workspace) == []
    assert not (spark.workspace / "secrets").exists()
