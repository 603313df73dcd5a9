"""One renderer for every command that prints rows: a Rich table on a
terminal, JSON or CSV for machines. Data goes to stdout, nothing else does.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import IO, Any

from featctl.query.table import Table
from featctl.query.values import MISSING_TYPES, json_value, plain_text

FORMATS = ("table", "json", "csv")


def to_json_value(value: Any) -> Any:
    """A value strict JSON can carry (query/values.py: the one definition)."""
    return json_value(value)


_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")


#: How many items of a list a table shows before "… N items".
LIST_ITEMS_SHOWN = 3


def cell_text(value: Any, *, human: bool = False) -> str:
    """A cell as text. ``human`` (tables): floats to 6 significant digits, times
    as ``YYYY-MM-DD HH:MM:SS`` in UTC and lists shortened to their first items;
    CSV and JSON keep everything (a list is its JSON array)."""
    if human and isinstance(value, datetime) and type(value).__name__ not in MISSING_TYPES:
        moment = value if value.tzinfo is None else value.astimezone(timezone.utc)
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    if human and _is_list(value):
        return _short_list(list(value))
    if not human:
        return plain_text(value)
    value = json_value(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"  # tables round for reading; CSV and JSON keep every digit
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if isinstance(value, str) and (m := _ISO.match(value)) and m.group(4) in (None, "Z", "+00:00"):
        return f"{m.group(1)} {m.group(2)}"
    return str(value)


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or (hasattr(value, "tolist") and getattr(value, "ndim", 0) == 1)


def _short_list(items: list[Any]) -> str:
    """``[0.6137, -0.9165, -0.562, … 8 items]``: the first items, 4 significant digits."""

    def item(v: Any) -> str:
        v = v.item() if hasattr(v, "item") and not isinstance(v, (list, tuple)) else v
        if isinstance(v, float) and math.isfinite(v):
            return f"{v:.4g}"
        if isinstance(v, str):
            return json.dumps(v)
        return cell_text(v, human=True) or "null"

    shown = [item(v) for v in items[:LIST_ITEMS_SHOWN]]
    if len(items) > LIST_ITEMS_SHOWN:
        shown.append(f"… {len(items)} items")
    return "[" + ", ".join(shown) + "]"


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

        console = console_factory() if console_factory else Console(file=out, highlight=False)
        _print_table(console, table)


#: Rich's table frame: one border per column plus one, a space each side of a cell.
_FRAME_PER_COLUMN = 3


def _wrap_header(name: str, width: int) -> str:
    """The header on as many lines as it needs, broken after underscores."""
    if len(name) <= width:
        return name
    parts = re.findall(r"[^_]+_?|_", name)
    lines, line = [], ""
    for part in parts:
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    lines.append(line)
    return "\n".join(lines)


def _print_table(console: Any, table: Table) -> None:
    """A table that fits the terminal: numbers and times never split across
    lines, long headers broken at underscores, long text folded; when even that
    cannot fit, one block per row (name, value)."""
    from rich.table import Table as RichTable

    cells = [[cell_text(v, human=True) for v in row] for row in table.rows]
    widths, wraps = [], []
    for i, name in enumerate(table.columns):
        values = [row[i] for row in cells]
        longest = max((len(v) for v in values), default=0)
        solid = all(_solid(table.rows[r][i]) for r in range(len(cells)))  # numbers, times, ids
        segment = max((len(p) for p in re.findall(r"[^_]+_?|_", name)), default=len(name))
        if solid:
            widths.append(max(longest, segment))
        else:
            widths.append(max(min(longest, 24), segment, min(len(name), 12)))
        wraps.append(not solid)
    needed = sum(widths) + _FRAME_PER_COLUMN * len(widths) + 1
    width = console.width
    if needed > width and table.columns:
        _print_records(console, table, cells)
        return
    spare = width - needed
    for i, name in enumerate(table.columns):  # room left: first for whole headers
        if len(name) > widths[i] and spare > 0:
            extra = min(spare, len(name) - widths[i])
            widths[i], spare = widths[i] + extra, spare - extra
    rt = RichTable(title=table.title, title_justify="left")
    for i, name in enumerate(table.columns):
        longest = max((len(row[i]) for row in cells), default=0)
        w = widths[i]
        if wraps[i] and longest > w and spare > 0:  # then for long text
            extra = min(spare, longest - w)
            w, spare = w + extra, spare - extra
        rt.add_column(
            _wrap_header(name, max(w, 1)),
            min_width=w,
            max_width=None if wraps[i] else w,
            no_wrap=not wraps[i],
            overflow="fold",
        )
    for row in cells:
        rt.add_row(*row)
    if any(isinstance(v, datetime) for row in table.rows for v in row):
        rt.caption = "times in UTC"
    console.print(rt)


def _solid(value: Any) -> bool:
    """A value that must not be split across lines: a number, a time, a short token."""
    if value is None or isinstance(value, (bool, int, float, datetime)):
        return True
    return isinstance(value, str) and len(value) <= 24 and " " not in value


def _print_records(console: Any, table: Table, cells: list[list[str]]) -> None:
    from rich.table import Table as RichTable

    if table.title:
        console.print(table.title, style="bold")
    label = max(len(c) for c in table.columns)
    for n, row in enumerate(cells, start=1):
        grid = RichTable.grid(padding=(0, 2))
        grid.add_column(min_width=label, no_wrap=True, style="dim")
        grid.add_column(overflow="fold")
        for name, value in zip(table.columns, row):
            grid.add_row(name, value)
        console.print(f"— row {n} —", style="dim")
        console.print(grid)


def render_mapping(data: Mapping[str, Any], fmt: str, out: IO[str], title: str | None = None) -> None:
    """Key/value results (status) in the same three formats."""
    if fmt == "json":
        out.write(dumps_json(data) + "\n")
        return
    rows = [[k, cell_text(v)] for k, v in data.items()]
    render(Table(["key", "value"], rows, title=title), fmt, out)
