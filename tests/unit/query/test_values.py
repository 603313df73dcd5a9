"""Values typed by the registry: UnixTimestamp as times, Json decoded, nullable
integers and lists that stay lists, in online answers and result files."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from featctl.query.files import frame_table, write_frame
from featctl.query.values import NULL_TIMESTAMP, online_value, type_online, typed_frame

TYPES = {
    "purchases": "Int64",
    "clicks": "Int32",
    "is_active": "Bool",
    "last_seen": "UnixTimestamp",
    "embedding": "Array(Float32)",
    "tags": "Array(String)",
    "stamps": "Array(UnixTimestamp)",
    "meta": "Json",
}


def test_online_values_as_the_sdk_returns_them():
    cols = {
        "last_seen": [1796164920, None, NULL_TIMESTAMP],
        "stamps": [[0, 1796164920], None, []],
        "meta": ['{"a": 1}', None, "not json"],
        "purchases": [4, None, 2],
    }
    type_online(cols, TYPES)
    assert cols["last_seen"] == [datetime(2026, 12, 1, 22, 42, tzinfo=timezone.utc), None, None]
    assert cols["stamps"][0] == [datetime(1970, 1, 1, tzinfo=timezone.utc), cols["last_seen"][0]]
    assert cols["meta"] == [{"a": 1}, None, "not json"]
    assert cols["purchases"] == [4, None, 2]
    assert online_value(True, "UnixTimestamp") is True  # not a number of seconds: left alone


def frame() -> pd.DataFrame:
    """What the agent's parquet gives: Int64 with a miss as float, arrays as numpy."""
    return pd.DataFrame(
        {
            "user_id": [1, 2, 3],
            "purchases": [4.0, np.nan, 9007199254740.0],
            "clicks": [1.0, 2.0, np.nan],
            "is_active": [True, None, False],
            "last_seen": [1796164920, 0, 1],
            "embedding": [np.array([0.5, -0.25], dtype="float32"), np.nan, np.array([], dtype="float32")],
            "tags": [np.array(["a", "b"], dtype=object), None, np.array([], dtype=object)],
        }
    )


def test_typed_frame_keeps_integers_and_lists():
    df = typed_frame(frame(), TYPES)
    assert str(df["purchases"].dtype) == "Int64" and df["purchases"].tolist()[::2] == [4, 9007199254740]
    assert df["purchases"].isna().tolist() == [False, True, False]
    assert str(df["clicks"].dtype) == "Int32" and str(df["is_active"].dtype) == "boolean"
    assert df["last_seen"].iloc[0] == pd.Timestamp("2026-12-01T22:42:00Z")
    assert df["embedding"].iloc[1] is None
    table = frame_table(df, "t")
    assert table.rows[0][1] == 4 and table.rows[1][1] is None and table.rows[1][3] is None
    assert table.rows[0][5] == [0.5, -0.25] and table.rows[0][6] == ["a", "b"]
    assert table.rows[0][4] == datetime(2026, 12, 1, 22, 42, tzinfo=timezone.utc)


def test_a_float_column_with_fractions_is_not_made_an_integer():
    df = typed_frame(pd.DataFrame({"purchases": [1.5, np.nan]}), TYPES)
    assert df["purchases"].dtype == "float64"


def test_result_files(tmp_path):
    df = typed_frame(frame(), TYPES)
    write_frame(df, tmp_path / "r.csv")
    rows = list(csv.reader((tmp_path / "r.csv").open()))
    assert len(rows) == 4  # a list never spills over lines
    head = rows[0]
    first = dict(zip(head, rows[1]))
    assert first["purchases"] == "4" and dict(zip(head, rows[2]))["purchases"] == ""
    assert first["last_seen"] == "2026-12-01T22:42:00+00:00"
    assert json.loads(first["embedding"]) == [0.5, -0.25] and json.loads(first["tags"]) == ["a", "b"]
    write_frame(df, tmp_path / "r.parquet")
    schema = pq.read_schema(tmp_path / "r.parquet")
    assert str(schema.field("purchases").type) == "int64"
    assert str(schema.field("embedding").type) == "list<element: float>"
    assert str(schema.field("tags").type) == "list<element: string>"
    back = pd.read_parquet(tmp_path / "r.parquet", dtype_backend="numpy_nullable")
    assert back["purchases"].tolist()[0] == 4 and back["purchases"].isna().tolist()[1]
