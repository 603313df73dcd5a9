"""The agent's side of the protocol: one JSON document on the real stdout.

Feast prints progress bars and warnings on stdout; the agent moves file
descriptor 1 to stderr for the whole run and writes its JSON to a saved copy
of the original stdout, so the client always finds the document intact.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import sys
from typing import Any

UTC = _dt.timezone.utc


class InputError(Exception):
    """The request is invalid (reported with kind=input)."""


class AgentError(Exception):
    """The host could not do what was asked (reported with kind=feast)."""


_REAL_STDOUT_FD: int | None = None


def protect_stdout() -> None:
    """Send everything written to fd 1 to stderr; keep a private copy of real stdout."""
    global _REAL_STDOUT_FD
    if _REAL_STDOUT_FD is not None:
        return
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    _REAL_STDOUT_FD = os.dup(1)
    os.dup2(2, 1)


def iso(value: Any) -> str | None:
    """ISO 8601 UTC string (``+00:00``) for a datetime / pandas Timestamp; None passes."""
    if value is None:
        return None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return str(value.astimezone(UTC).isoformat())


def json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, _dt.datetime):
        return iso(obj)
    return obj


def write_line(doc: Any) -> None:
    """Write one JSON line to the real stdout, now (no exit)."""
    data = (json.dumps(json_safe(doc), allow_nan=False, separators=(",", ":")) + "\n").encode()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    fd = _REAL_STDOUT_FD if _REAL_STDOUT_FD is not None else 1
    while data:
        n = os.write(fd, data)
        data = data[n:]


def emit(doc: Any, code: int) -> int:
    write_line(doc)
    return code


def one_line(msg: object, limit: int = 2000) -> str:
    text = " ".join(str(msg).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
