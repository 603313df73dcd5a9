"""Parsing the feature server's answers (no server needed)."""

import pytest

from featctl.errors import FeatureServerError, UsageError
from featctl.query.server import _server_error, parse_online_response


def test_parse_online_response_maps_missing_and_nan_to_none():
    data = {
        "metadata": {"feature_names": ["driver_id", "conv_rate"]},
        "results": [
            {"values": [1001, 9999], "statuses": ["PRESENT", "PRESENT"]},
            {"values": [0.5, None], "statuses": ["PRESENT", "NOT_FOUND"]},
        ],
    }
    assert parse_online_response(data) == {"driver_id": [1001, 9999], "conv_rate": [0.5, None]}
    data["results"][1] = {"values": [float("nan"), 0.1], "statuses": ["PRESENT", "PRESENT"]}
    assert parse_online_response(data)["conv_rate"] == [None, 0.1]


@pytest.mark.parametrize("bad", [{}, {"metadata": {}}, {"metadata": {"feature_names": ["a"]}, "results": []}, None])
def test_unexpected_answers(bad):
    with pytest.raises(FeatureServerError):
        parse_online_response(bad)


def test_server_errors_by_status():
    assert isinstance(_server_error("/x", 422, b'{"detail": "bad"}'), UsageError)
    err = _server_error("/x", 500, b'{"detail": "boom\\nmore"}')
    assert isinstance(err, FeatureServerError) and "boom more" in str(err)


def test_score_overflow_becomes_null_with_a_note():
    from featctl.query.online import not_finite

    assert not_finite("Infinity") and not_finite("-Infinity") and not_finite(float("inf"))
    assert not not_finite(1.0) and not not_finite(None) and not not_finite("text")


def _dropping_server(path):
    """A Unix-socket stand-in for the tunnel that reads each request and hangs up
    without an answer; returns the list the requests land in."""
    import socket
    import threading

    got: list[bytes] = []
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                got.append(data)

    threading.Thread(target=serve, daemon=True).start()
    return srv, got


def test_an_offline_push_is_never_sent_twice(tmp_path):
    from featctl.query.server import FeatureServer

    srv, got = _dropping_server(tmp_path / "t.sock")
    try:
        server = FeatureServer(None, 6566, timeout=5, tunnel=str(tmp_path / "t.sock"))
        with pytest.raises(FeatureServerError) as err:
            server.push("p", {"a": [1]}, "offline", timeout=5)
        assert err.value.sent and "may or may not" in err.value.message
        assert len(got) == 1 and b"POST /push" in got[0]
        got.clear()
        with pytest.raises(FeatureServerError) as err:  # an online push may be resent: it overwrites
            server.push("p", {"a": [1]}, "online", timeout=5)
        assert not err.value.sent and len(got) == 2
    finally:
        srv.close()


@pytest.mark.parametrize(
    ("status", "raw", "kind", "text"),
    [
        (500, b'{"detail": "Error 111 connecting to 127.0.0.1:1. Connection refused."}', "FeastError", "connecting"),
        (422, b'{"detail": "bad date"}', "UsageError", "bad date"),
    ],
)
def test_a_materialization_the_server_fails_is_feasts_failure(status, raw, kind, text):
    """Feast's /materialize answering 500 is Feast failing (exit 5, as the exit codes say), not the server."""
    from featctl.errors import ExitCode
    from featctl.query.server import FeatureServer

    class Answering(FeatureServer):
        def __init__(self):
            pass

        def request(self, method, path, body=None, **kw):
            return status, raw

    with pytest.raises(Exception) as err:
        Answering().materialize("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", ["v"], timeout=5)
    assert type(err.value).__name__ == kind and text in str(err.value)
    assert err.value.exit_code == (ExitCode.FEAST if kind == "FeastError" else ExitCode.USAGE)
    assert "\n" not in str(err.value)


def test_a_json_string_inside_the_detail_loses_its_quotes():
    err = _server_error("/materialize", 500, b'{"detail": "\\"Error 111 connecting to 127.0.0.1:1. Connection refused.\\""}')
    assert str(err).endswith("(HTTP 500): Error 111 connecting to 127.0.0.1:1. Connection refused.")
