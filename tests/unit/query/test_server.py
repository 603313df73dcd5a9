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
