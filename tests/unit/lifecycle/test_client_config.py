"""client-config's bundle pieces, without a host or HAProxy."""

from __future__ import annotations

import json

import pytest
import yaml

from featctl.errors import UsageError
from featctl.lifecycle import client_config as cc
from featctl.workspace import Deployment

VIEW = {
    "name": "driver_hourly_stats",
    "features": [{"name": "conv_rate", "dtype": "Float32"}, {"name": "acc_rate", "dtype": "Float32"}],
    "join_keys": [{"name": "driver_id", "dtype": "Int64"}],
}


def test_example_request_uses_the_first_view_and_the_probe_entity():
    rec = Deployment(target="local", name="x", registry={"feature_views": [VIEW]})
    rec.probe = {"views": {"driver_hourly_stats": {"entity": {"driver_id": 1005}}}}
    assert cc._example_request(rec) == (
        ["driver_hourly_stats:conv_rate", "driver_hourly_stats:acc_rate"],
        {"driver_id": [1005]},
    )
    rec.probe = {}
    assert cc._example_request(rec)[1] == {"driver_id": [1001]}
    text = dict(VIEW, join_keys=[{"name": "user", "dtype": "String"}])
    assert cc._example_request(Deployment(target="local", name="x", registry={"feature_views": [text]}))[1] == {
        "user": ["1001"]
    }


def test_store_yaml_for_feast_remote_online_store():
    doc = yaml.safe_load(
        cc._store_yaml({"project": "p", "entity_key_serialization_version": 3}, "https://10.0.0.1:8443", "/b/ca.pem", {"token": "fct_x"}, "registry.db")
    )
    assert doc == {
        "project": "p",
        "provider": "local",
        "registry": {"path": "registry.db", "cache_ttl_seconds": 0},
        "online_store": {"type": "remote", "path": "https://10.0.0.1:8443", "cert": "/b/ca.pem"},
        "auth": {"type": "oidc", "token": "fct_x"},
        "entity_key_serialization_version": 3,
    }


def test_examples_read_the_token_from_its_file():
    body = json.dumps({"features": ["v:f"], "entities": {"k": [1]}})
    sh = cc._example_sh("https://h:1", body)
    assert '--cacert ca.pem' in sh and "$(cat token)" in sh and "--max-time" in sh and "fct_" not in sh
    py = cc._example_py("https://h:1", body)
    assert 'verify=str(HERE / "ca.pem")' in py and "timeout=" in py and '(HERE / "token")' in py
    compile(py, "example.py", "exec")


def test_k8s_secret_and_configmap():
    docs = list(yaml.safe_load_all(cc._k8s("My_App", "fct_t", "PEM", "project: p\n", b"\x00\x01")))
    assert [d["kind"] for d in docs] == ["Secret", "ConfigMap"]
    assert docs[0]["metadata"]["name"] == "featctl-my-app" and docs[0]["stringData"] == {"token": "fct_t", "ca.pem": "PEM"}
    assert docs[1]["data"] == {"feature_store.yaml": "project: p\n"} and docs[1]["binaryData"] == {"registry.db": "AAE="}


def test_out_must_be_new_or_empty(tmp_path):
    cc._prepare_out(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    cc._prepare_out(tmp_path / "empty")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for bad in (tmp_path / "full", tmp_path / "nowhere" / "out"):
        with pytest.raises(UsageError):
            cc._prepare_out(bad)
