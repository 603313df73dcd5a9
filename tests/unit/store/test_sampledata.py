"""Unit tests for featctl.store.sampledata (fast; no Feast needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from featctl.store import sampledata
from featctl.store.sampledata import (
    PRODUCTIVITY_FILE,
    REQUIRED_COLUMNS,
    STATS_FILE,
    SampleDataError,
    add_productivity,
    ensure_sample_data,
    generate_driver_stats,
)
from tests.conftest import REFERENCE_DATA as REFERENCE_DIR

REF_STATS = REFERENCE_DIR / "driver_stats.parquet"
REF_PROD = REFERENCE_DIR / "driver_stats_with_productivity.parquet"
needs_reference = pytest.mark.skipif(
    not (REF_STATS.is_file() and REF_PROD.is_file()),
    reason=f"reference parquet files not found in {REFERENCE_DIR}",
)

NOW = datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=timezone.utc)
FLOORED = pd.Timestamp("2025-03-14 15:00:00", tz="UTC")


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def _snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


# ---------------------------------------------------------------- generation


def test_module_import_does_not_import_pandas_or_numpy():
    code = (
        "import sys, featctl.store.sampledata\n"
        "bad = [m for m in ('pandas', 'numpy', 'pyarrow') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_generate_is_deterministic():
    a = generate_driver_stats(NOW)
    b = generate_driver_stats(NOW)
    pd.testing.assert_frame_equal(a, b)
    c = generate_driver_stats(NOW, seed=7)
    assert not a["conv_rate"].equals(c["conv_rate"])


def test_generate_shape_hourly_spacing_and_last_row():
    df = generate_driver_stats(NOW, days=7)
    assert list(df.columns) == list(REQUIRED_COLUMNS)
    assert len(df) == 5 * 7 * 24
    assert df["driver_id"].unique().tolist() == [1001, 1002, 1003, 1004, 1005]
    for _, group in df.groupby("driver_id"):
        ts = group["event_timestamp"]
        assert len(group) == 7 * 24
        assert ts.is_monotonic_increasing
        assert (ts.diff().dropna() == pd.Timedelta(hours=1)).all()
        assert ts.iloc[-1] == FLOORED
        assert ts.iloc[0] == FLOORED - pd.Timedelta(hours=7 * 24 - 1)
    assert df["event_timestamp"].iloc[-1] == FLOORED
    assert (df["created"] == pd.Timestamp(NOW)).all()


def test_generate_dtypes():
    df = generate_driver_stats(NOW)
    assert str(df["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert str(df["driver_id"].dtype) == "int64"
    assert str(df["conv_rate"].dtype) == "float32"
    assert str(df["acc_rate"].dtype) == "float32"
    assert str(df["avg_daily_trips"].dtype) == "int32"
    assert str(df["created"].dtype) == "datetime64[us, UTC]"
    assert df["conv_rate"].between(0, 1).all()
    assert df["acc_rate"].between(0, 1).all()
    assert df["avg_daily_trips"].between(1, 1000).all()


@needs_reference
def test_generate_dtypes_match_reference_file():
    ref = pd.read_parquet(REF_STATS)
    ours = generate_driver_stats(NOW)
    for column in ("event_timestamp", "driver_id", "conv_rate", "acc_rate", "avg_daily_trips"):
        assert ours[column].dtype == ref[column].dtype, column
    # The reference stores `created` tz-naive (Feast reads naive as UTC).
    assert ours["created"].dt.tz is not None


def test_generate_naive_and_non_utc_now():
    naive = generate_driver_stats(NOW.replace(tzinfo=None))
    pd.testing.assert_frame_equal(naive, generate_driver_stats(NOW))
    plus2 = NOW.astimezone(timezone(timedelta(hours=2)))
    pd.testing.assert_frame_equal(generate_driver_stats(plus2), generate_driver_stats(NOW))


def test_generate_custom_drivers_and_days():
    df = generate_driver_stats(NOW, drivers=(7, 3), days=2)
    assert df["driver_id"].unique().tolist() == [7, 3]
    assert len(df) == 2 * 48


@pytest.mark.parametrize(
    "kwargs",
    [{"days": 0}, {"days": -1}, {"drivers": ()}, {"drivers": (1, 1)}],
)
def test_generate_rejects_bad_arguments(kwargs):
    with pytest.raises(SampleDataError):
        generate_driver_stats(NOW, **kwargs)


# -------------------------------------------------------------- productivity


def test_add_productivity():
    df = generate_driver_stats(NOW)
    out = add_productivity(df)
    assert "productivity" not in df.columns  # input untouched
    assert str(out["productivity"].dtype) == "float64"
    expected = (
        df["conv_rate"].astype("float64") * df["acc_rate"].astype("float64") * df["avg_daily_trips"].astype("float64")
    )
    # computed like the reference file (float32 rates), so float32 precision
    assert ((out["productivity"] - expected).abs() <= 1e-6 * expected.abs()).all()


@needs_reference
def test_add_productivity_reproduces_reference_file():
    ours = add_productivity(pd.read_parquet(REF_STATS))
    ref = pd.read_parquet(REF_PROD)
    pd.testing.assert_frame_equal(ours, ref)


def test_add_productivity_missing_columns():
    df = generate_driver_stats(NOW).drop(columns=["acc_rate"])
    with pytest.raises(SampleDataError, match="acc_rate"):
        add_productivity(df)


# ------------------------------------------------------- ensure_sample_data


def test_ensure_generates_both_files(tmp_path):
    messages = ensure_sample_data(tmp_path, now=NOW)
    assert messages == [
        f"generated {STATS_FILE} (840 rows, drivers 1001-1005)",
        f"derived {PRODUCTIVITY_FILE} from {STATS_FILE} (840 rows)",
    ]
    stats = pd.read_parquet(tmp_path / STATS_FILE)
    prod = pd.read_parquet(tmp_path / PRODUCTIVITY_FILE)
    pd.testing.assert_frame_equal(stats, generate_driver_stats(NOW))
    pd.testing.assert_frame_equal(prod, add_productivity(stats))
    assert _leftovers(tmp_path / "data") == []


def test_ensure_files_get_umask_mode(tmp_path):
    ensure_sample_data(tmp_path, now=NOW)
    umask = os.umask(0)
    os.umask(umask)
    for rel in (STATS_FILE, PRODUCTIVITY_FILE):
        assert (tmp_path / rel).stat().st_mode & 0o777 == 0o666 & ~umask


def test_ensure_is_idempotent_and_never_overwrites(tmp_path):
    ensure_sample_data(tmp_path, now=NOW)
    before = {rel: _snapshot(tmp_path / rel) for rel in (STATS_FILE, PRODUCTIVITY_FILE)}
    later = NOW + timedelta(days=3)
    messages = ensure_sample_data(tmp_path, now=later)
    assert messages == [
        f"kept existing {STATS_FILE} (840 rows)",
        f"kept existing {PRODUCTIVITY_FILE} (840 rows)",
    ]
    after = {rel: _snapshot(tmp_path / rel) for rel in (STATS_FILE, PRODUCTIVITY_FILE)}
    assert after == before


def test_ensure_derives_productivity_from_existing_stats(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    custom = generate_driver_stats(NOW, drivers=(42,), days=1, seed=1)
    custom.to_parquet(data / "driver_stats.parquet", index=False)
    before = _snapshot(data / "driver_stats.parquet")

    messages = ensure_sample_data(tmp_path, now=NOW + timedelta(days=1))

    assert messages == [
        f"kept existing {STATS_FILE} (24 rows)",
        f"derived {PRODUCTIVITY_FILE} from {STATS_FILE} (24 rows)",
    ]
    assert _snapshot(data / "driver_stats.parquet") == before
    prod = pd.read_parquet(data / "driver_stats_with_productivity.parquet")
    pd.testing.assert_frame_equal(prod, add_productivity(custom))


@needs_reference
def test_ensure_accepts_reference_files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(REF_STATS, data / "driver_stats.parquet")
    shutil.copyfile(REF_PROD, data / "driver_stats_with_productivity.parquet")
    before = {p.name: _snapshot(p) for p in data.iterdir()}

    messages = ensure_sample_data(tmp_path)

    assert messages == [
        f"kept existing {STATS_FILE} (1808 rows)",
        f"kept existing {PRODUCTIVITY_FILE} (1808 rows)",
    ]
    assert {p.name: _snapshot(p) for p in data.iterdir()} == before


@needs_reference
def test_ensure_derives_from_reference_stats(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(REF_STATS, data / "driver_stats.parquet")
    ensure_sample_data(tmp_path)
    derived = pd.read_parquet(data / "driver_stats_with_productivity.parquet")
    pd.testing.assert_frame_equal(derived, pd.read_parquet(REF_PROD))


def test_ensure_missing_columns_error(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    bad = generate_driver_stats(NOW).drop(columns=["acc_rate", "created"])
    bad.to_parquet(data / "driver_stats.parquet", index=False)
    before = _snapshot(data / "driver_stats.parquet")

    with pytest.raises(SampleDataError) as excinfo:
        ensure_sample_data(tmp_path, now=NOW)

    message = str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)
    assert "\n" not in message
    assert STATS_FILE in message
    assert "acc_rate" in message and "created" in message
    assert _snapshot(data / "driver_stats.parquet") == before
    assert not (data / "driver_stats_with_productivity.parquet").exists()


def test_ensure_productivity_file_missing_column_error(tmp_path):
    ensure_sample_data(tmp_path, now=NOW)
    prod_path = tmp_path / PRODUCTIVITY_FILE
    generate_driver_stats(NOW).to_parquet(prod_path, index=False)  # no productivity
    with pytest.raises(SampleDataError, match="productivity"):
        ensure_sample_data(tmp_path, now=NOW)


def test_ensure_unreadable_file_error(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "driver_stats.parquet").write_bytes(b"not a parquet file")
    with pytest.raises(SampleDataError, match="not a readable parquet file") as excinfo:
        ensure_sample_data(tmp_path, now=NOW)
    assert "\n" not in str(excinfo.value)


def test_interrupted_write_leaves_nothing_behind(tmp_path, monkeypatch):
    original = pd.DataFrame.to_parquet

    def half_write_then_fail(self, path, *args, **kwargs):
        path.write(b"PAR1 half written")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_write_then_fail)
    with pytest.raises(KeyboardInterrupt):
        ensure_sample_data(tmp_path, now=NOW)
    data = tmp_path / "data"
    assert list(data.iterdir()) == []

    # A later run succeeds and still leaves no temp files.
    monkeypatch.setattr(pd.DataFrame, "to_parquet", original)
    ensure_sample_data(tmp_path, now=NOW)
    assert sorted(p.name for p in data.iterdir()) == sorted([Path(STATS_FILE).name, Path(PRODUCTIVITY_FILE).name])
    assert _leftovers(data) == []


def test_interrupted_productivity_write_keeps_stats(tmp_path, monkeypatch):
    real_write = sampledata._write_parquet_atomic

    def fail_on_productivity(df, path):
        if path.name == Path(PRODUCTIVITY_FILE).name:
            raise OSError("disk full")
        real_write(df, path)

    monkeypatch.setattr(sampledata, "_write_parquet_atomic", fail_on_productivity)
    with pytest.raises(OSError):
        ensure_sample_data(tmp_path, now=NOW)
    monkeypatch.undo()
    assert (tmp_path / STATS_FILE).exists()
    assert not (tmp_path / PRODUCTIVITY_FILE).exists()
    messages = ensure_sample_data(tmp_path, now=NOW)
    assert messages[0].startswith("kept existing")
    assert messages[1].startswith("derived")
