"""Sample driver data for the bundled Feast feature repository.

Pure library code: nothing here prints, exits or talks to the network. Bad
data is reported by raising :class:`SampleDataError` (a ``ValueError``); the
CLI decides how to show it.

pandas, numpy and pyarrow are imported inside the functions so that importing
this module stays instant.

The generated frames use the same column dtypes as the reference files that
``feast init`` produced for the original project, so one feature repository
serves both:

=================  ========================  =================================
column             dtype                     Feast field
=================  ========================  =================================
event_timestamp    datetime64[ns, UTC]       FileSource timestamp_field
driver_id          int64                     entity join key (Int64)
conv_rate          float32                   Float32
acc_rate           float32                   Float32
avg_daily_trips    int32                     Int64 (Feast widens on read)
created            datetime64[us, UTC]       FileSource created_timestamp_column
productivity       float64                   Float64 (productivity file only)
=================  ========================  =================================

(The reference files store ``created`` tz-naive; Feast treats a naive
timestamp as UTC, so both forms load the same.)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - typing only
    import pandas as pd

__all__ = [
    "DEFAULT_DRIVERS",
    "PRODUCTIVITY_FILE",
    "REQUIRED_COLUMNS",
    "STATS_FILE",
    "SampleDataError",
    "add_productivity",
    "ensure_sample_data",
    "generate_driver_stats",
]

DEFAULT_DRIVERS: tuple[int, ...] = (1001, 1002, 1003, 1004, 1005)

#: Paths relative to the feature repository; the FileSources in
#: feature_repo/features.py point at the same files.
STATS_FILE = "data/driver_stats.parquet"
PRODUCTIVITY_FILE = "data/driver_stats_with_productivity.parquet"

#: Columns every driver stats file must carry, in the order we write them.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "event_timestamp",
    "driver_id",
    "conv_rate",
    "acc_rate",
    "avg_daily_trips",
    "created",
)
_PRODUCTIVITY_INPUTS: tuple[str, ...] = ("conv_rate", "acc_rate", "avg_daily_trips")


class SampleDataError(ValueError):
    """Sample data is missing, unreadable or lacks required columns."""


# --------------------------------------------------------------------------
# generation
# --------------------------------------------------------------------------


def _as_utc(now: datetime) -> datetime:
    """Return *now* as an aware UTC datetime; a naive value is taken as UTC."""
    if not isinstance(now, datetime):
        raise SampleDataError(f"now must be a datetime, got {type(now).__name__}")
    if now.tzinfo is None or now.tzinfo.utcoffset(now) is None:
        return now.replace(tzinfo=timezone.utc)
    return now.astimezone(timezone.utc)


def generate_driver_stats(
    now: datetime,
    drivers: Sequence[int] = DEFAULT_DRIVERS,
    days: int = 7,
    seed: int = 42,
) -> pd.DataFrame:
    """Hourly driver stats for ``days`` days, ending at *now* floored to the hour.

    Each driver gets ``days * 24`` rows, one per hour, the last one at
    ``floor(now, hour)`` in UTC. Rows are ordered by driver, then time.
    ``created`` is *now* itself (UTC, microsecond precision). The result only
    depends on the arguments: the same *now* and *seed* give identical frames.
    """
    import numpy as np
    import pandas as pd

    driver_ids = [int(d) for d in drivers]
    if not driver_ids:
        raise SampleDataError("no drivers given to generate sample data for")
    if len(set(driver_ids)) != len(driver_ids):
        raise SampleDataError(f"duplicate driver ids in {driver_ids}")
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise SampleDataError(f"days must be a positive integer, got {days!r}")

    now_utc = _as_utc(now)
    end = now_utc.replace(minute=0, second=0, microsecond=0)
    hours = days * 24

    hourly = pd.date_range(end=pd.Timestamp(end), periods=hours, freq="h")
    hourly_ns = hourly.as_unit("ns").tz_convert("UTC")

    n_drivers = len(driver_ids)
    n = hours * n_drivers
    rng = np.random.default_rng(seed)

    df = pd.DataFrame(
        {
            "event_timestamp": hourly_ns.take(np.tile(np.arange(hours), n_drivers)),
            "driver_id": np.repeat(np.asarray(driver_ids, dtype=np.int64), hours),
            "conv_rate": rng.random(n, dtype=np.float32),
            "acc_rate": rng.random(n, dtype=np.float32),
            "avg_daily_trips": rng.integers(1, 1000, size=n, endpoint=True, dtype=np.int32),
        }
    )
    created = pd.Timestamp(now_utc).as_unit("us")
    df["created"] = pd.Series([created] * n, dtype="datetime64[us, UTC]")
    return df.loc[:, list(REQUIRED_COLUMNS)]


def _missing(columns: Iterable[str], required: Iterable[str]) -> list[str]:
    have = set(columns)
    return [c for c in required if c not in have]


def add_productivity(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of *df* with ``productivity = conv_rate * acc_rate * avg_daily_trips``.

    ``productivity`` is float64, computed the same way as in the reference file.
    """
    missing = _missing(df.columns, _PRODUCTIVITY_INPUTS)
    if missing:
        raise SampleDataError(f"cannot derive productivity: missing column(s) {', '.join(missing)}")
    out = df.copy()
    out["productivity"] = (out["conv_rate"] * out["acc_rate"] * out["avg_daily_trips"]).astype("float64")
    return out


