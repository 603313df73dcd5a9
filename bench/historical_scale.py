#!/usr/bin/env python3
"""Item 5: historical retrieval at scale, per offline store featctl can configure.

Generates (seeded) 1,000,000 source rows over 100,000 drivers (10 hourly rows each,
same schema as data/driver_stats.parquet) and 100,000 entity rows of which 15,000
repeat an earlier (driver_id, event_timestamp) with other weights. Then, on temp
copies of feature_repo applied with the pinned Feast env (.venv-feast):

* featctl's host agent (`featctl_agent historical`) on the `file` offline store
* the same on `offline_store: type: duckdb`
* plain Feast `get_historical_features` on the file store (row count)

each in a fresh process under /usr/bin/time -v (wall time, max RSS). Values of
both stores are compared with each other and with an independent pandas
merge_asof reference.

    bench/historical_scale.py [--quick]

The harness runs with .venv's python; data, reference and comparison run
bench/_data.py, the plain-Feast steps this same file, with .venv-feast's python
(``--worker ...``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _data import FEATURES, VALUE_COLS, reference  # noqa: E402

ROWS_PER_DRIVER = 10
SEED = 20261126


# =========================================================================== workers (.venv-feast python)


def worker_plain(repo: str, entities: str, chdir: bool = False) -> dict[str, Any]:
    """Plain Feast get_historical_features (what featctl must not do): rows in vs rows out."""
    import os
    import warnings

    if chdir:  # the duckdb store resolves FileSource paths against the cwd, not the repo
        os.chdir(repo)

    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    import pandas as pd
    from feast import FeatureStore

    t_import = time.perf_counter() - t0
    ents = pd.read_parquet(entities)
    ents["__row"] = range(len(ents))  # extra entity columns pass through: lets us check the values
    store = FeatureStore(repo_path=repo)
    t1 = time.perf_counter()
    df = store.get_historical_features(entity_df=ents, features=FEATURES).to_df()
    t_ret = time.perf_counter() - t1
    doc = {"rows_in": len(ents), "rows_out": len(df), "import_s": t_import, "retrieval_s": t_ret,
           "unique_keys_in": int(len(ents) - ents.duplicated(subset=["driver_id", "event_timestamp"]).sum())}
    # are the rows it does return right? (against the merge_asof reference, by input row)
    import numpy as np

    ents_ref = pd.read_parquet(entities)
    ref = reference(str(Path(entities).parent / "driver_stats.parquet"), ents_ref)
    ref["__row"] = range(len(ref))
    ref = ref.set_index("__row")
    got = df.set_index("__row")
    doc["rows_out_distinct_input_rows"] = int(got.index.nunique())
    ref = ref.loc[got.index]
    bad = 0
    for c in VALUE_COLS:
        x, y = got[c].astype("float64").to_numpy(), ref[c].astype("float64").to_numpy()
        bad += int((~(np.isclose(x, y, rtol=1e-6, atol=1e-9) | (np.isnan(x) & np.isnan(y)))).sum())
    doc["mismatched_cells_vs_reference"] = bad
    return doc


def worker_import() -> dict[str, Any]:
    t0 = time.perf_counter()
    import feast  # noqa: F401

    return {"import_feast_s": time.perf_counter() - t0}


def worker_main(argv: list[str]) -> int:
    kind = argv[0]
    if kind == "plain":
        doc = worker_plain(argv[1], argv[2], len(argv) > 3 and argv[3] == "chdir")
    elif kind == "import":
        doc = worker_import()
    else:
        raise SystemExit(f"unknown worker {kind}")
    print("RESULT " + json.dumps(doc, default=str))
    return 0


# =========================================================================== harness (.venv python)


def _worker(args: list[str], timeout: float = 900, python: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    from _common import FEAST_PY, worker

    return worker(__file__, args, timeout=timeout, python=python or FEAST_PY)


def _traceback_summary(stderr: str, lines: int = 12) -> str:
    text = stderr.strip().splitlines()
    start = max((i for i, ln in enumerate(text) if ln.startswith("Traceback")), default=max(0, len(text) - lines))
    tb = text[start:]
    frames = [ln.strip() for ln in tb if ln.strip().startswith("File ")]
    last = tb[-1] if tb else ""
    return " | ".join(frames[-4:] + [last])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker_main(sys.argv[2:])

    from _common import (
        FEAST_PY,
        TMP,
        agent_command,
        data_worker,
        log,
        median,
        row,
        timed_run,
        value_rows,
        write_result,
    )
    from _deploy import copy_repo, feast_apply
    from _stack import feast_env

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke size: 10,000 drivers, 10,000 entity rows")
    ap.add_argument("--drivers", type=int, default=None)
    ap.add_argument("--entity-rows", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None, help="agent runs per store (median; default 2, quick 1)")
    args = ap.parse_args()
    drivers = args.drivers or (10_000 if args.quick else 100_000)
    entity_rows = args.entity_rows or (10_000 if args.quick else 100_000)
    args.repeats = args.repeats or (1 if args.quick else 2)
    started = time.monotonic()

    work = TMP / "historical"
    shutil.rmtree(work, ignore_errors=True)
    data = work / "data"
    log(f"generating {drivers * ROWS_PER_DRIVER:,} source rows / {entity_rows:,} entity rows")
    gen, _ = data_worker(["generate", data, drivers, ROWS_PER_DRIVER, entity_rows, SEED])
    log(f"data: {gen}")

    # the duckdb store runs in a Feast environment with the duckdb extra (as a host would get it)
    notes: list[str] = []
    pys = {"file": FEAST_PY}
    try:
        pys["duckdb"] = feast_env(("duckdb",))
    except Exception as exc:  # noqa: BLE001
        notes.append(f"could not build a Feast environment with feast[duckdb]: {str(exc)[-300:]}")
    duck_ok = "duckdb" in pys

    repos: dict[str, Path] = {}
    apply_s: dict[str, float] = {}
    for store in ("file", "duckdb"):
        if store == "duckdb" and not duck_ok:
            continue
        repo = copy_repo(work / f"repo-{store}")
        for f in ("driver_stats.parquet", "driver_stats_with_productivity.parquet"):
            shutil.copy(data / f, repo / "data" / f)
        if store == "duckdb":
            y = (repo / "feature_store.yaml").read_text()
            y2 = y.replace("offline_store:\n    type: file", "offline_store:\n    type: duckdb")
            if y2 == y:
                raise RuntimeError("feature_store.yaml: could not switch the offline store to duckdb")
            (repo / "feature_store.yaml").write_text(y2)
        apply_s[store] = feast_apply(repo, python=pys[store])
        repos[store] = repo

    imp = [(_worker(["import"])[0]["import_feast_s"]) for _ in range(2)]
    import_s = median(imp)

    agent: dict[str, dict[str, Any]] = {}
    outputs: dict[str, str] = {}
    for rep in range(args.repeats):
        for store, repo in repos.items():
            out = work / f"out-{store}.parquet"
            log(f"agent historical on the {store} store (run {rep + 1})")
            argv, agent_env = agent_command(pys[store])
            t = timed_run([*argv, "historical", "--repo", repo, "--entities", data / "entities.parquet",
                           "--features", ",".join(FEATURES), "--out", out], timeout=1200, env=agent_env)
            a = agent.setdefault(store, {"walls": [], "rss": [], "rc": t["rc"]})
            a["rc"] = t["rc"]
            try:
                doc = json.loads(t["stdout"].strip().splitlines()[-1])
            except Exception:  # noqa: BLE001
                doc = {"error": "no JSON on stdout"}
            a["doc"] = doc
            if t["rc"] == 0:
                a["walls"].append(t["wall_s"])
                a["rss"].append(t["max_rss_mib"])
                outputs[store] = str(out)
            else:
                a["error"] = doc.get("error")
                a["traceback"] = _traceback_summary(t["stderr"])
                log(f"agent failed on {store}: {a['error']}")

    log("plain Feast get_historical_features on the file store")
    plain, plain_t = _worker(["plain", str(repos["file"]), str(data / "entities.parquet")], timeout=1200)
    plain_duck: dict[str, Any] = {}
    if "duckdb" in repos:
        log("plain Feast get_historical_features on the duckdb store (cwd = the repo)")
        try:
            plain_duck, _ = _worker(["plain", str(repos["duckdb"]), str(data / "entities.parquet"), "chdir"],
                                    timeout=1200, python=pys["duckdb"])
        except Exception as exc:  # noqa: BLE001
            plain_duck = {"error": str(exc)[-500:]}
        # the same from another working directory (FeatureStore(repo_path=...) as a library user would)
        elsewhere = work / "elsewhere"  # a working directory without a data/ folder
        elsewhere.mkdir(exist_ok=True)
        t = timed_run([pys["duckdb"], __file__, "--worker", "plain", repos["duckdb"], data / "entities.parquet"],
                      timeout=600, cwd=str(elsewhere))
        if t["rc"] != 0:
            err = [ln for ln in t["stderr"].strip().splitlines() if "Error" in ln or "error" in ln]
            notes.append("duckdb store and relative FileSource paths: FeatureStore(repo_path=REPO) run from another "
                         "working directory fails -- the duckdb (ibis) store reads `data/driver_stats.parquet` "
                         "relative to the process cwd, not the repo (the file store resolves it against the repo). "
                         f"Error: {(err[-1] if err else t['stderr'][-200:]).strip()[:300]}. featctl's agent and "
                         "`feast serve` run with cwd = the repo, so they are not affected.")
        else:
            notes.append("duckdb store from another working directory: worked.")

    cmp: dict[str, Any] = {}
    if outputs:
        cmp, _ = data_worker(["compare", data / "driver_stats.parquet", data / "entities.parquet",
                              json.dumps(outputs)])

    # ------------------------------------------------------------------ report
    rows = []
    notes.insert(0, f"Data: {gen['source_rows']:,} source rows = {gen['drivers']:,} drivers x {ROWS_PER_DRIVER} hourly "
                    f"rows ({gen['first_ts']} .. {gen['last_ts']}), seed {SEED}, same dtypes as "
                    "data/driver_stats.parquet (and the productivity file derived from it); "
                    f"{gen['entity_rows']:,} entity rows of which {gen['repeated_entity_rows']:,} repeat an earlier "
                    f"(driver_id, event_timestamp) with other weights ({gen['unique_entity_keys']:,} unique keys); "
                    "timestamps mostly inside the data, some before it or past both TTLs (nulls).")
    notes.append(f"Request: {', '.join(FEATURES)} (two feature-view joins plus the python-mode on-demand view).")
    notes.append(f"Each run is a fresh process: `.venv-feast/bin/python -m featctl_agent historical --repo R --entities "
                 f"E.parquet --features ... --out O.parquet` under /usr/bin/time -v; wall includes reading the "
                 f"entity file, `import feast` (median {import_s:.1f} s alone) and writing the parquet; "
                 f"{args.repeats} run(s) per store (median reported). `feast apply`: "
                 + ", ".join(f"{k} {v:.1f} s" for k, v in apply_s.items()) + ".")
    base_wall = None
    for store in ("file", "duckdb"):
        a = agent.get(store)
        if a is None:
            rows.append(row(f"agent historical, {store} store", "not run (duckdb not installable)", ""))
            continue
        if a["walls"]:
            w, r = median(a["walls"]), median(a["rss"])
            if store == "file":
                base_wall, base_rss = w, r
                rows.append(row("agent historical wall, file store", round(w, 2), "s",
                                baseline=f"{w - import_s:.2f} s beyond import feast"))
                rows.append(row("agent historical max RSS, file store", round(r), "MiB"))
            else:
                rows.append(row("agent historical wall, duckdb store", round(w, 2), "s",
                                baseline=(f"file {base_wall:.2f} s; {w - import_s:.2f} s beyond import feast"
                                          if base_wall else None),
                                ratio=round(w / base_wall, 3) if base_wall else None))
                rows.append(row("agent historical max RSS, duckdb store", round(r), "MiB",
                                baseline=f"file {base_rss:.0f} MiB" if base_wall else None,
                                ratio=round(r / base_rss, 3) if base_wall else None))
            rows.append(row(f"agent rows out, {store} store", a["doc"].get("rows"), "rows",
                            baseline=f"{gen['entity_rows']} entity rows", target="= entity rows",
                            met=a["doc"].get("rows") == gen["entity_rows"]))
        else:
            rows.append(row(f"agent historical, {store} store", "FAILED", "", baseline=a.get("error")))
            notes.append(f"{store} store: the agent's historical exited {a['rc']}: {a.get('error')}; traceback: "
                         f"{a.get('traceback')}")
    rows.append(row("plain Feast get_historical_features rows out, file store", plain["rows_out"], "rows",
                    baseline=f"{plain['rows_in']} entity rows", ratio=round(plain["rows_out"] / plain["rows_in"], 4),
                    target="(featctl must return all)", met=None))
    rows.append(row("plain Feast, file store: mismatched cells in the rows it returns (vs reference)",
                    plain.get("mismatched_cells_vs_reference"), "cells"))
    rows.append(row("plain Feast get_historical_features, file store: retrieval / process wall / max RSS",
                    f"{plain['retrieval_s']:.2f} s / {plain_t['wall_s']:.2f} s / {plain_t['max_rss_mib']:.0f} MiB",
                    ""))
    if plain_duck and "rows_out" in plain_duck:
        rows.append(row("plain Feast get_historical_features rows out, duckdb store", plain_duck["rows_out"], "rows",
                        baseline=f"{plain_duck['rows_in']} entity rows",
                        ratio=round(plain_duck["rows_out"] / plain_duck["rows_in"], 4)))
        rows.append(row("plain Feast get_historical_features, duckdb store: retrieval (beyond import)", round(
            plain_duck["retrieval_s"], 2), "s", baseline=f"file {plain['retrieval_s']:.2f} s",
            ratio=round(plain_duck["retrieval_s"] / plain["retrieval_s"], 3)))
        rows.append(row("plain Feast, duckdb store: mismatched cells vs reference",
                        plain_duck.get("mismatched_cells_vs_reference"), "cells",
                        baseline=f"{plain_duck.get('rows_out_distinct_input_rows')} distinct input rows returned"))
    elif plain_duck:
        notes.append(f"plain Feast on duckdb failed: {plain_duck.get('error', '')[-300:]}")
    if cmp:
        rows += value_rows(cmp, "agent historical")
    if cmp:
        notes.append(f"Compared columns driver_id, event_timestamp, weights and {', '.join(VALUE_COLS)} row by row "
                     f"(float tolerance 1e-6 relative; null = null). Reference: pandas merge_asof per view "
                     f"(backward, TTL 1 day / 2 days); its null counts: {cmp.get('reference_nulls')}.")
    plain_note = (f"Plain Feast returned {plain['rows_out']:,} rows for {plain['rows_in']:,} entity rows "
                  f"({plain['unique_keys_in']:,} unique (driver_id, event_timestamp) keys)")
    notes.append(plain_note + "; featctl's agent returns one row per entity row, in input order.")
    limits = []
    rec = None
    if "file" in agent and "duckdb" in agent and agent["file"]["walls"] and agent["duckdb"]["walls"]:
        wf, wd = median(agent["file"]["walls"]), median(agent["duckdb"]["walls"])
        rf, rd = median(agent["file"]["rss"]), median(agent["duckdb"]["rss"])
        identical = bool(cmp.get("file vs duckdb", {}).get("equal"))
        if identical and wd < 0.85 * wf:
            rec = (f"Recommendation: default offline store = duckdb: {wd:.1f} s vs {wf:.1f} s ({wd / wf:.2f}x) and "
                   f"{rd:.0f} vs {rf:.0f} MiB, identical values.")
        else:
            rec = (f"Recommendation: keep `file` as the default offline store. Wall times are within noise of each "
                   f"other (file {wf:.1f} s vs duckdb {wd:.1f} s, {wd / wf:.2f}x; across runs on this machine each "
                   f"store has come out ahead), duckdb saves some memory ({rd:.0f} vs {rf:.0f} MiB max RSS) but "
                   "needs 9 more host packages (feast[duckdb]: duckdb, ibis-framework, sqlglot, ...) and resolves "
                   "relative FileSource paths against the working directory (below); values are "
                   f"{'identical' if identical else 'NOT identical'}. Offer duckdb as an option.")
        notes.append(rec)
        if (plain_duck.get("rows_out") == plain_duck.get("rows_in")
                and plain_duck.get("mismatched_cells_vs_reference") == 0):
            notes.append(
                f"On duckdb, Feast's own get_historical_features already returns every entity row "
                f"({plain_duck['rows_out']:,}) with the reference values, in {plain_duck['retrieval_s']:.1f} s beyond "
                f"import, while the agent's per-view workaround (needed for the file store) takes about "
                f"{wd - import_s:.1f} s beyond import there: with duckdb the agent could call Feast directly.")
    elif "duckdb" in agent and not agent["duckdb"]["walls"]:
        notes.append("Recommendation: keep `file` as the default: the duckdb store does not work through the agent "
                     "(see the failure above).")
    write_result("historical_scale", "Item 5 - historical retrieval at scale (1M source rows, 100k entity rows)",
                 rows, notes, order=50, limits=limits,
                 extra={"data": gen, "agent": agent, "plain_file": plain, "plain_duckdb": plain_duck,
                        "compare": cmp, "apply_s": apply_s, "import_feast_s": imp},
                 quick=args.quick, started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
