"""Entity keys checked against the join key's type before anything is sent."""

from __future__ import annotations

import pandas as pd
import pytest

from featctl.errors import UsageError
from featctl.query.historical import read_entities
from featctl.query.keys import check_key_column, parse_key


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("abc", "not an integer"),
        ('"=cmd|""/c calc""!A0"', "not an integer"),
        (str(2**70), "outside the range of Int64"),
        ("1.5", "not an integer"),
        ("", "is empty"),
    ],
)
def test_csv_key_cells_that_do_not_fit_int64(tmp_path, cell, message):
    path = tmp_path / "e.csv"
    path.write_text(f"driver_id,event_timestamp\n1001,2026-01-01T00:00:00Z\n{cell},2026-01-01T00:00:00Z\n")
    with pytest.raises(UsageError, match=message) as info:
        read_entities(path, required=["event_timestamp"], key_types={"driver_id": "Int64"})
    assert "line 3" in str(info.value) and "\n" not in str(info.value)


def test_parquet_keys(tmp_path):
    ok = pd.DataFrame({"driver_id": [1001.0, 1002.0], "event_timestamp": ["2026-01-01T00:00:00Z"] * 2})
    ok.to_parquet(tmp_path / "ok.parquet")
    frame = read_entities(tmp_path / "ok.parquet", required=["event_timestamp"], key_types={"driver_id": "Int64"})
    assert frame["driver_id"].tolist() == [1001, 1002] and str(frame["driver_id"].dtype) == "int64"
    bad = pd.DataFrame({"driver_id": [1001.0, None], "event_timestamp": ["2026-01-01T00:00:00Z"] * 2})
    bad.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(UsageError, match="row 2: driver_id is empty"):
        read_entities(tmp_path / "bad.parquet", required=["event_timestamp"], key_types={"driver_id": "Int64"})


def test_string_keys_stay_text(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("customer_id,event_timestamp\n007,2026-01-01\nC1,2026-01-01\n")
    frame = read_entities(path, required=["event_timestamp"], key_types={"customer_id": "String"})
    assert frame["customer_id"].tolist() == ["007", "C1"]
    numbers = pd.DataFrame({"customer_id": [7], "event_timestamp": ["2026-01-01"]})
    with pytest.raises(UsageError, match="holds numbers"):
        check_key_column(numbers, "customer_id", "String", path="p", csv=False)


def test_event_timestamp_beyond_pandas(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("driver_id,event_timestamp\n1001,9999-01-01T00:00:00\n")
    with pytest.raises(UsageError, match=r"outside 1677-09-22\.\.2262-04-10"):
        read_entities(path, required=["event_timestamp"], key_types={"driver_id": "Int64"})


def test_parse_key():
    assert parse_key("-5", "Int64", name="k", where="w") == -5
    assert parse_key("x y", "String", name="k", where="w") == "x y"
    with pytest.raises(UsageError, match="outside the range of Int32"):
        parse_key(str(2**31), "Int32", name="k", where="w")
