"""The point-in-time join on Feast's PostgreSQL offline store, in one query.

Feast 0.67's own PostgreSQL retrieval inserts the entity frame with
``executemany`` (one INSERT per row) and joins every view through sorts of
the whole source per request. Here (asof.py has the semantics):

1. the entity rows' keys and times go into a temporary table with COPY;
2. each source is read through an index on (join keys, event time): featctl's
   own loaded tables (``featctl_<file>_<digest>``) get that index once, any
   other source (a user's table or query) is copied into a temporary indexed
   table of the rows within the request's time range;
3. one query joins every view with ``LEFT JOIN LATERAL (... ORDER BY time DESC,
   created DESC, row order DESC LIMIT 1)``, so each entity row costs one index
   probe per view, and comes back in entity order through a binary COPY.

The row-order tie-break of a table is its physical order (``ctid``): featctl
loads a table once, with COPY, in its file's order.

When a featctl-loaded table has few rows in the request's time range next to
the entity rows (at most ``BULK_FACTOR`` per entity row: the original
project's shape, a few drivers with many labels each), those rows are
downloaded in physical order and joined in memory by asof.py, as on the file
store: probing an index once per entity row costs more than reading the whole
window once. When every view is read that way the entity rows are not uploaded.
"""

from __future__ import annotations

import io
import time
from typing import Any

from .asof import ViewSpec
from .pg_retrieval import JSON_OIDS, as_text, decode_json, decode_views
from .timeutil import EVENT_TS

ROW = "__featctl_row"
TS = "__featctl_ts"
ENTITIES = "featctl_pit_entities"
BATCH = 100_000
#: A view's window is read whole when it has at most this many rows per entity row.
BULK_FACTOR = 4


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _pg_type(series: Any) -> str:
    from pandas.api import types as ptypes

    if ptypes.is_bool_dtype(series.dtype):
        return "boolean"
    if ptypes.is_integer_dtype(series.dtype):
        return "bigint"
    if ptypes.is_float_dtype(series.dtype):
        return "double precision"
    return "text"


def upload_entities(cur: Any, entity_df: Any, keys: list[str]) -> None:
    """(row number, time, keys) of every entity row into a temporary table, by COPY:
    as CSV written by Arrow (no Python object per value), or row by row when a
    key column is not one Arrow type (mixed Python objects)."""
    cols = [f"{ident(ROW)} bigint", f"{ident(TS)} timestamptz"] + [f"{ident(k)} {_pg_type(entity_df[k])}" for k in keys]
    cur.execute(f"CREATE TEMP TABLE {ENTITIES} ({', '.join(cols)}) ON COMMIT DROP")
    names = ", ".join(ident(c) for c in [ROW, TS, *keys])
    csv = _entities_csv(entity_df, keys)
    if csv is not None:
        cur.execute("SET LOCAL TimeZone = 'UTC'")  # the CSV's times are UTC without an offset
        with cur.copy(f"COPY {ENTITIES} ({names}) FROM STDIN (FORMAT csv)") as copy:
            copy.write(csv)
    else:
        floored = entity_df[EVENT_TS].dt.floor("us")  # as PostgreSQL keeps them, as the CSV has them
        times = floored.astype(object).where(floored.notna(), None).tolist()
        values = [entity_df[k].astype(object).where(entity_df[k].notna(), None).tolist() for k in keys]
        with cur.copy(f"COPY {ENTITIES} ({names}) FROM STDIN") as copy:
            for i, row in enumerate(zip(times, *values)):
                copy.write_row((i, *row))
    cur.execute(f"ANALYZE {ENTITIES}")


def _entities_csv(entity_df: Any, keys: list[str]) -> bytes | None:
    """The entity table as PostgreSQL CSV (pg_csv), or None when a key column is
    not one Arrow type."""
    import numpy as np
    import pyarrow as pa

    from .asof import NAT, ts_ns

    try:
        arrays = [pa.array(entity_df[k], from_pandas=True) for k in keys]
    except (pa.ArrowException, TypeError, ValueError):
        return None
    if any(pa.types.is_nested(a.type) or pa.types.is_binary(a.type) for a in arrays):
        return None
    ns = ts_ns(entity_df[EVENT_TS])
    times = pa.array(ns, type=pa.int64(), mask=ns == NAT).cast(pa.timestamp("ns"))
    rows = pa.array(np.arange(len(entity_df), dtype=np.int64))
    return pg_csv([rows, times, *arrays], [ROW, TS, *keys])


