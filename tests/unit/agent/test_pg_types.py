"""PostgreSQL column types for what a parquet source holds (#23 item 6):
Feast 0.67's map for what it knows, and the types it refused or misnamed."""

from __future__ import annotations

import pyarrow as pa
import pytest

from featctl.agent.stores import pg_type


@pytest.mark.parametrize(
    ("arrow", "pg"),
    [
        # as Feast 0.67 maps them
        (pa.int64(), "bigint"),
        (pa.int32(), "int"),
        (pa.float32(), "float"),
        (pa.float64(), "double precision"),
        (pa.bool_(), "boolean"),
        (pa.string(), "text"),
        (pa.timestamp("us"), "timestamp"),
        (pa.timestamp("ns", tz="UTC"), "timestamptz"),
        (pa.map_(pa.string(), pa.string()), "jsonb"),
        (pa.struct([("a", pa.int64())]), "jsonb"),
        (pa.list_(pa.int64()), "bigint[]"),
        (pa.list_(pa.float64()), "double precision[]"),
        # what it refused or named wrongly
        (pa.null(), "text"),
        (pa.date32(), "date"),
        (pa.date64(), "date"),
        (pa.time64("us"), "time"),
        (pa.time32("ms"), "time"),
        (pa.decimal128(12, 3), "numeric(12,3)"),
        (pa.dictionary(pa.int32(), pa.string()), "text"),
        (pa.int8(), "smallint"),
        (pa.binary(), "bytea"),
        (pa.list_(pa.string()), "text[]"),
        (pa.list_(pa.field("element", pa.float32())), "float[]"),
        (pa.large_list(pa.date32()), "date[]"),
        (pa.list_(pa.list_(pa.string())), "jsonb"),
        (pa.list_(pa.struct([("a", pa.int64())])), "jsonb"),
    ],
)
def test_pg_type(arrow, pg):
    assert pg_type(arrow) == pg