# --------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _parquet_columns_and_rows(path: Path, label: str) -> tuple[list[str], int]:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
        schema = pq.read_schema(path)
    except Exception as exc:  # pyarrow raises several types for a bad file
        raise SampleDataError(f"{label} is not a readable parquet file: {_first_line(exc)}") from exc
    return list(schema.names), int(meta.num_rows)


def _validate_existing(path: Path, label: str, required: Sequence[str]) -> int:
    """Check *path* has the *required* columns; return its row count."""
    columns, rows = _parquet_columns_and_rows(path, label)
    missing = _missing(columns, required)
    if missing:
        raise SampleDataError(
            f"{label} lacks required column(s) {', '.join(missing)} (has: {', '.join(columns) or 'none'})"
        )
    return rows


def _write_parquet_atomic(df: pd.DataFrame, path: Path) -> None:
    """Write *df* to *path* via a temp file in the same directory + os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # os.open with O_EXCL rather than mkstemp: the file gets the usual
    # umask-derived mode (mkstemp would leave it 0600).
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            df.to_parquet(fh, engine="pyarrow", index=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _drivers_text(ids: Sequence[int]) -> str:
    ids = sorted(set(int(i) for i in ids))
    if len(ids) == 1:
        return f"driver {ids[0]}"
    if ids == list(range(ids[0], ids[-1] + 1)):
        return f"drivers {ids[0]}-{ids[-1]}"
    return "drivers " + ", ".join(str(i) for i in ids)


def ensure_sample_data(repo: Path, now: datetime | None = None) -> list[str]:
    """Make sure *repo*/data holds both parquet files the feature repo reads.

    * ``data/driver_stats.parquet``: generated (7 days, drivers 1001-1005)
      when missing; an existing file is validated and never touched.
    * ``data/driver_stats_with_productivity.parquet``: derived from the stats
      file when missing; an existing file is validated and kept.

    Files are written atomically. Returns one human-readable line per file
    saying what was done. Raises :class:`SampleDataError` when an existing
    file is unreadable or lacks required columns.
    """
    import pandas as pd

    repo = Path(repo)
    stats_path = repo / STATS_FILE
    prod_path = repo / PRODUCTIVITY_FILE
    messages: list[str] = []

    stats_df: pd.DataFrame | None = None
    if stats_path.exists():
        rows = _validate_existing(stats_path, STATS_FILE, REQUIRED_COLUMNS)
        messages.append(f"kept existing {STATS_FILE} ({rows} rows)")
    else:
        stats_df = generate_driver_stats(now if now is not None else datetime.now(timezone.utc))
        _write_parquet_atomic(stats_df, stats_path)
        messages.append(
            f"generated {STATS_FILE} ({len(stats_df)} rows, {_drivers_text(stats_df['driver_id'].unique().tolist())})"
        )

    if prod_path.exists():
        rows = _validate_existing(prod_path, PRODUCTIVITY_FILE, (*REQUIRED_COLUMNS, "productivity"))
        messages.append(f"kept existing {PRODUCTIVITY_FILE} ({rows} rows)")
    else:
        if stats_df is None:
            try:
                stats_df = pd.read_parquet(stats_path, engine="pyarrow")
            except Exception as exc:
                raise SampleDataError(f"{STATS_FILE} could not be read: {_first_line(exc)}") from exc
        prod_df = add_productivity(stats_df)
        _write_parquet_atomic(prod_df, prod_path)
        messages.append(f"derived {PRODUCTIVITY_FILE} from {STATS_FILE} ({len(prod_df)} rows)")
    return messages