def pg_csv(columns: list[Any], names: list[str]) -> bytes:
    """Arrow columns as PostgreSQL CSV: every value quoted, a null an empty
    unquoted field (so an empty string stays one), columns as csv_column makes
    them. The COPY that reads it runs with the session's TimeZone in UTC."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    out = pa.BufferOutputStream()
    options = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
    pacsv.write_csv(pa.table([csv_column(c) for c in columns], names=names), out, write_options=options)
    return bytes(out.getvalue())


def csv_column(column: Any) -> Any:
    """A column as pg_csv writes it: float32 widened to float64 (as the row-by-row
    path and Feast's double precision column have it); a time with a zone as the
    same instant in UTC without one (its storage reinterpreted: Arrow needs the
    zone database to write an offset, a minimal host has none, and it writes an
    offset ~12x slower); nanoseconds floored to microseconds (PostgreSQL keeps
    microseconds and would round them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    typ = column.type
    if pa.types.is_float32(typ):
        return column.cast(pa.float64())
    if not pa.types.is_timestamp(typ) or (typ.tz is None and typ.unit != "ns"):
        return column
    ints = column.cast(pa.int64())
    if typ.unit == "ns":
        values = pc.fill_null(ints, 0).to_numpy(zero_copy_only=False)
        ints = pa.array(values - values % 1000, mask=ints.is_null().to_numpy(zero_copy_only=False))
    return ints.cast(pa.timestamp(typ.unit))


def _index(cur: Any, table: str, spec: ViewSpec) -> None:
    """featctl's loaded table indexed on (join keys, event time), once."""
    import hashlib

    cols = ", ".join(ident(s) for _, s in spec.keys) + (", " if spec.keys else "") + ident(spec.timestamp)
    name = f"{table[:40]}_pit_{hashlib.sha256(cols.encode()).hexdigest()[:12]}"
    cur.execute(f"CREATE INDEX IF NOT EXISTS {ident(name)} ON {ident(table)} ({cols})")


def _copy_source(cur: Any, i: int, query: str, spec: ViewSpec, bounds: tuple[Any, Any]) -> str:
    """A user's source: its rows within the request's time range in an indexed temporary table."""
    name = f"featctl_pit_src{i}"
    cols = ", ".join(ident(c) for c in spec.source_columns())
    # literals: CREATE TABLE AS takes no bind parameters
    where = _window(spec, bounds)
    cur.execute(
        f"CREATE TEMP TABLE {name} ON COMMIT DROP AS SELECT {cols}, row_number() OVER () AS {ident(ROW)} "
        f"FROM {query} AS src WHERE {where}"
    )
    keys = ", ".join(ident(s) for _, s in spec.keys) + (", " if spec.keys else "") + ident(spec.timestamp)
    cur.execute(f"CREATE INDEX ON {name} ({keys})")
    cur.execute(f"ANALYZE {name}")
    return name


def _interval(spec: ViewSpec) -> str:
    return f"make_interval(secs => {(spec.ttl_ns or 0) / 1e9!r})"


def lateral(i: int, source: str, order_col: str, spec: ViewSpec) -> str:
    """The view's row for each entity row: the latest event time in the window
    (one backward index probe: ``max``), then among the rows of exactly that time
    the latest created, then the last in row order. Sorting every row of the
    window instead cost ~40% more per probe (32 rows a probe on hourly data)."""
    alias = f"v{i}"
    ts = ident(spec.timestamp)
    window = [f"m.{ident(s)} = e.{ident(k)}" for k, s in spec.keys]
    window.append(f"m.{ts} <= e.{ident(TS)}")
    if spec.ttl_ns:
        window.append(f"m.{ts} >= e.{ident(TS)} - {_interval(spec)}")
    latest = f"(SELECT max(m.{ts}) FROM {source} m WHERE {' AND '.join(window)})"
    cond = [f"s.{ident(s)} = e.{ident(k)}" for k, s in spec.keys] + [f"s.{ts} = {latest}"]
    order = [f"s.{ident(spec.created)} DESC NULLS LAST"] if spec.created else []
    order.append(f"s.{order_col} DESC")
    feats = ", ".join(f"s.{ident(src)} AS {ident(f'f{j}')}" for j, (src, _) in enumerate(spec.features))
    return (
        f"LEFT JOIN LATERAL (SELECT {feats} FROM {source} s WHERE {' AND '.join(cond)} "
        f"ORDER BY {', '.join(order)} LIMIT 1) {alias} ON true"
    )


def _window(spec: ViewSpec, bounds: tuple[Any, Any]) -> str:
    """The source rows any entity row of the request can see (times are ISO text we made)."""
    where = f"{ident(spec.timestamp)} <= '{bounds[1].isoformat()}'::timestamptz"
    if spec.ttl_ns:
        where += f" AND {ident(spec.timestamp)} >= '{bounds[0].isoformat()}'::timestamptz - {_interval(spec)}"
    return where


def bulk_views(cur: Any, views: list[tuple[ViewSpec, str, bool]], bounds: tuple[Any, Any], n: int) -> list[bool]:
    """Per view: read its window whole (True) or probe it per entity row. Counting
    stops at the limit, so a large table costs a bounded scan."""
    out = []
    for spec, source, ours in views:
        if not ours:
            out.append(False)
            continue
        cap = BULK_FACTOR * max(n, 1)
        cur.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {ident(source)} WHERE {_window(spec, bounds)} LIMIT {cap + 1}) w"
        )
        out.append(int(cur.fetchone()[0]) <= cap)
    return out


