"""The original project's data files as drop-in data: featctl's answers must
match pandas on them too (old timestamps: the first materialization must
cover all of the data, not just now minus the TTL)."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from tests.integration.conftest import processes_under
from tests.integration.expected import as_of, latest, load

pytestmark = pytest.mark.integration


def test_reference_files_are_used_as_they_are(reference_deployment):
    from tests.conftest import REFERENCE_DATA

    for name in ("driver_stats.parquet", "driver_stats_with_productivity.parquet"):
        assert (reference_deployment.repo / "data" / name).read_bytes() == (REFERENCE_DATA / name).read_bytes()
    assert "kept existing data/driver_stats.parquet" in reference_deployment.first_deploy.stderr


def test_reference_score_and_productivity(reference_deployment):
    df = load(reference_deployment.repo / "data" / "driver_stats_with_productivity.parquet")
    rows = reference_deployment.json("score", "-w", "conv_rate=0.7,acc_rate=0.3", "-d", "1001", "-d", "1005")
    for row in rows:
        want = latest(df, row["driver_id"])
        assert row["linear_combination"] == pytest.approx(
            0.7 * float(want.conv_rate) + 0.3 * float(want.acc_rate), rel=1e-6
        )
    online = reference_deployment.json("online", "-d", "1003", "-f", "driver_productivity_metrics:productivity")
    assert online[0]["productivity"] == pytest.approx(float(latest(df, 1003).productivity), rel=1e-6)


def test_reference_historical(reference_deployment, tmp_path):
    df = load(reference_deployment.repo / "data" / "driver_stats.parquet")
    base = pd.Timestamp("2021-04-12T10:30:00Z")
    ents = pd.DataFrame(
        {
            "driver_id": [1001, 1002, 1001, 1005, 1003],
            "event_timestamp": [
                base,
                base + timedelta(hours=5),
                base,
                base + timedelta(days=1),
                df.event_timestamp.max(),
            ],
        }
    )
    src = tmp_path / "e.parquet"
    ents.to_parquet(src)
    rows = reference_deployment.json("historical", "--entities", str(src), "-f", "driver_hourly_stats:conv_rate")
    assert [r["driver_id"] for r in rows] == list(ents.driver_id)
    for r, (_, e) in zip(rows, ents.iterrows()):
        want = as_of(df, e.driver_id, e.event_timestamp, timedelta(days=1))
        if want is None:
            assert r["conv_rate"] is None
        else:
            assert r["conv_rate"] == pytest.approx(float(want.conv_rate), rel=1e-6)


def test_reference_destroy(reference_deployment):
    reference_deployment.run("destroy", "--yes").ok()
    assert processes_under(reference_deployment.workspace) == []
