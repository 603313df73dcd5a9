#!/usr/bin/env python3
"""Item 1: weighted-score latency and throughput through the deployed feature server.

Deploys two featctl workspaces (the repo as it is: python-mode on-demand view; and a
copy whose on-demand view is rewritten to mode="pandas" with the same names), then
measures, interleaved in rounds so drift on a noisy machine hits every variant alike:

* featctl  -- POST /get-online-features, 2 drivers, conv_rate + acc_rate + linear_combination
* pandas   -- the same request against the pandas-mode deployment
* plain    -- only the two input features (no on-demand view) against the featctl deployment

each as sequential keep-alive requests (p50/p99) and as 8 concurrent keep-alive
clients for a fixed time (throughput, p50/p99). Then it restarts feature servers on
the featctl deployment's host repo with other flags (workers, registry TTL, Feast's
defaults, access log, singleton=True) to see what featctl could tune.

Requests go straight to 127.0.0.1:<server_port> (the local target's host is this
machine), not through featctl's SSH tunnel.

    bench/serve_latency.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    TMP,
    feast_server,
    free_port,
    http_post_json,
    log,
    median,
    row,
    write_result,
)
from _deploy import LEAKS, copy_repo, deployment, feast_apply, processes_under
from _load import build_request, request_once
from _serve import (  # noqa: E402
    ENTITIES,
    FEATCTL_FLAGS,
    NAME,
    OPT_LABEL,
    PLAIN_FEATURES,
    SCORE_FEATURES,
    TUNE_ROUNDS,
    cli_score_wall,
    measure,
    n_tune_total,
    recommendation,
    score_values,
    sdk_breakdown,
    summarize,
    to_pandas_mode,
    to_singleton,
)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke size (few requests, short runs, no tuning sweep)")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--requests", type=int, default=None, help="sequential requests per variant per round")
    ap.add_argument("--seconds", type=float, default=None, help="concurrent run length per variant per round")
    ap.add_argument("--no-tuning", action="store_true")
    args = ap.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    n_seq = args.requests or (150 if args.quick else 700)
    secs = args.seconds if args.seconds is not None else (2.0 if args.quick else 4.0)
    tune_n = 150 if args.quick else 1000
    tune_secs = 2.0 if args.quick else 5.0
    do_tuning = not args.no_tuning and not args.quick
    started = time.monotonic()
    work = TMP / "serve"
    work.mkdir(parents=True, exist_ok=True)

    data: dict[str, Any] = {}
    tuning: list[dict[str, Any]] = []
    notes: list[str] = []
    singleton: dict[str, Any] = {}
    sdk: dict[str, Any] = {}
    cli_walls: list[float] = []
    with deployment(work / "featctl") as dep, deployment(work / "pandas", edit_repo=to_pandas_mode) as pdep:
        variants = {
            "featctl": (dep.port, SCORE_FEATURES),
            "pandas": (pdep.port, SCORE_FEATURES),
            "plain": (dep.port, PLAIN_FEATURES),
        }
        served_by = [c for _, c in processes_under(dep.workdir) if "serve" in c and f"{dep.port}" in c]
        notes.append("featctl's deployed server: " + (min(served_by, key=len)[:400] if served_by else "(not found)")
                     + f"; deployed repo {dep.repo}.")
        # correctness: both modes give the same score
        a, b = score_values(dep.port, SCORE_FEATURES), score_values(pdep.port, SCORE_FEATURES)
        same = all(abs(x - y) < 1e-9 for x, y in zip(a["linear_combination"], b["linear_combination"]))
        notes.append(f"python vs pandas mode linear_combination for drivers 1001,1002: {a['linear_combination']} vs "
                     f"{b['linear_combination']} ({'identical' if same else 'DIFFERENT'}).")
        for r in range(rounds):
            for name, (port, feats) in variants.items():
                log(f"round {r + 1}/{rounds}: {name} on 127.0.0.1:{port}")
                m = measure(port, feats, n=n_seq, seconds=secs)
                d = data.setdefault(name, {"seq_lat": [], "conc_lat": [], "rps": [], "round_p50": [],
                                           "errors": 0, "first_error": ""})
                d["seq_lat"] += m["seq_lat"]
                d["conc_lat"] += m.get("conc_lat", [])
                d["rps"].append(m.get("rps", 0.0))
                d["round_p50"].append(m["seq"]["p50_ms"])
                d["errors"] += m["seq_errors"] + m.get("conc_errors", 0)
                d["first_error"] = d["first_error"] or m["seq_first_error"] or m.get("conc_first_error", "")

        if not args.quick:
            log("in-process SDK cost of get_online_features (no HTTP)")
            try:
                sdk = sdk_breakdown(dep.base / "envs" / "feast-0.67.0" / "bin" / "python", dep.repo, pdep.repo, 1000)
            except Exception as exc:
                notes.append(f"SDK breakdown failed: {exc}")
            try:
                cli_walls = cli_score_wall(dep.workdir, 5)
            except Exception as exc:
                notes.append(f"`featctl score` end-to-end timing failed: {str(exc)[:300]}")

        try:
            if do_tuning:
                feast = dep.feast_bin
                n_r = max(100, tune_n // TUNE_ROUNDS)
                s_r = tune_secs / TUNE_ROUNDS

                def ab(label: str, arms: list[tuple[str, int, list[str], bool]], flags: str = "") -> None:
                    """Interleaved rounds over `arms` (name, port, features, keep_alive); the first arm is the
                    reference. Every arm sees the same machine noise."""
                    acc: dict[str, dict[str, Any]] = {
                        name: {"seq": [], "conc": [], "rps": [], "errors": 0, "first_error": ""} for name, *_ in arms}
                    for r in range(TUNE_ROUNDS):
                        for name, port, feats, ka in arms:
                            log(f"tuning: {label}: {name} (round {r + 1}/{TUNE_ROUNDS})")
                            m = measure(port, feats, n=n_r, seconds=s_r if ka else 0, keep_alive=ka)
                            a = acc[name]
                            a["seq"] += m["seq_lat"]
                            a["conc"] += m.get("conc_lat", [])
                            if "rps" in m:
                                a["rps"].append(m["rps"])
                            a["errors"] += m["seq_errors"] + m.get("conc_errors", 0)
                            a["first_error"] = a["first_error"] or m["seq_first_error"] or m.get("conc_first_error", "")
                    tuning.append({"setting": label, "flags": flags, "arms": [
                        {"name": name, "seq": summarize(a["seq"]), "conc": summarize(a["conc"]) if a["conc"] else None,
                         "rps": median(a["rps"]) if a["rps"] else None, "errors": a["errors"],
                         "first_error": a["first_error"]} for name, a in acc.items()]})

                ref = ("featctl as deployed", dep.port, SCORE_FEATURES, True)
                ab("keep-alive off (a new TCP connection per request)",
                   [("keep-alive", dep.port, SCORE_FEATURES, True), ("new connection each", dep.port, SCORE_FEATURES,
                                                                     False)], flags="client side")
                for label, flags in (
                    ("workers 2", [f if f != "1" else "2" for f in FEATCTL_FLAGS]),
                    ("access log on", [f for f in FEATCTL_FLAGS if f != "--no-access-log"]),
                    ("Feast defaults (no flags: max-requests 1000, access log on, registry_ttl_sec 60)", []),
                ):
                    port = free_port()
                    with feast_server(dep.repo, port, flags, feast_bin=feast, log_path=work / f"serve-{port}.log"):
                        ab(label, [ref, (label, port, SCORE_FEATURES, True)], flags=" ".join(flags) or "(none)")

                # registry_ttl_sec: two stock servers, 5 s and 60 s
                ttl_flags = {t: [f if f != "5" else t for f in FEATCTL_FLAGS] for t in ("5", "60")}
                p5, p60 = free_port(), free_port()
                with feast_server(dep.repo, p5, ttl_flags["5"], feast_bin=feast, log_path=work / "serve-ttl5.log"), \
                        feast_server(dep.repo, p60, ttl_flags["60"], feast_bin=feast,
                                     log_path=work / "serve-ttl60.log"):
                    ab("registry_ttl_sec 60 vs 5", [("registry_ttl_sec 5", p5, SCORE_FEATURES, True),
                                                    ("registry_ttl_sec 60", p60, SCORE_FEATURES, True)],
                       flags="--registry_ttl_sec 5 | 60")

                # PYTHONOPTIMIZE=1 on all three variants, for a same-setting ratio
                env = {"PYTHONOPTIMIZE": "1"}
                po, ppo = free_port(), free_port()
                with feast_server(dep.repo, po, FEATCTL_FLAGS, feast_bin=feast, env=env,
                                  log_path=work / "serve-opt.log"), \
                        feast_server(pdep.repo, ppo, FEATCTL_FLAGS, feast_bin=feast, env=env,
                                     log_path=work / "serve-opt-pandas.log"):
                    ab(OPT_LABEL, [("featctl -O", po, SCORE_FEATURES, True), ("pandas-mode -O", ppo, SCORE_FEATURES,
                                                                               True),
                                   ("plain lookup -O", po, PLAIN_FEATURES, True)],
                       flags="PYTHONOPTIMIZE=1 " + " ".join(FEATCTL_FLAGS))

                # singleton=True: the same UDF, on a copy of the deployed repo applied with the host env
                feast_py = dep.base / "envs" / "feast-0.67.0" / "bin" / "python"
                try:
                    srepo = copy_repo(work / "singleton" / "repo", dep.repo)
                    to_singleton(srepo)
                    feast_apply(srepo, python=feast_py)
                    port = free_port()
                    with feast_server(srepo, port, FEATCTL_FLAGS, feast_bin=feast,
                                      log_path=work / "serve-singleton.log"):
                        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
                        st, body = http_post_json(port, "/materialize", {"start_ts": "2000-01-01T00:00:00+00:00",
                                                                         "end_ts": now,
                                                                         "feature_views": ["driver_quality_metrics"]})
                        if st != 200:
                            raise RuntimeError(f"/materialize: HTTP {st} {body[:300]!r}")
                        ents = {"driver_id": [1001, 1002, 1003], "conv_rate_coef": [0.7, 0.7, 0.7],
                                "acc_rate_coef": [0.3, 0.3, 0.3]}
                        st, body = request_once(port, build_request(port, "/get-online-features",
                                                                    {"features": SCORE_FEATURES, "entities": ents}))
                        doc = json.loads(body) if st == 200 else {}
                        vals = ({n: r["values"] for n, r in zip(doc["metadata"]["feature_names"], doc["results"])}
                                if doc else {})
                        lc = vals.get("linear_combination")
                        expected = [0.7 * c + 0.3 * a
                                    for c, a in zip(vals.get("conv_rate", []), vals.get("acc_rate", []))]
                        singleton = {"http_status": st, "linear_combination": lc, "expected": expected,
                                     "body": body[:400].decode(errors="replace") if st != 200 else ""}
                        try:
                            ab("python mode singleton=True", [ref, ("singleton=True", port, SCORE_FEATURES, True)],
                               flags=" ".join(FEATCTL_FLAGS))
                        except Exception as exc:
                            singleton["bench_error"] = str(exc)[:300]
                except Exception as exc:
                    singleton = {"error": str(exc)[:1000]}
        except Exception as exc:  # noqa: BLE001 - keep the main results
            log(f"tuning sweep failed: {exc}")
            notes.append(f"Tuning sweep stopped early: {type(exc).__name__}: {str(exc)[:300]}")

    # ------------------------------------------------------------------ report
    res = {k: {"seq": summarize(v["seq_lat"]), "conc": summarize(v["conc_lat"]), "rps": median(v["rps"]),
               "round_p50_ms": v["round_p50"], "errors": v["errors"], "first_error": v["first_error"]}
           for k, v in data.items()}
    f, p, pl = res["featctl"], res["pandas"], res["plain"]
    r_pandas = f["seq"]["p50_ms"] / p["seq"]["p50_ms"]
    r_plain = f["seq"]["p50_ms"] / pl["seq"]["p50_ms"]
    rows = [
        row("featctl (python-mode ODFV) sequential p50", f["seq"]["p50_ms"], "ms",
            baseline=f"pandas-mode {p['seq']['p50_ms']}", ratio=round(r_pandas, 3), target="<= 0.35x pandas-mode p50",
            met=r_pandas <= 0.35),
        row("featctl (python-mode ODFV) sequential p50", f["seq"]["p50_ms"], "ms",
            baseline=f"plain lookup {pl['seq']['p50_ms']}", ratio=round(r_plain, 3), target="<= 1.5x plain-lookup p50",
            met=r_plain <= 1.5),
        row("featctl sequential p99", f["seq"]["p99_ms"], "ms", baseline=f"pandas-mode {p['seq']['p99_ms']}",
            ratio=round(f["seq"]["p99_ms"] / p["seq"]["p99_ms"], 3)),
        row("featctl sequential p99", f["seq"]["p99_ms"], "ms", baseline=f"plain lookup {pl['seq']['p99_ms']}",
            ratio=round(f["seq"]["p99_ms"] / pl["seq"]["p99_ms"], 3)),
        row("pandas-mode sequential p50 / p99", f"{p['seq']['p50_ms']} / {p['seq']['p99_ms']}", "ms"),
        row("plain lookup sequential p50 / p99", f"{pl['seq']['p50_ms']} / {pl['seq']['p99_ms']}", "ms"),
        row("featctl throughput, 8 keep-alive clients", f["rps"], "req/s", baseline=f"pandas-mode {p['rps']}",
            ratio=round(f["rps"] / p["rps"], 3) if p["rps"] else None),
        row("featctl throughput, 8 keep-alive clients", f["rps"], "req/s", baseline=f"plain lookup {pl['rps']}",
            ratio=round(f["rps"] / pl["rps"], 3) if pl["rps"] else None),
        row("featctl 8-client latency p50 / p99", f"{f['conc']['p50_ms']} / {f['conc']['p99_ms']}", "ms",
            baseline=f"pandas {p['conc']['p50_ms']} / {p['conc']['p99_ms']}; "
                     f"plain {pl['conc']['p50_ms']} / {pl['conc']['p99_ms']}"),
    ]
    if sdk:
        rows.append(row("in-process SDK get_online_features p50 (no HTTP): featctl / pandas / plain",
                        f"{sdk['featctl'][0]:.3f} / {sdk['pandas'][0]:.3f} / {sdk['plain'][0]:.3f}", "ms"))
    if cli_walls:
        rows.append(row("`featctl score` end to end (new process + SSH + tunnelled request), median of "
                        f"{len(cli_walls)}", round(median(cli_walls), 3), "s"))
    for t in tuning:
        arms = t["arms"]
        r0 = arms[0]
        for a in arms[1:] if len(arms) == 2 else arms:
            base_txt = f"{r0['name']} {r0['seq']['p50_ms']} / {r0['seq']['p99_ms']} ms" if a is not r0 else None
            tput = ""
            if a.get("rps"):
                c = a["conc"]
                tput = f"8 clients {a['rps']:.0f} req/s (p50/p99 {c['p50_ms']:.1f} / {c['p99_ms']:.1f} ms)"
                if a is not r0 and r0.get("rps"):
                    tput += f" vs {r0['rps']:.0f} req/s ({a['rps'] / r0['rps']:.2f}x)"
            err = f"{a['errors']} failed requests ({a['first_error'][:70]})" if a["errors"] else ""
            label = t["setting"] if len(arms) == 2 else f"{t['setting']}: {a['name']}"
            rows.append(row(f"tuning: {label}", f"{a['seq']['p50_ms']} / {a['seq']['p99_ms']}", "ms seq p50/p99",
                            baseline="; ".join(x for x in (base_txt, tput, err) if x) or None,
                            ratio=round(a["seq"]["p50_ms"] / r0["seq"]["p50_ms"], 3) if a is not r0 else None))

    notes += [
        "All requests go directly to 127.0.0.1:<server_port> of the deployed feature server (the local target's "
        "host is this machine); featctl's own commands reach the same server through an SSH direct-tcpip channel, "
        "which is not part of these latency numbers (see the `featctl score` end-to-end row).",
        f"Request: POST /get-online-features, entities {json.dumps(ENTITIES)}, features {SCORE_FEATURES} "
        f"(plain lookup: the first two only).",
        f"Sequential: one keep-alive connection, {rounds} round(s) x {n_seq} requests per variant after warm-up, "
        f"pooled; per-round p50s (ms): " + "; ".join(f"{k} {v['round_p50_ms']}" for k, v in res.items()) + ".",
        f"Throughput: 8 keep-alive connections, closed loop (one request in flight each), {rounds} round(s) x "
        f"{secs:g} s per variant after 1 s warm-up; the median round's req/s is reported. The load generator "
        "(Python, one selector loop) shares the 2 cores with the server.",
        "Variants are interleaved (featctl, pandas, plain in each round) so machine noise hits all of them alike.",
        "Failed requests: " + ", ".join(f"{k} {v['errors']}" for k, v in res.items()) + ".",
    ]
    if singleton:
        lc = singleton.get("linear_combination")
        exp = singleton.get("expected")
        if "error" in singleton:
            notes.append(f"singleton=True: could not be measured: {singleton['error']}")
        elif singleton.get("http_status") != 200:
            notes.append(f"singleton=True: 3-driver request failed: HTTP {singleton['http_status']} "
                         f"{singleton.get('body', '')[:300]}")
        else:
            ok = lc is not None and exp and len(lc) == len(exp) and all(
                v is not None and abs(v - e) < 1e-9 for v, e in zip(lc, exp))
            notes.append(f"singleton=True (same UDF, python mode): a 3-driver request returned linear_combination="
                         f"{lc} where {exp} is expected: {'correct' if ok else 'WRONG -- singleton=True is broken'}.")
    by_setting = {t["setting"]: {a["name"]: a for a in t["arms"]} for t in tuning}
    opt_ratio = None
    if OPT_LABEL in by_setting:
        o = by_setting[OPT_LABEL]
        fo, po, lo = (o[k]["seq"]["p50_ms"] for k in ("featctl -O", "pandas-mode -O", "plain lookup -O"))
        opt_ratio = fo / po
        rows.append(row("with PYTHONOPTIMIZE=1 on all servers: featctl p50", fo, "ms", baseline=f"pandas-mode {po}",
                        ratio=round(fo / po, 3), target="<= 0.35x pandas-mode p50", met=fo / po <= 0.35))
        rows.append(row("with PYTHONOPTIMIZE=1 on all servers: featctl p50", fo, "ms", baseline=f"plain lookup {lo}",
                        ratio=round(fo / lo, 3), target="<= 1.5x plain-lookup p50", met=fo / lo <= 1.5))
    if tuning:
        notes.append(f"Tuning rows: each setting is measured in {TUNE_ROUNDS} interleaved rounds against a "
                     f"reference in the same time window ({n_tune_total(tune_n)} sequential requests and "
                     f"{tune_secs:g} s of 8 clients per arm, pooled); ratio = setting p50 / reference p50. Servers "
                     "are started on the featctl deployment's host repo with the host's Feast env (`feast serve`); "
                     "the reference is the deployed server.")
        rec = recommendation(by_setting)
        if rec:
            notes.append(rec)
    notes += [f"Cleanup problem: {x}" for x in LEAKS]
    limits = []
    if r_pandas > 0.35 and sdk:
        http_py = f["seq"]["p50_ms"] - sdk["featctl"][0]
        http_plain = pl["seq"]["p50_ms"] - sdk["plain"][0]
        limits.append(
            f"what limits it (featctl vs pandas-mode p50 {r_pandas:.2f}x > 0.35x): the feature server's fixed "
            f"per-request cost. In process the python-mode request costs {sdk['featctl'][0]:.2f} ms vs "
            f"{sdk['pandas'][0]:.2f} ms in pandas mode ({sdk['featctl'][0] / sdk['pandas'][0]:.2f}x) and "
            f"{sdk['plain'][0]:.2f} ms for the plain lookup, but over HTTP Feast's server adds about "
            f"{http_py:.2f} ms (featctl) / {http_plain:.2f} ms (plain) on every request (FastAPI/pydantic request "
            f"parsing, two thread-pool hops, proto-to-JSON, uvicorn), so the end-to-end ratio cannot go below "
            f"about (plain-lookup p50)/(pandas p50) = {pl['seq']['p50_ms'] / p['seq']['p50_ms']:.2f}x. None of "
            "the server flags tried (workers, registry TTL, access log, keep-alive) removes that fixed cost"
            + (f"; PYTHONOPTIMIZE=1 (typeguard off) brings the ratio to {opt_ratio:.2f}x." if opt_ratio else "."))
    elif r_pandas > 0.35:
        limits.append(f"what limits it: featctl/pandas p50 = {r_pandas:.2f}x (> 0.35x); run without --quick for "
                      "the in-process breakdown.")
    if r_plain > 1.5:
        limits.append(f"what limits it (featctl vs plain {r_plain:.2f}x > 1.5x): the on-demand transformation's "
                      "own cost in Feast's python path.")
    write_result(NAME, "Item 1 - weighted score through the feature server", rows, notes, order=10, limits=limits,
                 extra={"results": res, "tuning": tuning, "singleton": singleton, "sdk_ms": sdk,
                        "cli_score_walls_s": cli_walls},
                 quick=args.quick, started=started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
