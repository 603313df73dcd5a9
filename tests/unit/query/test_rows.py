"""--entity, --driver and --request as typed rows."""

from __future__ import annotations

import pytest

from featctl.errors import UsageError
from featctl.query.rows import entity_rows, request_values

TYPES = {"customer_id": "String", "store_id": "Int64", "driver_id": "Int64"}


def test_rows_take_the_keys_types():
    rows = entity_rows(["customer_id=007,store_id=2", "customer_id=C1,store_id=-3"], [], TYPES)
    assert rows == [{"customer_id": "007", "store_id": 2}, {"customer_id": "C1", "store_id": -3}]
    assert entity_rows([], [1001], TYPES) == [{"driver_id": 1001}]


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (["store_id=two,customer_id=a"], "not an integer"),
        (["store_id=" + str(2**64)], "outside the range"),
        (["customer_id="], "is empty"),
        (["nope=1"], "not a join key of this deployment; its join keys are customer_id, driver_id, store_id"),
        (["customer_id=a", "store_id=1"], "every row needs the same keys"),
        (["customer_id"], "is not NAME=VALUE"),
        (["customer_id=a,customer_id=b"], "twice"),
    ],
)
def test_bad_rows(specs, message):
    with pytest.raises(UsageError, match=message):
        entity_rows(specs, [], TYPES)


def test_requests_are_typed_by_their_views():
    fields = {"bonus": "Float64", "n": "Int64", "flag": "Bool", "tag": "String"}
    assert request_values(["bonus=1.5", "n=3,flag=true,tag=x y"], fields) == {
        "bonus": 1.5,
        "n": 3,
        "flag": True,
        "tag": "x y",
    }
    with pytest.raises(UsageError, match="no on-demand view asks for it"):
        request_values(["other=1"], fields)
    with pytest.raises(UsageError, match="is not a number"):
        request_values(["bonus=1e"], fields)