#: PostgreSQL types whose CSV text Arrow reads back as the same value (bool,
#: int8, int2, int4, text, float4, float8, varchar); any other column (times,
#: numerics, arrays, JSON) makes the download binary, decoded row by row.
CSV_TYPES = {16, 20, 21, 23, 25, 700, 701, 1043}


def _download(cur: Any, query: str) -> tuple[list[Any], list[Any]]:
    """(Arrow arrays, type codes) of a query's columns, by COPY: as CSV parsed by
    Arrow when every column is of CSV_TYPES (1M rows of one double: 3.4 s vs 5.0 s),
    else binary in batches."""
    import pyarrow as pa
    from feast.type_map import pg_type_code_to_arrow

    cur.execute(f"{query} LIMIT 0")
    codes = [c.type_code for c in cur.description]
    # json/jsonb as JSON text: Feast's type map says map<string, string>, which a
    # struct (feast init's Struct feature) or a nested value is not (pg_retrieval.decode_json)
    types = [pa.large_string() if c in JSON_OIDS else pg_type_code_to_arrow(c) for c in codes]
    texts = [i for i, c in enumerate(codes) if c in JSON_OIDS]
    if all(c in CSV_TYPES for c in codes):
        return _download_csv(cur, query, types), codes
    chunks: list[list[Any]] = [[] for _ in codes]
    buffer: list[tuple[Any, ...]] = []

    def flush() -> None:
        for col, values in enumerate(zip(*buffer)):
            column = as_text(list(values)) if col in texts else values
            chunks[col].append(pa.array(column, type=types[col], from_pandas=True))
        buffer.clear()

    with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)") as copy:
        copy.set_types(codes)
        for row in copy.rows():
            buffer.append(row)
            if len(buffer) >= BATCH:
                flush()
    if buffer:
        flush()
    arrays = [
        pa.chunked_array(parts, type=t).combine_chunks() if parts else pa.array([], type=t)
        for t, parts in zip(types, chunks)
    ]
    return arrays, codes


