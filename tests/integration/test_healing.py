"""Serving that heals itself (issue: real health, no orphans, locks on the host,
bad input that never reaches it, paths that stay inside).

Each test first reproduces the failure a user met (queries failing while
featctl said all was well, an orphaned server holding a port, a copied
workspace taking over a host...) and then shows what featctl does now. One
deployment serves the module; it lives in a directory whose name holds a
space and both kinds of quotes, so every path featctl hands to a shell, to
sshd or to Terraform is exercised with them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, featctl
from tests.integration.conftest import Deployed, processes_under
from tests.integration.helpers import host_state, last_line, score, start_deploy, touch, wait_for

pytestmark = pytest.mark.integration

WEIRD = "sp ace's \"q\""


@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    root = tmp_path_factory.mktemp("healing") / WEIRD
    root.mkdir()
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
        if (d.workspace / "deployment.json").exists():
            featctl("destroy", "--yes", cwd=root, timeout=300)


def base(d: Deployed) -> Path:
    return Path(d.record()["remote_base_dir"])


def current(d: Deployed) -> Path:
    return base(d) / "current"


def status(d: Deployed) -> dict:
    return d.status()["deployment"]


def servers(d: Deployed) -> dict[str, tuple[int | None, int | None]]:
    """release -> (supervisor pid, server process group) for releases with either alive."""
    return {
        r["id"]: (r["server_pid"], r["server_group"])
        for r in host_state(d)["releases"]
        if r["server_pid"] or r["server_group"]
    }


def wait_until(check, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout} s (last: {last!r})")


# --- 1. health means queries work ------------------------------------------------------


def test_a_broken_online_store_is_unhealthy_and_deploy_rebuilds_it(dep):
    before = dep.record()["release"]
    store = current(dep) / "data" / "online_store.db"
    with store.open("r+b") as fh:
        fh.write(os.urandom(8192))
    (current(dep) / "features.py").unlink()  # a host-side source file vanishes too
    # The failure: queries fail...
    broken = dep.run("score", "-w", "conv_rate=1", "-d", "1001", "-o", "json")
    assert broken.returncode != 0 and "file is not a database" in broken.stderr
    # ...and featctl now says so, with the reason, instead of "healthy".
    st = status(dep)
    assert st["feature_server"].startswith("unhealthy") and "file is not a database" in st["feature_server"]
    assert "featctl deploy" in st["repair"]
    # ...and exits 8 after its full report, so a script or a monitor can tell.
    res = dep.run("status", "--output", "table")
    assert res.returncode == 8, res.stderr
    assert "unhealthy" in res.stdout and "feature views" in res.stdout and "driver_hourly_stats" in res.stdout
    # Nothing changed locally, yet deploy rebuilds: a fresh online store from the
    # offline data, the vanished file uploaded again, the switch only once healthy.
    res = dep.run("deploy").ok()
    assert f"release {before} is unhealthy" in res.stderr and "nothing changed" not in res.stderr
    assert "uploaded 1 file(s)" in res.stderr
    assert "materialized driver_hourly_stats (all data)" in res.stderr
    assert "checking release" in res.stderr
    after = dep.record()["release"]
    assert after != before and (current(dep) / "features.py").exists()
    assert score(dep) is not None
    assert status(dep)["feature_server"].startswith("healthy")
    assert "nothing changed" in dep.run("deploy").ok().stderr
    # Rolling back to the broken release is refused by the same health check.
    res = dep.run("rollback")
    assert res.returncode == 5, res.stderr
    assert f"rollback failed; release {after} keeps serving: release {before} is unhealthy" in last_line(res)
    assert dep.record()["release"] == after and list(servers(dep)) == [after]


def test_a_deleted_online_store_is_unhealthy(dep):
    (current(dep) / "data" / "online_store.db").unlink()
    # The running server may still read the deleted file through an open handle;
    # the next restart or release would not: featctl checks the file itself.
    st = status(dep)
    assert st["feature_server"].startswith("unhealthy") and "online_store.db is missing" in st["feature_server"]
    res = dep.run("deploy").ok()
    assert "is unhealthy" in res.stderr and "deployed release" in res.stderr
    assert status(dep)["feature_server"].startswith("healthy")


# --- 2. no orphaned servers ---------------------------------------------------------------


def test_killed_server_master_and_killed_supervisor_leave_no_orphans(dep):
    cur = dep.record()["release"]
    _, group = servers(dep)[cur]
    # SIGKILL of the gunicorn master: its supervisor clears the group and restarts it.
    os.kill(group, signal.SIGKILL)
    wait_until(lambda: servers(dep).get(cur, (None, None))[1] not in (None, group), what="a new server group")
    wait_until(lambda: status(dep)["feature_server"].startswith("healthy"), what="the restarted server")
    score(dep)
    # SIGKILL of the supervisor: the deployment's keeper starts a new one, which
    # keeps the server that ran on (not a restart).
    supervisor, group = servers(dep)[cur]
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: servers(dep)[cur][0] not in (None, supervisor), what="a new supervisor")
    assert servers(dep)[cur][1] == group
    assert status(dep)["feature_server"].startswith("healthy")
    score(dep)
    # The keeper and every supervisor killed at once: the server runs on, and featctl says so...
    meta = base(dep) / "releases" / cur / ".featctl"
    os.kill(host_state(dep)["keeper"], signal.SIGKILL)
    for pidfile in meta.glob("*.pid"):
        if not pidfile.name.endswith("-group.pid"):
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
    wait_until(lambda: servers(dep)[cur][0] is None, what="the supervisor gone")
    assert "runs without its supervisor" in status(dep)["feature_server"]
    score(dep)  # still answering, unsupervised
    # ...and the next deploy replaces it, leaving no process of the old group.
    res = dep.run("deploy").ok()
    assert "without its supervisor" in res.stderr
    new = dep.record()["release"]
    assert new != cur and list(servers(dep)) == [new]
    assert not any(f"releases/{cur}" in p for p in processes_under(base(dep)))
    score(dep)


def test_interrupt_after_the_switch_leaves_no_server_behind(dep):
    before = dep.record()["release"]
    touch(dep, "interrupt at the switch")
    proc = start_deploy(dep)
    seen: list[str] = []
    wait_for(proc, "• switching to release", seen)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: deferred until the switch is done
    rest = proc.stderr.read()
    assert proc.wait(timeout=120) == 130, "".join(seen) + rest
    new = dep.record()["release"]
    assert new != before
    # The reproduction: the old release's server may still run (the stop was cut off).
    # The next deploy stops it, whatever the interruption left, and reuses its port.
    if before in servers(dep):
        assert "still run a server" in status(dep)["stray_servers"]
    assert "nothing changed" in dep.run("deploy").ok().stderr
    assert list(servers(dep)) == [new]
    touch(dep, "after the interruption")
    dep.run("deploy").ok()  # the next release takes the old one's port
    assert list(servers(dep)) == [dep.record()["release"]]
    score(dep)


# --- 3. locks and state that a copied workspace cannot break ----------------------------------


def test_a_copied_workspace_is_refused_before_terraform(dep, tmp_path):
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copytree(dep.repo, copy / "feature_repo")
    def sockets(folder: str, names: list[str]) -> list[str]:  # the servers' sockets and the tunnel's: not files to copy
        import stat

        return [n for n in names if n.startswith("tunnel.") or stat.S_ISSOCK(os.lstat(os.path.join(folder, n)).st_mode)]

    shutil.copytree(dep.workspace, copy / ".featctl", ignore=sockets)
    shutil.copy(dep.root / "featctl.toml", copy / "featctl.toml")
    tfstate = (dep.workspace / "terraform" / "local" / "terraform.tfstate").read_bytes()
    for args in (("deploy",), ("destroy", "--yes"), ("rollback",)):
        res = featctl(*args, cwd=copy)
        assert res.returncode == 2, (args, res.stderr)
        assert "is a copy" in last_line(res) and "--take-over" in last_line(res), res.stderr
    # Nothing of the original was touched: its host, its Terraform state, its queries.
    assert (dep.workspace / "terraform" / "local" / "terraform.tfstate").read_bytes() == tfstate
    assert (copy / ".featctl" / "terraform" / "local" / "terraform.tfstate").read_bytes() == tfstate
    score(dep)
    assert "nothing changed" in dep.run("deploy").ok().stderr


def test_unlock_refuses_a_live_holder(dep):
    touch(dep, "stopped holder")
    proc = start_deploy(dep)
    seen: list[str] = []
    try:
        wait_for(proc, "• preparing release", seen)
        os.killpg(proc.pid, signal.SIGSTOP)  # a hung deploy: stopped, but alive
        res = dep.run("unlock")
        assert res.returncode == 2 and "is stopped" in res.stderr and "--force" in res.stderr
        assert "deploy_lock" in status(dep)
        assert "cleared the deploy lock" in dep.run("unlock", "--force").ok().stderr
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    dep.run("deploy").ok()  # converges: whatever the killed deploy left is removed
    assert [r["state"] for r in host_state(dep)["releases"]].count("preparing") == 0
    score(dep)


# --- 5. paths and files that must not leave or escape ---------------------------------------


def test_a_symlink_out_of_the_repository_is_never_uploaded(dep):
    link = dep.repo / "data" / "innocent.txt"
    os.symlink(dep.workspace / "keys" / "client_ed25519", link)
    try:
        res = dep.run("deploy")
        assert res.returncode == 2
        assert "symbolic link" in last_line(res) and "outside the repository" in last_line(res)
        assert not list(base(dep).rglob("innocent.txt"))
        assert "PRIVATE KEY" not in res.stderr + res.stdout
    finally:
        link.unlink()


def test_registry_paths_outside_stay_inside_the_deployment(dep, tmp_path):
    outside = tmp_path / "outside"
    yaml_path = dep.repo / "feature_store.yaml"
    original = yaml_path.read_text()
    depth = len(current(dep).resolve().parts)
    escape = "/".join([".."] * depth) + str(outside / "etc")  # ../../../../ up to / and down again
    yaml_path.write_text(original.replace("path: data/registry.db", f"path: {escape}/registry.db"))
    try:
        plan = json.loads(dep.run("plan", "-o", "json").ok().stdout)
        assert "feature_store.yaml" in plan["upload"]
        assert not outside.exists(), "plan wrote outside the deployment"
        res = dep.run("deploy").ok()
        assert "_featctl/registry.db" in res.stderr
        assert not outside.exists(), "deploy wrote outside the deployment"
        assert (current(dep) / "_featctl" / "registry.db").exists()
        score(dep)
    finally:
        yaml_path.write_text(original)
    dep.run("deploy").ok()
    score(dep)


# --- destroy leaves nothing, or says so ---------------------------------------------------------


def test_destroy_stops_every_process_and_checks_the_ports(dep):
    # A process of the deployment that featctl did not start (cwd inside the host dir).
    rogue = subprocess.Popen(["sleep", "600"], cwd=current(dep), start_new_session=True)
    # A foreign program on one of the deployment's server ports (after its servers stop).
    port = next(p for p in dep.record()["server_ports"] if p != dep.record()["server_port"])
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", port))
    squatter.listen()
    try:
        res = dep.run("destroy", "--yes")
        assert res.returncode == 1, res.stderr
        assert f"port(s) {port}" in last_line(res) and "still accept connections" in last_line(res)
        assert rogue.wait(timeout=10) != 0  # stopped with the rest
        assert (dep.workspace / "deployment.json").exists(), "the record is kept for another try"
    finally:
        squatter.close()
        if rogue.poll() is None:
            rogue.kill()
    res = dep.run("destroy", "--yes").ok()
    assert processes_under(dep.root) == []
    assert not (dep.workspace / "deployment.json").exists()
