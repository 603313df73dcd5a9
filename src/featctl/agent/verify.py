"""``featctl verify`` on the host: every online value against the offline data.

What a materialization of a view's whole recorded range would write is what
its online store must hold: Feast's own pipeline computes it (the view's
source read through the configured offline store, field mapping, the newest
row per entity by event time, then created time, then row order, the
conversion to protobuf values), so the as-of rules are Feast's and not a copy
of them. Instead of writing, each batch of rows Feast would write is read
back from the online store and compared value for value (protobuf equality:
the same bytes as a materialization writes).

- ``--sample N`` compares a uniform random sample of N entities per view
  (reservoir sampling over the batches); the default compares every entity.
  Either way the offline read is the one a full materialization makes, in
  batches of ``BATCH`` rows: memory is that of a materialization.
- An online row whose event time is past the view's last materialization
  arrived after it (a push, a write-to-online-store): the offline data up to
  that materialization says nothing about it, so it is counted as ``newer``
  and not compared, unless ``--include-newer``.
- ``--repair`` writes the offline row of exactly the entities found wrong and
  reads them back. Feast's Redis writer skips a row not newer than what it
  holds (the defect that kept a wrong value with an equal or newer timestamp
  for good), so a repair writes through it with ``skip_dedup``.
- A view never materialized has nothing online to compare: it is listed as
  skipped.

With ``--record FILE`` the summary is also written to FILE (the host's
``run/verify.json``, which ``featctl status`` shows).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import random
import time
from collections.abc import Iterator
from typing import Any

from .catalog import split_refs
from .materialize import feature_views
from .output import UTC, InputError, iso
from .registry import import_feast

BATCH = 10_000
#: Wrong rows listed in the answer at most (every one is counted and repaired).
MAX_ROWS = 10_000


def _aware(value: Any) -> Any:
    """``value`` (a datetime) in UTC, naive = UTC; None passes."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _same(expected: Any, got: Any) -> bool:
    """Protobuf ValueProto equality; NaN equals NaN (the same bytes)."""
    if got is None:
        return not expected.WhichOneof("val")
    return bool(expected == got) or expected.SerializeToString() == got.SerializeToString()


class _Checker:
    """Receives the batches a materialization would write and compares them."""

    def __init__(
        self, store: Any, write: Any, fv: Any, args: argparse.Namespace, until: _dt.datetime, rng: random.Random
    ):
        self.config = store.config
        self.fv = fv
        self.read = store._get_provider().online_store.online_read
        self.write = write  # the online store's own writer (its attribute is the checker meanwhile)
        self.features = [f.name for f in fv.features]
        self.sample = args.sample
        self.repair = args.repair
        self.include_newer = args.include_newer
        self.until = until
        self.rng = rng
        self.seen = 0
        self.reservoir: list[Any] = []
        self.checked = 0
        self.wrong = 0
        self.newer = 0
        self.repaired = 0
        self.rows: list[dict[str, Any]] = []

    def receive(self, config: Any, table: Any, data: list[Any], progress: Any = None) -> None:
        if not self.sample:
            self.compare(data)
            return
        for row in data:  # reservoir sampling: every entity equally likely
            self.seen += 1
            if len(self.reservoir) < self.sample:
                self.reservoir.append(row)
            else:
                j = self.rng.randrange(self.seen)
                if j < self.sample:
                    self.reservoir[j] = row

    def finish(self) -> None:
        if self.reservoir:
            self.compare(self.reservoir)
            self.reservoir = []

    def _wrong_rows(self, data: list[Any]) -> list[tuple[Any, Any, list[str]]]:
        """(row, online (ts, values) or None, wrong features) of each row that differs."""
        got = self.read(self.config, self.fv, [row[0] for row in data], requested_features=self.features)
        wrong: list[tuple[Any, Any, list[str]]] = []
        for row, (ts, values) in zip(data, got):
            expected = row[1]
            if values is None:
                wrong.append((row, None, list(expected)))
                continue
            bad = [f for f, v in expected.items() if not _same(v, values.get(f))]
            if not bad:
                continue
            online_ts = _aware(ts)
            if online_ts is not None and online_ts > self.until and not self.include_newer:
                self.newer += 1
                continue
            wrong.append((row, (online_ts, values), bad))
        return wrong

    def compare(self, data: list[Any]) -> None:
        self.checked += len(data)
        wrong = self._wrong_rows(data)
        if not wrong:
            return
        self.wrong += len(wrong)
        fixed = False
        if self.repair:
            self._rewrite([row for row, _, _ in wrong])
            still = self._wrong_rows([row for row, _, _ in wrong])
            if still:
                row, _, bad = still[0]
                raise RuntimeError(
                    f"{self.fv.name}: {_key_text(row[0])} still differs after the repair ({', '.join(bad)}): "
                    "the online store did not take the write"
                )
            self.repaired += len(wrong)
            fixed = True
        for row, online, bad in wrong:
            if len(self.rows) >= MAX_ROWS:
                break
            for feature in bad:
                self.rows.append(
                    {
                        "view": self.fv.name,
                        "entity": _key_text(row[0]),
                        "feature": feature,
                        "online": _py(online[1].get(feature)) if online else None,
                        "offline": _py(row[1][feature]),
                        "online_ts": iso(online[0]) if online else None,
                        "offline_ts": iso(row[2]),
                        "problem": "missing" if online is None else "differs",
                        "repaired": fixed,
                    }
                )

    def _rewrite(self, rows: list[Any]) -> None:
        store_config = self.config.online_store
        skip = getattr(store_config, "skip_dedup", None)
        if skip is not None:  # Redis: write over an equal or newer timestamp too
            store_config.skip_dedup = True
        try:
            for i in range(0, len(rows), BATCH):
                self.write(self.config, self.fv, rows[i : i + BATCH], progress=None)
        finally:
            if skip is not None:
                store_config.skip_dedup = skip


