"""agent/pg_retrieval.py (#23 item 6): json/jsonb columns of PostgreSQL read back
as the parquet file held them. `feast init`'s template keeps Map and Struct
features as structs in parquet; featctl's loader makes them jsonb, Feast's
PostgreSQL job failed to materialize them ("Unsupported cast from struct<...>
to map") and featctl's historical gave key/value pairs where the file store
gives objects."""

from __future__ import annotations

import json

import pyarrow as pa

from featctl.agent.pg_retrieval import arrow_comment, as_text, decode, type_from_comment

PROFILE = pa.struct([("name", pa.string()), ("age", pa.string())])
TAGS = pa.map_(pa.string(), pa.string())


def test_json_values_become_text_that_feasts_converters_parse():
    values = [{"rating": "4.0", "vehicle_type": "sedan"}, None, [1, [2]]]
    assert as_text(values) == ['{"rating":"4.0","vehicle_type":"sedan"}', None, "[1,[2]]"]
    assert [None if t is None else json.loads(t) for t in as_text(values)] == values


def test_the_comment_carries_the_parquet_type():
    for t in (PROFILE, TAGS, pa.list_(PROFILE), pa.list_(pa.list_(pa.string()))):
        comment = arrow_comment(pa.field("x", t))
        assert comment.startswith("featctl-arrow:") and "'" not in comment  # SQL-literal safe
        assert type_from_comment(comment) == t
    assert type_from_comment(None) is None and type_from_comment("someone else's note") is None


def test_text_reads_back_as_the_file_held_it():
    profile = pa.array(['{"name":"driver_1001","age":"26"}', None], pa.large_string())
    back = decode(profile, PROFILE)
    assert back.type == PROFILE and back.to_pylist() == [{"name": "driver_1001", "age": "26"}, None]
    tags = decode(pa.array(['{"k":"v","a":"b"}'], pa.large_string()), TAGS)
    assert tags.type == TAGS and tags.to_pylist() == [[("k", "v"), ("a", "b")]]  # a map stays a map
    inferred = decode(pa.array(['{"n":1}', '{"n":2}'], pa.large_string()), None)  # a table featctl did not load
    assert inferred.to_pylist() == [{"n": 1}, {"n": 2}]
    mixed = pa.array(['{"n":1}', "[1]"], pa.large_string())
    assert decode(mixed, None) is mixed  # nothing Arrow can hold in one column: the JSON text
