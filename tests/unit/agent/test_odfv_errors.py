"""An on-demand view's exception names the view and the row (#24 item 8).
Feast's OnDemandFeatureView is faked at the boundary: only its two transform
entry points, which featctl wraps."""

from __future__ import annotations

import sys
import types

import pyarrow as pa
import pytest


@pytest.fixture
def view_class(monkeypatch):
    class View:
        singleton = False

        def __init__(self, name):
            self.name = name

        def transform_arrow(self, table, full_feature_names=False):
            t = table.column("total").to_pylist()
            s = table.column("spend").to_pylist()
            return pa.table({"share": [a / (b - a) for a, b in zip(s, t)]})

        def transform_dict(self, d):
            return {"share": [a / (b - a) for a, b in zip(d["spend"], d["total"])]}

        def infer_features(self):
            self.transform_dict({"spend": [1.0], "total": [1.0]})  # Feast's sample inputs: equal values

    feast = types.ModuleType("feast")
    odfv = types.ModuleType("feast.on_demand_feature_view")
    odfv.OnDemandFeatureView = View
    monkeypatch.setitem(sys.modules, "feast", feast)
    monkeypatch.setitem(sys.modules, "feast.on_demand_feature_view", odfv)
    from featctl.agent.odfv_errors import name_failures

    name_failures()
    name_failures()  # idempotent: wrapped once
    return View


ROWS = {"customer_id": ["C001", "C002", "C003"], "spend": [12.5, 20.0, 5.0], "total": [20.0, 20.0, 20.0]}


def test_arrow_failure_names_view_row_and_inputs(view_class):
    from featctl.agent.odfv_errors import OnDemandViewError

    with pytest.raises(OnDemandViewError) as err:
        view_class("spend_share").transform_arrow(pa.table(ROWS))
    assert str(err.value) == (
        "on-demand view spend_share failed on row 1 (customer_id='C002', spend=20.0, total=20.0): "
        "ZeroDivisionError: float division by zero"
    )
    assert isinstance(err.value.__cause__, ZeroDivisionError)


def test_dict_failure_names_view_and_row(view_class):
    from featctl.agent.odfv_errors import OnDemandViewError

    with pytest.raises(OnDemandViewError, match=r"spend_share failed on row 1 \(customer_id='C002'"):
        view_class("spend_share").transform_dict(dict(ROWS))


def test_answers_are_untouched(view_class):
    ok = {**ROWS, "total": [100.0] * 3}
    assert view_class("v").transform_dict(ok) == {"share": [12.5 / 87.5, 20.0 / 80.0, 5.0 / 95.0]}
    assert view_class("v").transform_arrow(pa.table(ok)).column("share").to_pylist()[1] == 20.0 / 80.0


def test_a_failure_no_single_row_has_is_said_for_the_batch():
    from featctl.agent.odfv_errors import describe

    msg = describe("v", KeyError("total"), {"a": [1, 2]}, lambda i: None)
    assert msg == "on-demand view v failed on 2 row(s): KeyError: 'total'"
    long = describe("v", ValueError("x"), {"text": ["y" * 100]}, lambda i: None)
    assert "text='" + "y" * 36 + "..." in long


def test_a_view_that_fails_on_feast_applys_sample_inputs_is_named(view_class):
    from featctl.agent.odfv_errors import OnDemandViewError

    with pytest.raises(OnDemandViewError) as err:
        view_class("spend_share").infer_features()
    assert str(err.value).startswith("on-demand view spend_share failed on row 0 (spend=1.0, total=1.0)")
