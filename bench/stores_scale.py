#!/usr/bin/env python3
"""Item 7: shared stores and two hosts vs files on one host, side by side in one run.

One dataset (bench/_data.py, seeded: N drivers with one source row
each, same schema as data/driver_stats.parquet; plus entity rows for historical
retrieval, some repeating an earlier (driver_id, event_timestamp) with other
weights) is deployed twice with featctl on the local target, both with the same
`server_workers` per host:

* sqlite  -- `featctl deploy` as shipped: sqlite online store, file registry, file
  offline store (parquet), one host;
* stores  -- `stores = ["redis", "postgres"]`, `hosts = 2`: Redis online store, SQL
  registry and offline store on PostgreSQL (the parquet files loaded into tables),
  two sshd "hosts" each running a feature server.

Then, with both deployments up:

1. weighted score (POST /get-online-features with the on-demand view) sequential
   p50/p90/p99, sqlite vs Redis (host 0), in alternating blocks (ABBA);
2. 8 client threads for a fixed time: all on host 0 ("hosts = 1") vs spread over
   both hosts ("hosts = 2") of the stores deployment (plus the sqlite deployment as
   a reference), interleaved rounds; req/s, p50/p99, and CPU seconds per 1,000
   requests of each host's feature server process tree (utime+stime from /proc),
   Redis, the load generator and the whole machine;
3. `featctl materialize --start --end --view driver_hourly_stats` of all drivers
   (and the server's POST /materialize) into sqlite vs Redis, interleaved; then
   every driver read back online from both stores and checked against the source;
4. `featctl historical --entities E.parquet --features ... --out O.parquet` on the
   file vs the PostgreSQL offline store: wall, row counts, and the two results
   compared value by value (and with a pandas merge_asof reference).

Both deployments are destroyed with `featctl destroy --yes` at the end, also on failure.

    bench/stores_scale.py [--quick] [--server-workers N]

The harness runs with .venv's python; data generation and comparisons run
bench/_data.py with .venv-feast's python. The 8-client rounds and their analysis are in
_stores_tput.py, the report in _stores_report.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import FEATCTL, data_worker, http_post_json, log, percentile, timed_run
from _deploy import LEAKS, deployment, processes_under
from _load import build_request, request_once, sequential
from _procstat import ancestors, cmdline, listening_pids, loadavg, server_pids, starttime, tree_cpu, with_descendants
from _stores_report import ENTITIES, HIST_FEATURES, HOURS_BACK, SCORE_FEATURES, SEED, VIEW, WORK, report
from _stores_tput import run_clients

# =========================================================================== main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke size: 200 requests, 10,000 drivers and entity rows")
    ap.add_argument("--requests", type=int, default=None, help="sequential score requests per store (default 2000)")
    ap.add_argument("--drivers", type=int, default=None)
    ap.add_argument("--entity-rows", type=int, default=None)
    ap.add_argument("--seconds", type=float, default=None, help="8-client run per arm per round (default 10)")
    ap.add_argument("--rounds", type=int, default=None, help="8-client rounds (default 3)")
    ap.add_argument("--repeats", type=int, default=None, help="materialize runs per store (default 2)")
    ap.add_argument("--hist-repeats", type=int, default=1, help="historical runs per store (default 1)")
    ap.add_argument("--server-workers", type=int, default=1,
                    help="server_workers per host in both deployments (default 1: one worker ~ one core per host)")
    ap.add_argument("--online-check", type=int, default=25_000,
                    help="drivers read back from every server after materializing (0 = all; default 25,000)")
    args = ap.parse_args()
    q = args.quick
    n_req = args.requests or (200 if q else 2000)
    drivers = args.drivers or (10_000 if q else 100_000)
    entity_rows = args.entity_rows or (10_000 if q else 100_000)
    secs = args.seconds or (3.0 if q else 10.0)
    rounds = args.rounds or (1 if q else 3)
    reps = args.repeats or (1 if q else 2)
    hist_reps = max(1, args.hist_repeats)
    block = 100 if q else 250
    n_blocks = max(1, n_req // block)
    n_req = n_blocks * block
    workers_per_host = args.server_workers
    started = time.monotonic()
    load_start = loadavg()
    log(f"load average at start: {load_start}")

    # ------------------------------------------------------------------ data, once
    shutil.rmtree(WORK / "data", ignore_errors=True)
    data = WORK / "data"
    log(f"generating {drivers:,} drivers / {entity_rows:,} entity rows")
    gen, _ = data_worker(["generate", data, drivers, 1, entity_rows, SEED, HOURS_BACK], rss=False)
    log(f"data: {gen}")

    def edit(toml: str):
        def _edit(repo: Path) -> None:
            for f in ("driver_stats.parquet", "driver_stats_with_productivity.parquet"):
                shutil.copy(data / f, repo / "data" / f)
            (repo.parent / "featctl.toml").write_text(toml)
        return _edit

    toml_sqlite = f"server_workers = {workers_per_host}\n"
    toml_stores = f'stores = ["redis", "postgres"]\nhosts = 2\nserver_workers = {workers_per_host}\n'

    failures: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    findings: list[str] = []  # notes on what the numbers show, after the notes on the method
    limits: list[str] = []
    extra: dict[str, Any] = {"data": gen}
    deploy_s: dict[str, float] = {}
    store_pids: dict[str, set[int]] = {}
    store_ident: dict[str, list[tuple[int, int | None, str]]] = {}
    seq_res: dict[str, list[float]] = {}
    tput: dict[str, dict[str, Any]] = {}
    mat: dict[str, dict[str, list[float]]] = {}
    online_check: dict[str, Any] = {}
    hist: dict[str, dict[str, Any]] = {}
    cmp: dict[str, Any] = {}
    order_seen: dict[str, list[str]] = {}

    with contextlib.ExitStack() as stack:
        t0 = time.perf_counter()
        dsq = stack.enter_context(deployment(WORK / "sqlite", edit_repo=edit(toml_sqlite), timeout=1200))
        deploy_s["sqlite"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        dst = stack.enter_context(deployment(WORK / "stores", edit_repo=edit(toml_stores), timeout=1500))
        deploy_s["stores"] = time.perf_counter() - t0
        rec = dst.record
        hosts = rec.get("hosts") or []
        if len(hosts) != 2:
            raise RuntimeError(f"stores deployment has {len(hosts)} host(s) in deployment.json, expected 2")
        h_ports = [int(rec["server_port"]), int(hosts[1]["server_port"])]
        h_bases = [str(rec["remote_base_dir"]), str(hosts[1]["remote_base_dir"])]
        sq_port, sq_base = int(dsq.record["server_port"]), str(dsq.record["remote_base_dir"])
        stores = rec.get("stores") or {}
        redis_port = int(stores["redis"]["port"])
        pg_port = int(stores["postgres"]["port"])
        store_pids = {"redis": with_descendants(listening_pids(redis_port)),
                      "postgres": with_descendants(listening_pids(pg_port))}
        # (pid, start time, command line) of the stores' processes: to tell after destroy whether one of THEM
        # survived (a pid alone may meanwhile belong to an unrelated process)
        store_ident = {k: [(p, starttime(p), cmdline(p)) for p in sorted(v)] for k, v in store_pids.items()}
        ports = {"sqlite": sq_port, "host0": h_ports[0], "host1": h_ports[1]}
        groups = {"sqlite": (sq_base, sq_port), "host0": (h_bases[0], h_ports[0]), "host1": (h_bases[1], h_ports[1])}
        extra["deployment"] = {"ports": ports, "bases": {k: v[0] for k, v in groups.items()}, "stores": stores,
                               "server_pids": {k: sorted(server_pids(*v)) for k, v in groups.items()},
                               "store_pids": {k: sorted(v) for k, v in store_pids.items()}}
        log(f"ports {ports}; redis {redis_port} pids {store_pids['redis']}; postgres {pg_port}")
        for k, (b, p) in groups.items():
            log(f"  {k}: server tree {sorted(server_pids(b, p))}")

        score_req = {p: build_request(p, "/get-online-features", {"features": SCORE_FEATURES, "entities": ENTITIES})
                     for p in ports.values()}

        # correctness of the score on every server (values by name) and the order of the names returned
        scores: dict[str, dict[str, Any]] = {}
        for k, p in ports.items():
            st, body = request_once(p, score_req[p])
            if st != 200:
                raise RuntimeError(f"{k} score request: HTTP {st}: {body[:300]!r}")
            doc = json.loads(body)
            names = doc["metadata"]["feature_names"]
            order_seen[k] = names
            scores[k] = {n: r["values"] for n, r in zip(names, doc["results"])}
        ref = scores["sqlite"]
        score_same = all(
            all(abs(a - b) < 1e-12 for a, b in zip(ref[f], scores[k][f]))
            for k in scores for f in ("conv_rate", "acc_rate", "linear_combination"))
        extra["score_check"] = {"values": scores, "feature_names_order": order_seen, "identical": score_same}
        log(f"score identical on all servers: {score_same}; name order: {order_seen}")

        # warm-up: every server, one connection each
        for p in ports.values():
            sequential(p, score_req[p], 200 if not q else 50, warmup=0)

        # ------------------------------------------------------------ 1. sequential score latency
        try:
            arms = {"sqlite": ports["sqlite"], "redis": ports["host0"]}
            seq_res = {"sqlite": [], "redis": []}
            seq_err = {"sqlite": 0, "redis": 0}
            for b in range(n_blocks):
                order = ("sqlite", "redis") if b % 2 == 0 else ("redis", "sqlite")
                for name in order:
                    p = arms[name]
                    r = sequential(p, score_req[p], block, warmup=20)
                    seq_res[name] += r.latencies
                    seq_err[name] += r.errors
            log("sequential p50: " + ", ".join(f"{k} {1000 * percentile(v, 50):.2f} ms" for k, v in seq_res.items()))
            extra["sequential_errors"] = seq_err
        except Exception as exc:  # noqa: BLE001
            failures["sequential score"] = f"{type(exc).__name__}: {str(exc)[:500]}"
            log(f"FAILED sequential: {exc}")

        # ------------------------------------------------------------ 2. 8 clients, hosts = 1 vs 2
        tput_arms = {
            "hosts=1 (stores, all clients on host 0)": [ports["host0"]],
            "hosts=2 (stores, clients spread over both hosts)": [ports["host0"], ports["host1"]],
            "sqlite, 1 host (reference)": [ports["sqlite"]],
        }
        try:
            for r in range(rounds):
                names = list(tput_arms)
                if r % 2 == 1:
                    names.reverse()
                for name in names:
                    log(f"8 clients round {r + 1}/{rounds}: {name}")
                    m = run_clients(name, tput_arms[name], score_req=score_req, groups=groups, ports=ports,
                                  store_ports={"redis": redis_port, "postgres": pg_port}, secs=secs)
                    t = tput.setdefault(name, {"rounds": []})
                    t["rounds"].append(m)
        except Exception as exc:  # noqa: BLE001
            failures["8-client throughput"] = f"{type(exc).__name__}: {str(exc)[:500]}"
            log(f"FAILED throughput: {exc}")

        # ------------------------------------------------------------ 3. materialize all drivers
        mat_ws = {"sqlite": dsq.workdir, "redis": dst.workdir}
        mat_port = {"sqlite": ports["sqlite"], "redis": ports["host0"]}
        try:
            for r in range(reps):
                order = ("sqlite", "redis") if r % 2 == 0 else ("redis", "sqlite")
                for name in order if r == 0 else ():  # the CLI once per store; the POST below `reps` times
                    end_iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                    log(f"featctl materialize, {name}")
                    t = timed_run([FEATCTL, "materialize", "--start", "1970-01-01T00:00:00Z", "--end", end_iso,
                                   "--view", VIEW, "--output", "json"], cwd=mat_ws[name], timeout=1200, rss=False,
                                  check=True)
                    mat.setdefault(name, {"featctl": [], "server": [], "stderr": []})["featctl"].append(t["wall_s"])
                    mat[name]["stderr"].append(t["stderr"][-1500:])
                    log(f"  {t['wall_s']:.2f} s")
                for name in order:
                    end_iso = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
                    log(f"server POST /materialize, {name} (run {r + 1}/{reps})")
                    t0 = time.perf_counter()
                    st, body = http_post_json(mat_port[name], "/materialize",
                                              {"start_ts": "1970-01-01T00:00:00+00:00", "end_ts": end_iso,
                                               "feature_views": [VIEW]}, timeout=1200)
                    dt_s = time.perf_counter() - t0
                    if st != 200:
                        raise RuntimeError(f"{name} /materialize: HTTP {st}: {body[:500]!r}")
                    mat.setdefault(name, {"featctl": [], "server": [], "stderr": []})["server"].append(dt_s)
                    log(f"  {dt_s:.2f} s")
        except Exception as exc:  # noqa: BLE001
            failures["materialize"] = f"{type(exc).__name__}: {str(exc)[:800]}"
            log(f"FAILED materialize: {exc}")
        try:
            online_check, _ = data_worker(["online", data / "driver_stats.parquet", json.dumps({"sqlite": ports["sqlite"],
                                                                    "redis (host 0)": ports["host0"],
                                                                    "redis (host 1)": ports["host1"]}),
                                           args.online_check, 5000], rss=False)
            log(f"online read-back: {online_check}")
        except Exception as exc:  # noqa: BLE001
            failures["online read-back"] = f"{type(exc).__name__}: {str(exc)[:800]}"

        # ------------------------------------------------------------ 4. historical
        hist_ws = {"file": dsq.workdir, "postgres": dst.workdir}
        outputs: dict[str, str] = {}
        for r in range(hist_reps):
            order = ("file", "postgres") if r % 2 == 0 else ("postgres", "file")
            for name in order:
                out = WORK / f"hist-{name}.parquet"
                out.unlink(missing_ok=True)
                log(f"featctl historical, {name} offline store (run {r + 1}/{hist_reps})")
                pg_root = min(listening_pids(pg_port), default=0)
                pg0 = tree_cpu(pg_root) if pg_root else 0.0
                t = timed_run([FEATCTL, "historical", "--entities", data / "entities.parquet", "--features",
                               ",".join(HIST_FEATURES), "--out", out], cwd=hist_ws[name], timeout=1800, rss=False)
                h = hist.setdefault(name, {"walls": [], "errors": [], "postgres_cpu_s": []})
                h["postgres_cpu_s"].append(round(tree_cpu(pg_root) - pg0, 2) if pg_root else None)
                if t["rc"] == 0 and out.exists():
                    h["walls"].append(t["wall_s"])
                    outputs[name] = str(out)
                    log(f"  {t['wall_s']:.2f} s")
                else:
                    err = (t["stderr"].strip() or t["stdout"].strip())[-1500:]
                    h["errors"].append(f"exit {t['rc']}: {err}")
                    log(f"  FAILED (exit {t['rc']}): {err[-600:]}")
        if outputs:
            try:
                cmp, _ = data_worker(["compare", data / "driver_stats.parquet", data / "entities.parquet",
                                      json.dumps(outputs)], rss=False)
            except Exception as exc:  # noqa: BLE001
                failures["historical compare"] = f"{type(exc).__name__}: {str(exc)[:800]}"
    # both deployments destroyed here (ExitStack: stores first, then sqlite)

    # processes of either deployment still alive? (the workspaces' own are reaped by _common.deployment)
    time.sleep(1.0)
    left = [(p, c) for p, c in processes_under(WORK) if f"{WORK}/" in c and p not in ancestors()]
    # only the very processes seen during the run (same pid AND start time), never a reused pid
    stray = [(k, p, c) for k, v in store_ident.items() for p, st, c in v if st is not None and starttime(p) == st]
    if left:
        LEAKS.append(f"{len(left)} process(es) under {WORK} after destroy: " + "; ".join(c[:160] for _, c in left))
    if stray:
        LEAKS.append("store processes of this run still running after `featctl destroy --yes` (stopped by pid): "
                     + "; ".join(f"{k} pid {p}: {c[:120]}" for k, p, c in stray))
        log("WARNING: " + LEAKS[-1])
        for k, p, c in stray:
            if cmdline(p) == c:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGTERM)
    load_end = loadavg()

    return report(SimpleNamespace(**{k: v for k, v in locals().items() if k not in ("stack", "args", "ap")}))


if __name__ == "__main__":
    sys.exit(main())
