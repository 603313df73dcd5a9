"""Parsing what users type: weights, timestamps, driver ids, feature references, intervals (pure, no I/O)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from featctl.errors import UsageError

COEF_SUFFIX = "_coef"
#: A weighted feature: ``feature``, or ``view:feature`` for featctl's own sum.
_QUALIFIED = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_-]*:)?[A-Za-z_][A-Za-z0-9_]*")


#: The one number syntax featctl accepts (README): optional sign, ASCII digits,
#: an optional fraction and exponent. No spaces, no "inf"/"nan", no "1_000".
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
WEIGHTS_SYNTAX = "NAME=NUMBER[,NAME=NUMBER...] without spaces, e.g. conv_rate=0.7,acc_rate=0.3"


def parse_weights(specs: Sequence[str], allowed: Iterable[str] | None) -> dict[str, float]:
    """Parse one or more ``name=value[,name=value...]`` specs.

    Every allowed name gets a weight; a name not given weighs 0. Spaces, empty
    items, missing values, duplicates, unknown names and anything but a plain
    decimal number (``NUMBER``) are refused with one line that names the
    culprit. With ``allowed=None`` only the syntax is checked and the given
    weights are returned.
    """
    allowed = list(allowed) if allowed is not None else None
    given: dict[str, float] = {}
    if not specs:
        raise UsageError(f"--weights is required: {WEIGHTS_SYNTAX}")
    for spec in specs:
        if not spec.strip():
            raise UsageError(f"--weights is empty; expected {WEIGHTS_SYNTAX}")
        if any(c.isspace() for c in spec):
            raise UsageError(f"--weights {spec!r} contains spaces; write {WEIGHTS_SYNTAX}")
        for item in spec.split(","):
            if not item:
                raise UsageError(f"--weights {spec!r} has an empty item (two commas in a row, or a trailing comma)")
            name, sep, raw = item.partition("=")
            if not sep:
                raise UsageError(f"weight {item!r} is not name=value")
            if not name or not _QUALIFIED.fullmatch(name):
                raise UsageError(f"weight {item!r} has no valid feature name before '='")
            if not raw:
                raise UsageError(f"weight {name!r} has no value after '='")
            if allowed is not None and name not in allowed:
                raise UsageError(f"unknown feature {name!r} in --weights; the score weighs: {', '.join(allowed)}")
            if name in given:
                raise UsageError(f"feature {name!r} is weighted twice in --weights")
            if raw.lower().lstrip("+-") in ("nan", "inf", "infinity"):
                raise UsageError(f"weight {name}={raw} is not a finite number")
            if not NUMBER.fullmatch(raw):
                raise UsageError(
                    f"weight {name}={raw!r} is not a number featctl accepts (ASCII digits, optional sign, "
                    "fraction and exponent, e.g. 0.7, -1, 2.5e-3)"
                )
            value = float(raw)
            if not math.isfinite(value):
                raise UsageError(f"weight {name}={raw} is too large for a 64-bit float")
            given[name] = value
    if allowed is None:
        return given
    return {name: given.get(name, 0.0) for name in allowed}


def weight_names(request_fields: Iterable[str]) -> list[str]:
    """Feature names that can be weighted: request fields named ``<feature>_coef``."""
    return [f[: -len(COEF_SUFFIX)] for f in request_fields if f.endswith(COEF_SUFFIX)]


#: What pandas (and so Feast) can hold: datetime64[ns] from 1677-09-21 to 2262-04-11.
EARLIEST = datetime(1677, 9, 22, tzinfo=timezone.utc)
LATEST = datetime(2262, 4, 11, tzinfo=timezone.utc)
INT64 = (-(2**63), 2**63 - 1)


def parse_timestamp(raw: str, *, option: str = "timestamp") -> datetime:
    """ISO 8601 to an aware UTC datetime; a timestamp without a zone is UTC.

    Only times Feast can work with (pandas' nanosecond range, 1677-2262) pass.
    """
    text = raw.strip()
    if not text:
        raise UsageError(f"{option} is empty; expected ISO 8601, e.g. 2026-11-26T12:00:00Z")
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} {raw!r} is not an ISO 8601 timestamp (e.g. 2026-11-26T12:00:00Z)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    try:
        value = value.astimezone(timezone.utc)
    except OverflowError:
        raise UsageError(f"{option} {raw!r} is outside the times featctl can query (1677-09-22 to 2262-04-10)") from None
    if not EARLIEST <= value < LATEST:
        raise UsageError(f"{option} {raw!r} is outside the times featctl can query (1677-09-22 to 2262-04-10)")
    return value


def parse_drivers(values: Sequence[str]) -> list[int]:
    out = []
    for raw in values:
        for item in str(raw).split(","):
            item = item.strip()
            if not item:
                continue
            if not re.fullmatch(r"[+-]?[0-9]+", item, re.ASCII):
                raise UsageError(f"--driver {item!r} is not an integer driver id")
            value = int(item)
            if not INT64[0] <= value <= INT64[1]:
                raise UsageError(f"--driver {item} is outside the 64-bit integer range of driver_id")
            out.append(value)
    if not out:
        raise UsageError("give at least one --driver ID")
    return out


def parse_feature_refs(values: Sequence[str]) -> list[str]:
    """``--features`` values, repeatable or comma-separated, as ``view:feature`` refs."""
    refs: list[str] = []
    for raw in values:
        for item in raw.split(","):
            item = item.strip()
            if not item:
                continue
            view, sep, feat = item.partition(":")
            if not sep or not view or not feat or ":" in feat:
                raise UsageError(f"feature reference {item!r} is not view:feature (e.g. driver_hourly_stats:conv_rate)")
            if item in refs:
                raise UsageError(f"feature reference {item!r} is given twice")
            refs.append(item)
    return refs


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(raw: str) -> int:
    """``30m``, ``1h``, ``2d``, ``90s`` to seconds (at least 60)."""
    m = re.fullmatch(r"\s*(\d+)\s*([smhd])\s*", raw or "")
    if not m:
        raise UsageError(f"--every {raw!r} is not an interval like 30m, 1h or 1d")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds < 60:
        raise UsageError(f"--every {raw!r} is shorter than a minute")
    return seconds


def check_out_path(out: Path, *, option: str = "--out") -> None:
    """Refuse an output file featctl could not write, before any query runs:
    a directory, a missing or read-only directory, an unknown suffix."""
    if out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise UsageError(f"{option} {out} must end in .csv or .parquet")
    if out.is_dir():
        raise UsageError(f"{option} {out} is a directory; name a .csv or .parquet file")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"{option} {out}: directory {parent} does not exist")
    import tempfile

    try:  # what the result's atomic write will do: a file beside it, then a rename
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{out.name}.", suffix=".check"):
            pass
        if out.exists():
            with out.open("ab"):
                pass
    except OSError as exc:
        raise UsageError(f"{option} {out} cannot be written: {exc.strerror or exc}") from None
