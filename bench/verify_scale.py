#!/usr/bin/env python3
"""#23 item 1: `featctl verify --all` on 1,000,000 entities in Redis: time and peak memory.

A copy of feature_repo with 1M drivers (one source row each, seeded) and a
Redis online store (a redis-server this script starts on a free loopback port,
no persistence), applied and materialized for `driver_hourly_stats` with the
pinned Feast env. Then K drivers' online values are made wrong by hand (their
conv_rate replaced with another driver's, HSET on the Feast key), and featctl's
host agent verifies, as `featctl verify` runs it on a host:

* `verify --all` (wall time, the process's peak RSS): must report exactly the K
  drivers, each with the source's value as `offline`;
* `verify --sample 1000`;
* `verify --all --repair`, then `verify --all` again: 0 wrong.

The dev Feast env (.venv-feast) has no Redis client: Feast's `redis` extra
(redis, hiredis, as feast 0.67.0's metadata bounds them) is installed with uv
into the bench's own directory and put on PYTHONPATH, as a host's env has it.

The materialization of the same view is timed as the yardstick (verify does
the same offline read plus an online read).

    bench/verify_scale.py [--quick]      (--quick: 50,000 drivers)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import FEAST_PY, ROOT, TMP, agent_command, free_port, log, row, run, timed_run, write_result  # noqa: E402
from _deploy import copy_repo  # noqa: E402

VIEW = "driver_hourly_stats"
WRONG = 100
SEED = 23

CORRUPT = r"""
import json, sys, random
import redis
from feast import FeatureStore
from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import Value
repo, port, n, k, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
store = FeatureStore(repo_path=repo)
cfg = store.config
client = redis.Redis(host="127.0.0.1", port=port)
field = _mmh3(f"driver_hourly_stats:conv_rate")
def key(d):
    return _redis_key(cfg.project, EntityKey(join_keys=["driver_id"], entity_values=[Value(int64_val=d)]),
                      entity_key_serialization_version=cfg.entity_key_serialization_version)
rng = random.Random(seed)
victims = rng.sample(range(1, n + 1), k)
out = []
for d in victims:
    donor = d % n + 1
    value = client.hget(key(donor), field)
    mine = client.hget(key(d), field)
    assert value is not None and mine is not None and value != mine, (d, donor)
    client.hset(key(d), field, value)
    out.append(d)
