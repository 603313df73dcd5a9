"""featctl push: rows typed from the registry summary and checked before any
connection, and the JSON each of Feast's writers takes."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pandas as pd
import pytest

from featctl.errors import UsageError
from featctl.query.catalog import Catalog
from featctl.query.push import payload, push, push_target, rows_from_file, rows_from_options

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=timezone.utc)


def fields(**types: str) -> list[dict[str, str]]:
    return [{"name": n, "dtype": t} for n, t in types.items()]


DESC = {
    "feature_views": [
        {
            "name": "user_events",
            "join_keys": fields(user_id="Int64"),
            "features": fields(
                clicks="Int32",
                purchases="Int64",
                ctr="Float32",
                segment="String",
                is_active="Bool",
                last_seen="UnixTimestamp",
                embedding="Array(Float32)",
                tags="Array(String)",
            ),
            "source": "/host/releases/r1/data/user_events.parquet",
        },
        {  # reads the file user_events_push appends to, directly: its other columns
            "name": "user_history",
            "join_keys": fields(user_id="Int64"),
            "features": fields(clicks="Int32", visits="Int64", profile="Map"),
            "source": "/host/releases/r1/data/user_events.parquet",
        },
        {
            "name": "totals",
            "join_keys": fields(user_id="Int64"),
            "features": fields(total="Int64", vector="Array(Float32)"),
            "source": "postgres:featctl_totals_abc",
        },
    ],
    "push_sources": [
        {
            "name": "user_events_push",
            "timestamp_field": "event_timestamp",
            "created_timestamp_column": "created",
            "field_mapping": {},
            "views": ["user_events"],
            "source": "/host/releases/r1/data/user_events.parquet",
        },
        {
            "name": "totals_push",
            "timestamp_field": "ts",
            "field_mapping": {},
            "views": ["totals"],
            "source": "postgres:featctl_totals_abc",
        },
        {"name": "orphan_push", "timestamp_field": "ts", "field_mapping": {}, "views": []},
    ],
}
CAT = Catalog(DESC)
EVENTS = push_target(CAT, "user_events_push")

FULL = [
    "clicks=3",
    "purchases=",
    "ctr=0.5",
    "segment=vip",
    "is_active=yes",
    "last_seen=2026-12-03T06:00:00+01:00",
    "embedding=[0.1, 0.2]",
    'tags=["a","b,c"]',
]


def test_the_target_is_the_push_source_and_its_views():
    assert EVENTS.views == ["user_events"] and EVENTS.timestamp == "event_timestamp" and EVENTS.created == "created"
    assert list(EVENTS.columns)[:2] == ["user_id", "clicks"] and EVENTS.columns["created"] == "UnixTimestamp"
    assert push_target(CAT, "totals_push").created is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("user_events", "is a feature view fed by user_events_push"),
        ("nope", "push sources: orphan_push, totals_push, user_events_push"),
        ("orphan_push", "feeds no feature view"),
    ],
)
def test_a_wrong_name_is_one_line(name, expected):
    with pytest.raises(UsageError, match=expected):
        push_target(CAT, name)


def test_an_old_summary_asks_for_a_deploy():
    with pytest.raises(UsageError, match="featctl deploy"):
        push_target(Catalog({"feature_views": []}), "x")


def test_one_row_from_options():
    rows = rows_from_options(EVENTS, ["user_id=7"], FULL, None, NOW)
    assert rows["user_id"] == [7] and rows["clicks"] == [3] and rows["purchases"] == [None]
    assert rows["is_active"] == [True] and rows["tags"] == [["a", "b,c"]] and rows["embedding"] == [[0.1, 0.2]]
    assert rows["last_seen"] == [datetime(2026, 12, 3, 5, 0, tzinfo=timezone.utc)]
    assert rows["event_timestamp"] == [NOW] and rows["created"] == [NOW]
    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    assert rows_from_options(EVENTS, ["user_id=7"], FULL, at, NOW)["event_timestamp"] == [at]


@pytest.mark.parametrize(
    ("entity", "sets", "expected"),
    [
        (["user_id=abc"], FULL, "not an integer"),
        (["user_id=1", "user_id=2"], FULL, "one --entity"),
        (["customer=1"], FULL, "not a join key"),
        (["user_id=1"], FULL[:-1], "missing tags"),
        (["user_id=1"], [*FULL, "nope=1"], "no such feature"),
        (["user_id=1"], [*FULL, "clicks=4"], "given twice"),
        (["user_id=1"], ["clicks=2147483648", *FULL[1:]], "outside the range of Int32"),
        (
            ["user_id=1"],
            ["clicks=", "purchases=", "ctr=", "segment=", "is_active=", "last_seen=", "embedding=", "tags="],
            "no row has a feature value",
        ),
        (["user_id=1"], [*FULL[:2], "ctr=inf", *FULL[3:]], "not a number"),
        (["user_id=1"], [*FULL[:4], "is_active=maybe", *FULL[5:]], "true or false"),
        (["user_id=1"], [*FULL[:5], "last_seen=yesterday", *FULL[6:]], "ISO 8601"),
        (["user_id=1"], [*FULL[:6], "embedding=0.1,0.2", *FULL[7:]], "JSON array"),
        (["user_id=1"], [*FULL[:7], "tags=[1,2]"], "not text"),
        (["user_id=1"], [*FULL[:6], "embedding=[0.1,null]", *FULL[7:]], "empty item"),
    ],
)
def test_bad_options_are_one_line(entity, sets, expected):
    with pytest.raises(UsageError, match=expected) as err:
        rows_from_options(EVENTS, entity, sets, None, NOW)
    assert "\n" not in err.value.message


def test_rows_from_csv_and_parquet(tmp_path):
    csv = tmp_path / "rows.csv"
    csv.write_text(
        "user_id,event_timestamp,clicks,purchases,ctr,segment,is_active,last_seen,embedding,tags\n"
        '1,2026-12-03T07:00:00Z,5,7,0.25,007,true,2026-12-03T05:00:00Z,"[0.5,0.25]","[""x""]"\n'
        "2,2026-12-03T07:00:00Z,,,,,,,,\n"
        "3,2026-12-03T07:00:00Z,6,,,,false,,[],[]\n"
    )
    rows = rows_from_file(EVENTS, csv, NOW)
    assert rows["segment"] == ["007", None, None] and rows["purchases"] == [7, None, None]
    assert rows["embedding"] == [[0.5, 0.25], None, []] and rows["created"] == [NOW] * 3
    frame = pd.DataFrame({k: v for k, v in rows.items() if k != "created"})
    frame["embedding"] = [None if v is None else pd.array(v, dtype="float32").to_numpy() for v in rows["embedding"]]
    frame["purchases"] = pd.array(rows["purchases"], dtype="Int64")
    frame.to_parquet(tmp_path / "rows.parquet")
    again = rows_from_file(EVENTS, tmp_path / "rows.parquet", NOW)
    assert again["purchases"] == [7, None, None] and again["embedding"] == [[0.5, 0.25], None, []]
    assert again["last_seen"][0] == datetime(2026, 12, 3, 5, tzinfo=timezone.utc)


def test_bad_files_are_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,event_timestamp,clicks,extra\n1,2026-12-03T07:00:00Z,1,2\n")
    with pytest.raises(UsageError, match="extra that push source user_events_push does not take"):
        rows_from_file(EVENTS, bad, NOW)
    bad.write_text("user_id,event_timestamp,clicks\n1,2026-12-03T07:00:00Z,x\n")
    with pytest.raises(UsageError, match=r"bad.csv, line 2: clicks 'x' is not an integer"):
        rows_from_file(EVENTS, bad, NOW)
    with pytest.raises(UsageError, match="does not exist"):
        rows_from_file(EVENTS, tmp_path / "none.csv", NOW)


def test_each_writer_gets_times_as_it_takes_them():
    rows = rows_from_options(EVENTS, ["user_id=7"], FULL, None, NOW)
    online = payload(EVENTS, rows, "online")
    offline = payload(EVENTS, rows, "offline")
    # Online: a UnixTimestamp feature as seconds in text (Feast's int(value)); the event time ISO.
    assert online["last_seen"] == [str(int(datetime(2026, 12, 3, 5, tzinfo=timezone.utc).timestamp()))]
    assert offline["last_seen"] == ["2026-12-03T05:00:00+00:00"]
    assert online["event_timestamp"] == offline["event_timestamp"] == ["2026-12-03T08:00:00+00:00"]
    json.dumps(online, allow_nan=False)
    json.dumps(offline, allow_nan=False)


class _Session:
    def __init__(self) -> None:
        from types import SimpleNamespace

        self.settings = SimpleNamespace(command_timeout=60)

    def deployment(self):
        from types import SimpleNamespace

        return SimpleNamespace(registry=DESC, host="h", host_count=1)

    def query_server(self, record, index=0):
        raise AssertionError("push connected before checking its input")


def test_checks_come_before_any_connection():
    s = _Session()
    with pytest.raises(UsageError, match="--to"):
        push(s, "user_events_push", entity_specs=["user_id=1"], set_specs=FULL, to="everywhere")  # type: ignore[arg-type]
    for to in ("online", "offline", "both"):
        with pytest.raises(AssertionError, match="connected"):
            push(s, "user_events_push", entity_specs=["user_id=1"], set_specs=FULL, to=to)  # type: ignore[arg-type]


# --- the batch source's other columns (issue #24 item 1) ---------------------------------------------


def test_the_batch_sources_other_columns_are_typed_from_the_views_that_read_it():
    assert EVENTS.source_only == {"visits": "Int64", "profile": "Map"}
    assert "visits" not in EVENTS.features and "clicks" not in EVENTS.source_only
    assert push_target(CAT, "totals_push").source_only == {}


def test_a_push_sources_absolute_path_names_the_views_relative_one():
    views = [
        {"name": "pushed", "join_keys": fields(k="Int64"), "features": fields(a="Float32"), "source": "data/x.parquet"},
        {"name": "direct", "join_keys": fields(k="Int64"), "features": fields(b="Int64"), "source": "data/x.parquet"},
        {"name": "other", "join_keys": fields(k="Int64"), "features": fields(c="Int64"), "source": "data/y.parquet"},
    ]
    for where in ("/srv/releases/r1/data/x.parquet", "data/x.parquet"):
        push_source = {"name": "p", "timestamp_field": "ts", "views": ["pushed"], "source": where}
        target = push_target(Catalog({"feature_views": views, "push_sources": [push_source]}), "p")
        assert target.source_only == {"b": "Int64"}, where


def test_columns_not_given_are_null_offline_and_absent_online():
    rows = rows_from_options(EVENTS, ["user_id=7"], FULL, None, NOW)
    assert rows["visits"] == [None] and rows["profile"] == [None] and rows["clicks"] == [3]
    offline = payload(EVENTS, rows, "offline")
    online = payload(EVENTS, rows, "online")
    assert offline["visits"] == [None] and offline["profile"] == [None]
    assert set(offline) == set(EVENTS.columns)
    assert "visits" not in online and "profile" not in online and online["clicks"] == [3]


def test_a_given_batch_source_column_is_taken_and_typed():
    rows = rows_from_options(EVENTS, ["user_id=7"], [*FULL, "visits=7"], None, NOW)
    assert rows["visits"] == [7] and isinstance(rows["visits"][0], int)
    assert payload(EVENTS, rows, "offline")["visits"] == [7]
    for sets, expected in (
        ([*FULL, "visits=x"], "visits 'x' is not an integer"),
        ([*FULL, "visits=9223372036854775808"], "outside the range of Int64"),
        ([*FULL, "profile={}"], "does not carry Map values"),
        ([*FULL, "nope=1"], "no such feature; its features: clicks, .*; columns of its batch source: visits, profile"),
    ):
        with pytest.raises(UsageError, match=expected) as err:
            rows_from_options(EVENTS, ["user_id=7"], sets, None, NOW)
        assert "\n" not in err.value.message


def test_a_file_may_hold_the_batch_sources_other_columns(tmp_path):
    csv = tmp_path / "rows.csv"
    csv.write_text("user_id,event_timestamp,clicks,visits\n1,2026-12-03T07:00:00Z,5,7\n2,2026-12-03T07:00:00Z,6,\n")
    with pytest.raises(UsageError, match="missing purchases"):
        rows_from_file(EVENTS, csv, NOW)
    csv.write_text(
        "user_id,event_timestamp,clicks,purchases,ctr,segment,is_active,last_seen,embedding,tags,visits\n"
        "1,2026-12-03T07:00:00Z,5,,,,,,,,7\n2,2026-12-03T07:00:00Z,6,,,,,,,,\n"
    )
    rows = rows_from_file(EVENTS, csv, NOW)
    assert rows["visits"] == [7, None] and rows["profile"] == [None, None] and rows["clicks"] == [5, 6]
    csv.write_text("user_id,event_timestamp,clicks,bogus\n1,2026-12-03T07:00:00Z,5,7\n")
    with pytest.raises(UsageError, match="bogus that push source user_events_push does not take"):
        rows_from_file(EVENTS, csv, NOW)


class _StoresSession(_Session):
    def deployment(self):
        from types import SimpleNamespace

        return SimpleNamespace(registry=DESC, host="h", host_count=1, stores={"postgres": {"host": "h"}})


def test_refusals_before_any_connection():
    s = _Session()
    # A batch source column goes offline only: online it would be dropped without a word.
    with pytest.raises(UsageError, match="visits: a column of push source user_events_push's batch source") as err:
        push(s, "user_events_push", entity_specs=["user_id=1"], set_specs=[*FULL, "visits=7"], to="online")  # type: ignore[arg-type]
    assert "--to offline or both" in err.value.message and "\n" not in err.value.message
    for to in ("offline", "both"):
        with pytest.raises(AssertionError, match="connected"):
            push(s, "user_events_push", entity_specs=["user_id=1"], set_specs=[*FULL, "visits=7"], to=to)  # type: ignore[arg-type]
    # Feast 0.67's PostgreSQL offline store has no offline_write_batch: refused, exit 2.
    for session, push_source in ((s, "totals_push"), (_StoresSession(), "user_events_push")):
        sets = ["total=1", "vector="] if push_source == "totals_push" else FULL
        for to in ("offline", "both"):
            with pytest.raises(UsageError, match="PostgreSQL offline store takes no pushes") as err:
                push(session, push_source, entity_specs=["user_id=1"], set_specs=sets, to=to)  # type: ignore[arg-type]
            assert err.value.exit_code == 2 and "\n" not in err.value.message
        with pytest.raises(AssertionError, match="connected"):  # online pushes go on
            push(session, push_source, entity_specs=["user_id=1"], set_specs=sets, to="online")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"in PostgreSQL \(table featctl_totals_abc\)"):
        push(s, "totals_push", entity_specs=["user_id=1"], set_specs=["total=1", "vector="], to="offline")  # type: ignore[arg-type]
