"""Point-in-time correct retrieval that keeps every entity row, in order."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .catalog import Catalog, split_refs
from .output import InputError, one_line
from .registry import import_feast, load_registry
from .repo import load_repo_config
from .timeutil import EVENT_TS, normalize_ts_column

ROW_COL = "__featctl_row__"
_CAPTURE = threading.Lock()


class NotServed(Exception):
    """The request needs Feast's own per-view retrieval (Spark, other sources,
    ``FEATCTL_HISTORICAL_ENGINE=feast``): the feature server leaves it to a
    process of its own."""


def read_entities(path: str) -> Any:
    import pandas as pd

    if not os.path.isfile(path):
        raise InputError(f"entity file {path} not found")
    lower = path.lower()
    try:
        if lower.endswith(".csv"):
            df = pd.read_csv(path)
        elif lower.endswith((".parquet", ".pq")):
            df = pd.read_parquet(path)
        else:
            raise InputError(f"entity file {path}: unsupported format (use .csv or .parquet)")
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read entity file {path}: {one_line(exc, 300)}") from None
    return check_entities(df)


def check_entities(df: Any) -> Any:
    """The entity rows as the join needs them (event times in UTC, a fresh index),
    or an InputError saying what is wrong with them."""
    if EVENT_TS not in df.columns:
        raise InputError(
            f"entity file is missing column(s): {EVENT_TS} (columns present: {', '.join(map(str, df.columns))})"
        )
    if ROW_COL in df.columns:
        raise InputError(f"entity file must not contain a column named {ROW_COL}")
    if not len(df):
        raise InputError("entity file has no rows")
    df[EVENT_TS] = normalize_ts_column(df[EVENT_TS])
    return df.reset_index(drop=True)


def retrieve_per_view(
    store: Any, catalog: Catalog, entity_df: Any, fv_features: dict[str, list[str]], full_feature_names: bool
) -> Any:
    """Point-in-time join one feature view at a time on the unique (join keys, ts) rows.

    Feast 0.67's file (dask) offline store (a) keeps one row per (join keys,
    event_timestamp) -- a row-number column does not help, the de-duplication is on
    those columns only -- and (b) drops an entity row altogether when its entity has
    source rows but none inside one view's TTL window, which also loses that row's
    values from every other view.  Joining each view separately on de-duplicated keys
    and left-merging back onto the original rows gives exactly one row per input row
    with correct values.
    """
    base = entity_df
    origin: dict[str, str] = {}
    for view, feats in fv_features.items():
        keys = [k for k in catalog.fvs[view][1] if k in entity_df.columns]
        on = [*keys, EVENT_TS]
        uniq = entity_df[on].drop_duplicates(ignore_index=True)
        part = store.get_historical_features(
            entity_df=uniq,
            features=[f"{view}:{f}" for f in feats],
            full_feature_names=full_feature_names,
        ).to_df()
        new_cols = [c for c in part.columns if c not in uniq.columns]
        clash = [f"{c!r} of {view} vs {origin.get(c, 'entity file')}" for c in new_cols if c in base.columns]
        if clash:
            raise InputError(
                "feature name collision (" + "; ".join(clash) + "); on-demand view inputs count too: "
                "use --full-feature-names or rename the entity-file column"
            )
        origin.update((c, view) for c in new_cols)
        part = part[on + new_cols].copy()
        part[EVENT_TS] = normalize_ts_column(part[EVENT_TS])
        for k in keys:
            if part[k].dtype != base[k].dtype:
                with contextlib.suppress(TypeError, ValueError):
                    part[k] = part[k].astype(base[k].dtype)
        part = part.drop_duplicates(subset=on, keep="last")
        merged = base.merge(part, on=on, how="left", sort=False)
        if len(merged) != len(base):
            raise RuntimeError(f"internal error: merge of {view} changed row count {len(base)} -> {len(merged)}")
        base = merged
    return base


def _requested_views(store: Any, entity_df: Any, features: Any, full_feature_names: bool) -> tuple[Any, list[Any]]:
    """Feast's lazy retrieval job for the request (it validates the request and
    carries the on-demand views) and the feature views with the features that
    Feast's provider would be asked for, as Feast resolved them (projections,
    join key maps, on-demand inputs)."""
    from feast.utils import _get_requested_feature_views_to_features_dict

    provider = store._get_provider()
    seen: dict[str, Any] = {}
    # The provider is shared by the feature server's threads: one capture at a time.
    with _CAPTURE:
        original = provider.get_historical_features

        def capture(config: Any, feature_views: Any, feature_refs: Any, *args: Any, **kwargs: Any) -> Any:
            seen.update(views=list(feature_views), refs=list(feature_refs))
            return original(config, feature_views, feature_refs, *args, **kwargs)

        provider.get_historical_features = capture
        try:
            job = store.get_historical_features(
                entity_df=entity_df, features=features, full_feature_names=full_feature_names
            )
        finally:
            del provider.get_historical_features
    names = {fv.projection.name_to_use() for fv in seen["views"]}
    refs = [r for r in seen["refs"] if r.rsplit(":", 1)[0] in names]  # on-demand views' refs: Feast's part
    by_view, _ = _get_requested_feature_views_to_features_dict(refs, seen["views"], [])
    return job, [(fv, list(dict.fromkeys(feats))) for fv, feats in by_view.items()]


def _check_clashes(entity_df: Any, columns: list[str]) -> None:
    clash = [c for c in columns if c in entity_df.columns]
    if clash:
        raise InputError(
            f"feature name collision: {', '.join(map(repr, clash))} of the features vs the entity file; "
            "on-demand view inputs count too: use --full-feature-names or rename the entity-file column"
        )


def _to_utc(table: Any) -> Any:
    """Every timestamp column as UTC (a naive one is UTC already)."""
    import pyarrow as pa

    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type) and f.type.tz not in ("UTC", "+00:00"):
            table = table.set_column(i, f.name, table.column(i).cast(pa.timestamp(f.type.unit, "UTC")))
    return table


def pandas_metadata(table: Any) -> Any:
    """``table`` with pandas metadata that marks integer columns with nulls as
    nullable (Int64), so every reader gets them back as integers: the parquet
    result of the agent's command and the Arrow stream of the feature server."""
    import pyarrow as pa

    nullable = [
        (f.name, f"{'Int' if pa.types.is_signed_integer(f.type) else 'UInt'}{f.type.bit_width}")
        for i, f in enumerate(table.schema)
        if pa.types.is_integer(f.type) and table.column(i).null_count
    ]
    if nullable:
        try:
            empty = table.slice(0, 0).to_pandas()
            for name, dtype in nullable:
                empty[name] = empty[name].astype(dtype)
            meta = pa.Table.from_pandas(empty, schema=table.schema, preserve_index=False).schema.metadata
            table = table.replace_schema_metadata(meta)
        except (ValueError, TypeError, pa.ArrowException):  # e.g. repeated column names: plain Arrow types only
            pass
    return table


