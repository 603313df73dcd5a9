"""A materialization range must lie in the past: Feast records its end as the
view's last materialization, and incremental runs start there (a range ending
in two days was recorded as done, and the rows that arrived meanwhile were
never loaded)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from featctl.errors import ExitCode, UsageError
from featctl.lifecycle.materialize import check_range

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def test_a_range_in_the_past_passes():
    check_range(NOW - timedelta(days=2), NOW - timedelta(days=1), NOW)
    check_range(NOW - timedelta(days=2), NOW, NOW)  # ending exactly now
    check_range(None, None, NOW)  # incremental


@pytest.mark.parametrize(
    ("start", "end", "option"),
    [
        (NOW, NOW + timedelta(days=2), "--end"),  # the reported case: 2026-12-06..2026-12-08
        (NOW - timedelta(days=1), NOW + timedelta(seconds=1), "--end"),
        (NOW + timedelta(days=1), NOW + timedelta(days=2), "--start"),
    ],
)
def test_a_range_reaching_the_future_is_refused(start, end, option):
    with pytest.raises(UsageError) as info:
        check_range(start, end, NOW)
    message = str(info.value)
    assert message.startswith(f"{option} ") and "is in the future (now 2026-12-06T12:00:00+00:00)" in message
    assert "\n" not in message and info.value.exit_code == ExitCode.USAGE


def test_half_a_range_and_a_backwards_one_are_refused():
    with pytest.raises(UsageError, match="go together"):
        check_range(NOW, None, NOW)
    with pytest.raises(UsageError, match="--start must be before --end"):
        check_range(NOW - timedelta(hours=1), NOW - timedelta(hours=2), NOW)


def test_the_cli_refuses_before_reading_the_workspace(tmp_path):
    from tests.conftest import featctl

    res = featctl(
        "materialize", "--start", "2026-12-06", "--end", "2199-01-01", "--workspace", str(tmp_path / "ws"), cwd=tmp_path
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("featctl: error: --end 2199-01-01T00:00:00+00:00 is in the future")
    assert len(res.stderr.splitlines()) == 1 and not (tmp_path / "ws").exists()
