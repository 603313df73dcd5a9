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


def test_verify_finds_repairs_and_reports_a_wrong_value_the_probe_misses(reference_deployment):
    """Driver 1003's online values replaced with driver 1004's (pushed to the
    online store with 1003's own event time, so nothing newer): the health
    check reads one entity and stays healthy; verify compares every entity
    with the pandas reference's newest row, repairs exactly that one and
    status shows the last verify."""
    import json

    d = reference_deployment
    df = load(d.repo / "data" / "driver_stats.parquet")
    probed = (d.record().get("probe") or {}).get("views", {}).get("driver_quality_metrics", {}).get("entity", {})
    victim = next(v for v in (1003, 1002, 1001, 1005) if probed.get("driver_id") != v)
    right, other = latest(df, victim), latest(df, 1004 if victim != 1004 else 1001)
    assert abs(float(right.conv_rate) - float(other.conv_rate)) > 1e-3
    d.run(
        "push", "--view", "driver_stats_push_source", "-e", f"driver_id={victim}",
        "--set", f"conv_rate={float(other.conv_rate)}", "--set", f"acc_rate={float(other.acc_rate)}",
        "--at", right.event_timestamp.isoformat(), "--to", "online",
    ).ok()  # fmt: skip
    served = d.json("online", "-d", str(victim), "-f", "driver_quality_metrics:conv_rate")[0]
    assert served["conv_rate"] == pytest.approx(float(other.conv_rate), rel=1e-6)  # the wrong value is served
    d.status()  # the one-entity health check does not see it (exit 0 is asserted by status())

    found = d.run("verify", "--output", "json")
    assert found.returncode == 9, found.stderr
    rows = json.loads(found.stdout)
    assert {(r["view"], r["entity"], r["feature"]) for r in rows} == {
        ("driver_quality_metrics", f"driver_id={victim}", "conv_rate"),
        ("driver_quality_metrics", f"driver_id={victim}", "acc_rate"),
    }
    by_feature = {r["feature"]: r for r in rows}
    for feature in ("conv_rate", "acc_rate"):
        assert by_feature[feature]["online"] == pytest.approx(float(other[feature]), rel=1e-6)
        assert by_feature[feature]["offline"] == pytest.approx(float(right[feature]), rel=1e-6)
        assert by_feature[feature]["repaired"] is False
    assert " 1 wrong" in found.stderr, found.stderr

    sampled = d.run("verify", "--sample", "1", "--view", "driver_hourly_stats", "--output", "json")
    assert sampled.returncode == 0 and json.loads(sampled.stdout) == [], sampled.stderr  # other views untouched
    assert "checked 1 entities (sample 1)" in sampled.stderr

    fixed = d.run("verify", "--repair", "--output", "json")
    assert fixed.returncode == 9, fixed.stderr
    assert all(r["repaired"] for r in json.loads(fixed.stdout))
    served = d.json("online", "-d", str(victim), "-f", "driver_quality_metrics:conv_rate")[0]
    assert served["conv_rate"] == pytest.approx(float(right.conv_rate), rel=1e-6)
    again = d.run("verify", "--output", "json")
    assert again.returncode == 0 and json.loads(again.stdout) == [], again.stderr
    productivity = load(d.repo / "data" / "driver_stats_with_productivity.parquet")
    want = {
        "driver_hourly_stats": df.driver_id.nunique(),
        "driver_quality_metrics": df.driver_id.nunique(),
        "driver_productivity_metrics": productivity.driver_id.nunique(),
    }
    assert f"checked {sum(want.values())} entities (all): 0 wrong" in again.stderr, again.stderr
    last = d.status()["deployment"]["last_verify"]
    assert last["wrong"] == 0 and last["mode"] == "all"
    assert {v["view"]: v["checked"] for v in last["views"]} == want

    unknown = d.run("verify", "--view", "nope")
    assert unknown.returncode == 2 and "not an online feature view: nope" in unknown.stderr


def test_reference_destroy(reference_deployment):
    reference_deployment.run("destroy", "--yes").ok()
    assert processes_under(reference_deployment.workspace) == []
