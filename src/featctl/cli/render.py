"""One renderer for every command that prints rows: a Rich table on a
terminal, JSON or CSV for machines. Data goes to stdout, nothing else does.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from datetime import date, datetime, timezone
from typing import IO, Any

from featctl.query.table import Table

FORMATS = ("table", "json", "csv")


def to_json_value(value: Any) -> Any:
    """A value strict JSON can carry: NaN and infinities become null, times ISO 8601."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return to_json_value(value.item())
    return str(value)


def cell_text(value: Any, *, human: bool = False) -> str:
    value = to_json_value(value)
    if value is None:
        return ""
    if isinstance(value, float):
        # Tables round for reading; CSV and JSON keep every digit.
        return f"{value:.6g}" if human else repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def dumps_json(data: Any) -> str:
    return json.dumps(to_json_value(data), allow_nan=False, indent=2)


def render(table: Table, fmt: str, out: IO[str], *, console_factory: Any = None) -> None:
    if fmt == "json":
        out.write(dumps_json(table.records()) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(table.columns)
        for row in table.rows:
            writer.writerow([cell_text(v) for v in row])
    else:
        from rich.console import Console
        from rich.table import Table as RichTable

        console = console_factory() if console_factory else Console(file=out)
        rt = RichTable(title=table.title, title_justify="left")
        for col in table.columns:
            rt.add_column(col, overflow="fold")
        for row in table.rows:
            rt.add_row(*[cell_text(v, human=True) for v in row])
        console.print(rt)


def render_mapping(data: Mapping[str, Any], fmt: str, out: IO[str], title: str | None = None) -> None:
    """Key/value results (status) in the same three formats."""
    if fmt == "json":
        out.write(dumps_json(data) + "\n")
        return
    rows = [[k, cell_text(v)] for k, v in data.items()]
    render(Table(["key", "value"], rows, title=title), fmt, out)
