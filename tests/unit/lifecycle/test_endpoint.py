"""The endpoint core without HAProxy: backends, allowed networks, plan rows, teardown."""

from __future__ import annotations

import json

from featctl.config import load_settings
from featctl.lifecycle import endpoint, tokens
from featctl.workspace import Deployment


def record(hosts: int = 2) -> Deployment:
    rows = [
        {"host": "127.0.0.1", "port": 2200 + i, "host_public_key": "k", "remote_base_dir": f"/ws/local/h{i}", "server_port": 6566 + i}
        for i in range(hosts)
    ]
    return Deployment(target="local", name="x", host="127.0.0.1", remote_base_dir="/ws/local/h0", server_port=6567, hosts=rows if hosts > 1 else [])


def settings(tmp_path, table: str = "", target: str = "local"):
    (tmp_path / "featctl.toml").write_text(f'target = "{target}"\n' + table)
    return load_settings({}, environ={}, cwd=tmp_path)


def test_backends_are_each_hosts_serving_socket():
    assert [(b.name, b.address) for b in endpoint.backends(record())] == [
        ("h0", "/ws/local/h0/run/s/6567"),
        ("h1", "/ws/local/h1/run/s/6567"),
    ]
    assert [b.address for b in endpoint.backends(record(1))] == ["/ws/local/h0/run/s/6567"]


def test_allowed_networks(tmp_path):
    assert endpoint.allowed(settings(tmp_path, "[endpoint]\n")) == ["127.0.0.0/8"]
    assert endpoint.allowed(settings(tmp_path, '[endpoint]\nallow = ["10.1.2.3/24"]\n')) == ["10.1.2.0/24"]
    assert endpoint.allowed(settings(tmp_path, '[endpoint]\nlisten = "198.18.7.1"\n', target="vm")) == ["198.18.7.0/24"]
    yc = settings(tmp_path, '[endpoint]\n[yandex]\nsubnet_cidr = "10.20.0.0/24"\n', target="yandex")
    assert endpoint.allowed(yc) == ["10.20.0.0/24"]
    assert endpoint.url(settings(tmp_path, '[endpoint]\nlisten = "::1"\nport = 9000\n').endpoint) == "https://[::1]:9000"


def test_plan_rows(tmp_path):
    s = settings(tmp_path, "[endpoint]\n")
    rec = record()
    added = endpoint.plan_rows(s, rec)
    assert [(r.kind, r.name, r.change) for r in added] == [("endpoint", "https://127.0.0.1:8443", "add")]
    state_dir = s.workspace / "endpoint"
    state_dir.mkdir(parents=True)
    (state_dir / "state.json").write_text(json.dumps(endpoint.desired_state(s, rec)))
    assert endpoint.plan_rows(s, rec) == []
    assert endpoint.plan_rows(s, record(3))[0].fields == ("backends",)
    changed = settings(tmp_path, '[endpoint]\nport = 9443\nallow = ["10.0.0.0/8"]\n')
    assert endpoint.plan_rows(changed, rec)[0].fields == ("port", "allow")
    removed = endpoint.plan_rows(settings(tmp_path, ""), rec)
    assert [(r.name, r.change) for r in removed] == [("127.0.0.1", "remove")]


def test_sync_without_the_table_keeps_tokens_and_teardown_removes_all(tmp_path):
    s = settings(tmp_path, "")
    ws = s.workspace
    tokens.create(ws, "app")
    (ws / "endpoint" / "haproxy.cfg").write_text("x")
    from featctl.session import Session

    assert endpoint.sync(Session(s), record()) is None
    assert sorted(p.name for p in (ws / "endpoint").iterdir()) == ["tokens.map"]
    assert (ws / "tokens.json").exists()
    endpoint.teardown(ws)
    assert not (ws / "endpoint").exists() and not (ws / "tokens.json").exists()
    assert not (ws / "endpoint.lock").exists()


def test_sync_refuses_other_targets_before_touching_anything(tmp_path):
    import pytest

    from featctl.errors import UsageError
    from featctl.session import Session

    s = settings(tmp_path, "[endpoint]\n", target="ssh")
    with pytest.raises(UsageError, match="local, vm and yandex targets"):
        endpoint.sync(Session(s), record())
    assert not (s.workspace / "endpoint").exists()
