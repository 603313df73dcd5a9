"""The pandas point-in-time reference that integration tests compare featctl
with (tests/userrepos.py) must itself follow Feast's documented semantics."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd

from tests.userrepos import point_in_time

T0 = datetime(2026, 1, 10, tzinfo=timezone.utc)


def test_latest_event_then_latest_created_then_last_row_wins():
    source = pd.DataFrame(
        {
            "k": ["a", "a", "a", "a", "b"],
            "v": [1.0, 2.0, 3.0, 4.0, 9.0],
            "ts": [T0 - timedelta(hours=1), T0 - timedelta(hours=1), T0 - timedelta(hours=5), T0 + timedelta(hours=1), T0],
            # rows 0 and 1 tie on ts; row 0 was created later, though it comes first
            "created": [T0, T0 - timedelta(minutes=1), T0, T0, T0],
        }
    )
    entities = pd.DataFrame({"k": ["a", "b", "a", "c"], "event_timestamp": [T0, T0, T0 - timedelta(hours=3), T0]})
    out = point_in_time(entities, source, ["k"], ["v"], timestamp="ts", created="created", ttl=timedelta(days=1))
    assert out["v"].tolist()[:3] == [1.0, 9.0, 3.0]
    assert pd.isna(out["v"].iloc[3])  # no such key
    assert out["k"].tolist() == ["a", "b", "a", "c"]  # input order, one row each


def test_ttl_is_inclusive_and_full_ties_take_the_last_row():
    source = pd.DataFrame({"k": [1, 1, 1], "v": [1, 2, 3], "ts": [T0 - timedelta(days=1), T0, T0]})
    entities = pd.DataFrame({"k": [1, 1, 1], "event_timestamp": [T0, T0 - timedelta(hours=1), T0 + timedelta(days=1)]})
    out = point_in_time(entities, source, ["k"], ["v"], timestamp="ts", ttl=timedelta(days=1))
    assert out["v"].tolist()[0] == 3  # same ts and no created column: the last row
    assert out["v"].tolist()[1] == 1  # exactly ttl old: kept
    assert out["v"].tolist()[2] == 3  # now - ttl == T0: kept
    out = point_in_time(entities, source, ["k"], ["v"], timestamp="ts", ttl=timedelta(hours=22))
    assert pd.isna(out["v"].iloc[1])  # older than the TTL
