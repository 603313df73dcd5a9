"""Settings precedence: flag > FEATCTL_* > featctl.toml > default."""

import re

import pytest

from featctl.config import load_settings
from featctl.errors import ConfigError


def test_defaults(tmp_path):
    s = load_settings({}, environ={}, cwd=tmp_path)
    assert s.target == "local"
    assert s.repo == (tmp_path / "feature_repo").resolve()
    assert s.workspace == (tmp_path / ".featctl").resolve()
    assert s.sources["target"] == "default"


def test_precedence(tmp_path):
    (tmp_path / "featctl.toml").write_text(
        'target = "yandex"\nserver_port = 7000\nname = "fromfile"\n[yandex]\nzone = "ru-central1-b"\n'
    )
    env = {"FEATCTL_SERVER_PORT": "7100", "FEATCTL_NAME": "fromenv"}
    s = load_settings({"name": "fromflag"}, environ=env, cwd=tmp_path)
    assert s.target == "yandex" and s.sources["target"] == "featctl.toml"
    assert s.server_port == 7100 and s.sources["server_port"] == "FEATCTL_SERVER_PORT"
    assert s.name == "fromflag" and s.sources["name"] == "flag"
    assert s.target_vars["yandex"] == {"zone": "ru-central1-b"}


@pytest.mark.parametrize(
    ("flags", "env", "toml", "message"),
    [
        ({"target": "aws"}, {}, "", "unknown target 'aws'"),
        ({}, {"FEATCTL_SERVER_PORT": "http"}, "", "must be an integer"),
        ({}, {}, "server_port = 70000", "TCP port"),
        ({}, {}, "colour = 'red'", "unknown setting"),
        ({}, {}, "target = ", "invalid TOML"),
        ({"name": "Bad_Name"}, {}, "", "deployment name"),
    ],
)
def test_bad_settings(tmp_path, flags, env, toml, message):
    (tmp_path / "featctl.toml").write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(flags, environ=env, cwd=tmp_path)


def test_explicit_missing_config(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({}, environ={}, cwd=tmp_path, config_path=tmp_path / "nope.toml")


# --- [endpoint] -------------------------------------------------------------------------------------------------------
def test_no_endpoint_table_is_none(tmp_path):
    assert load_settings({}, environ={}, cwd=tmp_path).endpoint is None


def test_endpoint_defaults_and_values(tmp_path):
    from featctl.config import EndpointSettings

    (tmp_path / "featctl.toml").write_text("[endpoint]\n")
    assert load_settings({}, environ={}, cwd=tmp_path).endpoint == EndpointSettings(
        listen="127.0.0.1", port=8443, allow=(), max_body=1048576, timeout=5.0, names=(), health_port=None
    )
    (tmp_path / "featctl.toml").write_text(
        '[endpoint]\nlisten = "198.18.7.1"\nport = 9443\nallow = ["198.18.7.0/30", "10.1.2.3/24"]\n'
        'max_body = 4096\ntimeout = 2.5\nnames = ["features.example.com", "10.0.0.5"]\nhealth_port = 8080\n'
    )
    ep = load_settings({}, environ={}, cwd=tmp_path).endpoint
    assert ep is not None
    assert (ep.listen, ep.port, ep.allow) == ("198.18.7.1", 9443, ("198.18.7.0/30", "10.1.2.0/24"))
    assert (ep.max_body, ep.timeout, ep.names, ep.health_port) == (4096, 2.5, ("features.example.com", "10.0.0.5"), 8080)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('listen = "localhost"', "listen must be an IP address"),
        ("listen = 1", "listen must be an IP address"),
        ('listen = "0.0.0.0"', "the address applications connect to, not 0.0.0.0"),
        ("port = 0", "port must be an integer from 1 to 65535"),
        ("port = 70000", "port must be an integer from 1 to 65535"),
        ('port = "8443"', "port must be an integer"),
        ("port = true", "port must be an integer"),
        ('allow = ["10.0.0.0/33"]', "is not a network"),
        ('allow = "10.0.0.0/8"', "allow must be a list of strings"),
        ("max_body = 0", "max_body must be an integer"),
        ("timeout = 0", "timeout must be a number of seconds"),
        ('timeout = "5s"', "timeout must be a number of seconds"),
        ('names = ["a b"]', "is not a DNS name"),
        ("health_port = 8443", "health_port must differ from port"),
        ("colour = 1", "unknown key(s) colour in [endpoint]"),
    ],
)
def test_bad_endpoint_table(tmp_path, table, message):
    (tmp_path / "featctl.toml").write_text(f"[endpoint]\n{table}\n")
    with pytest.raises(ConfigError, match=re.escape(message)) as exc:
        load_settings({}, environ={}, cwd=tmp_path)
    assert "\n" not in str(exc.value)
