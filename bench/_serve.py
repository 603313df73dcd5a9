"""Item 1's pieces: the variants (pandas-mode and singleton rewrites of the on-demand view),
one measurement (sequential + 8-client) of a variant, the in-process SDK breakdown, the
end-to-end `featctl score` timing, and the recommendation drawn from the tuning sweep."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

from _common import FEATCTL, percentile, run, timed_run
from _load import build_request, concurrent, request_once, sequential

NAME = "serve_latency"
ODFV = "driver_activity_rates_linear_combination_fv"
SCORE_FEATURES = [
    "driver_quality_metrics:conv_rate",
    "driver_quality_metrics:acc_rate",
    f"{ODFV}:linear_combination",
]
PLAIN_FEATURES = SCORE_FEATURES[:2]
ENTITIES = {"driver_id": [1001, 1002], "conv_rate_coef": [0.7, 0.7], "acc_rate_coef": [0.3, 0.3]}
# featctl's server flags (src/featctl/remote/host.py server_command), minus host/port
FEATCTL_FLAGS = ["--workers", "1", "--no-access-log", "--max-requests", "0", "--max-requests-jitter", "0",
                 "--registry_ttl_sec", "5"]

TUNE_ROUNDS = 3
OPT_LABEL = "PYTHONOPTIMIZE=1 (python -O: Feast's typeguard checks off) on all three variants"

PANDAS_UDF = '''\
@on_demand_feature_view(
    sources=[driver_quality_metrics, linear_coefficients],
    schema=[Field(name="linear_combination", dtype=Float64)],
    mode="pandas",
    description="conv_rate_coef * conv_rate + acc_rate_coef * acc_rate",
    tags=DRIVER_STATE_TAGS,
)
def driver_activity_rates_linear_combination_fv(inputs: pd.DataFrame) -> pd.DataFrame:
    df = pd.DataFrame()
    df["linear_combination"] = (
        inputs["conv_rate_coef"] * inputs["conv_rate"] + inputs["acc_rate_coef"] * inputs["acc_rate"]
    )
    return df


'''


def to_pandas_mode(repo: Path) -> None:
    """Rewrite the repo's on-demand view to mode="pandas" (same view, feature and service names)."""
    path = repo / "features.py"
    src = path.read_text()
    start = src.index("@on_demand_feature_view(")
    end = src.index("driver_activity_rates_linear_combination = FeatureService(")
    src = src[:start] + PANDAS_UDF + src[end:]
    src = src.replace("from datetime import timedelta\n", "from datetime import timedelta\n\nimport pandas as pd\n", 1)
    path.write_text(src)


def to_singleton(repo: Path) -> None:
    """Same python-mode UDF (it accepts a row of scalars too), singleton=True."""
    path = repo / "features.py"
    src = path.read_text()
    new, n = re.subn(r"^(\s+)singleton=False,", r"\1singleton=True,", src, flags=re.M)
    if n != 1:
        raise RuntimeError("features.py: expected exactly one singleton=False")
    path.write_text(new)


def ms(x: float) -> float:
    return round(x * 1000.0, 3)


def summarize(latencies: list[float]) -> dict[str, float]:
    return {"p50_ms": ms(percentile(latencies, 50)), "p99_ms": ms(percentile(latencies, 99)),
            "n": len(latencies)}


def score_values(port: int, features: list[str]) -> dict[str, list[Any]]:
    status, body = request_once(port, build_request(port, "/get-online-features",
                                                    {"features": features, "entities": ENTITIES}))
    if status != 200:
        raise RuntimeError(f"HTTP {status}: {body[:300]!r}")
    doc = json.loads(body)
    names = doc["metadata"]["feature_names"]
    return {n: r["values"] for n, r in zip(names, doc["results"])}


