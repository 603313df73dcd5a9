"""Item 7's 8-client throughput: the clients (with /proc CPU accounting per host tree,
store and machine), and what the pooled rounds show (rows, limits, findings)."""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace
from typing import Any

from _common import log, median, percentile, row
from _load import sequential
from _procstat import cpu_of, listening_pids, machine_jiffies, server_pids, with_descendants

CLIENTS = 8


def ms(x: float) -> float:
    return round(1000.0 * x, 3)


def run_clients(label: str, client_ports: list[int], *, score_req: dict[int, bytes], groups: dict[str, tuple[str, int]],
                ports: dict[str, int], store_ports: dict[str, int], secs: float) -> dict[str, Any]:
    """CLIENTS closed-loop keep-alive clients on ``client_ports`` (round robin) for ``secs`` seconds, with
    the CPU seconds of every host's feature-server tree, the stores, the clients and the machine."""
    redis_port, pg_port = store_ports["redis"], store_ports["postgres"]
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


def throughput_report(s: SimpleNamespace) -> None:
    """Rows, limits and findings of the 8-client rounds in ``s.tput`` (appended to s.rows/limits/findings)."""
    tput, tput_arms, groups, rounds, secs = s.tput, s.tput_arms, s.groups, s.rounds, s.secs
    rows, limits, findings, failures, extra = s.rows, s.limits, s.findings, s.failures, s.extra
    workers_per_host = s.workers_per_host

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
