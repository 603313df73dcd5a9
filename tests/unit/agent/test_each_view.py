"""A materialization that fails names its view (#24, the streaming tutorial:
Feast's own message, "'DataFrame' object has no attribute 'withColumn'",
did not say which of the views was the stream view it cannot load)."""

from __future__ import annotations

import pytest

from featctl.agent.materialize import each_view
from featctl.agent.output import InputError


def test_each_view_is_loaded_in_turn_and_a_failure_names_it():
    seen: list[object] = []

    def call(views):
        seen.append(views)
        if views is not None and "stream" in views:
            raise AttributeError("'DataFrame' object has no attribute 'withColumn'")

    each_view(call, ["first", "second"])  # a run that works: one call
    assert seen == [["first", "second"]]
    seen.clear()
    with pytest.raises(RuntimeError, match=r"^feature view stream: AttributeError: 'DataFrame' object has no attr"):
        each_view(call, ["first", "stream", "never"])
    assert seen == [["first", "stream", "never"], ["first"], ["stream"]]  # one at a time only after the failure
    seen.clear()
    with pytest.raises(RuntimeError, match=r"^feature view stream: AttributeError"):
        each_view(call, ["stream"])
    assert seen == [["stream"]]
    seen.clear()
    each_view(call, None)  # every view: one call, as Feast was asked
    assert seen == [None]


def test_a_request_error_stays_one():
    def call(_views):
        raise InputError("the range starts at ..., not before the host's clock")

    with pytest.raises(InputError):
        each_view(call, ["a"])


def test_the_skip_hint_is_for_a_view_not_for_an_unreachable_store():
    from featctl.query.server import _UNREACHABLE

    assert _UNREACHABLE.search(
        "feature view v: ConnectionError: Error 111 connecting to 127.0.0.1:1. Connection refused."
    )
    assert _UNREACHABLE.search("feature view v: OperationalError: could not connect to server")
    assert not _UNREACHABLE.search("feature view s: AttributeError: 'DataFrame' object has no attribute 'withColumn'")
