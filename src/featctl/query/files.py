"""Entity files in, result files out: reading .csv/.parquet entity rows with
their keys typed and their times in range, writing results atomically, and
turning a frame into the renderer's Table. pandas is imported here only."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from featctl.errors import UsageError
from featctl.query.keys import check_key_column
from featctl.query.table import Table


def read_entities(
    path: Path, *, required: Sequence[str], key_types: dict[str, str] | None = None, timestamps: bool = True
) -> Any:
    """Read an entity file (.csv or .parquet) and check its columns: timestamps
    become UTC (``timestamps``: the file has event_timestamp), and each join key
    column present must fit its declared type."""
    import pandas as pd

    key_types = key_types or {}
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise UsageError(f"entity file {path} must be .csv or .parquet")
    try:
        _no_column_twice(path, _header(path, suffix))
        # Keys as text from CSV, so "007" stays "007" and 2**70 is caught, not rounded.
        frame = pd.read_csv(path, dtype={k: str for k in key_types}) if suffix == ".csv" else pd.read_parquet(path)
    except UsageError:
        raise
    except FileNotFoundError:
        raise UsageError(f"entity file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"cannot read entity file {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    except Exception as exc:  # pyarrow and the csv parser raise their own types
        raise UsageError(
            f"cannot read entity file {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise UsageError(
            f"entity file {path} lacks column(s) {', '.join(missing)}; it has {', '.join(map(str, frame.columns))}"
        )
    if frame.empty:
        raise UsageError(f"entity file {path} has no rows")
    for key, dtype in key_types.items():
        if key in frame.columns:
            frame[key] = check_key_column(frame, key, dtype, path=str(path), csv=suffix == ".csv")
    if timestamps:
        frame["event_timestamp"] = _utc_column(frame["event_timestamp"], path)
    return frame


def _header(path: Path, suffix: str) -> list[str]:
    """The file's column names as written: pandas renames a CSV column given
    twice (``driver_id``, ``driver_id.1``), so its own frame cannot tell."""
    import pandas as pd

    if suffix == ".csv":
        first = pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False)
        return [str(c) for c in first.iloc[0].tolist()] if len(first) else []
    import pyarrow.parquet as pq

    return [str(n) for n in pq.read_schema(path).names]


def _no_column_twice(path: Path, names: list[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name and name in seen:  # unnamed columns are pandas' "Unnamed: N", each its own
            raise UsageError(f"entity file {path} has column {name} twice; give each column once")
        seen.add(name)


def _utc_column(col: Any, path: Path) -> Any:
    """ISO 8601 strings or datetimes to UTC; a value without a zone is UTC."""
    import pandas as pd

    from featctl.query.inputs import EARLIEST, LATEST

    try:
        if pd.api.types.is_datetime64_any_dtype(col):
            out = col.dt.tz_localize("UTC") if col.dt.tz is None else col.dt.tz_convert("UTC")
        else:
            # utc=True treats naive values as UTC and converts the rest, mixed zones included.
            out = pd.to_datetime(col.astype(str), utc=True, format="ISO8601")
        # Feast on the host holds times as nanoseconds: 1677-09-22 to 2262-04-10.
        if len(out) and (out.min() < pd.Timestamp(EARLIEST) or out.max() >= pd.Timestamp(LATEST)):
            raise pd.errors.OutOfBoundsDatetime(f"{out.min()} .. {out.max()}")
        return out
    except pd.errors.OutOfBoundsDatetime as exc:
        raise UsageError(
            f"entity file {path}: an event_timestamp is outside 1677-09-22..2262-04-10 ({str(exc).splitlines()[0]})"
        ) from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"entity file {path}: event_timestamp is not ISO 8601 ({str(exc).splitlines()[0]})") from None


def numeric_column(frame: Any, column: str, path: Path) -> Any:
    """``column`` as float64, or one line naming the first row that is not a
    finite number (vectorised: 100,000 weights in milliseconds)."""
    import numpy as np
    import pandas as pd

    values = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    bad = ~np.isfinite(values.to_numpy())
    if bool(bad.any()):
        row = int(bad.nonzero()[0][0])
        raise UsageError(f"entity file {path}: {column} in row {row + 1} is not a finite number")
    return values


def write_frame(frame: Any, out: Path) -> None:
    """Write a result atomically as .csv or .parquet (by suffix). CSV cells are
    what ``--output csv`` prints: lists as JSON arrays, times ISO 8601, integers
    with missing values as integers; parquet keeps lists as lists."""
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise UsageError(f"--out {out} must end in .csv or .parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if suffix == ".csv":
            csv_frame(frame).to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def csv_frame(frame: Any) -> Any:
    """The frame with the cells of lists, maps and times as the renderer's CSV text."""
    import pandas as pd

    from featctl.query.values import plain_text

    out = frame.copy()
    for col in out.columns:
        series = out[col]
        if pd.api.types.is_datetime64_any_dtype(series.dtype) or series.dtype == object:
            out[col] = [plain_text(_plain(v)) for v in series.tolist()]
    return out


def _plain(v: Any) -> Any:
    """A cell as plain Python: numpy arrays as lists, pandas' missing values and NaN as None."""
    import math

    import pandas as pd

    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.to_pydatetime()
    if hasattr(v, "tolist"):
        return v.tolist()
    return v


def frame_table(frame: Any, title: str) -> Table:
    rows = [[_plain(v) for v in rec] for rec in frame.itertuples(index=False, name=None)]
    return Table([str(c) for c in frame.columns], rows, title=title)
