"""What a health check reads: one entity per online feature view.

For a view whose batch source is a file featctl can read (parquet), the probe
is the newest row in that file up to the view's last materialization: the
online store must hold that row's values for its entity (or newer ones, from a
push or a later materialization), so a read that finds nothing, a null where
the data has a value, or an older value means the store lost or never got the
data. For other sources the probe is a made-up key of the right type: the read
then proves only that the view's table can be read.

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


def _comparable(value: Any) -> bool:
    return isinstance(value, (bool, int, float, str)) and not (isinstance(value, float) and value != value)


def _newest_row(
    repo: str, source: Any, keys: list[str], features: list[str], until: Any
) -> tuple[dict[str, Any] | None, str | None]:
    """The source's newest row up to ``until`` (the view's last materialization):
    its entity, the values a materialized online store must hold for it, and its
    event time. Rows with the same event time are ordered by the created
    timestamp, then by their place in the file (the last wins), as Feast orders
    them."""
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
    created = source.created_timestamp_column or None
    try:
        import datetime as dt

        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        available = set(pq.read_schema(path).names)
        wanted = [to_source.get(f, f) for f in features]
        feature_cols = {f: c for f, c in zip(features, wanted) if c in available and c not in columns}
        read = list(dict.fromkeys([*columns, ts, *([created] if created in available else []), *feature_cols.values()]))
        table = pq.read_table(path, columns=read)
        times = table[ts]
        if pa.types.is_timestamp(times.type):  # rows after the materialization are not online yet
            cutoff = until or dt.datetime.now(dt.timezone.utc)
            if times.type.tz is None:
                cutoff = cutoff.replace(tzinfo=None)
            table = table.filter(pc.less_equal(times, pa.scalar(cutoff, type=times.type)))
        if table.num_rows == 0:
            return None, "its source has no rows up to its last materialization"
        import numpy as np

        def where(mask: Any) -> Any:
            return np.flatnonzero(mask.to_numpy(zero_copy_only=False))

        rows = where(pc.fill_null(pc.equal(table[ts], pc.max(table[ts])), False))
        if created in available and len(rows) > 1:
            made = table[created].take(pa.array(rows))
            if made.null_count < len(made):
                rows = rows[where(pc.fill_null(pc.equal(made, pc.max(made)), False))]
        row = int(rows[-1])
        values: dict[str, Any] = {}
        present: list[str] = []
        for feature, col in feature_cols.items():
            value = table[col][row].as_py()
            if value is None or (isinstance(value, float) and value != value):
                continue  # a null in the data: nothing to expect
            if _comparable(value):
                values[feature] = value
            else:
                present.append(feature)
        when = table[ts][row].as_py()
        stamp = when.isoformat() if hasattr(when, "isoformat") else None
        if stamp and getattr(when, "tzinfo", None) is None:
            stamp += "+00:00"
        return {
            "entity": {k: table[c][row].as_py() for k, c in zip(keys, columns)},
            "values": values,
            "present": present,
            "event_ts": stamp,
        }, None
    except Exception as exc:  # unreadable, not parquet, missing column: no sample
        return None, f"its source could not be read ({type(exc).__name__})"


def _materialized_until(meta: Any) -> Any:
    import datetime as dt

    ends = [i.end_time for i in meta.materialization_intervals]
    if not ends:
        return None
    last = max(ends, key=lambda t: (t.seconds, t.nanos))
    return dt.datetime.fromtimestamp(last.seconds, tz=dt.timezone.utc) + dt.timedelta(microseconds=last.nanos // 1000)


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
        features = [f.name for f in spec.features]
        sample, why = (
            _newest_row(repo, spec.batch_source, list(keys), features, _materialized_until(fv.meta))
            if keys
            else (None, "it has no entity")
        )
        probe: dict[str, Any] = {
            "entity": sample["entity"] if sample else {k: _placeholder(t) for k, t in keys.items()},
            "feature": features[0],
            # A value must be there only when the entity came from the data.
            "expect_value": why is None,
            "why": why,
        }
        if sample:
            probe.update(values=sample["values"], present=sample["present"], event_ts=sample["event_ts"])
        views[spec.name] = probe
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
