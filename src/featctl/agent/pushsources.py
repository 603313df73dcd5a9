"""Push sources as ``describe`` reports them: what ``featctl push`` needs to
type its rows (the views a push source feeds, the batch source's timestamp
fields and field mapping)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _is_push(source: Any) -> bool:
    enum = source.DESCRIPTOR.fields_by_name["type"].enum_type
    value = enum.values_by_number.get(source.type)
    return value is not None and value.name == "PUSH_SOURCE"


def push_sources(
    proto: Any, project: str, views: list[Any], source_path: Callable[[Any], str | None]
) -> list[dict[str, Any]]:
    """Push sources and the feature views they feed (Feast's /push writes to
    every view whose stream source is the push source), with the columns a push
    carries: the batch source's timestamp fields and field mapping.
    ``source_path``: registry.py's reading of a batch source's path."""

    def entry(src: Any) -> dict[str, Any]:
        batch = src.batch_source
        return {
            "name": src.name,
            "batch_source": batch.name or None,
            "source": source_path(batch) if src.HasField("batch_source") else None,
            "timestamp_field": batch.timestamp_field or src.timestamp_field,
            "created_timestamp_column": batch.created_timestamp_column or src.created_timestamp_column or None,
            "field_mapping": dict(batch.field_mapping),
            "views": [],
        }

    out: dict[str, dict[str, Any]] = {}
    for ds in proto.data_sources:
        if ds.project == project and _is_push(ds):
            out.setdefault(ds.name, entry(ds))
    for fv in views:
        if fv.spec.HasField("stream_source") and _is_push(fv.spec.stream_source):
            out.setdefault(fv.spec.stream_source.name, entry(fv.spec.stream_source))["views"].append(fv.spec.name)
    return list(out.values())
