#!/usr/bin/env python3
"""The benchmarks' one driver-data generator, their pandas references and the result comparison.

Runs in the Feast environment's python (numpy/pandas), as a worker of the harness
(``_common.worker``)::

    .venv-feast/bin/python bench/_data.py --worker generate OUT DRIVERS ROWS_PER_DRIVER ENTITY_ROWS SEED [HOURS_BACK]
    .venv-feast/bin/python bench/_data.py --worker entities SOURCE.parquet OUT.parquet ROWS SEED
    .venv-feast/bin/python bench/_data.py --worker compare SOURCE.parquet ENTITIES.parquet '{"name": "out.parquet"}' [score]
    .venv-feast/bin/python bench/_data.py --worker score-reference SOURCE.parquet ENTITIES.parquet OUT.parquet
    .venv-feast/bin/python bench/_data.py --worker online SOURCE.parquet '{"name": port}' SAMPLE CHUNK
    PYTHONPATH=<agent copy> <postgres env python> bench/_data.py --worker pg-load RELEASE

Source rows have the schema of feature_repo's data/driver_stats.parquet (and the
productivity file derived from it). Entity rows carry per-row weights
(conv_rate_coef, acc_rate_coef) and repeat some earlier (driver_id,
event_timestamp) with other weights; their times are mostly inside the data,
some before it or past the views' TTLs (nulls).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

#: The views the historical benches ask for: view -> (features, TTL); plus the on-demand view.
VIEWS = {"driver_hourly_stats": (["avg_daily_trips"], "1D"), "driver_quality_metrics": (["conv_rate", "acc_rate"], "2D")}
ODFV = "driver_activity_rates_linear_combination_fv"
FEATURES = [f"{v}:{f}" for v, (fs, _) in VIEWS.items() for f in fs] + [f"{ODFV}:linear_combination"]
VALUE_COLS = ["avg_daily_trips", "conv_rate", "acc_rate", "linear_combination"]
KEY_COLS = ["driver_id", "event_timestamp", "conv_rate_coef", "acc_rate_coef"]
DUP_FRACTION = 0.15


def source_frame(drivers: int, rows_per_driver: int, seed: int, hours_back: int | None = None) -> Any:
    """drivers x rows_per_driver hourly rows ending at the current hour; with ``hours_back`` every
    driver's rows are shifted back by a random 0..hours_back-1 hours (one row each: spread out)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    now = pd.Timestamp.now(tz="UTC")
    end = now.floor("h")
    n = drivers * rows_per_driver
    hours = np.tile(np.arange(rows_per_driver - 1, -1, -1), drivers)
    if hours_back:
        hours = hours + np.repeat(rng.integers(0, hours_back, drivers), rows_per_driver)
    df = pd.DataFrame({
        "event_timestamp": (end - pd.to_timedelta(hours, unit="h")).astype("datetime64[ns, UTC]"),
        "driver_id": np.repeat(np.arange(1, drivers + 1, dtype=np.int64), rows_per_driver),
        "conv_rate": rng.random(n, dtype=np.float32),
        "acc_rate": rng.random(n, dtype=np.float32),
        "avg_daily_trips": rng.integers(1, 1000, size=n, endpoint=True, dtype=np.int32),
    })
    df["created"] = pd.Series([now.as_unit("us")] * n, dtype="datetime64[us, UTC]")
    return df


