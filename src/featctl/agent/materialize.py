"""Materialization with Feast's SDK on the host (the feature server's endpoints
are featctl's fast path; this is the standalone one)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import sys
from typing import Any

from .catalog import Catalog, split_refs
from .output import UTC, InputError, iso
from .registry import import_feast, load_registry
from .repo import load_repo_config
from .timeutil import EPOCH, parse_iso


def not_past_now(end: Any, now: _dt.datetime | None = None) -> Any:
    """``end`` (a datetime; naive = UTC), or the host's clock when it is later:
    Feast records a materialization's end as the view's last one and the next
    incremental run starts there, so an end past now (a client whose clock is
    ahead) would leave the rows that arrive until then out for good."""
    now = now or _dt.datetime.now(UTC)
    aware = end.replace(tzinfo=UTC) if end.tzinfo is None else end
    if aware <= now:
        return end
    print(
        f"featctl: materialization end {iso(aware)} is past the host's clock: loading up to {iso(now)}", file=sys.stderr
    )
    return now


def guard_store(store: Any) -> None:
    """Make ``store.materialize`` and ``store.materialize_incremental`` (what
    the feature server's /materialize endpoints and this module call) never
    load, nor record, past the host's clock; a range that starts past it is
    refused."""
    materialize, incremental = store.materialize, store.materialize_incremental
    if getattr(materialize, "__featctl_guarded__", False):
        return

    def guarded_materialize(start_date: Any, end_date: Any, feature_views: Any = None, **kwargs: Any) -> Any:
        end = not_past_now(end_date)
        start = start_date.replace(tzinfo=UTC) if start_date.tzinfo is None else start_date
        if start >= (end.replace(tzinfo=UTC) if end.tzinfo is None else end):
            raise InputError(
                f"the range starts at {iso(start)}, not before the host's clock ({iso(end)}): nothing to load"
            )
        return each_view(lambda views: materialize(start_date, end, views, **kwargs), feature_views)

    def guarded_incremental(end_date: Any, feature_views: Any = None, **kwargs: Any) -> Any:
        end = not_past_now(end_date)
        return each_view(lambda views: incremental(end, views, **kwargs), feature_views)

    guarded_materialize.__featctl_guarded__ = True  # type: ignore[attr-defined]
    store.materialize = guarded_materialize
    store.materialize_incremental = guarded_incremental


def each_view(call: Any, views: Any) -> None:
    """``call`` on the named views; a failure names its view.
    "'DataFrame' object has no attribute 'withColumn'" alone did not say that the
    streaming tutorial's stream view (a Spark transformation) was the one Feast
    cannot materialize. The views are tried one at a time only after a failure
    (the ones that load again are idempotent), so a run that works makes one call."""
    try:
        call(views)
    except InputError:
        raise
    except Exception as exc:
        if not views:
            raise
        if len(views) == 1:
            raise RuntimeError(f"feature view {views[0]}: {type(exc).__name__}: {exc}") from exc
        for name in views:
            try:
                call([name])
            except InputError:
                raise
            except Exception as one:
                raise RuntimeError(f"feature view {name}: {type(one).__name__}: {one}") from one
        raise


def feature_views(store: Any) -> dict[str, Any]:
    """The store's feature views by name, stream feature views included."""
    fvs = {fv.name: fv for fv in store.list_feature_views()}
    with contextlib.suppress(Exception):
        fvs.update({fv.name: fv for fv in store.list_stream_feature_views()})
    return fvs


def cmd_materialize(args: argparse.Namespace) -> dict[str, Any]:
    if bool(args.start) != bool(args.end):
        raise InputError("--start and --end must be given together")
    start = parse_iso(args.start, "--start") if args.start else None
    end = parse_iso(args.end, "--end") if args.end else None
    if start is not None and end is not None and start >= end:
        raise InputError(f"--start {iso(start)} is not before --end {iso(end)}")
    if end is not None and end > _dt.datetime.now(UTC):
        raise InputError(f"--end {iso(end)} is past the host's clock: a range must end by now")
    requested = split_refs(args.views)
    # Cheap checks first (registry read without importing feast).
    cfg = load_repo_config(args.repo)
    known = Catalog(load_registry(args.repo, cfg)[0], cfg["project"]).fvs
    unknown = [v for v in requested if v not in known]
    if unknown:
        raise InputError(f"unknown feature view(s): {', '.join(unknown)} (known: {', '.join(sorted(known)) or 'none'})")

    import_feast()
    from feast import FeatureStore

    store = FeatureStore(repo_path=args.repo)
    guard_store(store)
    fvs = feature_views(store)
    if requested:
        unknown = [v for v in requested if v not in fvs]
        if unknown:
            raise InputError(
                f"unknown feature view(s): {', '.join(unknown)} (known: {', '.join(sorted(fvs)) or 'none'})"
            )
        offline_only = [v for v in requested if not fvs[v].online]
        if offline_only:
            raise InputError(f"feature view(s) not online, cannot materialize: {', '.join(offline_only)}")
        names = requested
    else:
        names = sorted(n for n, fv in fvs.items() if fv.online)
    if not names:
        raise InputError("no online feature views to materialize")

    now = _dt.datetime.now(UTC)
    report = []
    if start is not None:
        store.materialize(start_date=start, end_date=end, feature_views=names)
        report = [{"name": n, "start": iso(start), "end": iso(end)} for n in names]
        final_end = end
    else:
        final_end = now
        first = [n for n in names if not fvs[n].materialization_intervals]
        incr = [n for n in names if n not in first]
        # First run: materialize_incremental would start at now - ttl and miss older data,
        # so load everything since the epoch (the file source filters by timestamp).
        if first:
            store.materialize(start_date=EPOCH, end_date=now, feature_views=first)
        if incr:
            store.materialize_incremental(end_date=now, feature_views=incr)
        for n in names:
            s = EPOCH if n in first else fvs[n].most_recent_end_time
            report.append({"name": n, "start": iso(s), "end": iso(now)})
    return {"views": report, "end": iso(final_end)}
