"""Feature values typed by the registry's declared types, the same way in
every command: UnixTimestamp values are times (the feature server sends Unix
seconds), Json values are decoded, integers stay integers where some are
missing (pandas' nullable Int64), lists are lists (never numpy text).

Pure Python for the online path; pandas only inside ``typed_frame``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime, timezone
from typing import Any

#: Feast's null UnixTimestamp (NaT as int64), as the feature server may send it.
NULL_TIMESTAMP = -(2**63)
_NULLABLE = {"Int64": "Int64", "Int32": "Int32", "Bool": "boolean"}


#: pandas' missing values (pd.NA, pd.NaT), known by name: pandas is not imported here.
MISSING_TYPES = ("NAType", "NaTType")


def json_value(value: Any) -> Any:
    """A value strict JSON can carry: NaN and infinities become null, times ISO 8601
    (UTC when naive), lists (numpy arrays too) JSON arrays, numpy scalars numbers."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if type(value).__name__ in MISSING_TYPES:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return json_value(value.tolist())
    return str(value)


def plain_text(value: Any) -> str:
    """A value as CSV text: every digit of a float, a list or map as its JSON,
    a time as ISO 8601, nothing for a missing value."""
    value = json_value(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def element_type(dtype: str) -> str | None:
    """``Array(Float32)`` -> ``Float32``; None for a scalar type."""
    for wrap in ("Array(", "Set("):
        if dtype.startswith(wrap) and dtype.endswith(")"):
            return dtype[len(wrap) : -1]
    return None


def _from_unix(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if value == NULL_TIMESTAMP:
        return None
    return datetime.fromtimestamp(value, tz=timezone.utc)


def _from_json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def online_value(value: Any, dtype: str) -> Any:
    """One value of the feature server's JSON as Feast's SDK returns it."""
    if value is None:
        return None
    inner = element_type(dtype)
    if inner is not None and isinstance(value, list):
        return [online_value(v, inner) for v in value]
    if dtype == "UnixTimestamp":
        return _from_unix(value)
    if dtype == "Json":
        return _from_json(value)
    return value


def type_online(columns: dict[str, list[Any]], types: Mapping[str, str]) -> None:
    """Type the feature server's columns in place (``types``: column -> Feast type)."""
    for col, dtype in types.items():
        if col in columns and dtype:
            columns[col] = [online_value(v, dtype) for v in columns[col]]


def typed_frame(frame: Any, types: Mapping[str, str]) -> Any:
    """A result frame with each column of a known Feast type typed for files and
    rendering: nullable integers and booleans, UTC times, Python lists."""
    import pandas as pd

    for col, dtype in types.items():
        if col not in frame.columns or not dtype:
            continue
        series = frame[col]
        try:
            if dtype in _NULLABLE:
                frame[col] = _nullable(series, _NULLABLE[dtype])
            elif dtype == "UnixTimestamp":
                if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
                    series = pd.to_datetime(series, unit="s", utc=True)
                elif not pd.api.types.is_datetime64_any_dtype(series.dtype):
                    series = pd.to_datetime(series, utc=True)
                frame[col] = series.dt.tz_localize("UTC") if series.dt.tz is None else series.dt.tz_convert("UTC")
            elif element_type(dtype) is not None:
                # numpy arrays stay (parquet keeps their element type); a NaN for a missing list is None.
                frame[col] = series.map(_missing_as_none).astype(object)
        except (TypeError, ValueError, OverflowError):
            continue  # a column Feast did not type as declared stays as it came
    return frame


def _nullable(series: Any, target: str) -> Any:
    """Integers (or booleans) with missing values as pandas' nullable type: a
    float column that only holds whole numbers and NaN becomes Int64 again."""
    import pandas as pd

    if str(series.dtype) == target:
        return series
    if pd.api.types.is_float_dtype(series.dtype) and target != "boolean":
        whole = series.dropna()
        if not bool((whole == whole.round()).all()):
            raise ValueError("not whole numbers")
    return series.astype(target)


def _missing_as_none(value: Any) -> Any:
    return None if isinstance(value, float) and value != value else value
