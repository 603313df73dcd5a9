"""Feast's PostgreSQL retrieval job reads json and jsonb columns as JSON text.

Feast 0.67's ``PostgreSQLRetrievalJob._to_arrow_internal`` types a jsonb
column ``map<string, string>`` (its type map), lets pyarrow infer an array
from psycopg's values (dicts: a struct) and casts that to the map, which
pyarrow cannot do: ``Unsupported cast from struct<rating: string,
vehicle_type: string> to map`` failed every materialization of `feast init`'s
template on PostgreSQL (its Map and Struct features, which featctl's loader
keeps as jsonb). Feast's own converters take JSON text for Map, Struct and
Json features (``python_values_to_proto_values`` parses it), so these
columns now arrive as text and every other column as before.
"""

from __future__ import annotations

import json
from typing import Any

#: PostgreSQL's json and jsonb type OIDs.
JSON_OIDS = (114, 3802)


def as_text(values: list[Any]) -> list[str | None]:
    """psycopg's Python values of a json/jsonb column as JSON text (None stays None)."""
    return [None if v is None else json.dumps(v, separators=(",", ":")) for v in values]


def json_columns_as_text() -> None:
    """Patch Feast's PostgreSQL retrieval job (idempotent); nothing without psycopg."""
    try:
        from feast.infra.offline_stores.contrib.postgres_offline_store import postgres
    except ImportError:
        return
    job = postgres.PostgreSQLRetrievalJob
    if getattr(job._to_arrow_internal, "__featctl__", False):
        return

    def _to_arrow_internal(self: Any, timeout: int | None = None) -> Any:
        import pyarrow as pa

        config = self.config.offline_store
        with self._query_generator() as query, postgres._get_conn(config) as conn, conn.cursor() as cur:
            conn.read_only = True
            cur.execute(query)
            if not cur.description:
                raise postgres.ZeroColumnQueryResult(query)
            columns = cur.description
            data = cur.fetchall()
        fields, arrays = [], []
        for i, column in enumerate(columns):
            values = [row[i] for row in data]
            if column.type_code in JSON_OIDS:
                fields.append((column.name, pa.large_string()))
                arrays.append(pa.array(as_text(values), pa.large_string()))
            else:
                fields.append((column.name, postgres.pg_type_code_to_arrow(column.type_code)))
                arrays.append(pa.array(values))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    _to_arrow_internal.__featctl__ = True  # type: ignore[attr-defined]
    job._to_arrow_internal = _to_arrow_internal


# --- the parquet type of a jsonb column, kept with the table featctl loads ----------

#: Prefix of the column comment that holds a jsonb column's Arrow type (stores.py writes it).
COMMENT_PREFIX = "featctl-arrow:"


def arrow_comment(field: Any) -> str:
    """The comment for a jsonb column loaded from ``field`` (a pyarrow Field):
    its type, serialized (base64: nothing to quote in SQL)."""
    import base64

    import pyarrow as pa

    return COMMENT_PREFIX + base64.b64encode(pa.schema([field]).serialize().to_pybytes()).decode()


def arrow_types(cur: Any, table: str) -> dict[str, Any]:
    """column -> Arrow type of ``table``'s jsonb columns as the parquet file held
    them (none for a table loaded before featctl kept them, or not by featctl)."""
    cur.execute(
        "SELECT attname, col_description(attrelid, attnum) FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        (f'"{table}"',),
    )
    return {name: t for name, comment in cur.fetchall() if (t := type_from_comment(comment)) is not None}


def type_from_comment(comment: str | None) -> Any | None:
    """The Arrow type ``arrow_comment`` wrote, None for any other comment."""
    import base64

    import pyarrow as pa

    if not comment or not comment.startswith(COMMENT_PREFIX):
        return None
    raw = base64.b64decode(comment[len(COMMENT_PREFIX) :])
    return pa.ipc.read_schema(pa.py_buffer(raw)).field(0).type


def decode(array: Any, arrow_type: Any | None) -> Any:
    """A column of JSON text back as the file held it: ``arrow_type`` when known
    (a struct reads back as a struct, a map as a map: the values the file store
    gives); else as Arrow infers it from the parsed values; else the text."""
    import pyarrow as pa

    values = [None if v is None else json.loads(v) for v in array.to_pylist()]
    try:
        return pa.array(values, type=arrow_type) if arrow_type is not None else pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return array


def decode_json(cur: Any, table: str | None, columns: list[str], arrays: list[Any], codes: list[Any]) -> list[Any]:
    """The JSON-text columns of a download (``_download``) as the parquet file held
    them (its types, which featctl's load keeps with ``table``), else inferred."""
    if not any(c in JSON_OIDS for c in codes):
        return arrays
    held = arrow_types(cur, table) if table is not None else {}
    return [decode(a, held.get(col)) if c in JSON_OIDS else a for col, a, c in zip(columns, arrays, codes)]


def decode_views(cur: Any, views: list[tuple[Any, str, bool]], arrays: list[Any], codes: list[Any]) -> list[Any]:
    """``decode_json`` for a download of several views' features side by side
    (pg_join's probe query: each view's columns in turn)."""
    out, at = [], 0
    for spec, source, ours in views:
        n = len(spec.features)
        cols = [s for s, _ in spec.features]
        out += decode_json(cur, source if ours else None, cols, arrays[at : at + n], codes[at : at + n])
        at += n
    return out
