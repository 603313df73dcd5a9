"""Parsing of --weights, timestamps, driver ids and feature references."""

import os
from datetime import datetime, timezone

import pytest

from featctl.errors import ExitCode, UsageError
from featctl.query.inputs import parse_drivers, parse_feature_refs, parse_timestamp, parse_weights, weight_names

ALLOWED = ["conv_rate", "acc_rate"]


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        (["conv_rate=0.7,acc_rate=0.3"], {"conv_rate": 0.7, "acc_rate": 0.3}),
        (["conv_rate=1"], {"conv_rate": 1.0, "acc_rate": 0.0}),
        (["acc_rate=-2.5e-1"], {"conv_rate": 0.0, "acc_rate": -0.25}),
        (["conv_rate=0.7", "acc_rate=0.3"], {"conv_rate": 0.7, "acc_rate": 0.3}),
        (["conv_rate=.5,acc_rate=+1."], {"conv_rate": 0.5, "acc_rate": 1.0}),
    ],
)
def test_valid_weights(specs, expected):
    assert parse_weights(specs, ALLOWED) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("conv_rate=", "has no value"),
        ("conv_rate=1,,acc_rate=2", "empty item"),
        ("conv_rate=1,", "empty item"),
        ("conv_rate=1,conv_rate=2", "weighted twice"),
        ("speed=1", "unknown feature 'speed'"),
        ("conv_rate=nan", "not a finite number"),
        ("conv_rate=inf", "not a finite number"),
        ("conv_rate=-Infinity", "not a finite number"),
        ("conv_rate=abc", "not a number"),
        ("conv_rate", "not name=value"),
        ("=1", "no valid feature name"),
        ("", "empty"),
        # Exactly the README's number syntax: no spaces, ASCII digits, no digit separators.
        (" conv_rate = 0.5 , acc_rate=0 ", "contains spaces"),
        ("conv_rate=0.5, acc_rate=0", "contains spaces"),
        ("conv_rate=\u0661", "not a number"),  # ARABIC-INDIC DIGIT ONE: float() takes it
        ("conv_rate=\uff11", "not a number"),  # FULLWIDTH DIGIT ONE
        ("conv_rate=1_000", "not a number"),
        ("conv_rate=0x10", "not a number"),
        ("conv_rate=1e999", "too large"),
    ],
)
def test_bad_weights_are_usage_errors(spec, message):
    with pytest.raises(UsageError) as info:
        parse_weights([spec], ALLOWED)
    assert message in str(info.value)
    assert info.value.exit_code == ExitCode.USAGE
    assert "\n" not in str(info.value)


def test_weights_required():
    with pytest.raises(UsageError, match="--weights is required"):
        parse_weights([], ALLOWED)


def test_duplicates_across_repeated_flags():
    with pytest.raises(UsageError, match="twice"):
        parse_weights(["conv_rate=1", "conv_rate=2"], ALLOWED)


def test_weight_names_come_from_coef_fields():
    assert weight_names(["conv_rate_coef", "acc_rate_coef", "other"]) == ["conv_rate", "acc_rate"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-11-25T10:30:00", datetime(2026, 11, 25, 10, 30, tzinfo=timezone.utc)),
        ("2026-11-25T10:30:00Z", datetime(2026, 11, 25, 10, 30, tzinfo=timezone.utc)),
        ("2026-11-25T13:30:00+03:00", datetime(2026, 11, 25, 10, 30, tzinfo=timezone.utc)),
        ("2026-11-25", datetime(2026, 11, 25, tzinfo=timezone.utc)),
    ],
)
def test_timestamps_are_utc(raw, expected):
    value = parse_timestamp(raw)
    assert value == expected
    assert value.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("raw", ["yesterday", "2026-13-01", "", "10:30"])
def test_bad_timestamps(raw):
    with pytest.raises(UsageError, match=r"ISO 8601|empty"):
        parse_timestamp(raw, option="--at")


def test_drivers_repeat_and_commas():
    assert parse_drivers(["1001", "1002,1003"]) == [1001, 1002, 1003]
    with pytest.raises(UsageError, match="not an integer"):
        parse_drivers(["10x1"])
    with pytest.raises(UsageError, match="at least one"):
        parse_drivers([])


def test_feature_refs():
    assert parse_feature_refs(["a:x,b:y", "c:z"]) == ["a:x", "b:y", "c:z"]
    for bad in ["nocolon", "a:", ":x", "a:b:c"]:
        with pytest.raises(UsageError, match="view:feature"):
            parse_feature_refs([bad])
    with pytest.raises(UsageError, match="twice"):
        parse_feature_refs(["a:x", "a:x"])


def test_intervals():
    from featctl.query.inputs import parse_interval

    assert parse_interval("1h") == 3600
    assert parse_interval("30m") == 1800
    assert parse_interval("2d") == 172800
    for bad in ("1", "h", "10s", "1w", ""):
        with pytest.raises(UsageError):
            parse_interval(bad)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("1180591620717411303424", "outside the 64-bit integer range"),
        ("9223372036854775808", "outside the 64-bit integer range"),
        ("1.5", "not an integer"),
        ("\u0661", "not an integer"),
    ],
)
def test_bad_driver_ids(raw, message):
    with pytest.raises(UsageError, match=message):
        parse_drivers([raw])
    assert parse_drivers(["9223372036854775807", "-9223372036854775808"]) == [2**63 - 1, -(2**63)]


@pytest.mark.parametrize("raw", ["0001-01-01T00:00:00Z", "9999-12-31", "1677-09-21T00:00:00", "2262-04-12"])
def test_timestamps_outside_what_feast_can_hold(raw):
    with pytest.raises(UsageError, match="outside the times featctl can query"):
        parse_timestamp(raw, option="--at")


def test_out_paths_are_checked_before_any_query(tmp_path):
    from featctl.query.inputs import check_out_path

    check_out_path(tmp_path / "ok.csv")
    check_out_path(tmp_path / "ok.parquet")
    (tmp_path / "dir.csv").mkdir()
    cases = [
        (tmp_path / "x.txt", "must end in .csv or .parquet"),
        (tmp_path / "dir.csv", "is a directory"),
        (tmp_path / "missing" / "x.csv", "does not exist"),
    ]
    if os.path.isdir("/proc/self"):  # not writable even for root
        cases.append((__import__("pathlib").Path("/proc/self/x.csv"), "cannot be written"))
    for path, message in cases:
        with pytest.raises(UsageError, match=message):
            check_out_path(path)


def test_a_weight_may_name_its_view():
    from featctl.query.inputs import parse_weights

    assert parse_weights(["driver_hourly_stats:conv_rate=0.5,avg=1"], None) == {
        "driver_hourly_stats:conv_rate": 0.5,
        "avg": 1.0,
    }
    with pytest.raises(UsageError, match="no valid feature name"):
        parse_weights(["a:b:c=1"], None)
