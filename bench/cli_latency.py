#!/usr/bin/env python3
"""Item 2: CLI latency of `featctl score` and `featctl --help`.

`featctl score --weights conv_rate=0.7,acc_rate=0.3 --driver 1001 --driver 1002`
end to end against a running local deployment, in three ways:

* through the workspace's tunnel process (the normal path once one query ran),
* with FEATCTL_NO_TUNNEL=1 (a fresh SSH connection, paramiko imported),

compared with `python -c "import feast"` in the pinned Feast environment (what
any script using the Feast SDK pays before its first query).

    bench/cli_latency.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import FEAST_PY, FEATCTL, TMP, log, median, percentile, row, timed_run, write_result
from _deploy import LEAKS, deployment

SCORE = ["score", "--weights", "conv_rate=0.7,acc_rate=0.3", "--driver", "1001", "--driver", "1002", "-o", "json"]


def wall(cmd: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> float:
    return timed_run(cmd, cwd=cwd, env=env, timeout=120, check=True, rss=False)["wall_s"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 5 if args.quick else 21
    started = time.monotonic()
    env = {**os.environ}
    direct_env = {**env, "FEATCTL_NO_TUNNEL": "1"}
    with deployment(TMP / "cli_latency") as dep:
        cwd = dep.workdir
        wall([str(FEATCTL), *SCORE], cwd=cwd, env=env)  # starts the tunnel process
        time.sleep(2)
        tunnel, direct, helps = [], [], []
        for _ in range(n):  # interleaved, so machine noise hits all alike
            tunnel.append(wall([str(FEATCTL), *SCORE], cwd=cwd, env=env))
            direct.append(wall([str(FEATCTL), *SCORE], cwd=cwd, env=direct_env))
            helps.append(wall([str(FEATCTL), "--help"], cwd=cwd, env=env))
        feast = [wall([str(FEAST_PY), "-c", "import feast"], cwd=cwd) for _ in range(3 if args.quick else 5)]
    fm = median(feast)
    rows = [
        row("featctl score (tunnel) median", round(median(tunnel), 3), "s", baseline=f"import feast {fm:.2f} s",
            ratio=round(median(tunnel) / fm, 3), target="< 0.5 s", met=median(tunnel) < 0.5),
        row("featctl score (tunnel) p99", round(percentile(tunnel, 99), 3), "s"),
        row("featctl score (direct SSH, FEATCTL_NO_TUNNEL=1) median", round(median(direct), 3), "s",
            baseline=f"import feast {fm:.2f} s", ratio=round(median(direct) / fm, 3), target="< 0.5 s",
            met=median(direct) < 0.5),
        row("featctl --help median", round(median(helps), 3), "s", target="< 0.3 s", met=median(helps) < 0.3),
        row("python -c 'import feast' median", round(fm, 2), "s"),
    ]
    notes = [
        f"{n} interleaved runs of each featctl command (after one warm-up query that starts the tunnel); "
        f"{len(feast)} runs of import feast.",
        "The tunnel process keeps one SSH connection per workspace behind a 0600 Unix socket; queries then "
        "import neither paramiko nor Feast and skip the SSH handshake.",
        "Both featctl paths import Typer (which imports pydantic, ~0.1-0.2 s here) and start Python (~0.02 s).",
        *LEAKS,
    ]
    limits = []
    if median(tunnel) >= 0.5:
        limits.append("what limits it: Python + Typer/pydantic import dominate; the HTTP round trip is ~5 ms")
    write_result("cli_latency", "CLI latency: featctl score and --help", rows, notes, order=20, limits=limits,
                 quick=args.quick, started=started,
                 extra={"tunnel": tunnel, "direct": direct, "help": helps, "import_feast": feast})
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
