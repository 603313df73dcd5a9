"""``featctl status`` exits ExitCode.UNHEALTHY (8) after its full report when
the deployment does not serve (it exited 0 whatever it reported)."""

from __future__ import annotations

import io
import json

import pytest

from featctl.cli import main as cli_main
from featctl.cli.app import ENV
from featctl.errors import ExitCode
from featctl.lifecycle import status as status_module
from featctl.lifecycle.status import Status

HEALTHY = {"ssh": "answers", "feature_server": "healthy on 127.0.0.1:6566 (host side)"}


@pytest.mark.parametrize(
    ("info", "healthy"),
    [
        (HEALTHY, True),
        ({**HEALTHY, "feature_server": "unhealthy on 127.0.0.1:6566 (host side): file is not a database"}, False),
        ({"ssh": "no answer: refused", "feature_server": "unknown (no SSH)"}, False),
        ({"ssh": "answers", "feature_server": "not running (nothing deployed)"}, False),
        ({**HEALTHY, "repair": "host(s) 1 not serving; `featctl deploy` heals them"}, False),
    ],
)
def test_healthy_means_ssh_and_every_server_serve(info, healthy):
    assert Status(info, []).healthy is healthy


def test_unhealthy_exit_code_is_documented():
    assert ExitCode.UNHEALTHY == 8
    assert "| 8 | UNHEALTHY |" in (ExitCode.__doc__ or "")


@pytest.mark.parametrize(("info", "code"), [(HEALTHY, 0), ({**HEALTHY, "feature_server": "unhealthy: x"}, 8)])
def test_status_prints_the_whole_report_then_exits_with_the_verdict(monkeypatch, tmp_path, info, code):
    views = [{"view": "driver_hourly_stats", "kind": "feature view", "last_materialized": "never"}]
    monkeypatch.setattr(status_module, "status", lambda session: Status(dict(info), views))
    out = io.StringIO()
    monkeypatch.setattr(ENV, "stdout", out)
    with pytest.raises(SystemExit) as exited:
        cli_main.main(["status", "--output", "json", "--workspace", str(tmp_path)])
    assert exited.value.code == code
    doc = json.loads(out.getvalue())
    assert doc["deployment"] == info and doc["feature_views"] == views


def test_a_connection_that_closes_is_an_ssh_error_not_an_interruption(monkeypatch, tmp_path, capsys):
    """paramiko raises EOFError when the host's sshd dies mid-command; Click turns an
    EOFError into Abort, which featctl reported as 'interrupted' (exit 130)."""

    def closed(session):
        raise EOFError

    monkeypatch.setattr(status_module, "status", closed)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(SystemExit) as exited:
        cli_main.main(["status", "--workspace", str(tmp_path)])
    assert exited.value.code == ExitCode.SSH
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "featctl: error: the connection to the host closed before it answered (EOFError)"
