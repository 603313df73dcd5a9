"""Feast's feature views as the as-of join sees them (asof.ViewSpec), and the
join of views whose sources are local parquet files (the file offline store).

Column names follow Feast's file store: a source column is renamed by the
source's field_mapping, then by the view projection's join_key_map; a feature
comes out as ``feature`` or ``<view>__feature`` (full feature names).
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from .asof import ViewSpec, join_view, ts_ns
from .output import AgentError, InputError
from .registry import DUMMY_JOIN_KEY
from .timeutil import EVENT_TS


def final_names(fv: Any, columns: list[str]) -> dict[str, str]:
    """Name after Feast's renames -> source column, for ``columns`` of fv's source."""
    fmap = dict(fv.batch_source.field_mapping or {})
    jkm = dict(fv.projection.join_key_map or {})
    out: dict[str, str] = {}
    for col in columns:
        name = str(fmap.get(col, col))
        out.setdefault(str(jkm.get(name, name)), col)
    return out


def view_spec(fv: Any, features: list[str], full_feature_names: bool, columns: list[str]) -> ViewSpec:
    """``fv``'s part of a request; ``columns`` are its source's column names."""
    src = fv.batch_source
    final = final_names(fv, columns)
    jkm = dict(fv.projection.join_key_map or {})
    name = fv.projection.name_to_use()

    def column(wanted: str, what: str) -> str:
        if wanted not in final:
            raise AgentError(f"the source of {name} has no {what} column {wanted!r} (it has {', '.join(columns)})")
        return final[wanted]

    keys = []
    for ec in fv.entity_columns:
        if ec.name == DUMMY_JOIN_KEY:  # an entityless view: every row is its entity
            continue
        key = jkm.get(ec.name, ec.name)
        keys.append((key, column(key, "join key")))
    created = src.created_timestamp_column or None
    # timedelta -> ns exactly (a timedelta holds whole microseconds)
    ttl = (fv.ttl // timedelta(microseconds=1)) * 1000 if fv.ttl else 0
    return ViewSpec(
        name=name,
        keys=keys,
        timestamp=column(src.timestamp_field, "timestamp"),
        created=column(created, "created timestamp") if created else None,
        features=[(column(f, "feature"), f"{name}__{f}" if full_feature_names else f) for f in features],
        ttl_ns=ttl or None,
    )


def local_parquet(fv: Any, repo_path: str) -> str | None:
    """The local parquet path of fv's file source, or None (another kind of source,
    a remote URI, another file format): those views go through Feast."""
    from feast import FileSource
    from feast.data_format import ParquetFormat

    src = fv.batch_source
    if type(src) is not FileSource:
        return None
    if src.file_format is not None and not isinstance(src.file_format, ParquetFormat):
        return None
    if src.file_options.s3_endpoint_override:
        return None
    path = FileSource.get_uri_for_file_path(repo_path=repo_path, uri=src.file_options.uri)
    if path.startswith("file://"):
        path = path[len("file://") :]
    if "://" in path:
        return None
    return path


def check_keys(entity_df: Any, specs: list[ViewSpec]) -> None:
    missing = {k: s.name for s in specs for k, _ in s.keys if k not in entity_df.columns}
    if missing:
        detail = ", ".join(f"{k} (join key of {v})" for k, v in missing.items())
        raise InputError(f"entity file is missing column(s): {detail}")


def join_files(entity_df: Any, views: list[tuple[Any, list[str]]], full_feature_names: bool, repo_path: str) -> Any:
    """Feature columns (name -> Arrow array, in view order) for every entity row,
    in order, from views whose sources are local parquet files."""
    import pyarrow.parquet as pq

    entity_ts = ts_ns(entity_df[EVENT_TS])
    columns: dict[str, Any] = {}
    for fv, features in views:
        path = local_parquet(fv, repo_path)
        if path is None:
            raise AgentError(f"internal error: {fv.name} is not a local parquet source")
        if not os.path.exists(path):
            raise AgentError(f"the data of {fv.name} is missing on the host: {path}")
        names = pq.read_schema(path).names if os.path.isfile(path) else pq.ParquetDataset(path).schema.names
        spec = view_spec(fv, features, full_feature_names, names)
        check_keys(entity_df, [spec])
        source = pq.read_table(path, columns=spec.source_columns())
        columns.update(join_view({k: entity_df[k] for k, _ in spec.keys}, entity_ts, source, spec))
        del source
    return columns


def postgres_source(fv: Any) -> str | None:
    """The FROM-clause text of fv's PostgreSQL source (a table or ``(query)``), else None."""
    try:
        from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource
    except ImportError:  # an environment without Feast's postgres extra (psycopg) has no such source
        return None

    src = fv.batch_source
    return src.get_table_query_string() if isinstance(src, PostgreSQLSource) else None


def join_postgres_views(
    config: Any, entity_df: Any, views: list[tuple[Any, list[str]]], full_feature_names: bool, timings: dict[str, float]
) -> Any:
    """Feature columns for every entity row from views on PostgreSQL sources (pg_join)."""
    from feast.infra.utils.postgres.connection_utils import _get_conn

    from .pg_join import join_postgres

    with _get_conn(config.offline_store) as conn:
        specs = []
        for fv, features in views:
            source = postgres_source(fv) or ""
            ours = source.startswith("featctl_") and source.replace("_", "").isalnum()
            with conn.cursor() as cur:
                cur.execute(f"SELECT * FROM {source} AS src LIMIT 0")
                names = [c.name for c in cur.description]
            conn.rollback()
            spec = view_spec(fv, features, full_feature_names, names)
            check_keys(entity_df, [spec])
            specs.append((spec, source, ours))
        columns = join_postgres(conn, entity_df, specs, timings)
    return _declared_numbers(columns, views, specs)


def _declared_numbers(columns: dict[str, Any], views: list[tuple[Any, list[str]]], specs: list[Any]) -> dict[str, Any]:
    """Float32 features as float32: Feast's PostgreSQL type map hands ``real``
    back as float64, where the file store keeps the parquet's float32."""
    import pyarrow as pa
    from feast.type_map import feast_value_type_to_pa

    for (fv, features), (spec, _, _) in zip(views, specs):
        declared = {f.name: f.dtype for f in fv.features}
        for feature, (_, out) in zip(features, spec.features):
            if feature not in declared or out not in columns:
                continue
            try:
                want = feast_value_type_to_pa(declared[feature].to_value_type())
            except Exception:  # a type Feast cannot map: keep PostgreSQL's
                continue
            if pa.types.is_float32(want) and pa.types.is_float64(columns[out].type):
                columns[out] = columns[out].cast(want, safe=False)
    return columns

