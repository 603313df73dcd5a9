"""The production path in a real systemd guest: ``featctl deploy --target vm
--stores redis,postgres``.

terraform/vm boots a Debian 12 guest with systemd-nspawn (systemd as PID 1)
whose cloud-init runs the user-data rendered from the yandex stack's own
template; featctl then waits for cloud-init, installs Feast from PyPI with uv
in the guest and runs every server as a systemd unit. The shared stores are
featctl's TLS-only Redis and PostgreSQL on this machine, which the guest
reaches with a Yandex VM's settings (the CA its user-data fetched,
verify-full). The guest has a network of its own: a bridge of the deployment's
with a /28 of 198.19.0.0/16, the guest's sshd on its own address, port 22, the
stores on the bridge's address, NAT out. One deployment serves the module; the
last test destroys it and checks that nothing is left, network included.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, featctl
from tests.integration.conftest import Deployed
from tests.integration.expected import latest, load
from tests.integration.helpers import touch
from tests.integration.vmnet import listeners, on_bridge

pytestmark = pytest.mark.integration


def _guest_ok() -> None:
    from featctl.provision.vm import unavailable

    why = unavailable()
    if why is not None:
        pytest.fail(f"the vm target cannot run here: it {why}")


@pytest.fixture(scope="module")
def vm(tmp_path_factory) -> Iterator[Deployed]:
    _guest_ok()
    root = tmp_path_factory.mktemp("vm")
    shutil.copytree(
        ROOT / "feature_repo", root / "feature_repo", ignore=shutil.ignore_patterns("*.db", "*.parquet", "__pycache__")
    )
    (root / "featctl.toml").write_text('target = "vm"\nstores = ["redis", "postgres"]\n')
    dep = Deployed(root)
    started = time.monotonic()
    first = featctl("deploy", cwd=root, timeout=1500)
    dep.first_deploy = first
    dep.deploy_seconds = time.monotonic() - started  # type: ignore[attr-defined]
    try:
        first.ok()
        yield dep
    finally:
        if (dep.workspace / "deployment.json").exists():
            featctl("destroy", "--yes", cwd=root, timeout=600)


def guest(dep: Deployed, command: str, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in the guest over SSH, as featctl does: its client key, the pinned host key only."""
    rec = dep.record()
    proc = subprocess.run(
        [
            "ssh",
            "-i", str(dep.workspace / "keys" / "client_ed25519"),
            "-o", f"UserKnownHostsFile={dep.workspace / 'known_hosts'}",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "BatchMode=yes",
            "-o", "LogLevel=ERROR",
            "-p", str(rec["port"]),
            f"{rec['user']}@{rec['host']}",
            command,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    if check:
        assert proc.returncode == 0, f"{command}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


def status(dep: Deployed) -> dict:
    return dep.status()["deployment"]  # exit 8 when SSH or the server does not answer


def server_unit(dep: Deployed) -> str:
    names = guest(dep, "ls /etc/systemd/system").stdout.split()
    [unit] = [n for n in names if "-server-" in n]
    return unit


def unit_props(dep: Deployed, unit: str, *props: str) -> dict[str, str]:
    out = guest(dep, f"systemctl show {' '.join(f'-p {p}' for p in props)} {unit}").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_the_guest_is_a_systemd_machine_that_cloud_init_set_up_first(vm):
    err = vm.first_deploy.stderr
    assert f" to vm host {vm.record()['host']}:22 " in err
    # Item 3: cloud-init is waited for right after SSH answers, before the agent goes up.
    ssh_at, cloud_at = err.index("waiting for SSH"), err.index("waiting for cloud-init to finish")
    assert ssh_at < cloud_at < err.index("installing featctl's host agent")
    assert guest(vm, "cat /proc/1/comm").stdout.strip() == "systemd"
    state = guest(vm, "cloud-init status --long").stdout
    assert "status: done" in state and "DataSourceNoCloud" in state, state
    # What the yandex user-data's runcmd made: the base directory, owned by
    # the user, and the stores' CA fetched from its ca_url.
    assert guest(vm, "stat -c %U:%a /opt/featctl").stdout.strip() == "featctl:755"
    ca = guest(vm, "cat /opt/featctl/tls/featctl-ca.crt").stdout
    assert ca == (vm.workspace / "tls" / "ca.crt").read_text()
    # Feast came from PyPI with uv, into the guest's own environment.
    assert "/opt/featctl/envs/feast-0.67.0-" in guest(vm, "ls -d /opt/featctl/envs/feast-*/bin/feast").stdout


def test_the_guest_reaches_the_tls_stores_as_a_yandex_vm_does(vm):
    st = status(vm)
    assert set(st["stores"]) == {"redis", "postgres"}
    assert st["stores"]["redis"].endswith("(TLS)"), st["stores"]
    ca = "/opt/featctl/tls/featctl-ca.crt"
    # stores.env holds passwords: only whether each setting is there leaves the guest.
    wanted = [f",ssl=true,ssl_ca_certs={ca}", "FEATCTL_POSTGRES_SSLMODE=verify-full", f"FEATCTL_POSTGRES_SSLROOTCERT={ca}"]
    found = guest(vm, " ; ".join(f"grep -c -F -e {shlex.quote(w)} /opt/featctl/run/stores.env" for w in wanted))
    assert found.stdout.split() == ["1", "1", "1"], dict(zip(wanted, found.stdout.split()))
    assert guest(vm, "stat -c %a /opt/featctl/run/stores.env").stdout.strip() == "600"
    # Loaded into PostgreSQL, materialized into Redis: the release reads no parquet file.
    assert "loaded " in vm.first_deploy.stderr and "into PostgreSQL table" in vm.first_deploy.stderr


def _network(dep: Deployed) -> dict:
    return dep.record()["outputs"]["network"]


def test_the_guest_has_a_network_of_its_own(vm):
    rec, net = vm.record(), _network(vm)
    cidr = ipaddress.IPv4Network(net["cidr"])
    assert cidr.prefixlen == 28 and cidr.subnet_of(ipaddress.IPv4Network("198.19.0.0/16"))
    assert net["gateway"] == str(cidr.network_address + 1)
    # featctl logs in at the guest's own address, port 22; its key is pinned under that name.
    assert (rec["host"], rec["port"]) == (str(cidr.network_address + 2), 22)
    pinned = (vm.workspace / "known_hosts").read_text().split()
    assert pinned[0] == rec["host"] and pinned[2] == rec["host_public_key"].split()[1]
    # A network namespace of its own, its address on host0, the bridge its default route.
    guest_ns = guest(vm, "stat -L -c %i /proc/self/ns/net").stdout.strip()
    assert int(guest_ns) != os.stat("/proc/self/ns/net").st_ino
    assert f"inet {rec['host']}/28 " in guest(vm, "ip -4 -o addr show dev host0").stdout
    assert guest(vm, "ip -4 route show default").stdout.split()[:3] == ["default", "via", net["gateway"]]
    assert "0.0.0.0:22 " in guest(vm, "ss -Hltn").stdout
    # The guest's sshd is not on this machine's loopback: no socket listening
    # here belongs to a process in the guest.
    [m] = rec["outputs"]["machines"]
    theirs = [local for local, pid in listeners() if _root_of(Path(f"/proc/{pid}")).startswith(m["machine_dir"])]
    assert theirs == []


def test_a_machine_on_the_bridge_reaches_the_guest_and_the_stores(vm):
    """As an application VM in the same subnet would: a network namespace with
    the subnet's last address, its veth on the deployment's bridge."""
    rec, net = vm.record(), _network(vm)
    with on_bridge(net["bridge"], net["cidr"]) as inside:
        proc = subprocess.run(
            [*inside, "ssh",
             "-i", str(vm.workspace / "keys" / "client_ed25519"),
             "-o", f"UserKnownHostsFile={vm.workspace / 'known_hosts'}",
             "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20",
             f"{rec['user']}@{rec['host']}", "hostname"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == guest(vm, "hostname").stdout.strip()
        # The stores answer on the bridge's address; nothing else of this machine does
        # (here a server on all of this machine's addresses).
        probe = f"import socket; socket.create_connection(('{net['gateway']}', {{}}), timeout=3).close()"
        port = int(rec["stores"]["redis"]["port"])
        ok = subprocess.run([*inside, sys.executable, "-c", probe.format(port)], capture_output=True)
        assert ok.returncode == 0, ok.stderr
        with socket.create_server(("0.0.0.0", 0)) as other:
            with socket.create_connection((net["gateway"], other.getsockname()[1]), timeout=3):
                pass  # from this machine: yes
            blocked = subprocess.run([*inside, sys.executable, "-c", probe.format(other.getsockname()[1])], capture_output=True)
            assert blocked.returncode != 0 and b"timed out" in blocked.stderr, blocked.stderr


def test_the_stores_listen_on_the_bridge_only_and_admit_the_subnet_only(vm):
    rec, net = vm.record(), _network(vm)
    for store, where in rec["stores"].items():
        assert where["host"] == net["gateway"], store
        at = [local for local, _ in listeners() if local.endswith(f":{where['port']}")]
        assert at == [f"{net['gateway']}:{where['port']}"], (store, at)
    hba = Path(rec["stack_vars"]["store_dirs"]["postgres"], "pg_hba.conf").read_text()
    rules = [line.split() for line in hba.splitlines() if line.strip() and not line.startswith("#")]
    admit = ["hostssl", "all", "all", net["cidr"], "scram-sha-256"]
    assert rules == [admit, ["hostnossl", "all", "all", "all", "reject"]]
    # The guests' egress is masqueraded, their subnet's only, in the deployment's own table.
    table = subprocess.run(["nft", "list", "table", "ip", net["table"]], capture_output=True, text=True).stdout
    assert f"ip saddr {net['cidr']} ip daddr != {net['cidr']} masquerade" in table, table


def test_score_matches_pandas(vm):
    rows = vm.json("score", "--weights", "conv_rate=0.7,acc_rate=0.3", "--driver", "1001", "--driver", "1002")
    df = load(vm.repo / "data" / "driver_stats.parquet")
    assert [r["driver_id"] for r in rows] == [1001, 1002]
    for row in rows:
        want = latest(df, row["driver_id"])
        assert row["conv_rate"] == pytest.approx(float(want.conv_rate), rel=1e-6)
        assert row["acc_rate"] == pytest.approx(float(want.acc_rate), rel=1e-6)
        expected = 0.7 * float(want.conv_rate) + 0.3 * float(want.acc_rate)
        assert row["linear_combination"] == pytest.approx(expected, rel=1e-6)


def test_status_says_systemd_supervises_the_server(vm):
    st = status(vm)
    unit = server_unit(vm)
    assert st["feature_server"].startswith("healthy")
    assert st["supervised_by"].startswith(f"systemd (unit {unit}, main pid ")


def test_the_feature_server_is_a_unit_that_comes_back_after_systemctl_kill(vm):
    unit = server_unit(vm)
    before = unit_props(vm, unit, "MainPID", "ActiveState", "NRestarts", "User", "Restart")
    assert before["ActiveState"] == "active" and before["User"] == "featctl" and before["Restart"] == "always"
    guest(vm, f"sudo -n systemctl kill {unit}")
    deadline = time.monotonic() + 120
    while True:
        now = unit_props(vm, unit, "MainPID", "ActiveState", "NRestarts")
        if now["ActiveState"] == "active" and now["MainPID"] not in ("0", before["MainPID"]):
            break
        assert time.monotonic() < deadline, f"{unit} did not come back: {now}"
        time.sleep(1)
    assert int(now["NRestarts"]) == int(before["NRestarts"]) + 1
    deadline = time.monotonic() + 120
    while not status(vm)["feature_server"].startswith("healthy"):
        assert time.monotonic() < deadline, "the restarted server did not become healthy"
        time.sleep(2)
    test_score_matches_pandas(vm)


def test_schedule_is_a_systemd_timer(vm):
    res = vm.run("schedule", "--every", "1h").ok()
    assert "(systemd timer)" in res.stderr + res.stdout
    timers = guest(vm, "systemctl list-timers --all --no-legend").stdout
    [line] = [ln for ln in timers.splitlines() if "-materialize.timer" in ln]
    timer = next(w for w in line.split() if w.endswith("-materialize.timer"))
    assert unit_props(vm, timer, "ActiveState")["ActiveState"] == "active"
    sched = status(vm)["schedule"]
    assert sched["manager"] == "systemd timer" and sched["unit"] == timer and sched["next_run"]
    # A run of the timer's service materializes through the serving server.
    guest(vm, f"sudo -n systemctl start {timer.replace('.timer', '.service')}")
    sched = status(vm)["schedule"]
    assert sched["last_status"] == "ok", sched
    vm.run("schedule", "--off").ok()
    assert not [n for n in guest(vm, "ls /etc/systemd/system").stdout.split() if "materialize" in n]


def test_feasts_ui_runs_as_a_unit(vm):
    proc = subprocess.Popen(
        [sys.executable, "-m", "featctl", "ui", "--no-browser"],
        cwd=vm.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = proc.stdout.readline().strip() if proc.stdout else ""
        assert url.startswith("http://127.0.0.1:"), url
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url.split("/p/")[0] + "/", timeout=10) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "Feast's UI did not answer"
                time.sleep(1)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    units = guest(vm, "systemctl list-units --no-legend 'featctl-*-ui-*'").stdout
    assert " active running " in " ".join(units.split()) + " ", units


def test_a_new_release_replaces_its_units(vm):
    old = server_unit(vm)
    touch(vm, "vm")
    vm.run("deploy").ok()
    new = server_unit(vm)  # exactly one server unit: the old release's is gone
    assert new != old
    ui = [n for n in guest(vm, "ls /etc/systemd/system").stdout.split() if "-ui-" in n]
    assert len(ui) == 1 and ui[0].split("-ui-")[1] == new.split("-server-")[1]
    test_score_matches_pandas(vm)


def test_a_guest_that_went_down_is_booted_again_and_serves_the_same_release(vm):
    """As after this machine rebooted: the guest is gone, its disk stays."""
    rec = vm.record()
    [m] = rec["outputs"]["machines"]
    stop = vm.workspace / "terraform" / "vm" / "scripts" / "stop-guest.sh"
    subprocess.run(["sh", str(stop)], env={**os.environ, "MACHINE_DIR": m["machine_dir"]}, check=True, timeout=120)
    assert status(vm)["ssh"].startswith("no answer")
    res = vm.run("deploy").ok()
    assert "guest 0 is not running; Terraform will restart it" in res.stderr
    # systemd started the enabled unit at boot: the same release serves, nothing rebuilt.
    assert "nothing changed" in res.stderr, res.stderr
    assert vm.record()["release"] == rec["release"]
    test_score_matches_pandas(vm)


def test_after_a_reboot_the_network_comes_back_with_the_guest_and_stores_on_it(vm):
    """A reboot takes the bridge and the nftables table too: deploy makes the
    network again, boots the guest on it and restarts the stores bound to it."""
    rec, net = vm.record(), _network(vm)
    [m] = rec["outputs"]["machines"]
    scripts = vm.workspace / "terraform" / "vm" / "scripts"
    env = {**os.environ, "MACHINE_DIR": m["machine_dir"], "BRIDGE": net["bridge"]}
    subprocess.run(["sh", str(scripts / "stop-guest.sh")], env=env, check=True, timeout=120)
    subprocess.run(["sh", str(scripts / "firewall.sh")], env={**env, "DELETE": "1"}, check=True, timeout=60)
    subprocess.run(["sh", str(scripts / "net-down.sh")], env=env, check=True, timeout=60)
    res = vm.run("deploy").ok()
    assert f"the guests' network (bridge {net['bridge']}" in res.stderr, res.stderr
    assert "nothing changed" in res.stderr, res.stderr
    assert _network(vm) == net and vm.record()["release"] == rec["release"]
    test_the_stores_listen_on_the_bridge_only_and_admit_the_subnet_only(vm)
    test_score_matches_pandas(vm)


def test_destroy_leaves_no_process_port_disk_key_or_network(vm):
    rec = vm.record()
    machines = rec["outputs"]["machines"]
    image = Path(rec["outputs"]["image"])
    net = rec["outputs"]["network"]
    ports = [int(where["port"]) for where in rec["stores"].values()]
    data = [Path(d) for d in rec["stack_vars"]["store_dirs"].values()]
    assert data and all(d.exists() for d in data)
    assert Path("/sys/class/net", net["bridge"]).exists()
    vm.run("destroy", "--yes").ok()
    for m in machines:
        d = m["machine_dir"]
        assert not Path(d).exists(), d
        out = subprocess.run(["ps", "-eww", "-o", "pid,args"], capture_output=True, text=True).stdout
        assert d not in out, [ln for ln in out.splitlines() if d in ln]
        roots = [p for p in Path("/proc").glob("[0-9]*") if _root_of(p).startswith(d)]
        assert roots == []
        assert d not in Path("/proc/self/mountinfo").read_text()
        assert d not in subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    listening = [local for local, _ in listeners()]
    for port in ports:
        assert not [a for a in listening if a.endswith(f":{port}")], port
    # No bridge, no veth on it, no address, no NAT rule of the deployment's.
    from featctl.provision.vmnet import leftovers

    assert leftovers(net) == []
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert net["bridge"] not in links
    assert net["gateway"] not in subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True).stdout
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert net["table"] not in tables
    if "fcbr" not in links:
        # The last featctl bridge gone: the forwarding net-up.sh turned on is off again, its state gone.
        assert not Path("/run/featctl-vm-net").exists()
    for d in data:
        assert not d.exists(), d
    ws = vm.workspace
    for gone in (ws / "deployment.json", ws / "known_hosts", ws / "keys", ws / "tls", ws / "secrets",
                 ws / "terraform" / "vm", ws / "local"):  # fmt: skip
        assert not gone.exists(), gone
    assert (image / ".complete").exists(), "the base image stays cached for the next deployment"
    vm_seconds = getattr(vm, "deploy_seconds", 0)
    print(json.dumps({"first_deploy_seconds": round(vm_seconds, 1)}))


def _root_of(proc: Path) -> str:
    try:
        return os.readlink(proc / "root")
    except OSError:
        return ""
