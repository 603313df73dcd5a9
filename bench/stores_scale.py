#!/usr/bin/env python3
"""Item 7: shared stores and two hosts vs files on one host, side by side in one run.

One dataset (seeded; like materialize_throughput.py: N drivers with one source row
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

The harness runs with .venv's python; data generation and comparisons run this same
file with .venv-feast's python (``--worker ...``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

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
HIST_FEATURES = [
    "driver_hourly_stats:avg_daily_trips",
    "driver_quality_metrics:conv_rate",
    "driver_quality_metrics:acc_rate",
    f"{ODFV}:linear_combination",
]
VALUE_COLS = ["avg_daily_trips", "conv_rate", "acc_rate", "linear_combination"]
KEY_COLS = ["driver_id", "event_timestamp", "conv_rate_coef", "acc_rate_coef"]
HOURS_BACK = 12  # source rows within the 12 h before generation: inside every view's TTL for the whole run
DUP_FRACTION = 0.15
SEED = 20261127
CLIENTS = 8
WORK = Path(os.environ.get("FEATCTL_BENCH_STORES_TMP", "/tmp/featctl-bench-stores"))


# =========================================================================== workers (.venv-feast python)


def worker_generate(out_dir: str, drivers: int, entity_rows: int) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    now = pd.Timestamp.now(tz="UTC")
    end = now.floor("h")
    df = pd.DataFrame({
        # one row per driver (as bench/materialize_throughput.py), within the last HOURS_BACK hours
        "event_timestamp": (end - pd.to_timedelta(rng.integers(0, HOURS_BACK, drivers), unit="h")).astype(
            "datetime64[ns, UTC]"),
        "driver_id": np.arange(1, drivers + 1, dtype=np.int64),
        "conv_rate": rng.random(drivers, dtype=np.float32),
        "acc_rate": rng.random(drivers, dtype=np.float32),
        "avg_daily_trips": rng.integers(1, 1000, size=drivers, endpoint=True, dtype=np.int32),
    })
    df["created"] = pd.Series([now.as_unit("us")] * drivers, dtype="datetime64[us, UTC]")
    df.to_parquet(out / "driver_stats.parquet", index=False)
    prod = df.copy()
    prod["productivity"] = (prod["conv_rate"] * prod["acc_rate"] * prod["avg_daily_trips"]).astype("float64")
    prod.to_parquet(out / "driver_stats_with_productivity.parquet", index=False)

    # entity rows: mostly around the data (before a driver's row: nulls; after it: values), some up to
    # 3 days later (past driver_hourly_stats' 1-day and driver_quality_metrics' 2-day TTL: nulls)
    n_dup = int(entity_rows * DUP_FRACTION)
    n_base = entity_rows - n_dup
    first = end - pd.Timedelta(hours=HOURS_BACK + 1)
    near = (HOURS_BACK + 2) * 3600
    far = near + 3 * 86400
    offs = np.where(rng.random(n_base) < 0.8, rng.integers(0, near, n_base), rng.integers(0, far, n_base))
    base = pd.DataFrame({
        "driver_id": rng.integers(1, drivers + 1, n_base).astype(np.int64),
        "event_timestamp": first + pd.to_timedelta(offs, unit="s"),
    })
    dups = base.iloc[rng.integers(0, n_base, n_dup)].copy()
    ents = pd.concat([base, dups], ignore_index=True)
    ents = ents.iloc[rng.permutation(len(ents))].reset_index(drop=True)
    ents["event_timestamp"] = ents["event_timestamp"].astype("datetime64[ns, UTC]")
    ents["conv_rate_coef"] = rng.random(len(ents))
    ents["acc_rate_coef"] = rng.random(len(ents))
    ents.to_parquet(out / "entities.parquet", index=False)
    repeated = int(ents.duplicated(subset=["driver_id", "event_timestamp"]).sum())
    return {"drivers": drivers, "source_rows": len(df), "entity_rows": len(ents), "repeated_entity_rows": repeated,
            "first_ts": str(df["event_timestamp"].min()), "last_ts": str(df["event_timestamp"].max()),
            "generated_at": str(now)}


def _reference(data_dir: Path):
    """Point-in-time values computed independently with pandas.merge_asof (backward, within the TTL)."""
    import pandas as pd

    src = pd.read_parquet(data_dir / "driver_stats.parquet")
    ents = pd.read_parquet(data_dir / "entities.parquet")
    ents["__row"] = range(len(ents))
    out = ents.sort_values("event_timestamp", kind="stable")
    right = src.sort_values("event_timestamp", kind="stable")
    for cols, ttl in ((["avg_daily_trips"], "1D"), (["conv_rate", "acc_rate"], "2D")):
        out = pd.merge_asof(out, right[["event_timestamp", "driver_id", *cols]], on="event_timestamp", by="driver_id",
                            direction="backward", tolerance=pd.Timedelta(ttl), allow_exact_matches=True)
    out = out.sort_values("__row").reset_index(drop=True).drop(columns=["__row"])
    out["linear_combination"] = out["conv_rate_coef"] * out["conv_rate"].astype("float64") + \
        out["acc_rate_coef"] * out["acc_rate"].astype("float64")
    return out


def worker_compare(data_dir: str, outputs_json: str) -> dict[str, Any]:
    """Row counts, input order, and value differences of historical results (sorted by the same keys)."""
    import numpy as np
    import pandas as pd

    data = Path(data_dir)
    outputs: dict[str, str] = json.loads(outputs_json)
    ents = pd.read_parquet(data / "entities.parquet")
    frames = {name: pd.read_parquet(path) for name, path in outputs.items()}
    frames["reference"] = _reference(data)

    def norm(df):
        df = df.copy()
        df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True).astype("datetime64[ns, UTC]")
        return df

    def sort(df):
        return norm(df).sort_values(KEY_COLS, kind="stable").reset_index(drop=True)

    report: dict[str, Any] = {"entity_rows": len(ents), "stores": {}}
    e = norm(ents)
    for name, df in frames.items():
        if name == "reference":
            continue
        d = norm(df)
        info: dict[str, Any] = {"rows": len(df), "columns": {c: str(t) for c, t in df.dtypes.items()}}
        if len(d) == len(e):
            info["input_order"] = bool(
                (d["driver_id"].to_numpy() == e["driver_id"].to_numpy()).all()
                and (d["event_timestamp"].to_numpy() == e["event_timestamp"].to_numpy()).all()
                and (d["conv_rate_coef"].to_numpy() == e["conv_rate_coef"].to_numpy()).all())
        info["nulls"] = {c: int(df[c].isna().sum()) for c in VALUE_COLS if c in df.columns}
        report["stores"][name] = info

    def diff(a, b) -> dict[str, Any]:
        res: dict[str, Any] = {"rows": [len(a), len(b)]}
        if len(a) != len(b):
            res["comparable"] = False
            return res
        a, b = sort(a), sort(b)
        res["comparable"] = True
        key_bad = 0
        for k in KEY_COLS:
            key_bad += int((a[k].to_numpy() != b[k].to_numpy()).sum())
        res["key_mismatches"] = key_bad
        max_abs = 0.0
        null_bad = 0
        per_col = {}
        for c in VALUE_COLS:
            x = a[c].astype("float64").to_numpy()
            y = b[c].astype("float64").to_numpy()
            nx, ny = np.isnan(x), np.isnan(y)
            nb = int((nx != ny).sum())
            both = ~nx & ~ny
            m = float(np.max(np.abs(x[both] - y[both]))) if both.any() else 0.0
            per_col[c] = {"max_abs_diff": m, "null_mismatches": nb, "over_1e-9": int((np.abs(x[both] - y[both]) >
                                                                                    1e-9).sum())}
            max_abs = max(max_abs, m)
            null_bad += nb
        res.update(max_abs_diff=max_abs, null_mismatches=null_bad, per_column=per_col)
        return res

    names = [n for n in frames if n != "reference"]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            report[f"{a} vs {b}"] = diff(frames[a], frames[b])
        report[f"{a} vs reference"] = diff(frames[a], frames["reference"])
    report["reference_nulls"] = {c: int(frames["reference"][c].isna().sum()) for c in VALUE_COLS}
    return report


def worker_online(data_dir: str, ports_json: str, sample: int, chunk: int) -> dict[str, Any]:
    """Read drivers back from each feature server (by name) and compare with the source rows."""
    import urllib.request

    import numpy as np
    import pandas as pd

    src = pd.read_parquet(Path(data_dir) / "driver_stats.parquet").set_index("driver_id")
    ids = src.index.to_numpy()
    if 0 < sample < len(ids):
        ids = np.sort(np.random.default_rng(SEED).choice(ids, sample, replace=False))
    feats = ["conv_rate", "acc_rate", "avg_daily_trips"]
    out: dict[str, Any] = {"drivers_checked": int(len(ids))}
    for name, port in json.loads(ports_json).items():
        t0 = time.perf_counter()
        present = 0
        bad = 0
        statuses: dict[str, int] = {}
        for i in range(0, len(ids), chunk):
            part = [int(x) for x in ids[i:i + chunk]]
            body = json.dumps({"features": [f"{VIEW}:{f}" for f in feats], "entities": {"driver_id": part}}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=600) as resp:
                doc = json.loads(resp.read())
            cols = {n: r for n, r in zip(doc["metadata"]["feature_names"], doc["results"])}
            ok = np.ones(len(part), dtype=bool)
            for f in feats:
                st = cols[f]["statuses"]
                for s in st:
                    statuses[s] = statuses.get(s, 0) + 1
                got = np.array([np.nan if v is None else float(v) for v in cols[f]["values"]])
                exp = src.loc[part, f].to_numpy().astype("float64")
                ok &= np.array([s == "PRESENT" for s in st]) & np.isclose(got, exp, rtol=0, atol=1e-9)
            present += int(ok.sum())
            bad += int((~ok).sum())
        out[name] = {"drivers_ok": present, "drivers_bad": bad, "statuses": statuses,
                     "seconds": round(time.perf_counter() - t0, 2)}
    return out


def worker_main(argv: list[str]) -> int:
    if argv[0] == "generate":
        doc = worker_generate(argv[1], int(argv[2]), int(argv[3]))
    elif argv[0] == "compare":
        doc = worker_compare(argv[1], argv[2])
    elif argv[0] == "online":
        doc = worker_online(argv[1], argv[2], int(argv[3]), int(argv[4]))
    else:
        raise SystemExit(f"unknown worker {argv[0]}")
    print("RESULT " + json.dumps(doc, default=str))
    return 0


# =========================================================================== /proc accounting (harness)

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, utime+stime seconds) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def _starttime(pid: int) -> int | None:
    """Start time (clock ticks after boot) of a live process: with the pid, its identity (pids are reused)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2:].split()[19])


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def listening_pids(port: int) -> set[int]:
    """Processes holding a LISTEN socket on 127.0.0.1:PORT (from /proc/net/tcp and their fds)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f[9])
    found = set()
    if not inodes:
        return found
    for pid in _pids():
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                with contextlib.suppress(OSError):
                    link = os.readlink(fd)
                    if link.startswith("socket:[") and link[8:-1] in inodes:
                        found.add(pid)
                        break
        except OSError:
            continue
    return found


def with_descendants(roots: set[int]) -> set[int]:
    parent = {}
    for pid in _pids():
        st = _stat(pid)
        if st:
            parent[pid] = st[0]
    out = set(r for r in roots if r in parent)
    grew = True
    while grew:
        grew = False
        for pid, pp in parent.items():
            if pp in out and pid not in out:
                out.add(pid)
                grew = True
    return out


def server_pids(base: str, port: int) -> set[int]:
    """A host's feature server process tree: processes under its remote_base_dir serving PORT, and children."""
    needle_dir, needle_port = base.rstrip("/") + "/", f"--port {port}"
    roots = {pid for pid in _pids() if needle_dir in (c := _cmdline(pid)) and needle_port in c}
    if not roots:  # fall back to whoever listens on the port
        roots = listening_pids(port)
    return with_descendants(roots)


