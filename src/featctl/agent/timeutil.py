"""Timestamps on the host: ISO 8601 parsing, protobuf times, UTC columns."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from .output import UTC, InputError, iso, one_line

EPOCH = _dt.datetime(1970, 1, 1, tzinfo=UTC)
EVENT_TS = "event_timestamp"
# "...HH:MM[:SS[.fff]]" followed by Z or +HH[:MM] / -HH[:MM]
_TZ_SUFFIX = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"

__all__ = ["EPOCH", "EVENT_TS", "iso", "normalize_ts_column", "parse_iso", "pb_ts"]


def parse_iso(text: str, what: str) -> _dt.datetime:
    """ISO 8601 text -> aware UTC datetime (naive = UTC); pandas parses more forms
    than datetime.fromisoformat on Python 3.10."""
    import pandas as pd

    try:
        value = pd.Timestamp(str(text).strip())
    except (ValueError, TypeError, OverflowError):
        value = None
    if value is None or value is pd.NaT:
        raise InputError(f"{what}: {text!r} is not an ISO 8601 timestamp")
    value = value.tz_localize(UTC) if value.tzinfo is None else value.tz_convert(UTC)
    result: _dt.datetime = value.to_pydatetime()
    return result


def pb_ts(ts: Any, present: bool = False) -> str | None:
    """google.protobuf.Timestamp -> ISO string; None when unset (all-zero and not `present`)."""
    if ts is None or (not present and ts.seconds == 0 and ts.nanos == 0):
        return None
    value = _dt.datetime.fromtimestamp(ts.seconds, tz=UTC) + _dt.timedelta(microseconds=ts.nanos // 1000)
    return value.isoformat()


def normalize_ts_column(col: Any) -> Any:
    """Parse/convert a timestamp column to datetime64[ns, UTC]; naive values are UTC."""
    import pandas as pd
    from pandas.api import types as ptypes

    if ptypes.is_datetime64_any_dtype(col.dtype):
        out = col.dt.tz_localize(UTC) if col.dt.tz is None else col.dt.tz_convert(UTC)
    elif ptypes.is_numeric_dtype(col.dtype) and len(col):
        raise InputError(f"{EVENT_TS} must be ISO 8601 timestamps, got numbers")
    else:
        # Parse naive and offset-carrying strings separately: pandas 2.x, given a mix,
        # applies the last seen offset to the naive values that follow it.
        text = col.astype("string").str.strip()
        aware = text.str.contains(_TZ_SUFFIX, regex=True).fillna(False).astype(bool)
        out = pd.Series(pd.NaT, index=col.index, dtype="datetime64[ns, UTC]")
        try:
            if aware.any():
                out[aware] = pd.to_datetime(text[aware], utc=True, format="ISO8601")
            if (~aware).any():
                naive = pd.to_datetime(text[~aware], format="ISO8601")
                if getattr(naive.dt, "tz", None) is None:
                    naive = naive.dt.tz_localize(UTC)
                out[~aware] = naive.dt.tz_convert(UTC)
        except (ValueError, TypeError, OverflowError) as exc:
            for pos, value in enumerate(text):  # error path only: locate the culprit
                if value is pd.NA:
                    continue
                try:
                    pd.to_datetime([value], format="ISO8601", utc=True)
                except (ValueError, TypeError, OverflowError):
                    raise InputError(f"{EVENT_TS}: row {pos} value {value!r} is not an ISO 8601 timestamp") from None
            raise InputError(f"{EVENT_TS}: cannot parse as ISO 8601: {one_line(exc, 300)}") from None
    bad = out.isna()
    if bad.any():
        first = int(bad.to_numpy().argmax())
        raise InputError(f"{EVENT_TS} is empty/invalid in {int(bad.sum())} row(s), first at row {first}")
    try:
        return out.astype("datetime64[ns, UTC]")
    except Exception as exc:
        raise InputError(f"{EVENT_TS} out of range: {one_line(exc, 300)}") from None
