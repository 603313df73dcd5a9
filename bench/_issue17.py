"""Issue #17's before/after table for RESULTS.md (standard library only).

"before" is bench/baseline/<item>*.json: the same items run on main before the #17 work
(kept in git: bench/run overwrites bench/results/ only; a supplementary run such as
<item>-1M.json overrides the rows it measured again); "after" is bench/results/<item>.json.
Rows are matched by their ``key``; bench/baseline/limits.json says what limits each figure.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
BASELINE = BENCH / "baseline"
ITEMS = ("issue17", "historical_stores")
#: (key, what) in the order of the issue's targets
TARGETS = [
    ("t1_file", "historical 20,000 rows vs a 1-row call, file store (reference data)"),
    ("t1_postgres", "historical 20,000 rows vs a 1-row call, PostgreSQL (reference data)"),
    ("wall_postgres_100k", "historical 100k entity rows, PostgreSQL vs file"),
    ("wall_postgres_1M", "historical 1M entity rows, PostgreSQL vs file"),
    ("rss_postgres_1M", "historical 1M entity rows, PostgreSQL: peak RSS on the host"),
    ("wall_file_1M", "historical 1M entity rows, file store"),
    ("prepare_postgres_1M", "deploy-time load of 10M source rows into PostgreSQL (agent load-postgres)"),
    ("wall_spark_100k", "historical 100k entity rows, Spark vs file"),
    ("wall_spark_1M", "historical 1M entity rows, Spark vs file"),
    ("t4", "no-op redeploy, Redis + PostgreSQL vs sqlite"),
    ("t5_file", "batch score 100k rows vs pandas, file store"),
    ("t5_postgres", "batch score 100k rows vs pandas, PostgreSQL"),
    ("mat_range", "`materialize --start/--end`, Redis + PostgreSQL vs sqlite"),
]


def _rows(path: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}, {}
    return {r["key"]: r for r in doc.get("rows") or [] if r.get("key")}, doc


def _cell(r: dict[str, Any] | None) -> str:
    if not r:
        return "not measured"
    v = r.get("value")
    text = f"{v:g} {r.get('unit', '')}".strip() if isinstance(v, (int, float)) else str(v)[:80]
    if isinstance(r.get("ratio"), (int, float)):
        text += f" ({r['ratio']:.3g}x)"
    if r.get("met") is not None:
        text += " met" if r["met"] else " **not met**"
    return text.replace("|", "\\|")


def summary() -> str:
    before: dict[str, dict[str, Any]] = {}
    after: dict[str, dict[str, Any]] = {}
    runs = []
    for item in ITEMS:
        # a supplementary run (baseline/<item>-<what>.json) overrides the rows it measured again
        files = sorted(BASELINE.glob(f"{item}*.json"), key=lambda p: (p.stem != item, p.name))
        docs = [("before", *_rows(p)) for p in files]
        docs.append(("after", *_rows(BENCH / "results" / f"{item}.json")))
        for tag, rows, doc in docs:
            (before if tag == "before" else after).update(rows)
            if doc:
                load = " ".join((doc.get("machine") or {}).get("loadavg_at_start") or [])
                runs.append(f"{item} {tag}: {doc.get('date')}, {doc.get('seconds')} s, load at the end {load}"
                            + (f", {doc['commit']}" if doc.get("commit") else ""))
    if not before and not after:
        return ""
    try:
        limits = json.loads((BASELINE / "limits.json").read_text())
    except (OSError, ValueError):
        limits = {}
    out = ["## Issue #17: before and after", "",
           "Each figure is a median of the run named below (value, ratio to its baseline in the same run, target). "
           "Before = main before the #17 work, after = the branch with it; both with `bench/issue17.py` and "
           "`bench/historical_stores.py` (sections below for the after run's details).", "",
           "| target | before | after | target | what limits it |", "|---|---|---|---|---|"]
    for key, what in TARGETS:
        b, a = before.get(key), after.get(key)
        if not (a or b):
            continue
        target = (a or b or {}).get("target") or ""
        out.append(f"| {what} | {_cell(b)} | {_cell(a)} | {target} | {limits.get(key, '')} |")
    out += ["", "Runs: " + "; ".join(runs) + ".", ""]
    return "\n".join(out)
