"""Settings precedence: flag > FEATCTL_* > featctl.toml > default."""

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
