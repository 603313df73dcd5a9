"""The one renderer: strict JSON, CSV, and a table for people."""

import csv
import io
import json
import math
from datetime import datetime, timezone

from featctl.cli.render import dumps_json, render, render_mapping
from featctl.query.table import Table

TABLE = Table(
    ["driver_id", "score", "at", "missing"],
    [
        [1001, 0.123456789, datetime(2026, 11, 25, 10, 30, tzinfo=timezone.utc), None],
        [1002, math.nan, datetime(2026, 11, 25, 10, 30), math.inf],
    ],
    title="t",
)


def test_json_is_strict_and_iso():
    out = io.StringIO()
    render(TABLE, "json", out)
    text = out.getvalue()
    data = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert data[0] == {"driver_id": 1001, "score": 0.123456789, "at": "2026-11-25T10:30:00+00:00", "missing": None}
    # NaN and infinity become null; a naive time is UTC.
    assert data[1]["score"] is None and data[1]["missing"] is None
    assert data[1]["at"] == "2026-11-25T10:30:00+00:00"
    assert "NaN" not in text and "Infinity" not in text


def test_csv_keeps_full_precision_and_blanks_for_missing():
    out = io.StringIO()
    render(TABLE, "csv", out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == TABLE.columns
    assert rows[1] == ["1001", "0.123456789", "2026-11-25T10:30:00+00:00", ""]
    assert rows[2][1] == "" and rows[2][3] == ""


def test_table_rounds_for_people():
    out = io.StringIO()
    render(TABLE, "table", out)
    text = out.getvalue()
    assert "0.123457" in text and "0.123456789" not in text
    assert "driver_id" in text and "1002" in text


def test_mapping_json_nested():
    out = io.StringIO()
    render_mapping({"a": 1, "b": {"c": math.nan}}, "json", out)
    assert json.loads(out.getvalue()) == {"a": 1, "b": {"c": None}}


def test_dumps_json_numpy_scalars():
    import numpy as np

    assert json.loads(dumps_json({"x": np.float32(0.5), "y": np.int64(3)})) == {"x": 0.5, "y": 3}


def test_from_records_union_of_columns():
    t = Table.from_records([{"a": 1}, {"a": 2, "b": 3}])
    assert t.columns == ["a", "b"]
    assert t.rows == [[1, None], [2, 3]]
