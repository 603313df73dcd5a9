"""Issue #16 item 3: on a host cloud-init sets up (the yandex and vm targets),
nothing touches the host before cloud-init has finished: not the agent's
upload, not the ownership check (the deployment directory is made by the
user-data's runcmd, after packages). Host 0 in deploy and every follower wait.

The SSH connection is faked at the boundary (``wait_for_ssh`` hands out a
connection that records every command and upload); the real guest is in
tests/integration/test_vm.py.
"""

from __future__ import annotations

import pytest

from featctl.config import load_settings
from featctl.lifecycle import common, deploy, hosts
from featctl.provision.targets import HostKeys
from featctl.remote import agent, ssh
from featctl.remote.ssh import Result
from featctl.session import Session
from featctl.workspace import Deployment

DONE = b"status: done\nextended_status: done\nerrors: []\n"


class Reached(Exception):
    """The first step after the one under test: stop the flow here."""


class FakeHost:
    """Answers cloud-init's wait; anything else is recorded and ends the flow."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def run(self, command, *, timeout=600.0, check=True, stdin=None, on_line=None):
        if "cloud-init status --wait" in command:
            self.events.append("cloud-init wait")
            return Result(command, 0, DONE, b"")
        self.events.append(f"run: {command[:60]}")
        raise Reached(command)

    def put_text(self, path, text, mode=0o644):
        self.events.append(f"upload: {path}")
        raise Reached(path)

    def close(self) -> None:
        pass


@pytest.fixture
def fake_ssh(monkeypatch):
    made: list[FakeHost] = []

    def wait_for_ssh(endpoint, *, deadline_seconds, interval=0.5):
        made.append(FakeHost())
        return made[-1]

    monkeypatch.setattr(ssh, "wait_for_ssh", wait_for_ssh)
    return made


def _session(tmp_path, target):
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    (repo / "feature_store.yaml").write_text("project: p\nprovider: local\nregistry: data/registry.db\n")
    settings = load_settings({"target": target, "repo": str(repo), "workspace": str(tmp_path / "ws")}, environ={})
    return Session(settings)


def _record(target, count=1):
    hosts_ = [
        {"host": "127.0.0.1", "port": 2200 + i, "host_public_key": "ssh-ed25519 AAAA h", "remote_base_dir": "/opt/featctl"}
        for i in range(count)
    ]
    return Deployment(
        target=target, name="n", host="127.0.0.1", port=2200, user="featctl", remote_base_dir="/opt/featctl",
        host_public_key="ssh-ed25519 AAAA h", server_ports=[6566, 6567], hosts=hosts_ if count > 1 else [],
    )  # fmt: skip


@pytest.mark.parametrize("target", ["yandex", "vm"])
def test_connect_host_waits_for_cloud_init_before_anything_else(tmp_path, fake_ssh, target):
    session = _session(tmp_path, target)
    conn = common.connect_host(session, _record(target))
    assert fake_ssh[0].events == ["cloud-init wait"]
    with pytest.raises(Reached):
        agent.install_agent(conn, session.layout(_record(target)))
    assert fake_ssh[0].events[0] == "cloud-init wait"


@pytest.mark.parametrize("target", ["local", "ssh"])
def test_hosts_without_cloud_init_are_not_asked(tmp_path, fake_ssh, target):
    common.connect_host(_session(tmp_path, target), _record(target))
    assert fake_ssh[0].events == []


@pytest.mark.parametrize("target", ["yandex", "vm"])
def test_deploy_waits_for_cloud_init_right_after_ssh(tmp_path, fake_ssh, monkeypatch, target):
    session = _session(tmp_path, target)
    record = _record(target)
    monkeypatch.setattr(deploy, "provision", lambda session, rec, keys: record)
    keys = HostKeys(client_public="ssh-ed25519 AAAAc c", hosts=(("/k", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMhUNAqXpuCMSAI4DZPDAgsKG/USYCWh/i2CY8la+6We h"),))
    monkeypatch.setattr(deploy, "ensure_keys", lambda session: keys)
    monkeypatch.setattr(deploy.ownership, "precheck", lambda *a, **k: None)
    monkeypatch.setattr("featctl.provision.vm.preflight", lambda: None)
    with pytest.raises(Reached):
        deploy.deploy(session)
    events = fake_ssh[0].events
    assert events[0] == "cloud-init wait", events
    assert len(events) == 2 and "agent" in events[1], events  # the agent's digest check came next


@pytest.mark.parametrize("target", ["yandex", "vm"])
def test_every_follower_waits_for_cloud_init(tmp_path, fake_ssh, target):
    session = _session(tmp_path, target)
    record = _record(target, count=2)
    with pytest.raises(Reached):
        hosts.follow(session, record, 1, local=None, spec=agent.EnvSpec(), probe=None, materialized=set())  # type: ignore[arg-type]
    assert [h.events for h in fake_ssh] == [["cloud-init wait", fake_ssh[0].events[1]]]
    assert "agent" in fake_ssh[0].events[1]
