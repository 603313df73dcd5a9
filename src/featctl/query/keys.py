"""Entity keys as users give them: checked against the join key's declared
type before anything reaches the host (pure; pandas only for files)."""

from __future__ import annotations

import re
from typing import Any

from featctl.errors import UsageError

INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)
_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_INT_RANGES = {"Int64": INT64, "Int32": INT32, "UnixTimestamp": INT64}


def is_integer_type(dtype: str) -> bool:
    return dtype in _INT_RANGES


def parse_key(text: str, dtype: str, *, name: str, where: str) -> Any:
    """One key value from text: an integer type takes ASCII digits in range,
    a string type any non-empty text; other types pass as text."""
    if dtype in _INT_RANGES:
        if not _INTEGER.fullmatch(text):
            raise UsageError(f"{where}: {name} {text!r} is not an integer ({name} is {dtype})")
        value = int(text)
        low, high = _INT_RANGES[dtype]
        if not low <= value <= high:
            raise UsageError(f"{where}: {name} {text} is outside the range of {dtype}")
        return value
    if text == "":
        raise UsageError(f"{where}: {name} is empty")
    return text


def check_key_column(frame: Any, column: str, dtype: str, *, path: str, csv: bool) -> Any:
    """The column converted to the join key's type, or one line naming the first
    value that does not fit (empty cells included)."""
    import pandas as pd

    col = frame[column]
    first_row = 2 if csv else 1  # a CSV's first data row is line 2

    def where(i: int) -> str:
        return f"entity file {path}, {'line' if csv else 'row'} {i + first_row}"

    if dtype in _INT_RANGES:
        if pd.api.types.is_integer_dtype(col.dtype):
            low, high = _INT_RANGES[dtype]
            bad = ~col.between(low, high)
            if bool(bad.any()):
                i = int(bad.to_numpy().nonzero()[0][0])
                raise UsageError(f"{where(i)}: {column} {col.iloc[i]} is outside the range of {dtype}")
            return col.astype("int64")
        values = []
        for i, v in enumerate(col.tolist()):
            if v is None or (isinstance(v, float) and v != v):
                raise UsageError(f"{where(i)}: {column} is empty ({column} is {dtype})")
            if isinstance(v, float):
                if not v.is_integer():
                    raise UsageError(f"{where(i)}: {column} {v!r} is not an integer ({column} is {dtype})")
                v = str(int(v))
            values.append(parse_key(str(v), dtype, name=column, where=where(i)))
        return pd.Series(values, index=col.index, dtype="int64")
    if dtype in ("String", "Bytes"):
        if not (pd.api.types.is_object_dtype(col.dtype) or pd.api.types.is_string_dtype(col.dtype)):
            raise UsageError(f"entity file {path}: {column} holds numbers, but {column} is {dtype}: quote the values")
        for i, v in enumerate(col.tolist()):
            if v is None or (isinstance(v, float) and v != v) or v == "":
                raise UsageError(f"{where(i)}: {column} is empty ({column} is {dtype})")
        return col.astype(str)
    return col
