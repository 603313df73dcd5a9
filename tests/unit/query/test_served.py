"""Historical retrieval through the feature server (query/served.py on the
client, agent/endpoints.py in the server) against the agent process's path
(parquet files both ways): the same entity rows reach the join, the same
frame comes back, and both equal the pandas point-in-time reference
(tests/userrepos.py). The server itself is a fake only where the client's
reactions to its answers are tested (the HTTP adapter is the boundary)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featctl.agent import endpoints, historical
from featctl.agent.asof import ViewSpec, join_view, ts_ns
from featctl.agent.output import AgentError, InputError
from featctl.errors import FeastError, FeatureServerError, UsageError
from featctl.query import served
from tests.userrepos import BUREAUS, CREDIT_APPLICANTS, CREDIT_PROFILE, CREDIT_REPORT, credit_reference, write_credit

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
PROFILE, REPORT = CREDIT_PROFILE, CREDIT_REPORT


def credit_rows(n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(17)
    ents = pd.DataFrame(
        {
            "applicant_id": rng.choice([*CREDIT_APPLICANTS, "nobody"], n),
            "bureau": rng.choice(BUREAUS, n),
            "event_timestamp": pd.to_datetime(
                [NOW - timedelta(hours=float(h)) for h in rng.uniform(-5, 24 * 70, n)], utc=True
            ),
            "income_coef": rng.uniform(-1, 1, n),
            "debt_coef": rng.uniform(-1, 1, n),
        }
    )
    ents.loc[0:2, ["applicant_id", "event_timestamp"]] = [["B-10", NOW], ["007", NOW - timedelta(days=4, hours=2)],
                                                         ["b-10", NOW]]
    return pd.concat([ents, ents.iloc[:60]], ignore_index=True)  # repeated rows are kept


def joined(repo: Path, ents: pd.DataFrame) -> pa.Table:
    """What historical.retrieve hands to the transport: the entity rows with
    both credit views' columns appended (the agent's as-of join)."""
    table = pa.Table.from_pandas(ents, preserve_index=False)
    ent_ts = ts_ns(ents["event_timestamp"])
    for name, keys, feats, ttl in (
        ("profiles", ["applicant_id"], PROFILE, 30),
        ("reports", ["applicant_id", "bureau"], REPORT, 90),
    ):
        spec = ViewSpec(name, [(k, k) for k in keys], "event_ts", "created_ts", [(f, f) for f in feats],
                        int(ttl * 86400e9))
        source = pq.read_table(repo / "data" / f"{name}.parquet")
        for col, values in join_view({k: ents[k] for k in keys}, ent_ts, source, spec).items():
            table = table.append_column(col, values)
    return table


def test_entity_rows_reach_the_join_the_same_way_on_both_paths(tmp_path):
    ents = credit_rows()
    ents["applicant_id"] = ents["applicant_id"].astype(object)
    ents.to_parquet(tmp_path / "e.parquet", index=False)  # the agent process's path
    by_file = historical.read_entities(str(tmp_path / "e.parquet"))
    by_server, request = endpoints.decode_request(served.encode(ents, ["credit_profile:income"], None))
    pd.testing.assert_frame_equal(by_server, by_file)
    assert request == {"features": ["credit_profile:income"]}
    assert by_server["applicant_id"].tolist()[:3] == ["B-10", "007", "b-10"]  # "007" stays text
    _, request = endpoints.decode_request(served.encode(ents, [], "credit_model"))
    assert request == {"feature_service": "credit_model"}


def test_results_come_back_the_same_on_both_paths_and_equal_the_reference(tmp_path):
    repo = write_credit(tmp_path, NOW)
    ents = credit_rows()
    table = joined(repo, ents)
    historical.write_result(table, str(tmp_path / "out.parquet"))
    by_file = pd.read_parquet(tmp_path / "out.parquet")  # the agent process's path
    chunks = list(endpoints.ipc_chunks(historical.pandas_metadata(table), rows=100))
    assert len(chunks) > 5  # streamed batch by batch
    by_server = served.decode(b"".join(chunks))
    pd.testing.assert_frame_equal(by_server, by_file)
    # Nullable integers stay integers, times stay UTC times, on both paths.
    assert str(by_server["open_loans"].dtype) == "Int64" and by_server["open_loans"].isna().any()
    assert str(by_server["delinquencies"].dtype) == "Int64"
    assert str(by_server["last_payment"].dt.tz) == "UTC"
    want = credit_reference(repo, ents)
    assert len(by_server) == len(ents)
    for c in [*PROFILE, *REPORT]:
        got, ref = by_server[c], want[c]
        assert (got.isna().to_numpy() == ref.isna().to_numpy()).all(), c
        if c == "last_payment":
            assert (got[got.notna()] == pd.to_datetime(ref[ref.notna()], utc=True)).all(), c
        else:
            assert got[got.notna()].astype(float).tolist() == ref[ref.notna()].astype(float).tolist(), c
    assert by_server.loc[0, "income"] >= 77777.0  # B-10's later-created row at the tie
    assert pd.isna(by_server.loc[2, "income"])  # b-10: nothing inside the TTL


def test_a_request_that_is_not_an_arrow_stream_is_an_input_error():
    with pytest.raises(InputError, match="not featctl's Arrow stream"):
        endpoints.decode_request(b'{"features": []}')
    frame = pd.DataFrame({"driver_id": [1]})
    with pytest.raises(InputError, match="event_timestamp"):
        endpoints.decode_request(served.encode(frame, ["v:f"], None))


def test_server_errors_map_to_statuses():
    assert endpoints._error(InputError("bad"))[0] == 400
    assert endpoints._error(historical.NotServed("spark"))[0] == 409
    assert endpoints._error(AgentError("down"))[0] == 500

    class FeatureViewNotFoundException(Exception):
        pass

    assert endpoints._error(FeatureViewNotFoundException("no view x")) == (
        400,
        {"error": "FeatureViewNotFoundException: no view x", "kind": "input"},
    )


class Server:
    """The feature-server adapter as query/served.py sees it: canned answers."""

    tunnelled = False
    batch = False
    port = 6566

    def __init__(self, info, status=200, body=b"", headers=None):
        self.info, self.status, self.body, self.headers = info, status, body, headers or {}
        self.posted: list[bytes] = []

    def featctl_info(self):
        return self.info

    def featctl_historical(self, payload, *, timeout):
        self.posted.append(payload)
        return self.status, self.headers, self.body


def answer(frame: pd.DataFrame) -> bytes:
    return b"".join(endpoints.ipc_chunks(pa.Table.from_pandas(frame, preserve_index=False)))


def test_the_client_uses_the_server_only_when_it_runs_the_same_agent():
    frame = pd.DataFrame({"driver_id": [1], "event_timestamp": [NOW], "conv_rate": [0.5]})
    payload = served.encode(frame, ["v:conv_rate"], None)
    info = {"api": 1, "agent": "abc", "historical": True}
    got, how = served._ask(Server(info, body=answer(frame), headers={"x-featctl-engine": "as-of join (file)"}),
                           payload, "abc", 10)
    pd.testing.assert_frame_equal(got, frame)
    assert "as-of join (file)" in how
    for server in (Server(None), Server({**info, "agent": "older"})):
        with pytest.raises(served.NotOffered):
            served._ask(server, payload, "abc", 10)
        assert server.posted == []  # nothing sent to a server that cannot answer


@pytest.mark.parametrize(
    ("status", "detail", "error"),
    [
        (409, {"error": "the spark offline store needs Feast's own retrieval", "kind": "process"}, served.NotOffered),
        (400, {"error": "unknown feature ref(s): v:x", "kind": "input"}, UsageError),
        (500, {"error": "OperationalError: gone", "kind": "feast"}, FeastError),
        (502, None, FeastError),
    ],
)
def test_the_servers_refusals_and_failures(status, detail, error):
    body = json.dumps(detail).encode() if detail else b"<html>bad gateway</html>"
    server = Server({"agent": "abc", "historical": True}, status=status, body=body)
    with pytest.raises(error) as caught:
        served._ask(server, b"x", "abc", 10)
    assert (detail or {}).get("error", "bad gateway") in str(caught.value)


def test_an_unreadable_result_is_a_feature_server_error():
    with pytest.raises(FeatureServerError):
        served.decode(b"not arrow")


def test_via_takes_three_values(monkeypatch):
    monkeypatch.delenv("FEATCTL_HISTORICAL_VIA", raising=False)
    assert served.via() == "auto"
    monkeypatch.setenv("FEATCTL_HISTORICAL_VIA", "Process")
    assert served.via() == "process"
    monkeypatch.setenv("FEATCTL_HISTORICAL_VIA", "fast")
    with pytest.raises(UsageError, match="auto, server, process"):
        served.via()


class Settings:
    def __init__(self, stores=()):
        self.stores = stores


class Session:
    def __init__(self, stores=()):
        self.settings = Settings(stores)


@pytest.mark.parametrize(
    ("env", "stores", "served_answer", "want"),
    [
        ({}, (), "frame", ["server"]),
        ({}, (), None, ["server", "process"]),  # the server could not answer: the agent's process
        ({"FEATCTL_HISTORICAL_VIA": "process"}, (), "frame", ["process"]),
        ({"FEATCTL_HISTORICAL_VIA": "server"}, (), "frame", ["server (required)"]),
        ({}, ("postgres", "spark"), "frame", ["process"]),  # Spark stays out of the server
        ({"FEATCTL_HISTORICAL_ENGINE": "feast"}, (), "frame", ["process --engine feast"]),
        ({"FEATCTL_HISTORICAL_ENGINE": "other"}, (), "frame", ["server"]),  # only "feast" means something
    ],
)
def test_which_path_a_historical_request_takes(monkeypatch, env, stores, served_answer, want):
    from featctl.query import historical as client

    for name in ("FEATCTL_HISTORICAL_VIA", "FEATCTL_HISTORICAL_ENGINE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    frame = pd.DataFrame({"driver_id": [1, 2]})
    taken: list[str] = []

    def served_frame(session, record, frame_, refs, service, *, required, full_feature_names=False):
        taken.append("server (required)" if required else "server")
        return frame if served_answer else None

    def process_frame(session, record, frame_, refs, service, engine, full=False):
        taken.append("process" + (f" --engine {engine}" if engine else ""))
        return frame

    monkeypatch.setattr(served, "served_frame", served_frame)
    monkeypatch.setattr(client, "_process_frame", process_frame)
    assert client._historical_frame(Session(stores), None, frame, ["v:f"], None) is frame
    assert taken == want


def test_a_request_the_server_took_but_did_not_finish_goes_to_the_agent_process_not_to_another_server():
    class Dropped(Server):
        def __init__(self, sent):
            super().__init__({"agent": "abc", "historical": True})
            self.sent = sent

        def featctl_historical(self, payload, *, timeout):
            err = FeatureServerError("connection reset")
            if self.sent:
                err.sent = True
            raise err

    with pytest.raises(served.NotOffered, match="did not finish"):
        served._ask(Dropped(sent=True), b"x", "abc", 10)
    with pytest.raises(FeatureServerError, match="reset"):  # never reached it: the direct channel may
        served._ask(Dropped(sent=False), b"x", "abc", 10)


class _Unreachable(Server):
    """A batch server that is not there (a release started by an older featctl)."""

    batch = True

    def featctl_info(self):
        raise FeatureServerError("the feature server on the host (port 6566-batch) is not reachable: refused")


class _Sessions:
    def __init__(self, batch, main):
        self.batch, self.main, self.asked = batch, main, []

    def batch_server(self, record, direct=False):
        self.asked.append("batch")
        return self.batch

    def query_server(self, record, index=0):
        self.asked.append("main")
        return self.main

    def direct_server(self, record, index=0):
        self.asked.append("direct")
        return self.main


def test_batch_work_goes_to_the_batch_server_and_falls_back_to_the_feature_server():
    frame = pd.DataFrame({"driver_id": [1], "event_timestamp": [NOW], "conv_rate": [0.5]})
    info = {"api": 1, "agent": "abc", "historical": True}
    batch = Server(info, body=answer(frame))
    batch.batch = True
    main = Server(info, body=answer(frame))
    s = _Sessions(batch, main)
    result, how = served._ask_batch_first(s, None, b"rows", "abc", 5.0)  # type: ignore[arg-type]
    assert s.asked == ["batch"] and batch.posted == [b"rows"] and main.posted == []
    assert "batch server" in how and result.equals(frame)
    # No batch server: the feature server answers, as before there was one.
    s = _Sessions(_Unreachable(info), main)
    result, how = served._ask_batch_first(s, None, b"rows", "abc", 5.0)  # type: ignore[arg-type]
    assert s.asked == ["batch", "main"] and main.posted == [b"rows"] and "the feature server" in how
    # A batch server that took the rows and then failed is not asked twice, nor is another.
    sent = Server(info)
    sent.batch = True

    def lost(payload, *, timeout):
        exc = FeatureServerError("did not answer after it was sent")
        exc.sent = True  # type: ignore[attr-defined]
        raise exc

    sent.featctl_historical = lost  # type: ignore[method-assign]
    s = _Sessions(sent, main)
    with pytest.raises(served.NotOffered):
        served._ask_batch_first(s, None, b"rows", "abc", 5.0)  # type: ignore[arg-type]
    assert s.asked == ["batch"]


def test_full_feature_names_travel_with_the_request_and_only_when_asked():
    frame = pd.DataFrame({"driver_id": [1001], "event_timestamp": pd.to_datetime(["2026-12-01"], utc=True)})
    _, request = endpoints.decode_request(served.encode(frame, ["a:conv_rate", "b:conv_rate"], None, True))
    assert request == {"features": ["a:conv_rate", "b:conv_rate"], "full_feature_names": True}
    _, request = endpoints.decode_request(served.encode(frame, ["a:conv_rate"], None))
    assert "full_feature_names" not in request
