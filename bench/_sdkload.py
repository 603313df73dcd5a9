#!/usr/bin/env python3
"""Feast's own SDK as an application calls it, open-loop at a fixed rate: each
call starts at its scheduled time on a thread pool (one FeatureStore, as a
service holds one), latency from the scheduled start. Run with a Python that
has Feast (the Feast environment)::

    python bench/_sdkload.py REPO FEATURES_JSON ENTITY_ROWS_JSON --rate 50 --seconds 10 [--env FILE]

``--env``: a file of KEY=VALUE lines loaded first (a release's run/stores.env:
the store connections its feature_store.yaml names as ${FEATCTL_*}).
Prints ``RESULT {"results": [{"at", "latency", "status"}...]}``; status 200 for
an answer, 0 and the error otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("repo")
    ap.add_argument("features")
    ap.add_argument("rows")
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--env", default=None)
    args = ap.parse_args()
    if args.env:
        with open(args.env) as fh:
            lines = fh.read().splitlines()
        for line in lines:
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                os.environ[key.removeprefix("export ").strip()] = value.strip().strip("'\"")
    from feast import FeatureStore

    store = FeatureStore(repo_path=args.repo)
    features, rows = json.loads(args.features), json.loads(args.rows)

    def one(offset: float, due: float) -> dict:
        try:
            store.get_online_features(features=features, entity_rows=rows).to_dict()
            return {"at": offset, "latency": time.monotonic() - due, "status": 200}
        except Exception as exc:  # reported, not raised: a failure is a data point
            return {"at": offset, "latency": time.monotonic() - due, "status": 0, "error": repr(exc)[:200]}

    for _ in range(args.warmup):
        one(0.0, time.monotonic())
    n = int(args.rate * args.seconds)
    t0 = time.monotonic() + 0.05
    with ThreadPoolExecutor(max(4, int(args.rate // 10))) as pool:
        futures = []
        for i in range(n):
            due = t0 + i / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(one, due - t0, due))
        results = [f.result() for f in futures]
    print("RESULT " + json.dumps({"results": results}))


if __name__ == "__main__":
    main()
