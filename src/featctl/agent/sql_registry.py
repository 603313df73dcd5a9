"""Feast's SQL registry on PostgreSQL, read without ``import feast``.

Feast 0.67's ``SqlRegistry`` (feast/infra/registry/sql.py) keeps one serialized
proto per object in a table per kind (``entities.entity_proto``,
``feature_views.feature_view_proto``, ...) keyed by ``project_id``, the
projects in ``projects.project_proto`` and each project's infra in
``managed_infra``. ``SqlRegistry.proto()`` assembles a ``Registry`` proto from
them; this module assembles the same one with the Feast environment's psycopg
and Feast's generated protos (~0.3 s instead of ~10 s for ``import feast``).
Nothing is written: ``FeatureStore()`` would create missing tables and project
metadata, so a registry this module cannot read exactly (no such project yet,
a table missing, options it does not understand) is left to the full read.
"""

from __future__ import annotations

import re
from typing import Any

#: Registry field -> (table, proto column), in the order SqlRegistry.proto() lists them.
OBJECT_TABLES = (
    ("entities", "entities", "entity_proto"),
    ("feature_views", "feature_views", "feature_view_proto"),
    ("data_sources", "data_sources", "data_source_proto"),
    ("on_demand_feature_views", "on_demand_feature_views", "feature_view_proto"),
    ("stream_feature_views", "stream_feature_views", "feature_view_proto"),
    ("feature_services", "feature_services", "feature_service_proto"),
    ("saved_datasets", "saved_datasets", "saved_dataset_proto"),
    ("validation_references", "validation_references", "validation_reference_proto"),
    ("permissions", "permissions", "permission_proto"),
    ("label_views", "label_views", "feature_view_proto"),
)

_SCHEME = re.compile(r"^postgres(?:ql)?(?:\+[a-z0-9_]+)?://", re.IGNORECASE)


class Unsupported(Exception):
    """This registry is not one the fast read handles exactly: use Feast."""


def postgres_url(cfg: dict[str, Any]) -> str | None:
    """The libpq URI of a SQL registry on PostgreSQL (the one Feast reads from:
    ``read_path`` else ``path``), or None when the registry is something else."""
    reg = cfg.get("registry")
    if not isinstance(reg, dict) or str(reg.get("registry_type") or "").lower() != "sql":
        return None
    url = reg.get("read_path") or reg.get("path")
    if not isinstance(url, str) or not _SCHEME.match(url):
        return None
    kwargs = reg.get("sqlalchemy_config_kwargs") or {}
    if isinstance(kwargs, dict) and kwargs.get("connect_args"):
        raise Unsupported("the registry sets sqlalchemy connect_args")
    # SQLAlchemy's URL (postgresql+psycopg://user:password@host:port/db?sslmode=...) is a libpq
    # URI once the driver is dropped: libpq decodes %-escapes and takes the same query options.
    return "postgresql://" + url.split("://", 1)[1]


def _timestamp_to_micros(ts: Any) -> None:
    """Feast turns a project's timestamps into datetimes and back: microseconds survive."""
    ts.nanos = ts.nanos // 1000 * 1000


def read_proto(registry_pb2: Any, url: str, project: str, connect_timeout: int = 10) -> Any:
    """The Registry proto SqlRegistry.proto() builds, read from PostgreSQL at ``url``."""
    import psycopg

    with psycopg.connect(url, connect_timeout=connect_timeout) as conn:
        # One read-only snapshot for every table: a consistent picture of the registry.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        return _assemble(conn, registry_pb2.Registry(), project)


def _assemble(conn: Any, reg: Any, project: str) -> Any:
    names = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
    missing = [t for t in ("projects", "managed_infra", *(t for _, t, _ in OBJECT_TABLES)) if t not in names]
    if missing:
        raise Unsupported(f"the SQL registry has no table(s) {', '.join(missing)}")
    rows = conn.execute("SELECT project_proto FROM projects").fetchall()
    projects = []
    for (data,) in rows:
        p = reg.projects.add()
        p.ParseFromString(bytes(data))
        # Feast's Project.from_proto/to_proto passes both timestamps through datetime.
        for field in ("created_timestamp", "last_updated_timestamp"):
            if not p.meta.HasField(field):  # Feast would stamp "now": not reproducible, let Feast answer
                raise Unsupported(f"project {p.spec.name!r} has no {field}")
            _timestamp_to_micros(getattr(p.meta, field))
        projects.append(p.spec.name)
    if project not in projects:
        # FeatureStore() would first create it (or sync it from feast_metadata).
        raise Unsupported(f"project {project!r} is not in the projects table")
    for name in projects:
        for field, table, column in OBJECT_TABLES:
            target = getattr(reg, field)
            for (data,) in conn.execute(f"SELECT {column} FROM {table} WHERE project_id = %s", (name,)):
                obj = target.add()
                obj.ParseFromString(bytes(data))
                if "spec" in obj.DESCRIPTOR.fields_by_name:
                    obj.spec.project = name
                else:
                    obj.project = name
        infra = type(reg.infra)()
        row = conn.execute(
            "SELECT infra_proto FROM managed_infra WHERE infra_name = 'infra_obj' AND project_id = %s", (name,)
        ).fetchone()
        if row is not None:
            infra.ParseFromString(bytes(row[0]))
        # As Feast does: the registry has one infra field, the last project's.
        reg.infra.CopyFrom(infra)
    stamps = [p.meta.last_updated_timestamp for p in reg.projects]
    if stamps:
        reg.last_updated.CopyFrom(max(stamps, key=lambda t: (t.seconds, t.nanos)))
    return reg
