#!/usr/bin/env python3
"""Item 4: deploy times on the local target.

* cold deploy: `featctl deploy` in a fresh workspace (host environment built
  with uv; uv's download cache as this machine has it, reported below);
* the same Feast environment installed with uv vs with pip, into empty
  directories (both with their caches as found: the comparison a user makes);
* redeploy with nothing changed (target < 3 s);
* redeploy after one feature definition changed: what was uploaded, applied and
  reloaded, and how long it took.

    bench/deploy_times.py [--quick]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import FEATCTL, ROOT, TMP, log, median, row, run, timed_run, write_result
from _deploy import LEAKS, copy_repo

REQS = ROOT / "src" / "featctl" / "agent" / "requirements.txt"
UV = ROOT / ".venv" / "bin" / "uv"


def timed(cmd: list[str], cwd: Path, timeout: float = 1800) -> tuple[float, str]:
    t = timed_run(cmd, cwd=cwd, timeout=timeout, check=True, rss=False)
    return t["wall_s"], t["stderr"]


def install_times(work: Path) -> tuple[float, float]:
    uv_env, pip_env = work / "uv-env", work / "pip-env"
    for d in (uv_env, pip_env):
        shutil.rmtree(d, ignore_errors=True)
    env_vars = {"UV_SYSTEM_CERTS": "1"}
    t0 = time.perf_counter()
    run([UV, "venv", "--quiet", "--python", "python3", str(uv_env)])
    subprocess.run([str(UV), "pip", "install", "--quiet", "--python", str(uv_env / "bin" / "python"), "-r", str(REQS)],
                   check=True, capture_output=True, timeout=1800, env={**__import__("os").environ, **env_vars})
    uv_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    run(["python3", "-m", "venv", str(pip_env)])
    run([pip_env / "bin" / "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQS)], timeout=1800)
    pip_s = time.perf_counter() - t0
    for d in (uv_env, pip_env):
        shutil.rmtree(d, ignore_errors=True)
    return uv_s, pip_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    reps = 3 if args.quick else 7
    started = time.monotonic()
    work = TMP / "deploy_times"
    if (work / ".featctl" / "deployment.json").exists():
        run([FEATCTL, "destroy", "--yes"], cwd=work, check=False)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    copy_repo(work / "feature_repo")
    try:
        cold, _ = timed([FEATCTL, "deploy"], work)
        same = [timed([FEATCTL, "deploy"], work)[0] for _ in range(reps)]
        features = work / "feature_repo" / "features.py"
        one_change, details = [], []
        for i in range(2 if args.quick else 3):
            features.write_text(features.read_text() + f"\n# bench change {i}\n")
            took, err = timed([FEATCTL, "deploy"], work)
            one_change.append(took)
            m = re.search(r"uploaded (\d+) file", err)
            details.append(f"uploaded {m.group(1) if m else '?'} file(s), applied={'applied' in err}")
    finally:
        run([FEATCTL, "destroy", "--yes"], cwd=work, check=False)
    uv_s, pip_s = install_times(TMP / "install_compare")
    rows = [
        row("cold deploy to the local target (uv)", round(cold, 1), "s"),
        row("Feast environment install: uv", round(uv_s, 1), "s", baseline=f"pip {pip_s:.1f} s",
            ratio=round(pip_s / uv_s, 1)),
        row("redeploy, nothing changed, median", round(median(same), 2), "s", target="< 3 s", met=median(same) < 3),
        row("redeploy, nothing changed, max", round(max(same), 2), "s"),
        row("redeploy after one definition changed, median", round(median(one_change), 1), "s"),
        row("what the one-definition redeploy did", "; ".join(sorted(set(details)))),
    ]
    notes = [
        f"nothing-changed redeploys: {reps} runs (Terraform plan/apply with no changes, SSH, one host state read, "
        "a /health check); nothing uploaded, applied or restarted.",
        "One-definition redeploy: uploads the changed file into a new release (a copy of the serving one), runs "
        "feast apply there, starts its server beside the old one, materializes incrementally, switches, stops the old.",
        "Install comparison: the pinned agent/requirements.txt into an empty directory; both tools with their download "
        "caches as this machine has them (warm after earlier runs), so the ratio is the tools' own work.",
        *LEAKS,
    ]
    limits = []
    one = median(one_change)
    limits.append(f"what limits the one-definition redeploy ({one:.0f} s): feast apply and the new server's start "
                  "each import Feast (~10-15 s each here); blue/green means no query waits for them")
    write_result("deploy_times", "Deploy times", rows, notes, order=40, limits=limits, quick=args.quick,
                 started=started, extra={"same": same, "one_change": one_change, "cold": cold,
                                         "uv_s": uv_s, "pip_s": pip_s})
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
