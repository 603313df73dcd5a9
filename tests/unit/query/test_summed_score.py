"""featctl's own weighted sum (no on-demand view weighs the features): the
online rule and the point-in-time column agree with plain arithmetic, nulls
included."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from featctl.query.historical import summed_column
from featctl.query.online import weighted_sum


@pytest.mark.parametrize(
    ("values", "weights", "want"),
    [
        ([0.5, 10], [0.7, 0.01], 0.7 * 0.5 + 0.01 * 10),
        ([True, 2], [1.5, -1], 1.5 - 2),
        ([None, 1.0], [1, 1], None),
        ([float("nan"), 1.0], [1, 1], None),
        (["x", 1.0], [1, 1], None),
        ([], [], 0.0),
    ],
)
def test_online_weighted_sum(values, weights, want):
    got = weighted_sum(values, weights)
    assert got == (pytest.approx(want) if want is not None else None)


def test_point_in_time_column_matches_row_by_row():
    frame = pd.DataFrame(
        {
            "conv": [0.25, None, 0.5, 0.125],
            "trips": pd.array([4, 7, None, 0], dtype="Int64"),
            "conv_coef": [0.7, 0.7, 0.7, 2.0],
            "trips_coef": [0.01, 0.01, 0.01, -3.0],
        }
    )
    got = summed_column(frame, ["conv", "trips"], ["conv_coef", "trips_coef"])
    assert got.dtype == "float64"
    assert got[0] == pytest.approx(0.7 * 0.25 + 0.01 * 4)
    assert math.isnan(got[1]) and math.isnan(got[2])
    assert got[3] == pytest.approx(0.25)
    for i in range(4):
        row = frame.iloc[i]
        values = [None if pd.isna(row.conv) else row.conv, None if pd.isna(row.trips) else row.trips]
        online = weighted_sum(values, [row.conv_coef, row.trips_coef])
        assert (online is None and math.isnan(got[i])) or online == pytest.approx(got[i])


def test_featctl_sum_reads_the_weighted_features_only():
    from featctl.query.catalog import Catalog
    from featctl.query.online import score_refs

    desc = {"feature_views": [{"name": "stats", "features": [{"name": "spend", "dtype": "Float64"}]}]}
    assert score_refs(Catalog(desc).score_view(weighing=["spend"])) == ["stats:spend"]