print("RESULT " + json.dumps(sorted(out)))
"""


EXTRA = TMP / "redis-extra"


def redis_extra() -> dict[str, str]:
    """PYTHONPATH entry with Feast's redis extra for the Feast env's processes."""
    if not (EXTRA / "redis").is_dir():
        run([ROOT / ".venv" / "bin" / "uv", "pip", "install", "--quiet", "--python", FEAST_PY, "--target", EXTRA,
             "redis>=4.2.2,<8", "hiredis>=2.0.0,<4"], timeout=600)  # fmt: skip
    return {**os.environ, "PYTHONPATH": str(EXTRA)}


def agent(repo: Path, *args: str, timeout: float = 1800) -> tuple[dict, dict]:
    argv, env = agent_command()
    env["PYTHONPATH"] = f"{env['PYTHONPATH']}:{EXTRA}"
    t = timed_run([*argv, *args, "--repo", str(repo)], env=env, timeout=timeout)
    lines = t["stdout"].strip().splitlines()
    if not lines:
        raise RuntimeError(f"agent {args[0]} printed nothing: {t['stderr'][-2000:]}")
    doc = json.loads(lines[-1])
    if "error" in doc:
        raise RuntimeError(f"agent {args[0]} failed: {doc['error']}")
    return doc, t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    opts = ap.parse_args()
    started = time.monotonic()
    drivers = 50_000 if opts.quick else 1_000_000
    work = TMP / "verify_scale"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    repo = copy_repo(work / "repo")
    port = free_port()
    redis_dir = work / "redis"
    redis_dir.mkdir()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(redis_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
                break
            time.sleep(0.1)
        yaml = (repo / "feature_store.yaml").read_text()
        yaml = yaml.replace(
            "online_store:\n    type: sqlite\n    path: data/online_store.db",
            f'online_store:\n    type: redis\n    connection_string: "127.0.0.1:{port}"',
        )
        (repo / "feature_store.yaml").write_text(yaml)
        gen = (
            "import sys; sys.path.insert(0, sys.argv[1]); from _data import source_frame, write_sources; "
            "from pathlib import Path; write_sources(Path(sys.argv[2]), source_frame(int(sys.argv[3]), 1, int(sys.argv[4])))"
        )
        run([FEAST_PY, "-c", gen, str(Path(__file__).resolve().parent), str(repo / "data"), str(drivers), str(SEED)],
            timeout=600)  # fmt: skip
        extra_env = redis_extra()
        run([FEAST_PY, "-m", "feast.cli.cli", "--chdir", repo, "apply"], timeout=600, env=extra_env)
        _, mat_t = agent(repo, "materialize", "--views", VIEW)
        log(f"materialized {drivers} drivers in {mat_t['wall_s']:.1f} s (peak {mat_t['max_rss_mib']} MiB)")
        wrong_t = timed_run([FEAST_PY, "-c", CORRUPT, str(repo), str(port), str(drivers), str(WRONG), str(SEED)],
                            timeout=600, rss=False, env=extra_env)  # fmt: skip
        victims = json.loads([ln for ln in wrong_t["stdout"].splitlines() if ln.startswith("RESULT ")][-1][7:])

        full, full_t = agent(repo, "verify", "--views", VIEW)
        found = sorted({int(r["entity"].split("=")[1]) for r in full["rows"]})
        exact = found == victims and full["wrong"] == WRONG and full["checked"] == drivers
        log(f"verify --all: {full_t['wall_s']:.1f} s, {full['checked']} checked, {full['wrong']} wrong, exact={exact}")
        sample, sample_t = agent(repo, "verify", "--views", VIEW, "--sample", "1000", "--seed", "1")
        fix, fix_t = agent(repo, "verify", "--views", VIEW, "--repair")
        after, after_t = agent(repo, "verify", "--views", VIEW)
        rows = [
            row(f"verify --all, {drivers:,} entities in Redis: wall", round(full_t["wall_s"], 1), "s",
                baseline=round(mat_t["wall_s"], 1), ratio=round(full_t["wall_s"] / mat_t["wall_s"], 2),
                target="reported (baseline: materializing the same view)"),
            row("verify --all: peak RSS (the agent process)", full.get("peak_rss_mib"), "MiB",
                baseline=mat_t["max_rss_mib"] and round(mat_t["max_rss_mib"], 1),
                target="reported (baseline: the materialization's)"),
            row(f"verify --all found exactly the {WRONG} drivers made wrong", "yes" if exact else "no",
                target="exactly those", met=exact),
            row("verify --sample 1000: wall", round(sample_t["wall_s"], 1), "s", target="reported"),
            row("verify --all --repair: wall, repaired", f"{fix_t['wall_s']:.1f} s, {fix['repaired']}",
                target=f"{WRONG} repaired", met=fix["repaired"] == WRONG),
            row("verify --all after the repair: wrong", after["wrong"], target="0", met=after["wrong"] == 0),
        ]
        notes = [
            f"{drivers:,} drivers, one row each (bench/_data.py source_frame, seed {SEED}); Redis {port} on loopback, "
            "no persistence; only driver_hourly_stats (3 features) is materialized and verified.",
            f"materialize of the same view (the agent, Feast's local engine): {mat_t['wall_s']:.1f} s, "
            f"peak RSS {mat_t['max_rss_mib']} MiB (both include Feast's import, ~10 s here).",
            f"verify --all's own seconds (after Feast's import): {full['seconds']}; --sample 1000: {sample['seconds']} "
            "(the sample still reads the whole source: the saving is the online reads).",
            f"after the repair: {after_t['wall_s']:.1f} s, {after['checked']} checked.",
        ]
        write_result("verify_scale", "#23 featctl verify on 1M entities in Redis", rows, notes, order=60,
                     quick=opts.quick, started=started)  # fmt: skip
        return 0 if exact and after["wrong"] == 0 and fix["repaired"] == WRONG else 1
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
