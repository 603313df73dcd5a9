"""Health means queries work: /health plus an online read per view."""

from __future__ import annotations

from featctl.errors import FeatureServerError
from featctl.lifecycle.health import check

PROBE = {
    "views": {
        "a": {"entity": {"driver_id": 1001}, "feature": "x", "expect_value": True},
        "b": {"entity": {"driver_id": 0}, "feature": "y", "expect_value": False},
    }
}


class Server:
    """The feature server's HTTP client, at the boundary."""

    def __init__(self, statuses=None, fail=None, healthy=True):
        self.statuses = statuses or {}
        self.fail = fail
        self._healthy = healthy
        self.reads = []

    def healthy(self):
        return self._healthy

    def online_statuses(self, entities, features):
        self.reads.append((entities, features))
        view = features[0].split(":")[0]
        if view == self.fail:
            raise FeatureServerError("the feature server failed (HTTP 500): no such table: p_a")
        return {features[0].split(":")[1]: [self.statuses.get(view, "PRESENT")]}


def test_healthy_reads_every_view():
    server = Server(statuses={"b": "NOT_FOUND"})
    assert check(server, PROBE, {"a", "b"})
    assert [f for _, f in server.reads] == [["a:x"], ["b:y"]]


def test_a_broken_table_is_unhealthy():
    verdict = check(Server(fail="a"), PROBE)
    assert not verdict and "online read of a failed" in verdict.reason and "no such table" in verdict.reason


def test_a_lost_value_is_unhealthy_only_where_it_was_materialized():
    assert not check(Server(statuses={"a": "NOT_FOUND"}), PROBE, {"a"})
    assert check(Server(statuses={"a": "NOT_FOUND"}), PROBE, set())


def test_no_health_endpoint():
    verdict = check(Server(healthy=False), PROBE)
    assert not verdict and "/health" in verdict.reason