def entity_frame(source: Any, rows: int, seed: int, dup_fraction: float = DUP_FRACTION) -> Any:
    """Entity rows over the source's drivers: 80 % of the times from 2 h before the bulk of the data
    (its 1st percentile) to 2 h after its end, 20 % up to 3 days later (past both TTLs)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed + 1)
    ts = source["event_timestamp"]
    lo = ts.quantile(0.01) - pd.Timedelta(hours=2)
    near = int((ts.max() - lo).total_seconds()) + 2 * 3600
    far = near + 3 * 86400
    n_dup = int(rows * dup_fraction)
    n_base = rows - n_dup
    offs = np.where(rng.random(n_base) < 0.8, rng.integers(0, near, n_base), rng.integers(0, far, n_base))
    ids = source["driver_id"].unique()
    base = pd.DataFrame({"driver_id": rng.choice(ids, n_base).astype(np.int64),
                         "event_timestamp": lo + pd.to_timedelta(offs, unit="s")})
    ents = pd.concat([base, base.iloc[rng.integers(0, n_base, n_dup)]], ignore_index=True)
    ents = ents.iloc[rng.permutation(len(ents))].reset_index(drop=True)
    ents["event_timestamp"] = ents["event_timestamp"].astype("datetime64[ns, UTC]")
    ents["conv_rate_coef"] = rng.random(len(ents))
    ents["acc_rate_coef"] = rng.random(len(ents))
    return ents


def write_sources(out: Path, df: Any) -> None:
    out.mkdir(parents=True, exist_ok=True)
    df.to_parquet(out / "driver_stats.parquet", index=False)
    prod = df.copy()
    prod["productivity"] = (prod["conv_rate"] * prod["acc_rate"] * prod["avg_daily_trips"]).astype("float64")
    prod.to_parquet(out / "driver_stats_with_productivity.parquet", index=False)


def describe_entities(ents: Any) -> dict[str, Any]:
    repeated = int(ents.duplicated(subset=["driver_id", "event_timestamp"]).sum())
    return {"entity_rows": len(ents), "repeated_entity_rows": repeated, "unique_entity_keys": len(ents) - repeated}


def generate(out_dir: str, drivers: int, rows_per_driver: int, entity_rows: int, seed: int,
             hours_back: int | None = None) -> dict[str, Any]:
    out = Path(out_dir)
    df = source_frame(drivers, rows_per_driver, seed, hours_back)
    write_sources(out, df)
    doc = {"drivers": drivers, "rows_per_driver": rows_per_driver, "source_rows": len(df), "seed": seed,
           "first_ts": str(df["event_timestamp"].min()), "last_ts": str(df["event_timestamp"].max())}
    if entity_rows:
        ents = entity_frame(df, entity_rows, seed)
        ents.to_parquet(out / "entities.parquet", index=False)
        doc.update(describe_entities(ents))
    return doc


def entities(source: str, out: str, rows: int, seed: int) -> dict[str, Any]:
    import pandas as pd

    src = pd.read_parquet(source)
    ents = entity_frame(src, rows, seed)
    ents.to_parquet(out, index=False)
    return {"source_rows": len(src), "drivers": int(src["driver_id"].nunique()), **describe_entities(ents)}


def reference(source: str, ents: Any, views: dict[str, tuple[list[str], str]] = VIEWS) -> Any:
    """Point-in-time values with pandas.merge_asof per view (backward, within the TTL, the newest
    `created` among equal event times), one row per entity row in input order."""
    import pandas as pd

    src = pd.read_parquet(source)
    out = ents.copy()
    out["__row"] = range(len(out))
    out = out.sort_values("event_timestamp", kind="stable")
    right = src.sort_values(["event_timestamp", "created"], kind="stable")
    for cols, ttl in views.values():
        out = pd.merge_asof(out, right[["event_timestamp", "driver_id", *cols]], on="event_timestamp", by="driver_id",
                            direction="backward", tolerance=pd.Timedelta(ttl), allow_exact_matches=True)
    out = out.sort_values("__row").drop(columns=["__row"]).reset_index(drop=True)
    if {"conv_rate", "acc_rate", "conv_rate_coef"} <= set(out.columns):
        out["linear_combination"] = out["conv_rate_coef"] * out["conv_rate"].astype("float64") + \
            out["acc_rate_coef"] * out["acc_rate"].astype("float64")
    return out


def diff(a: Any, b: Any, cols: list[str] = VALUE_COLS) -> dict[str, Any]:
    """Two results row by row in input order: key mismatches, and per value column the cells that
    differ (beyond 1e-6 relative / 1e-9 absolute; null = null) and the largest difference."""
    import numpy as np
    import pandas as pd

    res: dict[str, Any] = {"rows": [len(a), len(b)]}
    if len(a) != len(b):
        res.update(equal=False, mismatched_cells="row counts differ")
        return res
    bad = 0
    for k in KEY_COLS:
        if k not in a.columns or k not in b.columns:
            continue
        x, y = a[k], b[k]
        if k == "event_timestamp":
            x, y = pd.to_datetime(x, utc=True), pd.to_datetime(y, utc=True)
        n = int((x.to_numpy() != y.to_numpy()).sum())
        if n:
            res[f"{k}_mismatch"] = n
            bad += n
    res["columns"] = {}
    for c in cols:
        if c not in a.columns or c not in b.columns:
            res["columns"][c] = "missing"
            bad += len(a)
            continue
        x, y = a[c].astype("float64").to_numpy(), b[c].astype("float64").to_numpy()
        nx, ny = np.isnan(x), np.isnan(y)
        both = ~nx & ~ny
        close = np.isclose(x, y, rtol=1e-6, atol=1e-9) | (nx & ny)
        n = int((~close).sum())
        res["columns"][c] = {"mismatched": n, "null_mismatches": int((nx != ny).sum()),
                             "max_abs_diff": float(np.max(np.abs(x[both] - y[both]))) if both.any() else 0.0,
                             "nulls": [int(nx.sum()), int(ny.sum())]}
        bad += n
    res.update(mismatched_cells=bad, equal=bad == 0)
    return res


#: What `featctl score` returns: driver_quality_metrics' features and the weighted sum.
SCORE_VIEWS = {"driver_quality_metrics": VIEWS["driver_quality_metrics"]}
SCORE_COLS = ["conv_rate", "acc_rate", "linear_combination"]


def compare(source: str, entities_path: str, outputs_json: str, kind: str = "historical") -> dict[str, Any]:
    """Every output against the merge_asof reference and against each other (``kind`` score:
    the columns `featctl score` returns)."""
    import pandas as pd

    views, cols = (SCORE_VIEWS, SCORE_COLS) if kind == "score" else (VIEWS, VALUE_COLS)
    ents = pd.read_parquet(entities_path)
    ref = reference(source, ents, views)
    frames = {name: pd.read_parquet(path) for name, path in json.loads(outputs_json).items()}
    report: dict[str, Any] = {"entity_rows": len(ents), "reference_nulls": {c: int(ref[c].isna().sum())
                                                                             for c in cols}}
    names = list(frames)
    for i, name in enumerate(names):
        report[f"{name} vs reference"] = diff(frames[name], ref, cols)
        for other in names[i + 1:]:
            report[f"{name} vs {other}"] = diff(frames[name], frames[other], cols)
    return report


def score_reference(source: str, entities_path: str, out: str) -> dict[str, Any]:
    """What a data scientist writes for batch scoring: merge_asof within driver_quality_metrics' TTL,
    then the weighted sum. Timed inside (the harness times the whole process too)."""
    import pandas as pd

    t0 = time.perf_counter()
    ents = pd.read_parquet(entities_path)
    res = reference(source, ents, SCORE_VIEWS)
    res.to_parquet(out, index=False)
    return {"rows": len(res), "seconds_in_process": time.perf_counter() - t0}


def online(source: str, ports_json: str, sample: int, chunk: int, seed: int = 20261127) -> dict[str, Any]:
    """Read drivers back from each feature server (by name) and compare with the newest source row."""
    import urllib.request

    import numpy as np
    import pandas as pd

    src = pd.read_parquet(source).sort_values(["event_timestamp", "created"]).groupby("driver_id").tail(1)
    src = src.set_index("driver_id")
    ids = np.sort(src.index.to_numpy())
    if 0 < sample < len(ids):
        ids = np.sort(np.random.default_rng(seed).choice(ids, sample, replace=False))
    feats = ["conv_rate", "acc_rate", "avg_daily_trips"]
    out: dict[str, Any] = {"drivers_checked": int(len(ids))}
    for name, port in json.loads(ports_json).items():
        t0 = time.perf_counter()
        good = bad = 0
        statuses: dict[str, int] = {}
        for i in range(0, len(ids), chunk):
            part = [int(x) for x in ids[i:i + chunk]]
            body = json.dumps({"features": [f"driver_hourly_stats:{f}" for f in feats],
                               "entities": {"driver_id": part}}).encode()
            req = urllib.request.Request(f"http://127.0.0.1:{port}/get-online-features", data=body,
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=600) as resp:
                doc = json.loads(resp.read())
            cols = dict(zip(doc["metadata"]["feature_names"], doc["results"]))
            ok = np.ones(len(part), dtype=bool)
            for f in feats:
                st = cols[f]["statuses"]
                for s in st:
                    statuses[s] = statuses.get(s, 0) + 1
                got = np.array([np.nan if v is None else float(v) for v in cols[f]["values"]])
                exp = src.loc[part, f].to_numpy().astype("float64")
                ok &= np.array([s == "PRESENT" for s in st]) & np.isclose(got, exp, rtol=0, atol=1e-9)
            good += int(ok.sum())
            bad += int((~ok).sum())
        out[name] = {"drivers_ok": good, "drivers_bad": bad, "statuses": statuses,
                     "seconds": round(time.perf_counter() - t0, 2)}
    return out


def pg_load(release: str, batch_rows: int = 200_000) -> dict[str, Any]:
    """The release's tables loaded as the agent's load-postgres does (same CREATE TABLE types, same
    values), but one record batch at a time: for sizes whose whole-file load does not fit in memory.
    Run with the release's Feast environment and featctl_agent on the path (its package loads the
    host's FEATCTL_* variables)."""
    import featctl_agent  # noqa: F401  (loads FEATCTL_ENV_FILE)
    import pyarrow as pa
    import pyarrow.parquet as pq
    from feast.type_map import arrow_to_pg_type
    from featctl_agent.stores import TABLES_FILE, _pg_connect

    tables = json.loads((Path(release) / TABLES_FILE).read_text())
    done = {}
    with _pg_connect() as conn:
        for table, rel in sorted(tables.items()):
            t0 = time.perf_counter()
            pf = pq.ParquetFile(Path(release) / rel)
            types = {f.name: "text" if pa.types.is_null(f.type) else arrow_to_pg_type(str(f.type))
                     for f in pf.schema_arrow}
            if any(t == "jsonb" or t.endswith("[]") for t in types.values()):
                raise SystemExit(f"{rel}: maps/lists are not handled by the bench's batch loader")
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
            conn.execute(f'CREATE TABLE "{table}" ({", ".join(f"{chr(34)}{c}{chr(34)} {t}" for c, t in types.items())})')
            columns = ", ".join(f'"{c}"' for c in types)
            n = 0
            with conn.cursor().copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy:
                for batch in pf.iter_batches(batch_size=batch_rows):
                    frame = batch.to_pandas()
                    for row in frame.astype(object).where(frame.notna(), None).itertuples(index=False, name=None):
                        copy.write_row(row)
                    n += len(frame)
            conn.execute(f'ANALYZE "{table}"')
            conn.commit()
            done[table] = {"rows": n, "seconds": round(time.perf_counter() - t0, 1)}
    return done


def main(argv: list[str]) -> int:
    kind, args = argv[0], argv[1:]
    if kind == "generate":
        doc = generate(args[0], *(int(a) for a in args[1:5]), int(args[5]) if len(args) > 5 else None)
    elif kind == "entities":
        doc = entities(args[0], args[1], int(args[2]), int(args[3]))
    elif kind == "compare":
        doc = compare(*args[:4])
    elif kind == "score-reference":
        doc = score_reference(args[0], args[1], args[2])
    elif kind == "pg-load":
        doc = pg_load(args[0])
    elif kind == "online":
        doc = online(args[0], args[1], int(args[2]), int(args[3]))
    else:
        raise SystemExit(f"unknown worker {kind}")
    print("RESULT " + json.dumps(doc, default=str))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["--worker"]:
        raise SystemExit(__doc__)
    sys.exit(main(sys.argv[2:]))
