"""Health means queries give the right numbers: /health plus an online read
per view whose values must equal the offline data's newest row (or be newer)."""

from __future__ import annotations

from featctl.errors import FeatureServerError
from featctl.lifecycle.health import check, wrong_views

PROBE = {
    "views": {
        "a": {"entity": {"driver_id": 1001}, "feature": "x", "expect_value": True},
        "b": {"entity": {"driver_id": 0}, "feature": "y", "expect_value": False},
    }
}
T = "2026-12-01T10:00:00+00:00"
VALUES = {
    "views": {
        "a": {
            "entity": {"k": "C1"},
            "feature": "x",
            "expect_value": True,
            "values": {"x": 1.5, "n": 7, "s": "gold"},
            "present": ["emb"],
            "event_ts": T,
        }
    }
}
EPOCH = "1970-01-01T00:00:00Z"


class Server:
    """The feature server's HTTP client, at the boundary: answers each feature
    with (value, status, event timestamp)."""

    def __init__(self, answers=None, fail=None, healthy=True, default=(1.0, "PRESENT", T)):
        self.answers = answers or {}
        self.fail = fail
        self._healthy = healthy
        self.default = default
        self.reads = []

    def healthy(self):
        return self._healthy

    def online_read(self, entities, features):
        self.reads.append((entities, features))
        view = features[0].split(":")[0]
        if view == self.fail:
            raise FeatureServerError("the feature server failed (HTTP 500): no such table: p_a")
        out = {}
        for ref in features:
            value, status, ts = self.answers.get(ref, self.answers.get(view, self.default))
            out[ref.split(":")[1]] = {"values": [value], "statuses": [status], "event_timestamps": [ts]}
        return out


def test_healthy_reads_every_view():
    server = Server(answers={"b": (None, "NOT_FOUND", EPOCH)})
    assert check(server, PROBE, {"a", "b"})
    assert [f for _, f in server.reads] == [["a:x"], ["b:y"]]


def test_a_broken_table_is_unhealthy():
    verdict = check(Server(fail="a"), PROBE)
    assert not verdict and "online read of a failed" in verdict.reason and "no such table" in verdict.reason


def test_a_lost_value_is_unhealthy_only_where_it_was_materialized():
    assert not check(Server(answers={"a": (None, "NOT_FOUND", EPOCH)}), PROBE, {"a"})
    assert check(Server(answers={"a": (None, "NOT_FOUND", EPOCH)}), PROBE, set())


def test_no_health_endpoint():
    verdict = check(Server(healthy=False), PROBE)
    assert not verdict and "/health" in verdict.reason


def _right(**over):
    answers = {"a:x": (1.5, "PRESENT", T), "a:n": ("7", "PRESENT", T), "a:s": ("gold", "PRESENT", T)}
    answers["a:emb"] = ([0.1, 0.2], "PRESENT", T)
    answers.update(over)
    return Server(answers=answers)


def test_values_equal_to_the_offline_row_are_healthy():
    server = _right()
    assert check(server, VALUES, {"a"})
    assert sorted(server.reads[0][1]) == ["a:emb", "a:n", "a:s", "a:x"]


def test_redis_answers_present_with_nulls_for_keys_it_never_got():
    # Feast's Redis store: PRESENT, null, the epoch as event time.
    verdict = check(_right(**{"a:x": (None, "PRESENT", EPOCH)}), VALUES, {"a"})
    assert not verdict and "no a:x value for k=C1" in verdict.reason
    verdict = check(_right(**{"a:emb": (None, "PRESENT", EPOCH)}), VALUES, {"a"})
    assert not verdict and "a:emb" in verdict.reason


def test_a_different_or_older_value_is_unhealthy():
    verdict = check(_right(**{"a:x": (2.5, "PRESENT", T)}), VALUES, {"a"})
    assert not verdict and "a:x = 2.5" in verdict.reason and "1.5" in verdict.reason
    verdict = check(_right(**{"a:s": ("gold", "PRESENT", "2026-11-30T10:00:00Z")}), VALUES, {"a"})
    assert not verdict and "older" in verdict.reason


def test_online_event_times_are_whole_seconds():
    probe = {"views": {"a": {**VALUES["views"]["a"], "event_ts": "2026-12-01T10:00:00.294010+00:00"}}}
    assert check(_right(), probe, {"a"})
    assert not check(_right(**{"a:x": (1.5, "PRESENT", "2026-12-01T09:59:59Z")}), probe, {"a"})