def _py(value: Any) -> Any:
    if value is None or not value.WhichOneof("val"):
        return None
    from feast.type_map import feast_value_type_to_python_type

    out = feast_value_type_to_python_type(value)
    if isinstance(out, _dt.datetime):
        return iso(out)
    if isinstance(out, (bytes, bytearray)):
        return out.hex()
    if hasattr(out, "tolist"):
        out = out.tolist()
    if isinstance(out, dict):
        return json.loads(json.dumps(out, default=str))
    if isinstance(out, (list, tuple)):
        return [iso(v) if isinstance(v, _dt.datetime) else v for v in out]
    return out


def _key_text(key: Any) -> str:
    return ",".join(f"{k}={_py(v)}" for k, v in zip(key.join_keys, key.entity_values))


def _local_engine(provider: Any, config: Any) -> None:
    """Verify reads through the local compute engine whatever materializes:
    Spark's engine writes from its executors, where the checker cannot look."""
    engine = getattr(config, "batch_engine_config", "local")
    if (engine if isinstance(engine, str) else dict(engine).get("type")) == "local":
        return
    from feast.infra.compute_engines.local.compute import LocalComputeEngine

    provider._batch_engine = LocalComputeEngine(
        repo_config=config, offline_store=provider.offline_store, online_store=provider.online_store
    )


def verify(args: argparse.Namespace) -> dict[str, Any]:
    if args.sample is not None and args.sample < 1:
        raise InputError("--sample must be at least 1")
    requested = split_refs(args.views)
    import_feast()
    from feast import FeatureStore

    store = FeatureStore(repo_path=args.repo)
    online = {n: fv for n, fv in feature_views(store).items() if fv.online and fv.features}
    unknown = [v for v in requested if v not in online]
    if unknown:
        raise InputError(
            f"not an online feature view: {', '.join(unknown)} (online views: {', '.join(sorted(online)) or 'none'})"
        )
    names = requested or sorted(online)
    provider = store._get_provider()
    config = store.config
    _local_engine(provider, config)
    config.materialization_config.online_write_batch_size = BATCH
    rng = random.Random(args.seed)
    started = time.monotonic()
    summary: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    real_write = provider.online_store.online_write_batch
    for name in names:
        fv = online[name]
        intervals = list(fv.materialization_intervals)
        if not intervals:
            summary.append(
                {"view": name, "checked": 0, "wrong": 0, "repaired": 0, "newer": 0, "skipped": "never materialized"}
            )
            continue
        start = min(_aware(s) for s, _ in intervals)
        until = max(_aware(e) for _, e in intervals)
        checker = _Checker(store, real_write, fv, args, until, rng)
        with _intercepted(provider, checker.receive):
            provider.materialize_single_feature_view(
                config, fv, start, until, store.registry, store.project, tqdm_builder=_quiet_tqdm
            )
        checker.finish()
        rows += checker.rows[: max(0, MAX_ROWS - len(rows))]
        summary.append(
            {
                "view": name,
                "checked": checker.checked,
                "wrong": checker.wrong,
                "repaired": checker.repaired,
                "newer": checker.newer,
                "through": iso(until),
            }
        )
    doc = {
        "when": iso(_dt.datetime.now(UTC)),
        "seconds": round(time.monotonic() - started, 3),
        "mode": f"sample {args.sample}" if args.sample else "all",
        "release": _release(args.repo),
        "repair": bool(args.repair),
        "views": summary,
        "checked": sum(v["checked"] for v in summary),
        "wrong": sum(v["wrong"] for v in summary),
        "repaired": sum(v["repaired"] for v in summary),
        "newer": sum(v["newer"] for v in summary),
        "rows": rows,
    }
    import resource

    doc["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB
    return doc


@contextlib.contextmanager
def _intercepted(provider: Any, receive: Any) -> Iterator[None]:
    """The online store's writes go to ``receive`` meanwhile, and the offline
    store's are dropped (a view with offline=True has its materialized rows
    written back to the offline store: verify writes nothing there)."""
    provider.online_store.online_write_batch = receive
    provider.offline_store.offline_write_batch = _no_offline_write
    try:
        yield
    finally:
        del provider.online_store.online_write_batch  # the class's method again
        del provider.offline_store.offline_write_batch


def _no_offline_write(*args: Any, **kwargs: Any) -> None:
    return None


def _quiet_tqdm(total: int) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, disable=True)


def _release(repo: str) -> str:
    """The release whose repository a verify compared (a new release voids its record)."""
    return os.path.basename(os.path.realpath(repo))


def record(path: str, doc: dict[str, Any]) -> None:
    """The summary (no rows) in ``path``, whole or not at all. Not common.write:
    the schedule's verify and a user's may write at once, so the temporary
    file is per process."""
    brief = {k: v for k, v in doc.items() if k != "rows"}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(brief, fh, sort_keys=True)
    os.replace(tmp, path)


def cmd_verify(args: argparse.Namespace) -> dict[str, Any]:
    try:
        doc = verify(args)
    except InputError:
        raise
    except Exception as exc:
        if args.record:
            record(
                args.record,
                {
                    "when": iso(_dt.datetime.now(UTC)),
                    "release": _release(args.repo),
                    "error": f"{type(exc).__name__}: {exc}"[:300],
                },
            )
        raise
    if args.record:
        record(args.record, doc)
    return doc
