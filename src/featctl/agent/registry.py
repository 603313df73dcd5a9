"""Reading the applied registry: fast (the protobuf file, or the SQL registry's
tables on PostgreSQL (sql_registry.py), without ``import feast``, ~0.2 s) or
full (through ``FeatureStore``, ~10 s), and describing it as JSON for featctl's
client (``describe``)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
import time
import types
from typing import Any

from .output import InputError
from .repo import load_repo_config, local_registry_path
from .sourcerows import source_rows
from .timeutil import pb_ts

DUMMY_ENTITY = "__dummy"
DUMMY_JOIN_KEY = "__dummy_id"


def import_registry_pb2_fast() -> Any:
    """Import feast's generated Registry_pb2 without executing feast/__init__.py.

    A stub ``feast`` package whose ``__path__`` is the real package dir is put in
    sys.modules, so ``feast.protos...`` resolve to the real files (~0.2 s instead of
    ~10 s for ``import feast``).
    """
    if "feast" in sys.modules:  # real Feast (or stub) already loaded
        from feast.protos.feast.core import Registry_pb2

        return Registry_pb2
    spec = importlib.util.find_spec("feast")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("feast package not found")
    stub: Any = types.ModuleType("feast")
    stub.__path__ = list(spec.submodule_search_locations)
    stub.__file__ = spec.origin
    stub.__featctl_stub__ = True
    sys.modules["feast"] = stub
    try:
        from feast.protos.feast.core import Registry_pb2

        Registry_pb2.Registry()  # sanity: message class usable
        return Registry_pb2
    except BaseException:
        drop_feast_modules()
        raise


def drop_feast_modules() -> None:
    for name in list(sys.modules):
        if name == "feast" or name.startswith("feast."):
            del sys.modules[name]


def import_feast() -> Any:
    """Import the real feast package (dropping the describe stub if it is loaded)."""
    mod = sys.modules.get("feast")
    if mod is not None and getattr(mod, "__featctl_stub__", False):
        drop_feast_modules()
    import feast

    from .compat import patch_feast

    patch_feast()
    return feast


def registry_proto_fast(repo: str, cfg: dict[str, Any]) -> tuple[Any, str | None]:
    from . import sql_registry

    try:
        url = sql_registry.postgres_url(cfg)
        if url is not None:
            return sql_registry.read_proto(import_registry_pb2_fast(), url, cfg["project"]), None
    except sql_registry.Unsupported as exc:
        return None, str(exc)
    path = local_registry_path(repo, cfg)
    if path is None:
        return None, "registry is neither a local file nor SQL on PostgreSQL"
    if not os.path.exists(path):
        raise InputError(f"registry {path} does not exist: feature store not applied (run apply first)")
    Registry_pb2 = import_registry_pb2_fast()
    # Feast rewrites registry.db in place (truncate + write), so a concurrent apply or
    # materialize can show us an empty or partial file: retry briefly.
    proto = Registry_pb2.Registry()
    for attempt in range(10):
        with open(path, "rb") as fh:
            data = fh.read()
        proto = Registry_pb2.Registry()
        try:
            proto.ParseFromString(data)
            if data:
                return proto, None
        except Exception:
            if attempt == 9:
                raise
        time.sleep(0.1)
    return proto, None


def registry_proto_full(repo: str) -> Any:
    import_feast()
    from feast import FeatureStore

    store = FeatureStore(repo_path=repo)
    reg = store.registry
    with contextlib.suppress(Exception):
        reg.refresh(store.project)
    return reg.proto()


def load_registry(repo: str, cfg: dict[str, Any], full: bool = False) -> tuple[Any, str]:
    """(registry proto, "fast"|"full"): the file registry parsed without importing
    Feast when possible, otherwise through FeatureStore(repo).registry.proto()."""
    if not full:
        try:
            proto, why = registry_proto_fast(repo, cfg)
            if proto is not None:
                return proto, "fast"
            print(f"hostagent: fast registry read unavailable ({why}); importing feast", file=sys.stderr)
        except InputError:
            raise
        except Exception as exc:  # protos not importable standalone etc.
            print(f"hostagent: fast registry read failed ({exc!r}); importing feast", file=sys.stderr)
    path = local_registry_path(repo, cfg)
    if path is not None and not os.path.exists(path):
        raise InputError(f"registry {path} does not exist: feature store not applied (run apply first)")
    return registry_proto_full(repo), "full"


_VT_NAMES = {
    "INVALID": "Invalid",
    "BYTES": "Bytes",
    "STRING": "String",
    "INT32": "Int32",
    "INT64": "Int64",
    "DOUBLE": "Float64",
    "FLOAT": "Float32",
    "BOOL": "Bool",
    "UNIX_TIMESTAMP": "UnixTimestamp",
    "NULL": "Null",
    "MAP": "Map",
    "JSON": "Json",
    "STRUCT": "Struct",
    "UUID": "Uuid",
    "TIME_UUID": "TimeUuid",
    "DECIMAL": "Decimal",
    "SCALAR_MAP": "ScalarMap",
    "ZONED_TIMESTAMP": "ZonedTimestamp",
    "VALUE": "Value",
    "PDF_BYTES": "PdfBytes",
    "IMAGE_BYTES": "ImageBytes",
}


def dtype_name(field: Any) -> str:
    """Feast-style type string (as str(feast.types.X)) for a FeatureSpecV2-like message."""
    enum = field.DESCRIPTOR.fields_by_name["value_type"].enum_type
    try:
        raw = str(enum.values_by_number[field.value_type].name)
    except KeyError:
        return str(field.value_type)
    for suffix, wrap in (("_LIST", "Array"), ("_SET", "Set")):
        if raw.endswith(suffix):
            base = raw[: -len(suffix)]
            return f"{wrap}({_VT_NAMES.get(base, base.title())})"
    return _VT_NAMES.get(raw, raw.title())


def _fields(fields: Any) -> list[dict[str, str]]:
    return [{"name": f.name, "dtype": dtype_name(f)} for f in fields]


def _source_path(source: Any, repo: str | None = None) -> str | None:
    """The file a source reads after ``feast apply``, relative to the repository
    when it lies inside it (a path built with ``os.path.abspath(__file__)``, as
    Feast's templates do, names the release's own copy), ``postgres:<table>``
    for a table featctl loaded (stores = postgres), else None."""
    if source.WhichOneof("options") == "custom_options":
        try:
            table = json.loads(source.custom_options.configuration or b"{}").get("table")
        except (ValueError, AttributeError):
            table = None
        return f"postgres:{table}" if isinstance(table, str) and table.startswith("featctl_") else None
    uri = source.file_options.uri if source.WhichOneof("options") == "file_options" else ""
    if not uri or ("://" in uri and not uri.startswith("file://")):
        return None
    path = os.path.normpath(uri[len("file://") :] if uri.startswith("file://") else uri)
    return _inside(repo, path) if repo and os.path.isabs(path) else path


def _inside(repo: str, path: str) -> str:
    """``path`` relative to ``repo`` when it lies inside it (symlinks resolved), else as given."""
    root = os.path.realpath(repo)
    real = os.path.realpath(path)
    return os.path.relpath(real, root) if real.startswith(root + os.sep) else path


def _sqlite_online_path(repo: str, cfg: dict[str, Any]) -> str | None:
    """The sqlite online store's file (Feast's default when the section names
    none), absolute or under ``repo``; None for any other online store."""
    online = cfg.get("online_store")
    section = online if isinstance(online, dict) else {"type": online or "sqlite"}
    if str(section.get("type", "sqlite")) != "sqlite":
        return None
    raw = str(section.get("path") or "data/online.db")
    return raw if os.path.isabs(raw) else os.path.join(repo, raw)


def online_store_identity(repo: str, cfg: dict[str, Any]) -> str:
    """A digest of where the online store keeps its data (its section of
    feature_store.yaml with the variables expanded, as Feast reads it; a sqlite
    file by its path inside the release, since each release has its own copy of
    the serving one's): a release whose identity differs from the serving
    release's starts with an empty or other store and is materialized in full."""
    import hashlib

    online = cfg.get("online_store")
    section: dict[str, Any] = dict(online) if isinstance(online, dict) else {"type": online or "sqlite"}
    sqlite = _sqlite_online_path(repo, cfg)
    if sqlite is not None:
        section["path"] = _inside(repo, os.path.realpath(sqlite))
    text = json.dumps({"project": cfg.get("project"), "online_store": section}, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _own_sqlite(repo: str, cfg: dict[str, Any]) -> str | None:
    """The release's own sqlite online store file when its registry is shared by
    every release (not a file in the release), else None (the registry's record counts)."""
    return None if local_registry_path(repo, cfg) is not None else _sqlite_online_path(repo, cfg)


def render_registry(proto: Any, project: str, repo: str | None = None) -> dict[str, Any]:
    def mine(objs: Any) -> list[Any]:
        return [o for o in objs if o.spec.project == project]

    known_projects = {p.spec.name for p in proto.projects}
    known_projects |= {m.project for m in proto.project_metadata}
    all_objs = (
        list(proto.entities)
        + list(proto.feature_views)
        + list(proto.stream_feature_views)
        + list(proto.on_demand_feature_views)
        + list(proto.feature_services)
    )
    if project not in known_projects and not any(o.spec.project == project for o in all_objs):
        raise InputError(f"project {project!r} not found in the registry: feature store not applied (run apply first)")

    # A join key's type: the entity's declared one, else what the views inferred
    # from their sources (an Entity without value_type is stored as INVALID).
    inferred: dict[str, str] = {}
    for fv in mine(proto.feature_views) + mine(proto.stream_feature_views):
        for c in fv.spec.entity_columns:
            inferred.setdefault(c.name, dtype_name(c))
    entities = []
    for e in mine(proto.entities):
        if e.spec.name == DUMMY_ENTITY:
            continue
        declared = dtype_name(e.spec)
        dtype = declared if declared not in ("Invalid", "Unknown") else inferred.get(e.spec.join_key, "Unknown")
        entities.append(
            {"name": e.spec.name, "join_keys": [e.spec.join_key], "join_key_types": {e.spec.join_key: dtype}}
        )

    stream_names = {fv.spec.name for fv in mine(proto.stream_feature_views)}
    fvs = []
    for fv in mine(proto.feature_views) + mine(proto.stream_feature_views):
        spec, meta = fv.spec, fv.meta
        intervals = [  # the epoch is a legitimate start (first-run materialize)
            [pb_ts(i.start_time, i.HasField("start_time")), pb_ts(i.end_time, i.HasField("end_time"))]
            for i in meta.materialization_intervals
        ]
        ends = [i.end_time for i in meta.materialization_intervals]
        last = max(ends, key=lambda t: (t.seconds, t.nanos)) if ends else None
        ttl = None
        if spec.HasField("ttl"):
            secs = spec.ttl.seconds + (1 if spec.ttl.nanos else 0)
            ttl = secs or None  # 0 = no TTL in Feast
        fvs.append(
            {
                "name": spec.name,
                "kind": "stream feature view" if spec.name in stream_names else "feature view",
                "features": _fields(spec.features),
                "entities": [e for e in spec.entities if e != DUMMY_ENTITY],
                "join_keys": [f for f in _fields(spec.entity_columns) if f["name"] != DUMMY_JOIN_KEY],
                "source": _source_path(spec.batch_source, repo),
                "source_rows": source_rows(_source_path(spec.batch_source, repo), repo),
                "ttl_seconds": ttl,
                "online": bool(spec.online),
                "last_materialized": pb_ts(last, True) if last is not None else None,
                "materialization_intervals": intervals,
            }
        )

    odfvs = []
    for od in mine(proto.on_demand_feature_views):
        spec = od.spec
        sources: list[str] = []
        source_features: list[dict[str, Any]] = []
        requests: dict[str, list[dict[str, str]]] = {}
        for key in sorted(spec.sources):
            src = spec.sources[key]
            which = src.WhichOneof("source")
            if which == "feature_view":
                sources.append(src.feature_view.spec.name or key)
                source_features.append(
                    {"view": sources[-1], "features": [f.name for f in src.feature_view.spec.features]}
                )
            elif which == "feature_view_projection":
                pr = src.feature_view_projection
                sources.append(pr.feature_view_name or key)
                source_features.append({"view": sources[-1], "features": [c.name for c in pr.feature_columns]})
            elif which == "request_data_source":
                rds = src.request_data_source
                schema = list(rds.request_data_options.schema)
                requests[rds.name or key] = _fields(schema)
        odfvs.append(
            {
                "name": spec.name,
                "features": _fields(spec.features),
                "mode": spec.mode or "pandas",
                "source_feature_views": sources,
                "sources": source_features,
                "request_sources": requests,
            }
        )

    label_views = []
    if "label_views" in proto.DESCRIPTOR.fields_by_name:  # Feast 0.67 has them
        for lv in mine(proto.label_views):
            spec = lv.spec
            label_views.append(
                {
                    "name": spec.name,
                    "kind": "label view",
                    "features": _fields(spec.features),
                    "entities": [e for e in spec.entities if e != DUMMY_ENTITY],
                    "join_keys": [f for f in _fields(spec.entity_columns) if f["name"] != DUMMY_JOIN_KEY],
                    "online": bool(spec.online),
                }
            )

    services = []
    for fs in mine(proto.feature_services):
        refs: list[str] = []
        for proj in fs.spec.features:
            view = proj.feature_view_name_alias or proj.feature_view_name
            refs.extend(f"{view}:{c.name}" for c in proj.feature_columns)
        services.append({"name": fs.spec.name, "features": refs})

    from .pushsources import push_sources

    pushes = push_sources(
        proto, project, mine(proto.feature_views) + mine(proto.stream_feature_views), lambda s: _source_path(s, repo)
    )

    def by_name(d: dict[str, Any]) -> str:
        return str(d["name"])

    return {
        "project": project,
        "registry_last_updated": pb_ts(proto.last_updated) if proto.HasField("last_updated") else None,
        "entities": sorted(entities, key=by_name),
        "feature_views": sorted(fvs, key=by_name),
        "on_demand_feature_views": sorted(odfvs, key=by_name),
        "label_views": sorted(label_views, key=by_name),
        "feature_services": sorted(services, key=by_name),
        "push_sources": sorted(pushes, key=by_name),
    }


def cmd_describe(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.monotonic()
    cfg = load_repo_config(args.repo)
    proto, mode = load_registry(args.repo, cfg, full=args.full)
    doc = render_registry(proto, cfg["project"], args.repo)
    doc["online_store"] = online_store_identity(args.repo, cfg)
    if args.check:
        from .store import store_problems

        doc["problems"] = store_problems(proto, _own_sqlite(args.repo, cfg), cfg["project"])
    print(f"hostagent: describe ({mode}) took {time.monotonic() - t0:.3f}s", file=sys.stderr)
    return doc
