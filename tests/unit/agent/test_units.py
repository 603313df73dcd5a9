"""The host agent's systemd units: what they say, what a release's bookkeeping
learns from them, and that stopping a release removes them. ``systemctl`` is
faked at the boundary (a script on PATH that records its calls); the real
thing runs in tests/integration/test_vm.py."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest

from featctl.agent import releases, units

FAKE_SYSTEMCTL = """#!{python}
import json, os, sys
with open(os.environ["FAKE_SYSTEMCTL_LOG"], "a") as fh:
    fh.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[1] == "list-timers":
    print(json.dumps([{{"unit": sys.argv[-1], "next": 1796287862727074, "last": 0}}]))
if sys.argv[1] == "show":
    state = json.load(open(os.environ["FAKE_SYSTEMCTL_STATE"]))
    names = [a for a in sys.argv[2:] if not a.startswith("--")]
    print("\\n\\n".join(f"Id={{n}}\\nMainPID={{state.get(n, 0)}}\\nActiveState=active" for n in names))
"""


@pytest.fixture
def systemd(tmp_path, monkeypatch):
    """A fake systemctl on PATH and an empty unit directory; returns (log, state file, unit dir)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "systemctl"
    fake.write_text(FAKE_SYSTEMCTL.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    log, state, unit_dir = tmp_path / "calls.log", tmp_path / "state.json", tmp_path / "units"
    unit_dir.mkdir()
    state.write_text("{}")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SYSTEMCTL_LOG", str(log))
    monkeypatch.setenv("FAKE_SYSTEMCTL_STATE", str(state))
    monkeypatch.setattr(units, "UNIT_DIR", str(unit_dir))
    monkeypatch.setattr(units, "_sudo", lambda: [])
    return log, state, unit_dir


def test_unit_names_belong_to_one_deployment_directory():
    a = units.name("/opt/featctl", "server", "20261203T074034354Z")
    b = units.name("/srv/other", "server", "20261203T074034354Z")
    assert a.startswith("featctl-") and a.endswith("-server-20261203t074034354z")
    assert a != b and units.prefix("/opt/featctl") != units.prefix("/srv/other")
    assert units.name("/opt/featctl", "materialize") == f"{units.prefix('/opt/featctl')}-materialize"


def test_service_unit_restarts_logs_and_loads_the_stores_env():
    text = units.service_text(
        "featctl server of release R",
        "/opt/featctl/releases/R",
        ["/opt/featctl/envs/e/bin/feast", "serve", "--host", "127.0.0.1", "--port", "6566"],
        log="/opt/featctl/releases/R/.featctl/server.log",
        env_file="/opt/featctl/run/stores.env",
    )
    import pwd

    assert f"User={pwd.getpwuid(os.geteuid()).pw_name}\n" in text
    assert "WorkingDirectory=/opt/featctl/releases/R\n" in text
    assert "Restart=always\n" in text and "KillMode=control-group\n" in text
    assert "ExecStart=/opt/featctl/envs/e/bin/feast serve --host 127.0.0.1 --port 6566\n" in text
    assert "StandardOutput=append:/opt/featctl/releases/R/.featctl/server.log\n" in text
    assert "EnvironmentFile=-/opt/featctl/run/stores.env\n" in text
    assert "WantedBy=multi-user.target" in text
    once = units.service_text("t", "/b", ["x", "a b"], log="/b/l", env_file="/b/e", oneshot=True)
    assert "Type=oneshot\n" in once and "Restart=" not in once and "ExecStart=x 'a b'\n" in once


def test_timer_runs_every_interval_and_catches_up():
    text = units.timer_text("every hour", 3600)
    assert "OnUnitActiveSec=3600s\n" in text and "OnActiveSec=3600s\n" in text and "Persistent=true\n" in text


def _release(base, rid, unit=None):
    meta = base / "releases" / rid / ".featctl"
    meta.mkdir(parents=True)
    (meta / "state").write_text("ready")
    (meta / "port").write_text("6566")
    if unit:
        (meta / "server.unit").write_text(unit)


def test_a_release_run_by_systemd_reports_its_unit_and_stops_with_it(tmp_path, systemd):
    log, state, unit_dir = systemd
    base = tmp_path / "base"
    unit = units.name(str(base), "server", "R1")
    _release(base, "R1", unit)
    _release(base, "R2")  # run by featctl's supervisor: no unit, nothing asked of systemd for it
    (unit_dir / f"{unit}.service").write_text("[Service]\n")
    state.write_text(json.dumps({f"{unit}.service": os.getpid()}))

    found = {r["id"]: r for r in releases.releases(str(base))}
    assert found["R1"]["unit"] == unit and found["R1"]["server_pid"] == os.getpid()
    assert found["R2"]["unit"] is None and found["R2"]["server_pid"] is None

    assert releases.stop_server(str(base), "R1") is True
    assert not (unit_dir / f"{unit}.service").exists()
    assert not (base / "releases" / "R1" / ".featctl" / "server.unit").exists()
    calls = log.read_text().splitlines()
    assert f"disable --now {unit}.service" in calls and "daemon-reload" in calls
    state.write_text("{}")
    assert releases.releases(str(base))[0]["server_pid"] is None
    assert releases.stop_server(str(base), "R1") is False  # twice is fine


def test_without_units_systemctl_is_never_asked(tmp_path, systemd):
    log, _, _ = systemd
    base = tmp_path / "base"
    _release(base, "R1")
    releases.releases(str(base))
    releases.stop_server(str(base), "R1")
    assert not log.exists()


def test_the_schedule_timer_shows_in_the_state(tmp_path, systemd):
    _, _, unit_dir = systemd
    base = tmp_path / "base"
    assert units.timer_state(str(base)) is None
    (unit_dir / f"{units.name(str(base), 'materialize')}.timer").write_text("[Timer]\n")
    timer = units.timer_state(str(base))
    assert timer is not None and timer["manager"] == "systemd timer"
    assert timer["unit"] == f"{units.name(str(base), 'materialize')}.timer"
    assert timer["next_run"] == "2026-12-03T08:51:02Z" and timer["active"] == "active"
