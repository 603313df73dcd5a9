"""The point-in-time (as-of) join of one feature view, without Feast.

For each entity row: the source row with the same join keys whose event time
is the greatest one not after the row's time and not older than the view's
TTL (both bounds inclusive; a TTL of 0/None has no lower bound), ties broken
by the created time (latest wins, a missing one counts as oldest) and then by
the row order in the source (the last row wins). One answer per entity row, in
the entity rows' order; no answer = nulls. This is Feast's documented
semantics (its file store's sorts are not stable, so its own tie-break is not
deterministic), computed with one sort of entity and source rows together:
O((n + m) log(n + m)) instead of Feast's file store's n x rows-per-entity.

The feature columns are taken from the source's Arrow columns by index, so
their types pass through as they are: nullable integers stay integers,
lists stay lists, timestamps stay timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NAT = -(2**63)  # numpy's NaT as int64: sorts before every real time


@dataclass
class ViewSpec:
    """One feature view's part of a request, in the source's column names."""

    name: str
    #: (entity-frame column, source column) per join key
    keys: list[tuple[str, str]]
    timestamp: str
    created: str | None
    #: (source column, output column) per feature
    features: list[tuple[str, str]]
    ttl_ns: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def source_columns(self) -> list[str]:
        cols = [s for _, s in self.keys] + [self.timestamp] + ([self.created] if self.created else [])
        cols += [s for s, _ in self.features]
        return list(dict.fromkeys(cols))


def ts_ns(values: Any) -> Any:
    """A timestamp column (Arrow array/chunked array, pandas Series) as int64
    nanoseconds since the epoch, UTC (a naive time is UTC); nulls become NAT."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = pa.array(values, from_pandas=True)
    typ = values.type
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        if pa.types.is_timestamp(typ) and typ.tz is not None:
            # the storage of a zoned time is UTC already: reinterpret, never consult the
            # zone database (a minimal host has none)
            values = values.cast(pa.timestamp("ns", tz=typ.tz)).cast(pa.int64()).cast(pa.timestamp("ns"))
        else:
            values = values.cast(pa.timestamp("ns"))
    else:
        raise TypeError(f"expected timestamps, got {typ}")
    ints = pc.fill_null(values.cast(pa.int64()), NAT)
    return np.asarray(ints.to_numpy(zero_copy_only=False), dtype=np.int64)


def _as_series(values: Any) -> Any:
    import pandas as pd
    import pyarrow as pa

    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        return pd.Series(values.to_pandas())
    return pd.Series(values).reset_index(drop=True)


def key_groups(entity_keys: list[Any], source_keys: list[Any]) -> tuple[Any, Any]:
    """One int64 group id per row for entity and source rows: equal ids = equal
    keys (all key columns); -1 where any key is null (such rows never match)."""
    import numpy as np
    import pandas as pd

    if len(entity_keys) != len(source_keys):
        raise ValueError("entity and source need the same number of key columns")
    n = len(entity_keys[0]) if entity_keys else 0
    m = len(source_keys[0]) if source_keys else 0
    if not entity_keys:  # no join keys (an entityless view): one group
        return np.zeros(n, dtype=np.int64), np.zeros(m, dtype=np.int64)
    gid = np.zeros(n + m, dtype=np.int64)
    null = np.zeros(n + m, dtype=bool)
    for ent, src in zip(entity_keys, source_keys):
        both = pd.concat([_as_series(ent), _as_series(src)], ignore_index=True)
        codes, uniques = pd.factorize(both, use_na_sentinel=True)
        null |= codes < 0
        combined = gid * (len(uniques) + 1) + (codes.astype(np.int64) + 1)
        gid = pd.factorize(combined)[0].astype(np.int64)  # keep the ids dense (no overflow)
    gid[null] = -1
    return gid[:n], gid[n:]


def asof_index(
    entity_group: Any,
    entity_ts: Any,
    source_group: Any,
    source_ts: Any,
    source_created: Any | None = None,
    ttl_ns: int | None = None,
) -> Any:
    """For each entity row the index of its source row (see the module
    docstring), or -1. Times are int64 ns (ts_ns), groups from key_groups."""
    import numpy as np

    ge = np.asarray(entity_group, dtype=np.int64)
    te = np.asarray(entity_ts, dtype=np.int64)
    gs = np.asarray(source_group, dtype=np.int64)
    ts = np.asarray(source_ts, dtype=np.int64)
    cs = np.full(len(gs), NAT, dtype=np.int64) if source_created is None else np.asarray(source_created, np.int64)
    result = np.full(len(ge), -1, dtype=np.int64)
    src_rows = np.nonzero((gs >= 0) & (ts != NAT))[0]
    ent_rows = np.nonzero((ge >= 0) & (te != NAT))[0]
    if not len(src_rows) or not len(ent_rows):
        return result
    m = len(src_rows)
    g = np.concatenate([gs[src_rows], ge[ent_rows]])
    t = np.concatenate([ts[src_rows], te[ent_rows]])
    # Within a group and time: source rows by (created, row order), then the entity
    # rows (created = max, order = past every source row), so the last source row
    # before an entity row in this order is its answer.
    c = np.concatenate([cs[src_rows], np.full(len(ent_rows), np.iinfo(np.int64).max, dtype=np.int64)])
    o = np.concatenate([np.arange(m, dtype=np.int64), np.full(len(ent_rows), m, dtype=np.int64)])
    order = np.lexsort((o, c, t, g))
    is_src = order < m
    last = np.maximum.accumulate(np.where(is_src, np.arange(len(order)), -1))
    ent_pos = np.nonzero(~is_src)[0]
    cand = last[ent_pos]
    found = cand >= 0
    cand = np.where(found, cand, 0)
    g_sorted, t_sorted = g[order], t[order]
    found &= g_sorted[cand] == g_sorted[ent_pos]
    if ttl_ns:
        found &= t_sorted[cand] >= t_sorted[ent_pos] - ttl_ns
    which_entity = ent_rows[order[ent_pos] - m]
    result[which_entity[found]] = src_rows[order[cand[found]]]
    return result


def take(column: Any, index: Any) -> Any:
    """``column`` (Arrow) at ``index``; -1 gives null. Types are kept."""
    import pyarrow as pa

    idx = pa.array(index, mask=index < 0, type=pa.int64())
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return column.take(idx)


def join_view(entity_cols: dict[str, Any], entity_ts: Any, source: Any, spec: ViewSpec) -> dict[str, Any]:
    """Output column -> Arrow array of ``spec``'s features for each entity row.

    ``entity_cols`` maps entity-frame column names to their values (pandas
    Series or Arrow arrays), ``entity_ts`` is int64 ns, ``source`` an Arrow
    table with ``spec.source_columns()``.
    """
    ge, gs = key_groups([entity_cols[e] for e, _ in spec.keys], [source.column(s) for _, s in spec.keys])
    created = ts_ns(source.column(spec.created)) if spec.created else None
    index = asof_index(ge, entity_ts, gs, ts_ns(source.column(spec.timestamp)), created, spec.ttl_ns)
    return {out: take(source.column(src), index) for src, out in spec.features}
