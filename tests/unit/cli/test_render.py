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


def _table_text(table, width):
    from rich.console import Console

    out = io.StringIO()
    render(table, "table", out, console_factory=lambda: Console(file=out, width=width))
    return out.getvalue()


def test_tables_fit_80_columns_without_splitting_numbers_or_times():
    score = Table(
        ["driver_id", "event_timestamp", "conv_rate", "acc_rate", "conv_rate_coef", "linear_combination"],
        [[1001, datetime(2026, 11, 25, 10, 30, 5, 123456, tzinfo=timezone.utc), 0.16697287559, 0.50363, 0.7, 0.267971]],
        title="weighted score",
    )
    text = _table_text(score, 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    # The shorter time form, whole on one line; the numbers whole.
    assert "2026-11-25 10:30:05" in text and "+00:00" not in text and "times in UTC" in text
    for number in ("0.166973", "0.50363", "0.267971", "1001"):
        assert number in text


def test_a_table_that_cannot_fit_becomes_records():
    wide = Table([f"feature_number_{i}" for i in range(12)], [[float(i) / 3 for i in range(12)]], title="wide")
    text = _table_text(wide, 80)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "— row 1 —" in text and "feature_number_11" in text and "3.66667" in text


def test_iso_text_times_are_shortened_in_tables_only():
    t = Table(["view", "last_materialized"], [["v", "2026-11-27T01:15:11+00:00"]])
    assert "2026-11-27 01:15:11" in _table_text(t, 80)
    out = io.StringIO()
    render(t, "json", out)
    assert "2026-11-27T01:15:11+00:00" in out.getvalue()


# --- lists, nullable integers, times (issue #15.5 and #15.7) -----------------------------------

LISTS = Table(
    ["user_id", "embedding", "tags", "seen"],
    [
        [1, [0.6137332320213318, -0.9165259, -0.5619543, 0.1090765, 0.5], ["t2", "t6"], [datetime(2026, 12, 1)]],
        [2, None, [], None],
    ],
)


def test_lists_are_json_arrays_in_json_and_csv():
    import numpy as np

    out = io.StringIO()
    table = Table(LISTS.columns, [list(LISTS.rows[0]), list(LISTS.rows[1])])
    table.rows[0][1] = np.array(LISTS.rows[0][1], dtype="float64")  # what pyarrow hands over
    render(table, "json", out)
    data = json.loads(out.getvalue())
    assert data[0]["embedding"] == LISTS.rows[0][1] and data[0]["tags"] == ["t2", "t6"]
    assert data[0]["seen"] == ["2026-12-01T00:00:00+00:00"]
    assert data[1] == {"user_id": 2, "embedding": None, "tags": [], "seen": None}
    out = io.StringIO()
    render(table, "csv", out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert len(rows) == 3  # one line per row: no numpy text split over lines
    assert json.loads(rows[1][1]) == LISTS.rows[0][1] and json.loads(rows[1][2]) == ["t2", "t6"]
    assert rows[2][1:] == ["", "[]", ""]


def test_tables_shorten_lists():
    from rich.console import Console

    out = io.StringIO()
    render(LISTS, "table", out, console_factory=lambda: Console(file=out, width=120))
    text = out.getvalue()
    assert "[0.6137, -0.9165, -0.562, … 5 items]" in text
    assert '["t2", "t6"]' in text and "0.6137332320213318" not in text


def test_pandas_missing_values_are_null():
    import pandas as pd

    assert json.loads(dumps_json([pd.NA, pd.NaT, pd.Timestamp("2026-12-01", tz="UTC")])) == [
        None,
        None,
        "2026-12-01T00:00:00+00:00",
    ]
