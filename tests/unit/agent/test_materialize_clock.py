"""The host never records a materialization past its own clock, whatever the
client asked (a client whose clock runs ahead asks "up to now" in the host's
future): Feast's /materialize endpoints and the agent's materialize command
call a store whose materialize methods are guarded."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from featctl.agent.materialize import guard_store, not_past_now
from featctl.agent.output import InputError


class FakeStore:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def materialize(self, start_date, end_date, feature_views=None, **kwargs):
        self.calls.append(("range", start_date, end_date, feature_views))

    def materialize_incremental(self, end_date, feature_views=None, **kwargs):
        self.calls.append(("incremental", end_date, feature_views))


def test_an_end_past_now_becomes_now():
    now = datetime(2026, 12, 6, 12, tzinfo=timezone.utc)
    assert not_past_now(now + timedelta(days=2), now) == now
    past = now - timedelta(minutes=1)
    assert not_past_now(past, now) is past
    assert not_past_now(datetime(2026, 12, 8), now) == now  # naive = UTC


def test_the_guarded_store_never_loads_past_the_hosts_clock(capsys):
    store = FakeStore()
    guard_store(store)
    guard_store(store)  # once only
    before = datetime.now(timezone.utc)
    ahead = before + timedelta(days=2)
    store.materialize(before - timedelta(days=1), ahead, ["v"])  # Feast's endpoint: positional
    store.materialize(start_date=before - timedelta(days=1), end_date=ahead, feature_views=["v"])  # the agent
    store.materialize_incremental(ahead, ["v"])
    after = datetime.now(timezone.utc)
    ends = [store.calls[0][2], store.calls[1][2], store.calls[2][1]]
    assert all(before <= e <= after for e in ends), ends
    assert "past the host's clock" in capsys.readouterr().err
    past = before - timedelta(hours=1)
    store.materialize_incremental(past, ["v"])
    assert store.calls[-1][1] is past
    with pytest.raises(InputError, match="not before the host's clock"):
        store.materialize(ahead, ahead + timedelta(days=1), ["v"])
