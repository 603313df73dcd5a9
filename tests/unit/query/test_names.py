"""Column names of online and historical answers: Feast's full_feature_names,
namesakes from two views, a join key a view lists among its features."""

import pytest

from featctl.errors import UsageError
from featctl.query.historical import _refuse_namesakes, column_types
from featctl.query.online import column_order


def test_two_views_features_of_one_name_are_refused_with_the_way_out():
    with pytest.raises(UsageError) as err:
        _refuse_namesakes(["driver_hourly_stats:conv_rate", "driver_quality_metrics:conv_rate"])
    message = str(err.value)
    assert "\n" not in message
    assert "--full-feature-names" in message
    assert "driver_hourly_stats__conv_rate and driver_quality_metrics__conv_rate" in message


def test_distinct_names_and_one_view_asked_twice_pass():
    _refuse_namesakes(["a:conv_rate", "a:acc_rate", "b:trips"])
    _refuse_namesakes(["a:conv_rate", "a:conv_rate"])


def test_column_types_follow_the_names_the_columns_get():
    class Cat:
        def feature_types(self):
            return {"a:conv_rate": "Float32", "b:conv_rate": "Float64"}

    assert column_types(Cat(), ["a:conv_rate", "b:conv_rate"], full=True) == {
        "a__conv_rate": "Float32",
        "b__conv_rate": "Float64",
    }
    assert column_types(Cat(), ["a:conv_rate"]) == {"conv_rate": "Float32"}


def test_a_join_key_a_view_lists_as_a_feature_is_one_column():
    columns = {"driver_id": [1], "conv_rate": [0.5], "event_timestamp": ["t"]}
    assert column_order(["driver_id"], ["driver_id", "conv_rate"], columns) == [
        "driver_id",
        "conv_rate",
        "event_timestamp",
    ]


def test_features_keep_the_order_asked_for_and_extras_follow():
    columns = {"b": [1], "a": [2], "x": [3]}
    assert column_order(["k"], ["a", "b", "missing"], columns) == ["k", "a", "b", "x"]
