"""featctl verify's input checks (before any connection) and the agent's value equality."""

from __future__ import annotations

from tests.conftest import featctl


def test_bad_verify_input_is_one_line_and_touches_nothing(tmp_path):
    for args, code, message in [
        (("verify", "--all", "--sample", "3"), 2, "either --sample N or --all"),
        (("verify", "--sample", "0"), 2, "--sample"),
        (("verify",), 6, ""),  # nothing deployed in this workspace
    ]:
        res = featctl(*args, cwd=tmp_path)
        assert res.returncode == code, (args, res.stderr)
        assert res.stderr.strip().count("\n") == 0 and message in res.stderr, (args, res.stderr)
        assert res.stdout == ""
    assert not (tmp_path / ".featctl" / "deployment.json").exists()


def test_schedule_help_names_the_verify(tmp_path):
    res = featctl("schedule", "--help", cwd=tmp_path).ok()
    assert "--verify-sample" in res.stdout and "0 for no verify" in res.stdout.replace("\n", " ").replace("  ", " ")
