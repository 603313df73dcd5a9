"""featctl token / endpoint / client-config on the command line (no HAProxy, no host)."""

from __future__ import annotations

import json

from tests.conftest import featctl


def test_token_create_list_revoke(tmp_path):
    (tmp_path / "featctl.toml").write_text("[endpoint]\n")
    made = featctl("token", "create", "scoring", "--expires", "90d", cwd=tmp_path).ok()
    token = made.stdout.splitlines()[-1]
    assert token.startswith("fct_") and made.stdout == token + "\n"
    assert token not in made.stderr and "shown once" in made.stderr

    again = featctl("token", "create", "scoring", cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "--replace" in again.stderr
    assert featctl("token", "create", "scoring", "--replace", "--write", cwd=tmp_path).ok()

    listed = featctl("token", "list", "--output", "json", cwd=tmp_path).ok()
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["scope"], r["status"]) for r in rows] == [("scoring", "write", "live")]
    assert set(rows[0]) == {"name", "scope", "created", "expires", "status"}
    csv = featctl("token", "list", "--output", "csv", cwd=tmp_path).ok()
    assert csv.stdout.splitlines()[0] == "name,scope,created,expires,status"

    assert featctl("token", "revoke", "scoring", cwd=tmp_path).ok()
    assert json.loads(featctl("token", "list", "-o", "json", cwd=tmp_path).ok().stdout) == []
    gone = featctl("token", "revoke", "scoring", cwd=tmp_path)
    assert gone.returncode == 2 and "no token for application" in gone.stderr


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "featctl.toml").write_text("[endpoint]\n")
    for args, message in [
        (("token", "create", "bad name"), "application name"),
        (("token", "create", "app", "--expires", "5x"), "--expires"),
        (("client-config", "bad/name", "--out", str(tmp_path / "out")), "application name"),
    ]:
        res = featctl(*args, cwd=tmp_path)
        assert res.returncode == 2 and res.stderr.count("\n") == 1 and message in res.stderr, res
        assert res.stdout == ""
    assert not (tmp_path / ".featctl" / "tokens.json").exists()
    assert not (tmp_path / "out").exists()


def test_endpoint_not_enabled(tmp_path):
    for args in (("endpoint",), ("token", "create", "app")):
        res = featctl(*args, cwd=tmp_path)
        assert res.returncode == 2 and "endpoint is not enabled" in res.stderr and res.stderr.count("\n") == 1
    (tmp_path / "featctl.toml").write_text('[endpoint]\nlisten = "nowhere"\n')
    res = featctl("endpoint", cwd=tmp_path)
    assert res.returncode == 2 and "listen must be an IP address" in res.stderr