def measure(port: int, features: list[str], *, n: int, seconds: float, keep_alive: bool = True,
            clients: int = 8) -> dict[str, Any]:
    req = build_request(port, "/get-online-features", {"features": features, "entities": ENTITIES},
                        keep_alive=keep_alive)
    seq = sequential(port, req, n, warmup=min(200, max(20, n // 10)), keep_alive=keep_alive)
    out: dict[str, Any] = {"seq": summarize(seq.latencies), "seq_errors": seq.errors,
                           "seq_first_error": seq.first_error, "seq_lat": seq.latencies}
    if seconds > 0:
        con = concurrent(port, build_request(port, "/get-online-features",
                                             {"features": features, "entities": ENTITIES}),
                         clients=clients, seconds=seconds, warmup_seconds=1.0)
        out.update(conc=summarize(con.latencies), rps=round(con.rps, 1), conc_errors=con.errors,
                   conc_first_error=con.first_error, conc_lat=con.latencies, conc_seconds=con.seconds)
    return out


def sdk_breakdown(repo_python: Path, repo: Path, pandas_repo: Path, n: int) -> dict[str, Any]:
    """In-process FeatureStore.get_online_features cost (no HTTP) for each variant."""
    script = textwrap.dedent(f"""
        import json, sys, time, warnings
        warnings.filterwarnings("ignore")
        from feast import FeatureStore
        rows = [{{"driver_id": 1001, "conv_rate_coef": 0.7, "acc_rate_coef": 0.3}},
                {{"driver_id": 1002, "conv_rate_coef": 0.7, "acc_rate_coef": 0.3}}]
        def bench(store, feats, n={n}):
            for _ in range(50):
                store.get_online_features(features=feats, entity_rows=rows).to_dict()
            lat = []
            for _ in range(n):
                t = time.perf_counter()
                store.get_online_features(features=feats, entity_rows=rows).proto
                lat.append(time.perf_counter() - t)
            lat.sort()
            return lat[len(lat) // 2] * 1000, lat[int(len(lat) * 0.99)] * 1000
        py = FeatureStore(repo_path={str(repo)!r})
        pd_ = FeatureStore(repo_path={str(pandas_repo)!r})
        out = {{}}
        for _ in range(2):  # interleave
            for name, store, feats in (("featctl", py, {SCORE_FEATURES!r}), ("pandas", pd_, {SCORE_FEATURES!r}),
                                       ("plain", py, {PLAIN_FEATURES!r})):
                out.setdefault(name, []).append(bench(store, feats))
        print(json.dumps({{k: [min(x[0] for x in v), min(x[1] for x in v)] for k, v in out.items()}}))
    """)
    proc = run([repo_python, "-c", script], timeout=300)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cli_score_wall(workdir: Path, runs: int) -> list[float]:
    """End-to-end `featctl score` (new process, SSH connect, tunnelled request) wall times."""
    cmd = [str(FEATCTL), "score", "--weights", "conv_rate=0.7,acc_rate=0.3", "--driver", "1001", "--driver", "1002",
           "--output", "json"]
    return [timed_run(cmd, cwd=workdir, timeout=120, check=True, rss=False)["wall_s"] for _ in range(runs)]


def n_tune_total(tune_n: int) -> int:
    return max(100, tune_n // TUNE_ROUNDS) * TUNE_ROUNDS


def _cmp(x: float, y: float, tol: float = 0.07) -> str:
    r = x / y if y else float("nan")
    return "about the same" if abs(r - 1) <= tol else (f"{r:.2f}x")


def recommendation(by: dict[str, dict[str, dict[str, Any]]]) -> str:
    """One paragraph for the lead, from the interleaved tuning sweep."""
    parts = []
    ref = "featctl as deployed"
    w2 = by.get("workers 2")
    if w2 and w2[ref].get("rps") and w2["workers 2"].get("rps"):
        a, b = w2["workers 2"], w2[ref]
        parts.append(f"set server_workers to the host's core count (`--workers 2` here): 8-client throughput "
                     f"{a['rps']:.0f} vs {b['rps']:.0f} req/s ({a['rps'] / b['rps']:.2f}x), 8-client p50/p99 "
                     f"{a['conc']['p50_ms']:.1f}/{a['conc']['p99_ms']:.1f} vs {b['conc']['p50_ms']:.1f}/"
                     f"{b['conc']['p99_ms']:.1f} ms, sequential p50 {_cmp(a['seq']['p50_ms'], b['seq']['p50_ms'])} "
                     f"({a['seq']['p50_ms']:.2f} vs {b['seq']['p50_ms']:.2f} ms); one more ~200 MiB worker")
    d = next((v for k, v in by.items() if k.startswith("Feast defaults")), None)
    if d:
        a = next(v for k, v in d.items() if k != ref)
        parts.append(f"keep `--max-requests 0 --max-requests-jitter 0` (Feast's default recycles the worker every "
                     f"~1000 requests: {a['errors']} failed/reset requests in this short run; throughput "
                     f"{a.get('rps') or 0:.0f} vs {d[ref].get('rps') or 0:.0f} req/s)")
    acc = by.get("access log on")
    if acc:
        a, b = acc["access log on"], acc[ref]
        parts.append(f"keep `--no-access-log` (with it: sequential p50 {_cmp(a['seq']['p50_ms'], b['seq']['p50_ms'])}"
                     f", throughput {a.get('rps') or 0:.0f} vs {b.get('rps') or 0:.0f} req/s)")
    ka = by.get("keep-alive off (a new TCP connection per request)")
    if ka:
        a, b = ka["new connection each"], ka["keep-alive"]
        parts.append(f"keep connections alive in featctl's client/tunnel (a new TCP connection per request: p50 "
                     f"{a['seq']['p50_ms']:.2f} vs {b['seq']['p50_ms']:.2f} ms)")
    ttl = by.get("registry_ttl_sec 60 vs 5")
    if ttl:
        a, b = ttl["registry_ttl_sec 60"], ttl["registry_ttl_sec 5"]
        parts.append(f"registry_ttl_sec: 60 vs 5 s gives p50 {a['seq']['p50_ms']:.2f} vs {b['seq']['p50_ms']:.2f} ms "
                     f"and p99 {a['seq']['p99_ms']:.2f} vs {b['seq']['p99_ms']:.2f} ms "
                     f"({_cmp(a['seq']['p50_ms'], b['seq']['p50_ms'])} at p50): pick it for freshness, not speed")
    o = by.get(OPT_LABEL)
    if o:
        r = o["featctl -O"]["seq"]["p50_ms"] / o["pandas-mode -O"]["seq"]["p50_ms"]
        parts.append(f"PYTHONOPTIMIZE=1 does not reach the target either ({r:.2f}x pandas-mode) and strips asserts: "
                     "not recommended")
    parts.append("keep the on-demand view in python mode with singleton=False (singleton=True loses rows, above)")
    return "Recommendation for featctl's server: " + "; ".join(parts) + "."
