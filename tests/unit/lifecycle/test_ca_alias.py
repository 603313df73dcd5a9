"""A workspace path with a comma or a quote keeps the stores' CA where the
hosts' store settings cannot name it (#23 item 9): the host gets a link to it
at a path they can."""

from __future__ import annotations

import pytest

from featctl.errors import UsageError
from featctl.lifecycle.hosts import SAFE_PATH, _ca_aliases
from featctl.repo.stores import env_lines


def _ca_alias(conn, ca):
    return _ca_aliases(conn, {"redis": {"ca_file": ca}})[ca]


class Conn:
    def __init__(self, home="/root"):
        self.home = home
        self.commands: list[str] = []

    def run(self, command, timeout=0):
        self.commands.append(command)

        class R:
            text = self.home + "\n"

        return R()


def test_a_ca_under_a_comma_or_quote_gets_a_link_the_settings_can_carry():
    conn = Conn()
    ca = "/tmp/w/a,b's/.featctl/local/host/tls/featctl-ca.crt"
    alias = _ca_alias(conn, ca)
    assert alias.startswith("/root/.featctl/ca/") and alias.endswith(".crt") and SAFE_PATH.fullmatch(alias)
    assert _ca_alias(Conn(), ca) == alias  # the same link on every deploy
    assert "ln -sfn '/tmp/w/a,b'\"'\"'s/.featctl/local/host/tls/featctl-ca.crt' " + alias in conn.commands[-1]
    assert conn.commands[-1].startswith("umask 077 && mkdir -p /root/.featctl/ca")
    text = env_lines({"redis": {"host": "127.0.0.1", "port": 6390, "tls": True, "ca_file": alias}}, {"redis": "pw"})
    assert f"ssl_ca_certs={alias}" in text


def test_a_home_that_cannot_carry_it_either_is_one_line():
    with pytest.raises(UsageError, match="comma or quote"):
        _ca_alias(Conn(home="/home/a,b"), "/w/a,b/tls/ca.crt")


@pytest.mark.parametrize("path", ["/tmp/pytest-of-root/pytest-0/keeping0/.featctl/local/host/tls/featctl-ca.crt"])
def test_ordinary_paths_are_used_as_they_are(path):
    assert SAFE_PATH.fullmatch(path)
    assert not SAFE_PATH.fullmatch("/a,b/ca.crt") and not SAFE_PATH.fullmatch("/a'b/ca.crt")
    assert not SAFE_PATH.fullmatch("/a b/ca.crt")


def test_stores_sharing_one_ca_get_one_link_in_one_command():
    conn = Conn()
    ca = "/w/a,b/tls/featctl-ca.crt"
    aliases = _ca_aliases(conn, {"redis": {"ca_file": ca}, "postgres": {"ca_file": ca}, "spark": {}})
    assert list(aliases) == [ca]
    assert len(conn.commands) == 2 and conn.commands[1].count("ln -sfn") == 1  # home, then the link
    assert _ca_aliases(Conn(), {"redis": {"ca_file": "/plain/tls/ca.crt"}}) == {}
