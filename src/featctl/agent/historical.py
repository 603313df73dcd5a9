"""Point-in-time correct retrieval that keeps every entity row, in order."""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any

from .catalog import Catalog, split_refs
from .output import UTC, InputError, one_line
from .registry import import_feast, load_registry
from .repo import load_repo_config
from .timeutil import EVENT_TS, normalize_ts_column

ROW_COL = "__featctl_row__"


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


def cmd_historical(args: argparse.Namespace) -> dict[str, Any]:
    refs = split_refs(args.features)
    if bool(refs) == bool(args.feature_service):
        raise InputError("give exactly one of --features or --feature-service")
    import pandas as pd

    out = args.out
    # Everything that can be wrong with the request is checked before `import feast`
    # (~10 s), against the registry read the fast way.
    entity_df = read_entities(args.entities)
    cfg = load_repo_config(args.repo)
    proto, _ = load_registry(args.repo, cfg)
    catalog = Catalog(proto, cfg["project"])
    fv_features, required = catalog.resolve(refs, args.feature_service)
    missing = [c for c in required if c not in entity_df.columns]
    if missing:
        detail = "; ".join(f"{c}: {required[c]}" for c in missing)
        raise InputError(f"entity file is missing column(s): {', '.join(missing)} ({detail})")

    import_feast()
    import pyarrow as pa
    from feast import FeatureStore

    store = FeatureStore(repo_path=args.repo)
    entity_df[ROW_COL] = range(len(entity_df))
    # The combined job validates the request as Feast would (e.g. name collisions) and
    # carries the on-demand views; its lazy evaluation is replaced by the per-view join
    # so that Feast's own code still runs the on-demand transformations on top.
    job = store.get_historical_features(
        entity_df=entity_df,
        features=store.get_feature_service(args.feature_service) if args.feature_service else refs,
        full_feature_names=args.full_feature_names,
    )
    base = retrieve_per_view(store, catalog, entity_df, fv_features, args.full_feature_names)
    table = pa.Table.from_pandas(base.reset_index(drop=True), preserve_index=False)
    job._to_arrow_internal = lambda timeout=None: table
    df = job.to_df()

    if len(df) != len(entity_df) or ROW_COL not in df.columns:
        raise RuntimeError(f"internal error: got {len(df)} rows for {len(entity_df)} entity rows")
    df = df.sort_values(ROW_COL, kind="stable").drop(columns=[ROW_COL]).reset_index(drop=True)
    for col in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[col].dtype):
            df[col] = df[col].dt.tz_localize(UTC) if df[col].dt.tz is None else df[col].dt.tz_convert(UTC)

    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    tmp = os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.{os.getpid()}.tmp")
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"rows": len(df), "columns": [str(c) for c in df.columns], "out": out}