def test_a_newer_value_from_a_push_is_healthy():
    assert check(_right(**{"a:x": (99.0, "PRESENT", "2026-12-02T00:00:00Z")}), VALUES, {"a"})


def test_floats_compare_with_float32_precision_and_ints_as_numbers():
    assert check(_right(**{"a:x": (1.5000000001, "PRESENT", T)}), VALUES, {"a"})
    assert not check(_right(**{"a:n": ("8", "PRESENT", T)}), VALUES, {"a"})


def test_wrong_views_lists_every_wrong_view():
    probe = {"views": {**VALUES["views"], "c": {**VALUES["views"]["a"]}}}
    server = Server(answers={"a": (None, "PRESENT", EPOCH), "c": (None, "PRESENT", EPOCH)})
    assert sorted(wrong_views(server, probe)) == ["a", "c"]
    assert len(wrong_views(server, probe, first=True)) == 1


class Starting:
    """A server systemd is starting: /health answers after ``after`` polls."""

    def __init__(self, after):
        self.after, self.polls = after, 0

    def healthy(self):
        self.polls += 1
        return self.polls > self.after


def test_a_server_systemd_is_starting_gets_the_time_a_start_takes(monkeypatch):
    from featctl.lifecycle import health

    slept = []
    monkeypatch.setattr("time.sleep", slept.append)
    server = Starting(after=3)
    health._starting(server)  # type: ignore[arg-type]
    assert server.polls == 4 and len(slept) == 3
    monkeypatch.setattr(health, "SYSTEMD_START_SECONDS", 0.0)
    never = Starting(after=10**9)
    health._starting(never)  # type: ignore[arg-type]
    assert never.polls == 1  # a server that does not come up is not waited for past the bound


class Worker(Server):
    """One connection, taken by the worker the kernel picked; says its pid."""

    def __init__(self, pid, **kw):
        super().__init__(**kw)
        self.pid = pid
        self.closed = False

    def featctl_info(self):
        return {"api": 1, "pid": self.pid} if self.pid is not None else None

    def close(self):
        self.closed = True


def connections(*workers):
    """Connections in the order the kernel hands them to workers."""
    made = []
    it = iter(workers)

    def connect():
        made.append(next(it))
        return made[-1]

    return connect, made


def test_every_worker_is_read_through():
    from featctl.lifecycle.health import check_workers

    connect, made = connections(Worker(11), Worker(11), Worker(12), Worker(11))
    verdict = check_workers(connect, 2, PROBE)
    assert verdict and verdict.detail == "read through 2 of 2 workers"
    assert len(made) == 3 and all(w.closed for w in made)
    assert [len(w.reads) for w in made] == [2, 0, 2]  # a worker already read is not read again


def test_one_worker_that_cannot_read_makes_the_server_unhealthy():
    """milvus-lite: the store opens in one process; the other workers fail (HTTP 500)."""
    from featctl.lifecycle.health import check_workers

    connect, _ = connections(Worker(11), Worker(12, fail="a"))
    verdict = check_workers(connect, 2, PROBE)
    assert not verdict and verdict.reason.startswith("worker 12 of 2: an online read of a failed")


def test_workers_the_kernel_never_picked_are_said_not_hidden():
    from featctl.lifecycle.health import check_workers

    connect, made = connections(*[Worker(11) for _ in range(4)])
    verdict = check_workers(connect, 2, PROBE, attempts=4)
    assert verdict and verdict.detail == "read through 1 of 2 workers" and len(made) == 4


def test_one_worker_or_a_server_without_pids_is_one_read():
    from featctl.lifecycle.health import check_workers

    connect, made = connections(Worker(None), Worker(None))
    assert check_workers(connect, 2, PROBE) and len(made) == 1
    connect, made = connections(Worker(11), Worker(12))
    verdict = check_workers(connect, 1, PROBE)
    assert verdict and verdict.detail is None and len(made) == 1


def test_a_server_that_does_not_answer_is_unhealthy_not_an_error():
    """status on a host whose server socket is gone (the vm unit restarting) reports, never crashes."""
    from featctl.lifecycle.health import check_workers

    class Gone(Worker):
        def featctl_info(self):
            raise FeatureServerError("cannot open a tunnel to /opt/featctl/run/s/6566: Connect failed")

    connect, _ = connections(Gone(None, healthy=False))
    verdict = check_workers(connect, 2, PROBE)
    assert not verdict and "/health" in verdict.reason
