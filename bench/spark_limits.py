#!/usr/bin/env python3
"""Issue #23 item 5: Spark at 1M entity rows / 10M source rows either completes or
fails within the bound, saying why.

The Spark arm of bench/historical_stores.py (SparkSource copies, Spark in local mode
on this machine's Java, featctl's host agent running `historical` as a host does,
with agent/watch.py sizing and watching the JVM), run twice on the same data:

* the default driver heap (half the host's memory): wall time, peak RSS of the
  agent's process tree, rows out, values against the pandas reference;
* `[spark] driver_memory = "1g"` (Spark's old default, where the JVM threw
  OutOfMemoryError and then sat idle until the bench killed it 900 s later): the
  time until the command ends, its one-line error, and whether any process of it
  is left.

    bench/spark_limits.py [--entities 1000000] [--arm-timeout 900]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import historical_stores as hs  # noqa: E402
from _common import TMP, data_worker, log, write_result  # noqa: E402

NAME = "spark_limits"


def _left(release: str) -> list[str]:
    out = subprocess.run(["ps", "-eww", "-o", "pid,args"], capture_output=True, text=True).stdout
    return [ln for ln in out.splitlines() if release in ln and "ps -eww" not in ln]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, default=1_000_000)
    ap.add_argument("--arm-timeout", type=float, default=900)
    args = ap.parse_args()
    started = time.monotonic()
    hs.CAP_MIB = 20 * hs.GIB  # the default heap is half of 24 GiB: the bench must not stop it first
    work = TMP / NAME
    n = args.entities
    log(f"generating {n * hs.ROWS_PER_DRIVER:,} source rows")
    data_worker(["generate", work / "data", n, hs.ROWS_PER_DRIVER, n, hs.SEED], timeout=3600)
    arm = hs.prepare_arm("spark", work / "spark", work / "data", None, args.arm_timeout)
    if "error" in arm:
        raise SystemExit(f"spark arm: {arm['error']}")
    settings = Path(arm["release"]) / "_featctl" / "spark.json"
    runs: dict[str, dict[str, Any]] = {}
    for label, memory in (("default", None), ("1g", "1g")):
        settings.write_text(json.dumps({"driver_memory": memory}) + "\n")
        log(f"historical on spark, driver memory {memory or 'default'}")
        res = hs.historical(arm, work / "data" / "entities.parquet", work / f"out-{label}.parquet", args.arm_timeout,
                            None)  # fmt: skip
        time.sleep(2)
        res["left_running"] = len(_left(arm["release"]))
        if res.get("rows"):
            res["compare"], _ = data_worker(["compare", work / "data" / "driver_stats.parquet",
                                             work / "data" / "entities.parquet", json.dumps({"spark": res["out"]})],
                                            timeout=3600)  # fmt: skip
        log(f"  {res}")
        runs[label] = res
    ok, oom = runs["default"], runs["1g"]
    mism = (ok.get("compare") or {}).get("spark vs reference", {}).get("mismatched_cells")
    rows = [
        {"metric": f"historical {n:,} entity rows, spark, default driver heap: wall", "value": ok["wall_s"],
         "unit": "s", "baseline": "before: OutOfMemoryError at 1 GiB, stopped after 900 s", "ratio": None,
         "target": "completes", "met": bool(ok.get("rows"))},
        {"metric": f"historical {n:,} entity rows, spark, default driver heap: peak RSS",
         "value": round(ok["peak_mib"] / hs.GIB, 2), "unit": "GiB", "baseline": None, "ratio": None, "target": None,
         "met": None},
        {"metric": f"historical {n:,} entity rows, spark vs reference: mismatched cells", "value": mism,
         "unit": "cells", "baseline": None, "ratio": None, "target": "0", "met": mism == 0},
        {"metric": f"historical {n:,} entity rows, spark, driver_memory 1g: time until the command ended",
         "value": oom["wall_s"], "unit": "s", "baseline": "before: never (stopped by the bench after 900 s)",
         "ratio": None, "target": "one line naming out of memory, within the bound", "met": bool(
             not oom.get("rows") and "ran out of memory" in str(oom.get("agent_error")) and oom["wall_s"] < args.arm_timeout)},
        {"metric": "processes of the failed command left running", "value": oom["left_running"], "unit": "processes",
         "baseline": None, "ratio": None, "target": "0", "met": oom["left_running"] == 0},
    ]  # fmt: skip
    notes = [
        f"The 1g run's one line (the agent's JSON error): {oom.get('agent_error')}; its JVM printed: {oom.get('error')}",
        "Peak RSS: the agent's process tree (its JVM is a child) summed every 0.5 s from /proc; a JVM grows its heap "
        "towards -Xmx before collecting, so the default heap's peak is near half the host's memory.",
        f"Load during the runs: {ok.get('load')} / {oom.get('load')}.",
    ]
    write_result(NAME, "Issue #23 item 5 - Spark at 1M entity rows completes, or fails within the bound",
                 rows, notes, order=45, extra={"runs": runs}, started=started)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
