"""Item 7's report: rows, notes and limits from what stores_scale.py measured, then the result file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

from _common import median, percentile, row, value_rows, write_result
from _data import FEATURES
from _deploy import LEAKS
from _stores_tput import CLIENTS, ms, throughput_report

NAME = "stores_scale"
ORDER = 70
VIEW = "driver_hourly_stats"
ODFV = "driver_activity_rates_linear_combination_fv"
SCORE_FEATURES = [
    "driver_quality_metrics:conv_rate",
    "driver_quality_metrics:acc_rate",
    f"{ODFV}:linear_combination",
]
# the same request body as bench/serve_latency.py
ENTITIES = {"driver_id": [1001, 1002], "conv_rate_coef": [0.7, 0.7], "acc_rate_coef": [0.3, 0.3]}
HIST_FEATURES = FEATURES
HOURS_BACK = 12  # source rows within the 12 h before generation: inside every view's TTL for the whole run
SEED = 20261127
WORK = Path(os.environ.get("FEATCTL_BENCH_STORES_TMP", "/tmp/featctl-bench-stores"))


def report(s: SimpleNamespace) -> int:
    rows, notes, findings, limits, extra, failures = s.rows, s.notes, s.findings, s.limits, s.extra, s.failures
    seq_res, mat, online_check, hist, cmp, order_seen = s.seq_res, s.mat, s.online_check, s.hist, s.cmp, s.order_seen
    drivers, entity_rows, deploy_s, gen, started, q = s.drivers, s.entity_rows, s.deploy_s, s.gen, s.started, s.q
    load_start, load_end, workers_per_host, n_blocks, block = s.load_start, s.load_end, s.workers_per_host, s.n_blocks, s.block
    n_req, secs, rounds, reps, hist_reps = s.n_req, s.secs, s.rounds, s.reps, s.hist_reps
    if seq_res.get("sqlite") and seq_res.get("redis"):
        sq, r_ = seq_res["sqlite"], seq_res["redis"]
        for pct in (50, 90, 99):
            a, b = percentile(sq, pct), percentile(r_, pct)
            rows.append(row(f"weighted score sequential p{pct}: Redis (host 0) vs sqlite", ms(b), "ms",
                            baseline=f"sqlite {ms(a)} ms", ratio=round(b / a, 3)))
    elif "sequential score" in failures:
        rows.append(row("weighted score sequential p50: Redis vs sqlite", "FAILED", "",
                        baseline=failures["sequential score"][:200]))

    throughput_report(s)

    if mat.get("sqlite") and mat.get("redis") and mat["sqlite"]["featctl"] and mat["redis"]["featctl"]:
        for how, label in (("featctl", "`featctl materialize --start --end --view` (CLI end to end)"),
                           ("server", "server POST /materialize")):
            if not (mat["sqlite"][how] and mat["redis"][how]):
                continue
            a, b = median(mat["sqlite"][how]), median(mat["redis"][how])
            rows.append(row(f"materialize {drivers:,} drivers, {label}: Redis vs sqlite", round(b, 2), "s",
                            baseline=f"sqlite {a:.2f} s", ratio=round(b / a, 3)))
            rows.append(row(f"materialize throughput, {label}: Redis vs sqlite", round(drivers / b), "drivers/s",
                            baseline=f"sqlite {drivers / a:.0f} drivers/s", ratio=round(a / b, 3)))
        extra["materialize"] = mat
        if mat["sqlite"]["server"] and mat["redis"]["server"]:
            over = {k: median(mat[k]["featctl"]) - median(mat[k]["server"]) for k in ("sqlite", "redis")}
            findings.append(
                f"`featctl materialize` beyond the server's POST /materialize (one CLI run against the median POST, "
                f"so about +-1 s of noise): sqlite {over['sqlite']:.1f} s, Redis deployment {over['redis']:.1f} s: "
                "SSH, the host lock and the host agent's `describe` (the registry read: a file, or the SQL registry's "
                "tables on PostgreSQL, neither importing Feast since #17; bench/issue17.py times it on each host). "
                "The POST /materialize rows compare the stores themselves.")
    if "materialize" in failures:
        rows.append(row("materialize Redis vs sqlite", "FAILED", "", baseline=failures["materialize"][:300]))
    if online_check:
        n = online_check["drivers_checked"]
        for name in ("sqlite", "redis (host 0)", "redis (host 1)"):
            o = online_check.get(name) or {}
            rows.append(row(f"online read-back after materialize: drivers PRESENT with the source values, {name}",
                            o.get("drivers_ok"), "drivers", baseline=f"{n:,} drivers read ({o.get('seconds')} s)",
                            target=f"= {n:,}", met=o.get("drivers_ok") == n))
    elif "online read-back" in failures:
        rows.append(row("online read-back after materialize", "FAILED", "", baseline=failures["online read-back"][:300]))

    for name, label in (("file", "file offline store (sqlite deployment)"),
                        ("postgres", "PostgreSQL offline store (stores deployment)")):
        h = hist.get(name) or {}
        if h.get("walls"):
            w = median(h["walls"])
            other = hist.get("file", {}).get("walls") if name == "postgres" else None
            rows.append(row(f"`featctl historical` {entity_rows:,} entity rows, {label}", round(w, 2), "s",
                            baseline=f"file {median(other):.2f} s" if other else None,
                            ratio=round(w / median(other), 3) if other else None))
        if h.get("errors"):
            rows.append(row(f"`featctl historical`, {label}", "FAILED", "", baseline=h["errors"][-1][-300:],
                            met=False))
    if cmp:
        rows += value_rows(cmp, "historical")
        extra["historical_compare"] = cmp
    if "historical compare" in failures:
        rows.append(row("historical compare", "FAILED", "", baseline=failures["historical compare"][:300]))
    extra["historical"] = hist
    hp, hf = hist.get("postgres") or {}, hist.get("file") or {}
    if hp.get("walls") and hf.get("walls"):
        wp, wf = median(hp["walls"]), median(hf["walls"])
        pg_cpu = [c for c in hp.get("postgres_cpu_s", []) if c is not None]
        pg = median(pg_cpu) if pg_cpu else None
        text = (f"`featctl historical` on the PostgreSQL offline store took {wp:.1f} s vs {wf:.1f} s on the file "
                f"store ({wp / wf:.2f}x) for {entity_rows:,} entity rows"
                + (f"; PostgreSQL itself used {pg:.0f} CPU s of that" if pg is not None else ""))
        if wp > 2 * wf and pg is not None and pg >= 0.5 * (wp - wf):
            text += (" (a backend busy nearly the whole time): the time goes to Feast 0.67's PostgreSQL point-in-time "
                     "join SQL (MULTIPLE_FEATURE_VIEW_POINT_IN_TIME_JOIN in feast/infra/offline_stores/contrib/"
                     "postgres_offline_store/postgres.py), run once per feature view (featctl's agent joins view by "
                     "view on the unique (driver_id, event_timestamp) rows)"
                     + ("; at this size it dominates the item's run time." if wp > 0.3 * (time.monotonic() - started)
                        else "."))
        elif wp > 2 * wf:
            text += ": PostgreSQL used little of it, so the extra time is on the host side (Feast, the entity upload)."
        else:
            text += "."
        findings.append(text)
    rows.append(row("deploy with the data: stores (Redis + PostgreSQL, hosts=2) vs sqlite", round(deploy_s.get(
        "stores", float("nan")), 1), "s", baseline=f"sqlite {deploy_s.get('sqlite', float('nan')):.1f} s",
        ratio=round(deploy_s["stores"] / deploy_s["sqlite"], 3) if len(deploy_s) == 2 else None))

    # ------------------------------------------------------------------ notes
    notes += [
        f"Load average at start {load_start}, at the end {load_end} (2 cores; other work may share the machine).",
        f"Data (built once, both deployments get the same files): {gen['drivers']:,} drivers x 1 source row "
        f"({gen['first_ts']} .. {gen['last_ts']}, seed {SEED}, the schema of data/driver_stats.parquet, as "
        f"bench/materialize_throughput.py), {gen['entity_rows']:,} entity rows of which "
        f"{gen['repeated_entity_rows']:,} repeat an earlier (driver_id, event_timestamp) with other weights; "
        "entity times before a driver's row or past the views' TTLs give nulls.",
        f"Deployments: `featctl deploy` on the local target, `server_workers = {workers_per_host}` on every host in "
        "both (one worker ~ one core of its own per host; with featctl's default of 2, hosts=1 alone already "
        "occupies both cores of this machine). sqlite = the repository as shipped (sqlite online store, file "
        "registry, file offline store); stores = `stores = [\"redis\", \"postgres\"]`, `hosts = 2` (Redis online "
        "store, SQL registry and offline store on PostgreSQL; the parquet files loaded into tables at deploy). "
        "Deploy times include loading that data and the deploy's own full materialization of every view.",
        f"Score request (as bench/serve_latency.py): POST /get-online-features, entities {json.dumps(ENTITIES)}, "
        f"features {SCORE_FEATURES}; sent straight to 127.0.0.1:<server_port> of each feature server; the "
        f"values were {'identical' if extra.get('score_check', {}).get('identical') else 'NOT identical'} on "
        "all three servers.",
        f"Sequential: one keep-alive connection, {n_blocks} blocks of {block} requests per store (after a "
        f"warm-up), alternating sqlite/Redis in ABBA order; {n_req:,} requests per store pooled. Redis = host 0 "
        "of the stores deployment.",
        f"8 clients: {CLIENTS} threads in the harness, each a closed loop of keep-alive requests "
        f"(bench/_load.sequential) for {secs:g} s per arm, {rounds} interleaved round(s) (arm order reversed every "
        "other round); median round's req/s, latencies pooled. hosts=1 is measured as all 8 clients on host 0 of "
        "the same hosts=2 deployment (same stores, same data, host 1 idle); hosts=2 puts clients 0,2,4,6 on host "
        "0 and 1,3,5,7 on host 1 (their ports from deployment.json). CPU: utime+stime from /proc/<pid>/stat of each "
        "host's feature-server tree (processes whose command line names the host's remote_base_dir and its "
        "--port, plus children: gunicorn master and workers), of redis-server / postgres (found by their "
        "listening ports), of the harness process, and /proc/stat for the machine, before and after each arm.",
        f"Materialize: `featctl materialize --start 1970-01-01T00:00:00Z --end <now> --view {VIEW}` (CLI: SSH, "
        "host lock, registry describe, then the host-0 feature server's POST /materialize) once per store, and "
        f"that POST alone {reps} time(s) per store, interleaved, medians; {drivers:,} drivers x 3 features. The deploy had already "
        "materialized every view, so every run overwrites existing rows/keys in both stores (the same work for "
        "both).",
        f"Historical: `featctl historical --entities entities.parquet --features {','.join(HIST_FEATURES)} --out "
        f"O.parquet` in each workspace, {hist_reps} run(s) per store interleaved (median wall, CLI end to end: upload, "
        "host agent with Feast, download); results compared after sorting both by driver_id, event_timestamp, "
        "conv_rate_coef, acc_rate_coef (values as float64; null = null).",
    ]
    asked = ["driver_id", *(f.split(":", 1)[1] for f in SCORE_FEATURES)]
    if order_seen and any(v != asked for v in order_seen.values()):
        notes.append(f"Surprise: for the same request (features asked in the order {asked[1:]}) the feature servers "
                     "return the features in this order: " + "; ".join(f"{k}: {v}" for k, v in order_seen.items())
                     + " (the order changes from one server process to the next). Values match by name; a client "
                     "that reads the results by position would mix up conv_rate and acc_rate.")
    if cmp:
        notes.append("Historical nulls per column (result / reference): " + "; ".join(
            f"{k.split(' vs ')[0]}: " + ", ".join(f"{c} {v['nulls'][0]}/{v['nulls'][1]}" for c, v in d["columns"].items()
                                                 if isinstance(v, dict))
            for k, d in cmp.items() if k.endswith(" vs reference") and d.get("columns")) + ".")
    if online_check:
        notes.append(f"Online read-back: {online_check['drivers_checked']:,} drivers (random, seeded; "
                     "--online-check 0 reads all) requested from each server in chunks of 5,000 (driver_hourly_stats: conv_rate, acc_rate, avg_daily_trips) and compared "
                     "with the source row; statuses: " + "; ".join(
                         f"{k} {v.get('statuses')}" for k, v in online_check.items() if isinstance(v, dict)) + ".")
    if "throughput" in extra:
        tp = extra["throughput"]
        notes.append("8-client rounds (req/s): " + "; ".join(f"{k} {v['rps_rounds']}" for k, v in tp.items()) + ".")
    notes += findings
    for k, v in failures.items():
        notes.append(f"FAILED: {k}: {v}")
    notes += [f"Cleanup problem: {x}" for x in LEAKS]
    write_result(NAME, "Item 7 - shared stores (Redis + PostgreSQL) and two hosts vs sqlite/files on one host",
                 rows, notes, order=ORDER, limits=limits, extra=extra, quick=q, started=started)
    return 0