def write_result(table: Any, out: str) -> None:
    """The result as parquet, atomically, its Arrow types as they are (pandas_metadata)."""
    import pyarrow.parquet as pq

    table = pandas_metadata(table)
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    tmp = os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.{os.getpid()}.tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_request(catalog: Catalog, entity_df: Any, refs: list[str], feature_service: str | None) -> dict[str, list[str]]:
    """The request checked against the registry (before Feast is asked): the
    feature views to join with their features, or an InputError."""
    if bool(refs) == bool(feature_service):
        raise InputError("give exactly one of --features or --feature-service")
    fv_features, required = catalog.resolve(refs, feature_service)
    missing = [c for c in required if c not in entity_df.columns]
    if missing:
        detail = "; ".join(f"{c}: {required[c]}" for c in missing)
        raise InputError(f"entity file is missing column(s): {', '.join(missing)} ({detail})")
    return fv_features


def retrieve(
    store: Any,
    catalog: Catalog,
    entity_df: Any,
    refs: list[str],
    feature_service: str | None,
    full_feature_names: bool,
    *,
    engine: str | None = None,
    served: bool = False,
    authorize: Callable[[list[Any]], None] | None = None,
) -> tuple[Any, str, dict[str, float]]:
    """(result table, engine, timings): one row per entity row, in order, the
    request already checked (check_request). ``engine="feast"`` keeps Feast's own
    retrieval per view; ``served`` (in the feature server) raises NotServed
    instead of running it; ``authorize`` sees the views before any data is read."""
    import pyarrow as pa

    from .offline import join_files, join_postgres_views, local_parquet, postgres_source
    from .ondemand import narrow_on_demand_views

    if served and engine == "feast":
        raise NotServed("FEATCTL_HISTORICAL_ENGINE=feast: Feast's own retrieval")
    features = store.get_feature_service(feature_service, allow_cache=True) if feature_service else refs
    job, views = _requested_views(store, entity_df, features, full_feature_names)
    if authorize is not None:
        authorize([fv for fv, _ in views] + list(job.on_demand_feature_views))
    repo_path = str(store.config.repo_path or os.getcwd())
    timings: dict[str, float] = {}
    started = time.monotonic()
    columns = None
    # FEATCTL_HISTORICAL_ENGINE=feast keeps Feast's own retrieval (per view): the
    # benchmarks' "before" and a way around this engine should it ever be wrong.
    if engine == "feast":
        pass
    elif all(local_parquet(fv, repo_path) for fv, _ in views):
        engine = "as-of join (file)"
        columns = join_files(entity_df, views, full_feature_names, repo_path)
    elif all(postgres_source(fv) for fv, _ in views):
        engine = "as-of join (postgres)"
        columns = join_postgres_views(store.config, entity_df, views, full_feature_names, timings)
    if columns is not None:
        _check_clashes(entity_df, list(columns))
        base = pa.Table.from_pandas(entity_df, preserve_index=False)
        for name, values in columns.items():
            base = base.append_column(name, values)
    elif served:
        raise NotServed("these views' sources need Feast's own retrieval")
    else:
        engine = "feast (per view)"
        fv_features = catalog.resolve(refs, feature_service)[0]
        entity_df[ROW_COL] = range(len(entity_df))
        frame = retrieve_per_view(store, catalog, entity_df, fv_features, full_feature_names)
        frame = frame.sort_values(ROW_COL, kind="stable").drop(columns=[ROW_COL]).reset_index(drop=True)
        entity_df.drop(columns=[ROW_COL], inplace=True)
        base = pa.Table.from_pandas(frame, preserve_index=False)
    timings["join"] = time.monotonic() - started
    # Feast's own code computes the on-demand views on top of the joined rows.
    started = time.monotonic()
    job._to_arrow_internal = lambda timeout=None: base
    narrow_on_demand_views(job, views)
    table = _to_utc(job.to_arrow())
    timings["on-demand views"] = time.monotonic() - started
    if table.num_rows != len(entity_df):
        raise RuntimeError(f"internal error: got {table.num_rows} rows for {len(entity_df)} entity rows")
    return table, str(engine), timings


def cmd_historical(args: argparse.Namespace) -> dict[str, Any]:
    refs = split_refs(args.features)
    # Everything that can be wrong with the request is checked before `import feast`
    # (~10 s), against the registry read the fast way.
    entity_df = read_entities(args.entities)
    cfg = load_repo_config(args.repo)
    proto, _ = load_registry(args.repo, cfg)
    catalog = Catalog(proto, cfg["project"])
    check_request(catalog, entity_df, refs, args.feature_service)

    import_feast()
    from feast import FeatureStore

    store = FeatureStore(repo_path=args.repo)
    engine = "feast" if "feast" in (args.engine, os.environ.get("FEATCTL_HISTORICAL_ENGINE")) else None
    table, engine, timings = retrieve(
        store, catalog, entity_df, refs, args.feature_service, args.full_feature_names, engine=engine
    )
    started = time.monotonic()
    write_result(table, args.out)
    timings["write"] = time.monotonic() - started
    print("hostagent: historical " + ", ".join(f"{k} {v:.3f}s" for k, v in timings.items()), file=sys.stderr)
    return {"rows": table.num_rows, "columns": table.schema.names, "out": args.out, "engine": engine}
