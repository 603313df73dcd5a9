"""Entity files: a column given twice is refused, never used silently."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featctl.errors import UsageError
from featctl.query.files import read_entities


def test_a_csv_column_given_twice_is_refused(tmp_path):
    # pandas reads the second driver_id as "driver_id.1" and the first one wins without a word.
    path = tmp_path / "e.csv"
    path.write_text("driver_id,driver_id,event_timestamp\n1001,1002,2026-01-01T00:00:00Z\n")
    with pytest.raises(
        UsageError, match=r"^entity file \S*e\.csv has column driver_id twice; give each column once$"
    ) as info:
        read_entities(path, required=["event_timestamp"], key_types={"driver_id": "Int64"})
    assert "\n" not in str(info.value)


def test_a_csv_column_named_like_pandas_renames_a_duplicate_is_kept(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("driver_id,driver_id.1,event_timestamp\n1001,7,2026-01-01T00:00:00Z\n")
    frame = read_entities(path, required=["event_timestamp"], key_types={"driver_id": "Int64"})
    assert list(frame.columns) == ["driver_id", "driver_id.1", "event_timestamp"]


def test_a_parquet_column_given_twice_is_refused(tmp_path):
    path = tmp_path / "e.parquet"
    table = pa.Table.from_arrays(
        [pa.array([1001]), pa.array([1002]), pa.array(["2026-01-01T00:00:00Z"])],
        names=["driver_id", "driver_id", "event_timestamp"],
    )
    pq.write_table(table, path)
    with pytest.raises(UsageError, match=r"^entity file \S*e\.parquet has column driver_id twice"):
        read_entities(path, required=["event_timestamp"], key_types={"driver_id": "Int64"})
