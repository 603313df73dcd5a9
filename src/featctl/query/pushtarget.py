"""What one push source takes, from the cached registry summary: the columns
of the views it feeds, and the rest of its batch source's columns.

Feast's offline write (``FeatureStore.write_to_offline_store``) wants the
pushed frame to hold exactly the batch source's columns, and the file
offline store casts it to the data file's arrow schema. A batch source often
feeds other views too (featctl's demo: ``driver_hourly_stats`` reads
``avg_daily_trips`` from the file ``driver_stats_push_source`` appends to,
``driver_quality_metrics`` only ``conv_rate`` and ``acc_rate``), so those
columns are taken when given (typed as the views over the batch source
declare them) and sent as nulls otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from featctl.errors import UsageError
from featctl.query.catalog import Catalog
from featctl.query.values import element_type

SCALARS = ("Int32", "Int64", "Float32", "Float64", "String", "Bool", "UnixTimestamp", "Json")
POSTGRES = "postgres:"


@dataclass(frozen=True)
class PushTarget:
    """What one push source takes: the union of the columns of the views it
    feeds (``keys``, ``features``), the batch source's other columns that
    views reading it directly declare (``source_only``: offline only) and
    its timestamp fields."""

    name: str
    views: list[str]
    keys: dict[str, str]
    features: dict[str, str]
    timestamp: str
    created: str | None
    source_only: dict[str, str] = field(default_factory=dict)
    #: where the batch source's rows live (the summary's ``source``), if known
    source: str | None = None

    @property
    def columns(self) -> dict[str, str]:
        times = {self.timestamp: "UnixTimestamp"} | ({self.created: "UnixTimestamp"} if self.created else {})
        return self.keys | self.features | self.source_only | times

    def online_columns(self) -> list[str]:
        return [c for c in self.columns if c not in self.source_only]

    def takes(self) -> str:
        """What ``--set`` takes, for a message."""
        extra = f"; columns of its batch source: {', '.join(self.source_only)}" if self.source_only else ""
        return f"its features: {', '.join(self.features)}{extra}"


def push_target(cat: Catalog, name: str) -> PushTarget:
    """The push source ``name`` from the registry summary, or one line saying why not."""
    sources = {p["name"]: p for p in cat.desc.get("push_sources", [])}
    if "push_sources" not in cat.desc:
        raise UsageError("this deployment's registry summary predates push: run `featctl deploy` once to refresh it")
    if name not in sources:
        fed = [p["name"] for p in sources.values() if name in p.get("views", [])]
        hint = f"; {name} is a feature view fed by {', '.join(fed)}" if fed else ""
        known = ", ".join(sorted(sources)) or "none"
        raise UsageError(f"--view {name!r} is not a push source{hint}; push sources: {known}")
    src = sources[name]
    views = {v["name"]: v for v in cat.desc.get("feature_views", [])}
    fed = [views[v] for v in src.get("views", []) if v in views]
    if not fed:
        raise UsageError(f"push source {name} feeds no feature view: Feast has nowhere to write its rows")
    if src.get("field_mapping"):
        raise UsageError(
            f"push source {name}'s batch source renames columns (field_mapping): featctl push does not handle "
            "that; push with Feast's SDK (featctl connect)"
        )
    keys: dict[str, str] = {}
    features: dict[str, str] = {}
    for view in fed:
        for part, fields in ((keys, view.get("join_keys", [])), (features, view.get("features", []))):
            for f in fields:
                if part.setdefault(f["name"], f["dtype"]) != f["dtype"]:
                    raise UsageError(f"push source {name}: its views declare {f['name']} with different types")
    for col, dtype in (keys | features).items():
        if not carried(dtype):
            raise UsageError(
                f"featctl push does not carry {dtype} values ({col} of push source {name}); "
                "push with Feast's SDK (featctl connect)"
            )
    timestamp = str(src.get("timestamp_field") or "event_timestamp")
    created: str | None = src.get("created_timestamp_column") or None
    where = src.get("source")
    return PushTarget(
        name=name,
        views=[v["name"] for v in fed],
        keys=keys,
        features=features,
        timestamp=timestamp,
        created=created,
        source_only=_source_only(views, fed, where, {*keys, *features, timestamp, created or timestamp}),
        source=where,
    )


def carried(dtype: str) -> bool:
    return dtype in SCALARS or element_type(dtype) in SCALARS


def _source_only(
    views: dict[str, dict[str, Any]], fed: list[dict[str, Any]], where: str | None, taken: set[str]
) -> dict[str, str]:
    """The columns that other views read from the push source's batch source
    (same file or table) and its own views do not: name -> declared type."""
    if not where:
        return {}
    out: dict[str, str] = {}
    names = {v["name"] for v in fed}
    for view in views.values():
        if view["name"] in names or not _same_source(view.get("source"), where):
            continue
        for f in [*view.get("join_keys", []), *view.get("features", [])]:
            if f["name"] not in taken:
                out.setdefault(f["name"], f["dtype"])
    return out


def _same_source(a: str | None, b: str) -> bool:
    """The same file or table. A summary from an earlier agent names a push
    source's file by its absolute path where the views name it relative to
    the release (a repository whose paths are built with ``os.path.abspath``)."""
    if not a:
        return False
    if a == b:
        return True
    rel, full = (a, b) if b.startswith("/") else (b, a)
    return full.startswith("/") and not rel.startswith("/") and full.endswith("/" + rel)


def refuse_offline_into_postgres(target: PushTarget, stores: object) -> None:
    """Feast 0.67's PostgreSQL offline store has no ``offline_write_batch``
    (the feature server answers ``HTTP 500: ""``): refused before sending."""
    table = target.source[len(POSTGRES) :] if target.source and target.source.startswith(POSTGRES) else None
    if table is None and not (isinstance(stores, (dict, list, tuple, set)) and "postgres" in stores):
        return
    on = f" (table {table})" if table else ""
    raise UsageError(
        f"push source {target.name}'s batch source is in PostgreSQL{on}, and Feast 0.67's PostgreSQL offline "
        "store takes no pushes: push --to online, or deploy without the postgres store for offline pushes"
    )
