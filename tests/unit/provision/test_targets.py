"""The variables each target's stack gets: one entry per host, the shared
stores with generated passwords, and values chosen once that stay."""

from __future__ import annotations

import pytest

from featctl.errors import UsageError
from featctl.lifecycle.hosts import check_shared
from featctl.provision.targets import HostKeys, stack_variables
from featctl.repo.feature_store import RepoConfig
from featctl.workspace import Workspace

KEYS = HostKeys(client_public="ssh-ed25519 AAAAclient c", hosts=(("/k/h0", "ssh-ed25519 AAAA0 h"), ("/k/h1", "ssh-ed25519 AAAA1 h")))


def local_vars(tmp_path, previous=None, stores=("redis", "postgres")):
    ws = Workspace(tmp_path / "ws")
    return ws, stack_variables(
        "local", name="featctl", keys=KEYS, workspace=ws, target_vars={}, previous=previous, stores=stores
    )


def test_local_hosts_have_their_own_dirs_keys_and_ports(tmp_path):
    ws, v = local_vars(tmp_path)
    assert [k["private_key_path"] for k in v["host_keys"]] == ["/k/h0", "/k/h1"]
    dirs = v["host_dirs"]
    assert dirs[0]["remote_base_dir"] == str(ws.local_dir / "host") == v["remote_base_dir"]
    assert dirs[1]["state_dir"] == str(ws.local_dir / "sshd-1")
    assert len({d["port"] for d in dirs} | set(v["store_ports"].values())) == 4
    assert v["stores"] == ["redis", "postgres"]


def test_store_passwords_are_generated_once_0600_and_url_safe(tmp_path):
    ws, v = local_vars(tmp_path)
    for store, path in v["store_password_files"].items():
        p = ws.store_password_file(store)
        assert str(p) == path and p.stat().st_mode & 0o777 == 0o600
        word = p.read_text().strip()
        assert len(word) == 32 and word.isalnum() and word[0].isalpha()
    before = {s: ws.store_password_file(s).read_text() for s in v["stores"]}
    _, again = local_vars(tmp_path, previous=v)
    assert {s: ws.store_password_file(s).read_text() for s in v["stores"]} == before
    assert again["store_ports"] == v["store_ports"] and again["host_dirs"] == v["host_dirs"]


def test_spark_is_not_a_terraform_store_and_yandex_gets_the_same_contract(tmp_path):
    ws = Workspace(tmp_path / "ws")
    v = stack_variables("yandex", name="n", keys=KEYS, workspace=ws, target_vars={}, stores=("postgres", "spark"))
    assert v["stores"] == ["postgres"] and set(v["store_password_files"]) == {"postgres"}
    assert len(v["host_keys"]) == 2 and v["remote_base_dir"] == "/opt/featctl"


def test_several_hosts_need_shared_stores():
    check_shared(1, RepoConfig(path=None, data={"project": "p"}))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match='hosts = 2 needs shared stores: set stores = \\["redis", "postgres"\\]'):
        check_shared(2, RepoConfig(path=None, data={"project": "p"}))  # type: ignore[arg-type]
    shared = {"project": "p", "online_store": {"type": "redis"}, "registry": {"registry_type": "sql"}}
    check_shared(2, RepoConfig(path=None, data=shared))  # type: ignore[arg-type]


def test_a_workspace_path_with_a_comma_or_quote_takes_local_stores(tmp_path):
    """#23 item 9: the hosts name the CA through a link (lifecycle/hosts._ca_alias);
    only a newline, which no settings file carries, is refused before Terraform."""
    for fine in ("a,b", "it's"):
        ws = Workspace(tmp_path / fine / "ws")
        v = stack_variables("local", name="featctl", keys=KEYS, workspace=ws, target_vars={}, stores=("redis",))
        assert "," in v["remote_base_dir"] or "'" in v["remote_base_dir"]
    ws = Workspace(tmp_path / "new\nline" / "ws")
    with pytest.raises(UsageError, match="newline"):
        stack_variables("local", name="featctl", keys=KEYS, workspace=ws, target_vars={}, stores=("redis",))


def test_local_stores_get_tls_material_for_the_listen_address(tmp_path):
    ws, v = local_vars(tmp_path)
    assert set(v["tls"]) == {"ca_cert", "server_cert", "server_key", "digest"}
    assert v["tls"]["ca_cert"] == str(ws.tls_dir / "ca.crt")
    _, again = local_vars(tmp_path, previous=v)
    assert again["tls"] == v["tls"]  # kept: no restart of the servers
    _, none = local_vars(tmp_path / "plain", stores=())
    assert "tls" not in none