def cpu_of(pids: set[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        st = _stat(pid)
        if st:
            out[pid] = st[1]
    return out


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = f[3] + (f[4] if len(f) > 4 else 0)
    total = sum(f[:8])
    return total - idle, total


def ancestors() -> set[int]:
    """This process and its parents (a wrapper shell may name the work directory in its command line)."""
    out, pid = set(), os.getpid()
    while pid > 1 and pid not in out:
        out.add(pid)
        st = _stat(pid)
        if not st:
            break
        pid = st[0]
    return out


def tree_cpu(root: int) -> float:
    """CPU seconds of a process tree: the root's own and its reaped children's, plus its live descendants'
    (a PostgreSQL backend that exits during the measurement still counts, through the postmaster)."""
    try:
        f = Path(f"/proc/{root}/stat").read_text()
    except OSError:
        return 0.0
    f = f[f.rindex(")") + 2:].split()
    total = (int(f[13]) + int(f[14])) / CLK_TCK  # cutime + cstime
    return total + sum(cpu_of(with_descendants({root})).values())


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# =========================================================================== main


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker_main(sys.argv[2:])

    from _common import (
        FEAST_PY,
        FEATCTL,
        LEAKS,
        deployment,
        http_post_json,
        log,
        median,
        percentile,
        processes_under,
        row,
        timed_run,
        write_result,
    )
    from _load import build_request, request_once, sequential

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

    def worker(argv: list[str], timeout: float = 1200) -> dict[str, Any]:
        t = timed_run([FEAST_PY, __file__, "--worker", *argv], timeout=timeout, rss=False)
        if t["rc"] != 0:
            raise RuntimeError(f"worker {argv[0]} failed: {t['stderr'][-3000:]}")
        line = [ln for ln in t["stdout"].splitlines() if ln.startswith("RESULT ")][-1]
        return json.loads(line[len("RESULT "):])

    # ------------------------------------------------------------------ data, once
    shutil.rmtree(WORK / "data", ignore_errors=True)
    data = WORK / "data"
    log(f"generating {drivers:,} drivers / {entity_rows:,} entity rows")
    gen = worker(["generate", str(data), str(drivers), str(entity_rows)])
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
        store_ident = {k: [(p, _starttime(p), _cmdline(p)) for p in sorted(v)] for k, v in store_pids.items()}
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
        def run_clients(label: str, client_ports: list[int]) -> dict[str, Any]:
            barrier = threading.Barrier(CLIENTS + 1)
            results: list[Any] = [None] * CLIENTS

            def client(i: int) -> None:
                p = client_ports[i % len(client_ports)]
                barrier.wait()
                results[i] = sequential(p, score_req[p], 10 ** 9, warmup=0, max_seconds=secs)

            threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(CLIENTS)]
            for t in threads:
                t.start()
            sets = {k: server_pids(*v) for k, v in groups.items()}
            ssets = {"redis": with_descendants(listening_pids(redis_port)),
                     "postgres": with_descendants(listening_pids(pg_port))}
            cpu0 = {k: cpu_of(v) for k, v in sets.items()}
            st0 = {k: cpu_of(v) for k, v in ssets.items()}
            me0 = os.times()
            m0 = machine_jiffies()
            w0 = time.perf_counter()
            barrier.wait()
            for t in threads:
                t.join(timeout=secs + 120)
            wall = time.perf_counter() - w0
            m1 = machine_jiffies()
            me1 = os.times()
            cpu1 = {k: cpu_of(v) for k, v in sets.items()}
            st1 = {k: cpu_of(v) for k, v in ssets.items()}
            res = [r for r in results if r is not None]
            per_port_req: dict[int, int] = {}
            for i, r in enumerate(results):
                if r is not None:
                    p = client_ports[i % len(client_ports)]
                    per_port_req[p] = per_port_req.get(p, 0) + r.ok + r.errors
            lat = [x for r in res for x in r.latencies]
            total = sum(r.ok + r.errors for r in res)

            def delta(a: dict[int, float], b: dict[int, float]) -> float:
                return sum(b[p] - a.get(p, 0.0) for p in b)  # a pid new since `a` counts from 0

            out = {
                "rps": sum(r.ok / r.seconds for r in res if r.seconds),
                "ok": sum(r.ok for r in res), "errors": sum(r.errors for r in res),
                "first_error": next((r.first_error for r in res if r.first_error), ""),
                "lat": lat, "wall": wall, "requests": total,
                "requests_per_server": {k: per_port_req.get(ports[k], 0) for k in ports},
                "cpu_s": {k: delta(cpu0[k], cpu1[k]) for k in groups},
                "store_cpu_s": {k: delta(st0[k], st1[k]) for k in ssets},
                "client_cpu_s": (me1.user - me0.user) + (me1.system - me0.system),
                "machine_busy_cores": (m1[0] - m0[0]) / max(1, m1[1] - m0[1]) * (os.cpu_count() or 1),
                "pids_changed": {k: sorted(set(cpu1[k]) ^ set(cpu0[k])) for k in groups if set(cpu1[k]) != set(cpu0[k])},
            }
            log(f"  {label}: {out['rps']:.0f} req/s, p50 {1000 * percentile(lat, 50):.1f} ms, p99 "
                f"{1000 * percentile(lat, 99):.1f} ms, errors {out['errors']}, cpu {out['cpu_s']}, "
                f"machine busy {out['machine_busy_cores']:.2f} cores")
            return out

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
                    m = run_clients(name, tput_arms[name])
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
            online_check = worker(["online", str(data), json.dumps({"sqlite": ports["sqlite"],
                                                                    "redis (host 0)": ports["host0"],
                                                                    "redis (host 1)": ports["host1"]}),
                                   str(args.online_check), "5000"])
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
                cmp = worker(["compare", str(data), json.dumps(outputs)])
            except Exception as exc:  # noqa: BLE001
                failures["historical compare"] = f"{type(exc).__name__}: {str(exc)[:800]}"
    # both deployments destroyed here (ExitStack: stores first, then sqlite)

    # processes of either deployment still alive? (the workspaces' own are reaped by _common.deployment)
    time.sleep(1.0)
    left = [(p, c) for p, c in processes_under(WORK) if f"{WORK}/" in c and p not in ancestors()]
    # only the very processes seen during the run (same pid AND start time), never a reused pid
    stray = [(k, p, c) for k, v in store_ident.items() for p, st, c in v if st is not None and _starttime(p) == st]
    if left:
        LEAKS.append(f"{len(left)} process(es) under {WORK} after destroy: " + "; ".join(c[:160] for _, c in left))
    if stray:
        LEAKS.append("store processes of this run still running after `featctl destroy --yes` (stopped by pid): "
                     + "; ".join(f"{k} pid {p}: {c[:120]}" for k, p, c in stray))
        log("WARNING: " + LEAKS[-1])
        for k, p, c in stray:
            if _cmdline(p) == c:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGTERM)
    load_end = loadavg()

    # ------------------------------------------------------------------ report
    def ms(x: float) -> float:
        return round(1000.0 * x, 3)

    if seq_res.get("sqlite") and seq_res.get("redis"):
        s, r_ = seq_res["sqlite"], seq_res["redis"]
        for pct in (50, 90, 99):
            a, b = percentile(s, pct), percentile(r_, pct)
            rows.append(row(f"weighted score sequential p{pct}: Redis (host 0) vs sqlite", ms(b), "ms",
                            baseline=f"sqlite {ms(a)} ms", ratio=round(b / a, 3)))
    elif "sequential score" in failures:
        rows.append(row("weighted score sequential p50: Redis vs sqlite", "FAILED", "",
                        baseline=failures["sequential score"][:200]))

    def pooled(name: str) -> dict[str, Any]:
        rs = tput[name]["rounds"]
        lat = [x for m in rs for x in m["lat"]]
        req = sum(m["requests"] for m in rs)
        cpu = {k: sum(m["cpu_s"][k] for m in rs) for k in groups}
        req_srv = {k: sum(m["requests_per_server"][k] for m in rs) for k in groups}
        return {
            "rps": median([m["rps"] for m in rs]), "rps_rounds": [round(m["rps"], 1) for m in rs],
            "p50": percentile(lat, 50), "p99": percentile(lat, 99), "requests": req,
            "errors": sum(m["errors"] for m in rs), "first_error": next((m["first_error"] for m in rs
                                                                         if m["first_error"]), ""),
            "cpu_s": cpu, "requests_per_server": req_srv,
            "cpu_per_1k": {k: (1000 * cpu[k] / req_srv[k]) if req_srv[k] else None for k in groups},
            "serving_cpu_per_1k": 1000 * sum(cpu.values()) / req if req else None,
            "redis_cpu_per_1k": 1000 * sum(m["store_cpu_s"].get("redis", 0) for m in rs) / req if req else None,
            "postgres_cpu_per_1k": 1000 * sum(m["store_cpu_s"].get("postgres", 0) for m in rs) / req if req else None,
            "client_cpu_per_1k": 1000 * sum(m["client_cpu_s"] for m in rs) / req if req else None,
            "machine_busy_cores": median([m["machine_busy_cores"] for m in rs]),
            "idle_cpu_s": {k: cpu[k] for k in groups if not req_srv[k]},
            "wall": sum(m["wall"] for m in rs),
            "store_cpu_s": {k: sum(m["store_cpu_s"].get(k, 0) for m in rs) for k in ("redis", "postgres")},
            "client_cpu_s": sum(m["client_cpu_s"] for m in rs),
        }

    h1n, h2n, sqn = list(tput_arms)
    if all(n in tput and len(tput[n]["rounds"]) == rounds for n in tput_arms):
        h1, h2, sq = pooled(h1n), pooled(h2n), pooled(sqn)
        extra["throughput"] = {n: {k: v for k, v in pooled(n).items()} for n in tput_arms}
        rows.append(row("8-client throughput: hosts=2 vs hosts=1 (Redis + PostgreSQL)", round(h2["rps"], 1), "req/s",
                        baseline=f"hosts=1 {h1['rps']:.1f} req/s", ratio=round(h2["rps"] / h1["rps"], 3)))
        rows.append(row("8-client p99: hosts=2 vs hosts=1", ms(h2["p99"]), "ms", baseline=f"hosts=1 {ms(h1['p99'])} ms",
                        ratio=round(h2["p99"] / h1["p99"], 3)))
        rows.append(row("8-client p50: hosts=2 vs hosts=1", ms(h2["p50"]), "ms", baseline=f"hosts=1 {ms(h1['p50'])} ms",
                        ratio=round(h2["p50"] / h1["p50"], 3)))
        c2, c1 = h2["cpu_per_1k"], h1["cpu_per_1k"]
        rows.append(row("feature server CPU per 1,000 requests, hosts=2: host 0 / host 1",
                        f"{c2['host0']:.2f} / {c2['host1']:.2f}", "CPU s",
                        baseline=f"hosts=1: host 0 {c1['host0']:.2f} (host 1 idle: {h1['cpu_s']['host1']:.2f} CPU s "
                                 f"in {rounds * secs:g} s)",
                        ratio=round(h2["serving_cpu_per_1k"] / h1["serving_cpu_per_1k"], 3)))
        rows.append(row("Redis CPU per 1,000 requests: hosts=2 vs hosts=1", round(h2["redis_cpu_per_1k"], 3), "CPU s",
                        baseline=f"hosts=1 {h1['redis_cpu_per_1k']:.3f}"))
        rows.append(row("load generator (8 threads) CPU per 1,000 requests: hosts=2 vs hosts=1",
                        round(h2["client_cpu_per_1k"], 3), "CPU s", baseline=f"hosts=1 {h1['client_cpu_per_1k']:.3f}"))
        rows.append(row("machine CPU busy during the 8-client runs: hosts=2 vs hosts=1",
                        round(h2["machine_busy_cores"], 2), f"of {os.cpu_count()} cores",
                        baseline=f"hosts=1 {h1['machine_busy_cores']:.2f}"))
        rows.append(row("8-client throughput, Redis hosts=1 vs sqlite (1 host)", round(h1["rps"], 1), "req/s",
                        baseline=f"sqlite {sq['rps']:.1f} req/s; p50/p99 {ms(sq['p50'])} / {ms(sq['p99'])} ms",
                        ratio=round(h1["rps"] / sq["rps"], 3)))
        rows.append(row("feature server CPU per 1,000 requests: Redis host 0 (hosts=1) vs sqlite",
                        round(c1["host0"], 3), "CPU s", baseline=f"sqlite {sq['cpu_per_1k']['sqlite']:.3f}",
                        ratio=round(c1["host0"] / sq["cpu_per_1k"]["sqlite"], 3)))
        errs = {n: pooled(n)["errors"] for n in tput_arms}
        if any(errs.values()):
            rows.append(row("8-client failed requests", str(errs), "", baseline=next(
                (pooled(n)["first_error"] for n in tput_arms if pooled(n)["first_error"]), "")[:200], met=False))
        ncpu = os.cpu_count() or 2
        ratio = h2["rps"] / h1["rps"]

        def cores(m: dict[str, Any]) -> dict[str, float]:
            w = m["wall"] or 1.0
            c = {k: m["cpu_s"][k] / w for k in groups}
            c["redis"] = m["store_cpu_s"]["redis"] / w
            c["postgres"] = m["store_cpu_s"]["postgres"] / w
            c["clients"] = m["client_cpu_s"] / w
            c["machine"] = m["machine_busy_cores"]
            c["other"] = max(0.0, c["machine"] - sum(c[k] for k in (*groups, "redis", "postgres", "clients")))
            return c

        k1, k2 = cores(h1), cores(h2)
        extra["throughput_cores"] = {"hosts=1": k1, "hosts=2": k2}
        if max(k1["other"], k2["other"]) > 0.3:
            findings.append(
                f"During the 8-client runs about {k1['other']:.1f} (hosts=1) / {k2['other']:.1f} (hosts=2) cores went "
                "to processes other than the feature servers, Redis, PostgreSQL and the load generator (kernel "
                "network work on loopback, sshd, and other work sharing this machine); the per-round req/s (above) "
                "show how much that varied.")
        saturated = k2["machine"] >= 0.9 * ncpu
        redis_rps_per_core = 1000.0 / h2["redis_cpu_per_1k"] if h2["redis_cpu_per_1k"] else float("nan")
        limits.append(
            f"what limits the hosts=2/hosts=1 throughput ratio ({ratio:.2f}x): CPU. Both \"hosts\" are processes on "
            f"this one {ncpu}-core machine, shared with Redis, PostgreSQL, the 8 client threads and whatever else "
            f"runs here. hosts=1: host 0's {workers_per_host} worker(s) used {k1['host0']:.2f} cores (one worker is "
            f"one Python process: at most about 1 core), Redis {k1['redis']:.2f}, the clients {k1['clients']:.2f}, "
            f"other processes {k1['other']:.2f}; machine {k1['machine']:.2f} of {ncpu} busy. hosts=2: host 0 "
            f"{k2['host0']:.2f} + host 1 {k2['host1']:.2f} cores, Redis {k2['redis']:.2f}, the clients "
            f"{k2['clients']:.2f}, other processes {k2['other']:.2f}; machine {k2['machine']:.2f} of {ncpu} busy"
            + (" (saturated): the second host only gets the CPU that was idle or that it takes from the first. "
               if saturated else
               " (not saturated: the clients, 8 threads in one Python process, or request latency limit it too). ")
            + f"The work per request hardly depends on the number of hosts ({h2['serving_cpu_per_1k']:.2f} vs "
            f"{h1['serving_cpu_per_1k']:.2f} CPU s per 1,000 requests over all feature servers, hosts=2 vs hosts=1, "
            f"{h2['serving_cpu_per_1k'] / h1['serving_cpu_per_1k'] - 1:+.0%}: more processes competing for the same "
            "cores), so on hosts with cores of their own (Redis and the clients elsewhere) throughput should grow "
            "with the number of hosts until Redis limits it "
            f"(~{h2['redis_cpu_per_1k']:.3f} CPU s per 1,000 requests here, ~{redis_rps_per_core:,.0f} req/s per "
            "Redis core).")
    elif "8-client throughput" in failures:
        rows.append(row("8-client throughput hosts=2 vs hosts=1", "FAILED", "",
                        baseline=failures["8-client throughput"][:200]))

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
            said = any("fast registry read unavailable" in e for e in mat["redis"].get("stderr", []))
            findings.append(
                f"`featctl materialize` beyond the server's POST /materialize (one CLI run against the median POST, "
                f"so about +-1 s of noise): sqlite {over['sqlite']:.1f} s, Redis deployment {over['redis']:.1f} s. The CLI first runs the host agent's `describe`, which reads a "
                "file registry without importing Feast but has no fast path for the SQL registry on PostgreSQL "
                "(src/featctl/agent/registry.py load_registry: 'registry is not a local file' -> import feast)"
                + (" -- its stderr said so here ('fast registry read unavailable')." if said else
                   "; so on the stores deployment every ranged `featctl materialize` pays an `import feast` on the "
                   "host.") + " The POST /materialize rows compare the stores themselves.")
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
        for name in ("file", "postgres"):
            s = cmp["stores"].get(name)
            if s:
                rows.append(row(f"historical rows out, {name} offline store", s["rows"], "rows",
                                baseline=f"{cmp['entity_rows']:,} entity rows" + (
                                    "; in input order" if s.get("input_order") else
                                    "; NOT in input order" if "input_order" in s else ""),
                                target="= entity rows", met=s["rows"] == cmp["entity_rows"]))
        fp = cmp.get("file vs postgres")
        if fp and fp.get("comparable"):
            ok = fp["max_abs_diff"] <= 1e-9 and fp["null_mismatches"] == 0 and fp["key_mismatches"] == 0
            rows.append(row("historical values, postgres vs file (sorted by driver_id, event_timestamp, weights): "
                            "max abs difference", fp["max_abs_diff"], "",
                            baseline=f"{fp['null_mismatches']} null mismatches, {fp['key_mismatches']} key "
                                     f"mismatches", target="<= 1e-9, no null mismatches", met=ok))
        elif fp:
            rows.append(row("historical values, postgres vs file", "not comparable (row counts differ)", "",
                            baseline=str(fp.get("rows")), met=False))
        for name in ("file", "postgres"):
            fr = cmp.get(f"{name} vs reference")
            if fr and fr.get("comparable"):
                rows.append(row(f"historical values, {name} vs pandas merge_asof reference: max abs difference",
                                fr["max_abs_diff"], "", baseline=f"{fr['null_mismatches']} null mismatches",
                                target="<= 1e-6 (float32 sources)",
                                met=fr["max_abs_diff"] <= 1e-6 and fr["null_mismatches"] == 0))
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
        fp = cmp.get("file vs postgres") or {}
        if fp.get("per_column"):
            notes.append("Historical postgres vs file per column (max abs diff, null mismatches): " + "; ".join(
                f"{c} {v['max_abs_diff']:.3g}, {v['null_mismatches']}" for c, v in fp["per_column"].items())
                + ". Nulls per store: " + "; ".join(f"{k} {v.get('nulls')}" for k, v in cmp["stores"].items())
                + f"; reference {cmp.get('reference_nulls')}.")
        dt = {k: v.get("columns") for k, v in cmp["stores"].items()}
        if len({json.dumps(v, sort_keys=True) for v in dt.values()}) > 1:
            notes.append("Historical result dtypes differ between the stores: " + "; ".join(
                f"{k}: {v}" for k, v in dt.items()) + ".")
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


if __name__ == "__main__":
    sys.exit(main())
