"""A terminal that reads well: quiet means quiet, completion from the cached
registry without connecting, a version line for each part."""

from __future__ import annotations

import io
import os
import subprocess
import sys

from featctl.cli.app import ConsoleReporter, Environment
from featctl.workspace import Deployment, Workspace

REGISTRY = {
    "project": "p",
    "feature_views": [{"name": "driver_hourly_stats", "features": [{"name": "conv_rate"}, {"name": "acc_rate"}]}],
    "on_demand_feature_views": [{"name": "scored", "features": [{"name": "score"}]}],
    "feature_services": [{"name": "svc_one", "features": []}, {"name": "other", "features": []}],
}


def test_quiet_reporter_prints_nothing(monkeypatch):
    monkeypatch.setenv("FEATCTL_QUIET", "1")
    err = io.StringIO()
    rep = ConsoleReporter(Environment(stderr=err))
    rep.step("installing")
    rep.info("deployed")
    rep.detail("file")
    bar = rep.progress("upload", 100)
    bar.advance(50)
    bar.close()
    assert err.getvalue() == ""
    rep.warn("a warning still shows")
    assert "a warning still shows" in err.getvalue()


def test_plain_lines_off_a_terminal(monkeypatch):
    monkeypatch.delenv("FEATCTL_QUIET", raising=False)
    err = io.StringIO()
    rep = ConsoleReporter(Environment(stderr=err))
    rep.step("uploading the feature repository")
    bar = rep.progress("3 file(s)", 1000)  # no bar off a terminal
    bar.advance(1000)
    bar.close()
    assert err.getvalue() == "• uploading the feature repository\n"


def featctl(*args, env=None, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "featctl", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        timeout=60,
    )


def test_completion_from_the_cached_registry(tmp_path):
    ws = Workspace(tmp_path / ".featctl")
    ws.save(Deployment(target="local", name="n", host="127.0.0.1", registry=REGISTRY))

    def complete(words, cword):
        env = {"_FEATCTL_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
        return featctl(env=env, cwd=tmp_path).stdout.split()

    assert complete("featctl online --features driver_hourly_stats:c", 3) == ["driver_hourly_stats:conv_rate"]
    assert complete("featctl online --features scored:score,driver_hourly_stats:a", 3) == [
        "scored:score,driver_hourly_stats:acc_rate"
    ]
    assert complete("featctl online --feature-service s", 3) == ["svc_one"]


def test_version_names_every_part():
    out = featctl("--version").stdout.splitlines()
    assert out[0].startswith("featctl ") and out[1].startswith("feast 0.67.0") and out[2].startswith("terraform ")


def test_quiet_flag_on_the_root(tmp_path):
    res = featctl("-q", "status", "--workspace", str(tmp_path / "none"))
    assert res.returncode == 6 and res.stderr.startswith("featctl: error: no deployment")  # errors still show
