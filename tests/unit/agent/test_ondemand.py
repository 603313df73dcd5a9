"""Python-mode on-demand views on historical rows (agent/ondemand.py): Feast's
own ``to_arrow``/``transform_arrow`` computes them on the columns a view can
read, and the values equal those of the whole table. The comparison runs in the
pinned host environment (.venv-feast) with the views of featctl's repository
and the credit repository (tests/userrepos.py), plus a function that reads the
entity rows' ``event_timestamp`` (which it must still get)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from featctl.agent.ondemand import NarrowedView

ROOT = Path(__file__).resolve().parents[3]


def test_a_view_gets_what_it_declares_the_join_keys_and_what_its_code_names():
    view = NarrowedView(object(), {"conv_rate", "conv_rate_coef", "driver_id"}, 'inputs["label"] + x')
    names = ["driver_id", "event_timestamp", "conv_rate", "avg_daily_trips", "conv_rate_coef", "label", "driver_id"]
    assert view.columns(names) == [0, 2, 4, 5, 6]


HOST_SCRIPT = r'''
import importlib.util, json, sys, time
from datetime import timedelta

import numpy as np
import pandas as pd
import pyarrow as pa

sys.path.insert(0, sys.argv[1])
from featctl_agent.ondemand import NarrowedView, narrow_on_demand_views  # noqa: E402
from feast import Field  # noqa: E402
from feast.infra.offline_stores.dask import DaskRetrievalJob  # noqa: E402
from feast.on_demand_feature_view import on_demand_feature_view  # noqa: E402
from feast.types import Float64  # noqa: E402


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


drivers = load(sys.argv[2], "drivers_repo")
credit = load(sys.argv[3], "credit_repo")


@on_demand_feature_view(
    sources=[drivers.driver_quality_metrics, drivers.linear_coefficients],
    schema=[Field(name="age_weighted", dtype=Float64)],
    mode="python",
)
def age_weighted(inputs):
    return {"age_weighted": [None if c is None else c * t.hour for c, t in zip(inputs["conv_rate"], inputs["event_timestamp"])]}


n = 20000
rng = np.random.default_rng(3)
def maybe_null(values):
    return pa.array(values, mask=rng.random(n) < 0.1)
table = pa.table({
    "driver_id": pa.array(rng.integers(1001, 1006, n)),
    "applicant_id": pa.array(rng.choice(["A-001", "007"], n)),
    "event_timestamp": pa.array(pd.to_datetime(rng.integers(1.6e18, 1.7e18, n), utc=True)),
    "label": pa.array(rng.integers(0, 2, n)),
    "conv_rate_coef": rng.uniform(-1, 1, n), "acc_rate_coef": rng.uniform(-1, 1, n),
    "income_coef": rng.uniform(-1, 1, n), "debt_coef": rng.uniform(-1, 1, n),
    "conv_rate": maybe_null(rng.random(n).astype("float32")), "acc_rate": maybe_null(rng.random(n).astype("float32")),
    "avg_daily_trips": maybe_null(rng.integers(0, 100, n)),
    "income": maybe_null(rng.uniform(0, 9000, n)), "debt": maybe_null(rng.uniform(0, 5000, n)),
})
table_full_names = table.rename_columns([
    {"conv_rate": "driver_quality_metrics__conv_rate", "acc_rate": "driver_quality_metrics__acc_rate"}.get(c, c)
    for c in table.column_names
])
views = [(drivers.driver_quality_metrics, ["conv_rate", "acc_rate"]), (credit.credit_profile, ["income", "debt"])]
out = {}
for odfv, ffn, base in (
    (drivers.driver_activity_rates_linear_combination_fv, False, table),
    (drivers.driver_activity_rates_linear_combination_fv, True, table_full_names),
    (credit.risk_score, False, table.filter(pa.compute.is_valid(table["income"])).filter(
        pa.compute.is_valid(pa.compute.field("debt")))),
    (age_weighted, False, table),
):
    timing = {}
    results = {}
    for narrow in (False, True):
        job = DaskRetrievalJob(evaluation_function=None, full_feature_names=ffn, repo_path=".",
                               on_demand_feature_views=[odfv])
        job._to_arrow_internal = lambda timeout=None, base=base: base
        if narrow:
            narrow_on_demand_views(job, views)
            assert isinstance(job.on_demand_feature_views[0], NarrowedView)
        started = time.perf_counter()
        results[narrow] = job.to_arrow()
        timing[narrow] = time.perf_counter() - started
    new = [c for c in results[False].column_names if c not in base.column_names]
    out[f"{odfv.name} full_names={ffn}"] = {
        "equal": results[True].equals(results[False]),
        "new_columns": new,
        "non_null": results[True].column(new[0]).null_count < base.num_rows if new else False,
        "seconds_whole_table": round(timing[False], 3),
        "seconds_narrowed": round(timing[True], 3),
    }
print(json.dumps(out))
'''


def test_feasts_values_on_the_columns_a_view_reads_equal_those_on_the_whole_table(tmp_path):
    python = os.environ.get("FEATCTL_TEST_FEAST_PYTHON") or str(ROOT / ".venv-feast" / "bin" / "python")
    if not Path(python).exists():
        pytest.skip("no .venv-feast (scripts/bootstrap --dev builds it)")
    from tests.userrepos import write_credit

    agent = tmp_path / "agent"
    shutil.copytree(ROOT / "src" / "featctl" / "agent", agent / "featctl_agent",
                    ignore=shutil.ignore_patterns("__pycache__"))
    credit = write_credit(tmp_path)
    script = tmp_path / "check.py"  # a file: Feast keeps each function's source text
    script.write_text(HOST_SCRIPT)
    proc = subprocess.run(
        [python, str(script), str(agent), str(ROOT / "feature_repo" / "features.py"), str(credit / "definitions.py")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    sys.stderr.write(json.dumps(result, indent=1) + "\n")
    assert len(result) == 4
    for name, case in result.items():
        assert case["equal"], name
        assert case["new_columns"] and case["non_null"], name
    assert result["driver_activity_rates_linear_combination_fv full_names=True"]["new_columns"] == [
        "driver_activity_rates_linear_combination_fv__linear_combination"
    ]
