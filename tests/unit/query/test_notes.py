"""What online/score tell on stderr about rows a view does not know, and the
point-in-time score's refusal to take a weight twice."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from featctl.errors import UsageError
from featctl.query.online import Entities, missing_notes
from tests.unit.query.test_catalog import DESC

ENTS = Entities(
    columns={"applicant_id": ["A-001", "b-10", "zzz"], "bureau": ["equifax", "equifax", "x"]},
    keys=["applicant_id", "bureau"],
    size=3,
)
ANSWER = {
    "income": [1.0, None, None],
    "debt": [2.0, None, None],
    "delinquencies": [0, 3, None],
    "risk_score": [5.0, None, None],
}
BY_VIEW = {"credit_profile": ["income", "debt"], "bureau_reports": ["delinquencies"], "risk": ["risk_score"]}


def test_a_row_one_view_misses_names_that_view():
    notes = missing_notes(ENTS, ANSWER, BY_VIEW, computed=["risk"])
    assert notes == [
        "applicant_id=b-10, bureau=equifax: not found in credit_profile (found in bureau_reports); "
        "its values from there are null",
        "applicant_id=zzz, bureau=x: not found in the online store",
    ]


def test_an_on_demand_view_never_misses_a_row():
    answer = dict(ANSWER, income=[1.0, 1.0, None], debt=[2.0, 2.0, None], risk_score=[5.0, None, None])
    notes = missing_notes(ENTS, answer, BY_VIEW, computed=["risk"])
    assert notes == ["applicant_id=zzz, bureau=x: not found in the online store"]


def test_a_null_value_beside_present_ones_is_not_a_miss():
    answer = dict(ANSWER, debt=[None, None, None])
    assert missing_notes(ENTS, answer, BY_VIEW, computed=["risk"])[0].startswith("applicant_id=b-10")
    assert not any("A-001" in n for n in missing_notes(ENTS, answer, BY_VIEW, computed=["risk"]))


class _Session:
    """Enough of a Session for score_at to reach its checks; any connection fails the test."""

    def __init__(self) -> None:
        self.settings = SimpleNamespace(score_view=None, stores=(), command_timeout=60)

    def deployment(self):
        return SimpleNamespace(registry=DESC, host="h")

    def connection(self, record):
        raise AssertionError("score_at connected before checking its input")

    def query_server(self, record, index=0):  # the feature server's historical endpoint
        raise AssertionError("score_at connected before checking its input")

    def batch_server(self, record, direct=False):  # the release's batch server
        raise AssertionError("score_at connected before checking its input")


def test_score_refuses_a_weight_given_twice(tmp_path):
    from featctl.query.historical import score_at

    rows = tmp_path / "rows.csv"
    rows.write_text("customer_id,event_timestamp,spend_coef\nC1,2026-11-25T10:00:00Z,2\n")
    with pytest.raises(UsageError) as err:
        score_at(_Session(), weight_specs=["spend=1"], entities_file=rows)  # type: ignore[arg-type]
    msg = err.value.message
    assert "spend_coef" in msg and "rows.csv" in msg and "once" in msg and "\n" not in msg
    # A weight the file lacks is still filled from --weights (checked up to the connection).
    with pytest.raises(AssertionError, match="connected"):
        score_at(_Session(), weight_specs=["loyalty=1"], entities_file=rows)  # type: ignore[arg-type]
