"""What a health check reads: one entity per online feature view.

For a view whose batch source is a file featctl can read (parquet), the probe
is the entity of the newest row in that file: after a materialization the
online store must have a value for it, so a read that finds nothing means the
store lost data. For other sources the probe is a made-up key of the right
type: the read then proves only that the view's table can be read.

The probe is written to ``<release>/.featctl/probe.json`` and featctl's
client reads it with the release's state.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from .registry import DUMMY_JOIN_KEY, dtype_name, load_registry
from .repo import load_repo_config

META = ".featctl"
_FILE_SOURCE = 1  # DataSource.SourceType.BATCH_FILE


def _placeholder(dtype: str) -> Any:
    return 0 if dtype.startswith(("Int", "Float", "UnixTimestamp", "Bool")) else "__featctl_probe__"


def _loaded_file(repo: str, source: Any) -> str | None:
    """The release's parquet file a PostgreSQL table was loaded from (stores = postgres)."""
    try:
        with open(os.path.join(repo, "_featctl", "postgres_tables.json"), encoding="utf-8") as fh:
            tables = json.load(fh)
        table = json.loads(source.custom_options.configuration or b"{}").get("table")
    except (OSError, ValueError, AttributeError):
        return None
    rel = tables.get(table) if isinstance(tables, dict) and table else None
    return str(rel) if rel else None


def _newest_entity(repo: str, source: Any, keys: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    loaded = _loaded_file(repo, source) if source.type != _FILE_SOURCE else None
    if loaded is None and (source.type != _FILE_SOURCE or not source.file_options.uri):
        return None, "its source is not a file featctl reads"
    uri = loaded or source.file_options.uri
    if "://" in uri and not uri.startswith("file://"):
        return None, f"its source {uri} is remote"
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    path = path if os.path.isabs(path) else os.path.join(repo, path)
    to_source = {v: k for k, v in source.field_mapping.items()}
    columns = [to_source.get(k, k) for k in keys]
    ts = source.timestamp_field
    try:
        import datetime as dt

        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=[*columns, ts])
        times = table[ts]
        if pa.types.is_timestamp(times.type):  # rows after now were not materialized yet
            now = dt.datetime.now(dt.timezone.utc)
            if times.type.tz is None:
                now = now.replace(tzinfo=None)
            table = table.filter(pc.less_equal(times, pa.scalar(now, type=times.type)))
        if table.num_rows == 0:
            return None, "its source has no rows up to now"
        row = int(pc.index(table[ts], pc.max(table[ts])).as_py())
        return {k: table[c][row].as_py() for k, c in zip(keys, columns)}, None
    except Exception as exc:  # unreadable, not parquet, missing column: no sample
        return None, f"its source could not be read ({type(exc).__name__})"


def probes(repo: str) -> dict[str, Any]:
    cfg = load_repo_config(repo)
    proto, _ = load_registry(repo, cfg)
    project = cfg["project"]
    views: dict[str, Any] = {}
    for fv in list(proto.feature_views) + list(proto.stream_feature_views):
        spec = fv.spec
        if spec.project != project or not spec.online or not spec.features:
            continue
        keys = {c.name: dtype_name(c) for c in spec.entity_columns if c.name != DUMMY_JOIN_KEY}
        entity, why = _newest_entity(repo, spec.batch_source, list(keys)) if keys else (None, "it has no entity")
        if entity is None:
            entity = {k: _placeholder(t) for k, t in keys.items()}
        views[spec.name] = {
            "entity": entity,
            "feature": spec.features[0].name,
            # A value must be there only when the entity came from the data.
            "expect_value": why is None,
            "why": why,
        }
    return {"views": views}


def cmd_probe(args: argparse.Namespace) -> dict[str, Any]:
    doc = probes(args.repo)
    meta = os.path.join(args.repo, META)
    if os.path.isdir(meta):
        tmp = os.path.join(meta, "probe.json.tmp")
        with open(tmp, "w") as fh:
            json.dump(doc, fh, sort_keys=True)
        os.replace(tmp, os.path.join(meta, "probe.json"))
    return doc