class _Blocks(io.RawIOBase):
    """A COPY's data blocks as a readable stream (Arrow's CSV reader reads it)."""

    def __init__(self, head: bytes, rest: Any) -> None:
        self.pending, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, out: Any) -> int:
        while not self.pending:
            block = next(self.rest, None)
            if block is None:
                return 0
            self.pending = bytes(block)
        n = min(len(out), len(self.pending))
        out[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        return n


def _download_csv(cur: Any, query: str, types: list[Any]) -> list[Any]:
    """A query's columns through PostgreSQL's CSV, streamed into Arrow's reader: a
    null is an empty unquoted field, an empty string a quoted one, booleans t/f,
    a row of one null column an empty line (kept); a float NaN becomes null."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    names = [f"c{i}" for i in range(len(types))]
    with cur.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
        blocks = iter(copy)
        first = next(blocks, None)
        if first is None:  # no rows: Arrow refuses an empty CSV
            return [pa.array([], type=t) for t in types]
        table = pacsv.read_csv(
            io.BufferedReader(_Blocks(bytes(first), blocks), buffer_size=1 << 20),
            read_options=pacsv.ReadOptions(column_names=names),
            parse_options=pacsv.ParseOptions(ignore_empty_lines=False),
            convert_options=pacsv.ConvertOptions(
                column_types=dict(zip(names, types)),
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                true_values=["t"],
                false_values=["f"],
            ),
        )
    out = []
    for name, typ in zip(names, types):
        column = table.column(name).combine_chunks()
        if pa.types.is_floating(typ):  # NaN as null, as the binary path's from_pandas makes it
            column = pc.if_else(pc.is_nan(column), pa.scalar(None, type=typ), column)
        out.append(column)
    return out


def _join_in_memory(
    cur: Any, entity_df: Any, spec: ViewSpec, source: str, ours: bool, bounds: tuple[Any, Any]
) -> dict[str, Any]:
    """One view's window downloaded in physical order, joined by asof.py. The event
    and created times come as integer microseconds since the epoch (exact; a time
    without a zone counts as UTC, as asof.py reads it), so a window of plain
    feature columns takes the CSV download."""
    import pyarrow as pa

    from .asof import join_view, ts_ns

    cols = spec.source_columns()
    times = {spec.timestamp, spec.created} - {None} - {s for s, _ in spec.features}
    select = [
        f"(extract(epoch from {ident(c)}) * 1000000)::bigint AS {ident(c)}" if c in times else ident(c) for c in cols
    ]
    query = f"SELECT {', '.join(select)} FROM {ident(source)} WHERE {_window(spec, bounds)} ORDER BY ctid"
    arrays, codes = _download(cur, query)
    arrays = decode_json(cur, source if ours else None, cols, arrays, codes)
    arrays = [a.cast(pa.timestamp("us")) if c in times else a for c, a in zip(cols, arrays)]  # UTC (asof.py)
    table = pa.table(dict(zip(cols, arrays)))
    return join_view({k: entity_df[k] for k, _ in spec.keys}, ts_ns(entity_df[EVENT_TS]), table, spec)


def join_postgres(conn: Any, entity_df: Any, views: list[tuple[ViewSpec, str, bool]], timings: dict[str, float]) -> Any:
    """Feature columns (name -> Arrow array) for every entity row, in order.

    ``views``: (spec, FROM-clause text of the source, whether it is a table
    featctl loaded). ``conn`` is a psycopg connection of the offline store.
    """
    keys = list(dict.fromkeys(k for spec, _, _ in views for k, _ in spec.keys))
    # microseconds, as PostgreSQL keeps times: the floor of the newest still admits every row not after it
    times = entity_df[EVENT_TS].dt.floor("us")
    bounds = (times.min().to_pydatetime(), times.max().to_pydatetime())
    out: dict[str, Any] = {}
    with conn.transaction(), conn.cursor() as cur:
        started = time.monotonic()
        bulk = bulk_views(cur, views, bounds, len(entity_df))
        for (spec, source, ours), whole in zip(views, bulk):
            if whole:
                out.update(_join_in_memory(cur, entity_df, spec, source, ours, bounds))
        timings["windows read whole"] = time.monotonic() - started
        probed = [v for v, whole in zip(views, bulk) if not whole]
        if probed:
            out.update(_probe(cur, entity_df, probed, keys, bounds, timings))
    # every view's columns in the views' order, whichever way each was read
    return {o: out[o] for spec, _, _ in views for _, o in spec.features}


def _probe(
    cur: Any,
    entity_df: Any,
    views: list[tuple[ViewSpec, str, bool]],
    keys: list[str],
    bounds: tuple[Any, Any],
    timings: dict[str, float],
) -> dict[str, Any]:
    """The views' columns by one query of index probes (the module docstring's 1-3)."""
    started = time.monotonic()
    upload_entities(cur, entity_df, keys)
    timings["entity upload"] = time.monotonic() - started
    started = time.monotonic()
    joins, select, names = [], [], []
    for i, (spec, source, ours) in enumerate(views):
        if ours:
            _index(cur, source, spec)
            joins.append(lateral(i, ident(source), "ctid", spec))
        else:
            joins.append(lateral(i, _copy_source(cur, i, source, spec, bounds), ident(ROW), spec))
        select += [f"v{i}.{ident(f'f{j}')}" for j in range(len(spec.features))]
        names += [out for _, out in spec.features]
    timings["indexes"] = time.monotonic() - started
    started = time.monotonic()
    # One index probe per entity row and view: visit the entity rows in key and
    # time order (neighbouring probes read neighbouring index pages), no JIT
    # (a second of compiling for a plan of probes), no memoize (no probe repeats).
    cur.execute("SET LOCAL jit = off")
    cur.execute("SET LOCAL enable_memoize = off")
    order = ", ".join([*(ident(k) for k in keys), ident(TS)])
    entities = f"(SELECT * FROM {ENTITIES} ORDER BY {order}) e"
    query = f"SELECT {', '.join(select)} FROM {entities} {' '.join(joins)} ORDER BY e.{ident(ROW)}"
    arrays, codes = _download(cur, query)
    timings["point-in-time query and download"] = time.monotonic() - started
    return dict(zip(names, decode_views(cur, views, arrays, codes)))

