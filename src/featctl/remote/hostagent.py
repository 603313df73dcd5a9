#!/usr/bin/env python3
"""featctl host agent.

Standalone script: featctl uploads it to the feature-store host and runs it with the
host venv's interpreter::

    <venv>/bin/python hostagent.py describe    --repo DIR [--full]
    <venv>/bin/python hostagent.py historical  --repo DIR --entities FILE
                                               (--features REF[,REF...] | --feature-service NAME)
                                               --out FILE.parquet [--full-feature-names]
    <venv>/bin/python hostagent.py materialize --repo DIR [--start ISO --end ISO] [--views a,b]

Protocol: on success exactly one JSON document is printed on stdout and the exit
code is 0.  On failure ``{"error": "<one line>", "kind": "input"|"feast"}`` is printed
on stdout and the exit code is 1 (``input``: the request is wrong -- bad entity file,
unknown feature ref, repo not applied...; ``feast``: Feast itself raised).  Everything
else (Feast chatter, progress bars, tracebacks) goes to stderr: file descriptor 1 is
redirected to stderr for the whole run and the JSON is written to a saved copy of the
original stdout.

Only the standard library, Feast and its dependencies (pandas, pyarrow, PyYAML,
protobuf) may be imported here: this file must never import featctl.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib.util
import json
import math
import os
import sys
import time
import traceback
import types

UTC = _dt.timezone.utc
EPOCH = _dt.datetime(1970, 1, 1, tzinfo=UTC)
EVENT_TS = "event_timestamp"
ROW_COL = "__featctl_row__"
DUMMY_ENTITY = "__dummy"
DUMMY_JOIN_KEY = "__dummy_id"
# "...HH:MM[:SS[.fff]]" followed by Z or +HH[:MM] / -HH[:MM]
_TZ_SUFFIX = r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d{2}(?::?\d{2})?)$"

# Feast exceptions that mean "the request is wrong" rather than "Feast broke".
_INPUT_EXCEPTIONS = {
    "FeatureViewNotFoundException",
    "FeatureServiceNotFoundException",
    "OnDemandFeatureViewNotFoundException",
    "EntityNotFoundException",
    "RequestDataNotFoundInEntityDfException",
    "FeatureNameCollisionError",
    "FeastEntityDFMissingColumnsError",
    "EntityDFNotDateTime",
    "EntityTimestampInferenceException",
    "ProjectNotFoundException",
    "SpecifiedFeaturesNotPresentError",
}


class InputError(Exception):
    """The request is invalid (reported with kind=input)."""


# --------------------------------------------------------------------------- output


_REAL_STDOUT_FD = None


def _protect_stdout():
    """Send everything written to fd 1 to stderr; keep a private copy of real stdout."""
    global _REAL_STDOUT_FD
    if _REAL_STDOUT_FD is not None:
        return
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    _REAL_STDOUT_FD = os.dup(1)
    os.dup2(2, 1)


def _json_safe(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, _dt.datetime):
        return _iso(obj)
    return obj


def _emit(doc, code):
    data = (json.dumps(_json_safe(doc), allow_nan=False, separators=(",", ":")) + "\n").encode()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    fd = _REAL_STDOUT_FD if _REAL_STDOUT_FD is not None else 1
    while data:
        n = os.write(fd, data)
        data = data[n:]
    return code


def _one_line(msg, limit=2000):
    msg = " ".join(str(msg).split())
    return msg if len(msg) <= limit else msg[: limit - 3] + "..."


# --------------------------------------------------------------------------- time


def _iso(value):
    """ISO 8601 UTC string (``+00:00``) for a datetime / pandas Timestamp; None passes."""
    if value is None:
        return None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _parse_iso(text, what):
    """ISO 8601 text -> aware UTC datetime (naive = UTC); pandas parses more forms
    than datetime.fromisoformat on Python 3.10."""
    import pandas as pd

    try:
        value = pd.Timestamp(str(text).strip())
    except (ValueError, TypeError, OverflowError):
        value = None
    if value is None or value is pd.NaT:
        raise InputError(f"{what}: {text!r} is not an ISO 8601 timestamp")
    value = value.tz_localize(UTC) if value.tzinfo is None else value.tz_convert(UTC)
    return value.to_pydatetime()


def _pb_ts(ts, present=False):
    """google.protobuf.Timestamp -> ISO string; None when unset (all-zero and not `present`)."""
    if ts is None or (not present and ts.seconds == 0 and ts.nanos == 0):
        return None
    value = _dt.datetime.fromtimestamp(ts.seconds, tz=UTC) + _dt.timedelta(microseconds=ts.nanos // 1000)
    return value.isoformat()


# --------------------------------------------------------------------------- repo config


def _load_repo_config(repo):
    path = os.path.join(repo, "feature_store.yaml")
    if not os.path.isfile(path):
        raise InputError(f"{path} not found: not a Feast repo")
    import yaml  # PyYAML is a Feast dependency

    with open(path, encoding="utf-8") as fh:
        # Feast expands ${VAR} in feature_store.yaml the same way.
        cfg = yaml.safe_load(os.path.expandvars(fh.read())) or {}
    if not isinstance(cfg, dict) or not cfg.get("project"):
        raise InputError(f"{path}: no 'project' defined")
    return cfg


def _local_registry_path(repo, cfg):
    """Path of a local file registry, or None when the registry is not a local file."""
    reg = cfg.get("registry", "data/registry.db")
    if isinstance(reg, dict):
        rtype = str(reg.get("registry_type", "file") or "file").lower()
        if rtype != "file" or reg.get("registry_store_type"):
            return None
        reg = reg.get("path")
    if not isinstance(reg, str) or not reg:
        return None
    if reg.startswith("file://"):
        reg = reg[len("file://") :]
    elif "://" in reg:  # s3://, gs://, postgresql://...
        return None
    return reg if os.path.isabs(reg) else os.path.join(repo, reg)


# --------------------------------------------------------------------------- describe


def _import_registry_pb2_fast():
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
    stub = types.ModuleType("feast")
    stub.__path__ = list(spec.submodule_search_locations)
    stub.__file__ = spec.origin
    stub.__featctl_stub__ = True
    sys.modules["feast"] = stub
    try:
        from feast.protos.feast.core import Registry_pb2

        Registry_pb2.Registry()  # sanity: message class usable
        return Registry_pb2
    except BaseException:
        _drop_feast_modules()
        raise


def _drop_feast_modules():
    for name in list(sys.modules):
        if name == "feast" or name.startswith("feast."):
            del sys.modules[name]


def _registry_proto_fast(repo, cfg):
    path = _local_registry_path(repo, cfg)
    if path is None:
        return None, "registry is not a local file"
    if not os.path.exists(path):
        raise InputError(f"registry {path} does not exist: feature store not applied (run apply first)")
    Registry_pb2 = _import_registry_pb2_fast()
    # Feast rewrites registry.db in place (truncate + write), so a concurrent apply or
    # materialize can show us an empty or partial file: retry briefly.
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


def _registry_proto_full(repo):
    _import_feast()
    from feast import FeatureStore

    store = FeatureStore(repo_path=repo)
    reg = store.registry
    with contextlib.suppress(Exception):
        reg.refresh(store.project)
    return reg.proto()


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


def _dtype_name(field):
    """Feast-style type string (as str(feast.types.X)) for a FeatureSpecV2-like message."""
    enum = field.DESCRIPTOR.fields_by_name["value_type"].enum_type
    try:
        raw = enum.values_by_number[field.value_type].name
    except KeyError:
        return str(field.value_type)
    for suffix, wrap in (("_LIST", "Array"), ("_SET", "Set")):
        if raw.endswith(suffix):
            base = raw[: -len(suffix)]
            return f"{wrap}({_VT_NAMES.get(base, base.title())})"
    return _VT_NAMES.get(raw, raw.title())


def _fields(fields):
    return [{"name": f.name, "dtype": _dtype_name(f)} for f in fields]


def _render_registry(proto, project):
    def mine(objs):
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

    entities = [
        {"name": e.spec.name, "join_keys": [e.spec.join_key]}
        for e in mine(proto.entities)
        if e.spec.name != DUMMY_ENTITY
    ]

    fvs = []
    for fv in mine(proto.feature_views) + mine(proto.stream_feature_views):
        spec, meta = fv.spec, fv.meta
        intervals = [  # the epoch is a legitimate start (first-run materialize)
            [_pb_ts(i.start_time, i.HasField("start_time")), _pb_ts(i.end_time, i.HasField("end_time"))]
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
                "features": _fields(spec.features),
                "entities": [e for e in spec.entities if e != DUMMY_ENTITY],
                "ttl_seconds": ttl,
                "online": bool(spec.online),
                "last_materialized": _pb_ts(last, True) if last is not None else None,
                "materialization_intervals": intervals,
            }
        )

    odfvs = []
    for od in mine(proto.on_demand_feature_views):
        spec = od.spec
        sources, requests = [], {}
        for key in sorted(spec.sources):
            src = spec.sources[key]
            which = src.WhichOneof("source")
            if which == "feature_view":
                sources.append(src.feature_view.spec.name or key)
            elif which == "feature_view_projection":
                sources.append(src.feature_view_projection.feature_view_name or key)
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
                "request_sources": requests,
            }
        )

    services = []
    for fs in mine(proto.feature_services):
        refs = []
        for proj in fs.spec.features:
            view = proj.feature_view_name_alias or proj.feature_view_name
            refs.extend(f"{view}:{c.name}" for c in proj.feature_columns)
        services.append({"name": fs.spec.name, "features": refs})

    by_name = lambda d: d["name"]  # noqa: E731
    return {
        "project": project,
        "registry_last_updated": _pb_ts(proto.last_updated) if proto.HasField("last_updated") else None,
        "entities": sorted(entities, key=by_name),
        "feature_views": sorted(fvs, key=by_name),
        "on_demand_feature_views": sorted(odfvs, key=by_name),
        "feature_services": sorted(services, key=by_name),
    }


def _load_registry(repo, cfg, full=False):
    """(registry proto, "fast"|"full"): the file registry parsed without importing
    Feast when possible, otherwise through FeatureStore(repo).registry.proto()."""
    if not full:
        try:
            proto, why = _registry_proto_fast(repo, cfg)
            if proto is not None:
                return proto, "fast"
            print(f"hostagent: fast registry read unavailable ({why}); importing feast", file=sys.stderr)
        except InputError:
            raise
        except Exception as exc:  # protos not importable standalone etc.
            print(f"hostagent: fast registry read failed ({exc!r}); importing feast", file=sys.stderr)
    path = _local_registry_path(repo, cfg)
    if path is not None and not os.path.exists(path):
        raise InputError(f"registry {path} does not exist: feature store not applied (run apply first)")
    return _registry_proto_full(repo), "full"


def _import_feast():
    """Import the real feast package (dropping the describe stub if it is loaded)."""
    mod = sys.modules.get("feast")
    if mod is not None and getattr(mod, "__featctl_stub__", False):
        _drop_feast_modules()
    import feast

    return feast


def cmd_describe(args):
    t0 = time.monotonic()
    cfg = _load_repo_config(args.repo)
    proto, mode = _load_registry(args.repo, cfg, full=args.full)
    doc = _render_registry(proto, cfg["project"])
    print(f"hostagent: describe ({mode}) took {time.monotonic() - t0:.3f}s", file=sys.stderr)
    return doc


# --------------------------------------------------------------------------- historical


def _read_entities(path):
    import pandas as pd

    if not os.path.isfile(path):
        raise InputError(f"entity file {path} not found")
    lower = path.lower()
    try:
        if lower.endswith(".csv"):
            df = pd.read_csv(path)
        elif lower.endswith((".parquet", ".pq")):
            df = pd.read_parquet(path)
        else:
            raise InputError(f"entity file {path}: unsupported format (use .csv or .parquet)")
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read entity file {path}: {_one_line(exc, 300)}") from None
    if EVENT_TS not in df.columns:
        raise InputError(
            f"entity file is missing column(s): {EVENT_TS} (columns present: {', '.join(map(str, df.columns))})"
        )
    if ROW_COL in df.columns:
        raise InputError(f"entity file must not contain a column named {ROW_COL}")
    if not len(df):
        raise InputError("entity file has no rows")
    df[EVENT_TS] = _normalize_ts_column(df[EVENT_TS])
    return df.reset_index(drop=True)


def _normalize_ts_column(col):
    """Parse/convert a timestamp column to datetime64[ns, UTC]; naive values are UTC."""
    import pandas as pd
    from pandas.api import types as ptypes

    if ptypes.is_datetime64_any_dtype(col.dtype):
        out = col.dt.tz_localize(UTC) if col.dt.tz is None else col.dt.tz_convert(UTC)
    elif ptypes.is_numeric_dtype(col.dtype) and len(col):
        raise InputError(f"{EVENT_TS} must be ISO 8601 timestamps, got numbers")
    else:
        # Parse naive and offset-carrying strings separately: pandas 2.x, given a mix,
        # applies the last seen offset to the naive values that follow it.
        text = col.astype("string").str.strip()
        aware = text.str.contains(_TZ_SUFFIX, regex=True).fillna(False).astype(bool)
        out = pd.Series(pd.NaT, index=col.index, dtype="datetime64[ns, UTC]")
        try:
            if aware.any():
                out[aware] = pd.to_datetime(text[aware], utc=True, format="ISO8601")
            if (~aware).any():
                naive = pd.to_datetime(text[~aware], format="ISO8601")
                if getattr(naive.dt, "tz", None) is None:
                    naive = naive.dt.tz_localize(UTC)
                out[~aware] = naive.dt.tz_convert(UTC)
        except (ValueError, TypeError, OverflowError) as exc:
            for pos, value in enumerate(text):  # error path only: locate the culprit
                if value is pd.NA:
                    continue
                try:
                    pd.to_datetime([value], format="ISO8601", utc=True)
                except (ValueError, TypeError, OverflowError):
                    raise InputError(f"{EVENT_TS}: row {pos} value {value!r} is not an ISO 8601 timestamp") from None
            raise InputError(f"{EVENT_TS}: cannot parse as ISO 8601: {_one_line(exc, 300)}") from None
    bad = out.isna()
    if bad.any():
        first = int(bad.to_numpy().argmax())
        raise InputError(f"{EVENT_TS} is empty/invalid in {int(bad.sum())} row(s), first at row {first}")
    try:
        return out.astype("datetime64[ns, UTC]")
    except Exception as exc:
        raise InputError(f"{EVENT_TS} out of range: {_one_line(exc, 300)}") from None


def _split_refs(values):
    refs = []
    for value in values or []:
        refs.extend(r.strip() for r in value.split(",") if r.strip())
    return list(dict.fromkeys(refs))


class _Catalog:
    """What historical retrieval needs from the registry proto of one project."""

    def __init__(self, proto, project):
        def mine(objs):
            return [o for o in objs if o.spec.project == project]

        entity_keys = {e.spec.name: e.spec.join_key for e in mine(proto.entities)}
        self.fvs = {}  # name -> (features, join keys)
        for fv in mine(proto.feature_views) + mine(proto.stream_feature_views):
            keys = [c.name for c in fv.spec.entity_columns]
            if not keys:
                keys = [entity_keys.get(e, e) for e in fv.spec.entities]
            keys = [k for k in keys if k != DUMMY_JOIN_KEY]
            self.fvs[fv.spec.name] = ([f.name for f in fv.spec.features], keys)
        self.odfvs = {}  # name -> (features, [(fv, feats, join_key_map)], {request: [field]})
        for od in mine(proto.on_demand_feature_views):
            sources, requests = [], {}
            for key in sorted(od.spec.sources):
                src = od.spec.sources[key]
                which = src.WhichOneof("source")
                if which == "feature_view_projection":
                    pr = src.feature_view_projection
                    sources.append((pr.feature_view_name, [c.name for c in pr.feature_columns], dict(pr.join_key_map)))
                elif which == "feature_view":
                    spec = src.feature_view.spec
                    sources.append((spec.name, [f.name for f in spec.features], {}))
                elif which == "request_data_source":
                    rds = src.request_data_source
                    requests[rds.name or key] = [f.name for f in rds.request_data_options.schema]
            self.odfvs[od.spec.name] = ([f.name for f in od.spec.features], sources, requests)
        self.services = {}  # name -> ["view:feature", ...]
        for fs in mine(proto.feature_services):
            refs = []
            for pr in fs.spec.features:
                view = pr.feature_view_name_alias or pr.feature_view_name
                refs.extend(f"{view}:{c.name}" for c in pr.feature_columns)
            self.services[fs.spec.name] = refs

    def resolve(self, refs, service_name):
        """Validate a request.

        Returns (fv_features, required): fv_features is an ordered dict
        {feature view: [feature, ...]} of the base features to join (including the
        inputs of requested on-demand views) and required {column: why} lists the
        entity-file columns the request needs.
        """
        if service_name:
            if service_name not in self.services:
                known = ", ".join(sorted(self.services)) or "none"
                raise InputError(f"unknown feature service {service_name!r} (known: {known})")
            refs = self.services[service_name]
        unknown, wanted = [], []
        for ref in refs:
            view, sep, feat = ref.partition(":")
            view = view.split("@", 1)[0]  # view@vN:feature
            if not sep or not view or not feat:
                unknown.append(f"{ref} (expected view:feature)")
                continue
            if view in self.fvs:
                feats = self.fvs[view][0]
            elif view in self.odfvs:
                feats = self.odfvs[view][0]
            else:
                unknown.append(f"{ref} (no feature view {view!r})")
                continue
            if feat not in feats:
                unknown.append(f"{ref} (view {view!r} has no feature {feat!r})")
            else:
                wanted.append((view, feat))
        if unknown:
            raise InputError("unknown feature ref(s): " + "; ".join(unknown))
        if not wanted:
            raise InputError("no features requested")

        fv_features, required, odfv_names = {}, {}, []

        def need(view, feats, why, jkm=None):
            if view not in self.fvs:
                raise InputError(f"{why}: source {view!r} is not a known feature view")
            lst = fv_features.setdefault(view, [])
            lst.extend(f for f in feats if f not in lst)
            for key in self.fvs[view][1]:
                key = (jkm or {}).get(key, key)
                required.setdefault(key, f"join key of {view}" + (f", {why}" if why else ""))

        for view, feat in wanted:
            if view in self.fvs:
                need(view, [feat], "")
            elif view not in odfv_names:
                odfv_names.append(view)
        for name in odfv_names:
            _, sources, requests = self.odfvs[name]
            for view, feats, jkm in sources:
                need(view, feats, f"input of {name}", jkm)
            for rname, fields in requests.items():
                for field in fields:
                    required.setdefault(field, f"request data {rname} for {name}")
        return fv_features, required


def _retrieve_per_view(store, catalog, entity_df, fv_features, full_feature_names):
    """Point-in-time join one feature view at a time on the unique (join keys, ts) rows.

    Feast 0.67's file (dask) offline store (a) keeps one row per (join keys,
    event_timestamp) -- a row-number column does not help, the de-duplication is on
    those columns only -- and (b) drops an entity row altogether when its entity has
    source rows but none inside one view's TTL window, which also loses that row's
    values from every other view.  Joining each view separately on de-duplicated keys
    and left-merging back onto the original rows gives exactly one row per input row
    with correct values.
    """
    base = entity_df
    origin = {}
    for view, feats in fv_features.items():
        keys = [k for k in catalog.fvs[view][1] if k in entity_df.columns]
        on = [*keys, EVENT_TS]
        uniq = entity_df[on].drop_duplicates(ignore_index=True)
        part = store.get_historical_features(
            entity_df=uniq,
            features=[f"{view}:{f}" for f in feats],
            full_feature_names=full_feature_names,
        ).to_df()
        new_cols = [c for c in part.columns if c not in uniq.columns]
        clash = [f"{c!r} of {view} vs {origin.get(c, 'entity file')}" for c in new_cols if c in base.columns]
        if clash:
            raise InputError(
                "feature name collision (" + "; ".join(clash) + "); on-demand view inputs count too: "
                "use --full-feature-names or rename the entity-file column"
            )
        origin.update((c, view) for c in new_cols)
        part = part[on + new_cols].copy()
        part[EVENT_TS] = _normalize_ts_column(part[EVENT_TS])
        for k in keys:
            if part[k].dtype != base[k].dtype:
                with contextlib.suppress(TypeError, ValueError):
                    part[k] = part[k].astype(base[k].dtype)
        part = part.drop_duplicates(subset=on, keep="last")
        merged = base.merge(part, on=on, how="left", sort=False)
        if len(merged) != len(base):
            raise RuntimeError(f"internal error: merge of {view} changed row count {len(base)} -> {len(merged)}")
        base = merged
    return base


def cmd_historical(args):
    refs = _split_refs(args.features)
    if bool(refs) == bool(args.feature_service):
        raise InputError("give exactly one of --features or --feature-service")
    import pandas as pd

    out = args.out
    # Everything that can be wrong with the request is checked before `import feast`
    # (~10 s), against the registry read the fast way.
    entity_df = _read_entities(args.entities)
    cfg = _load_repo_config(args.repo)
    proto, _ = _load_registry(args.repo, cfg)
    catalog = _Catalog(proto, cfg["project"])
    fv_features, required = catalog.resolve(refs, args.feature_service)
    missing = [c for c in required if c not in entity_df.columns]
    if missing:
        detail = "; ".join(f"{c}: {required[c]}" for c in missing)
        raise InputError(f"entity file is missing column(s): {', '.join(missing)} ({detail})")

    _import_feast()
    import pyarrow as pa
    from feast import FeatureStore

    store = FeatureStore(repo_path=args.repo)
    entity_df[ROW_COL] = range(len(entity_df))
    # The combined job validates the request as Feast would (e.g. name collisions) and
    # carries the on-demand views; its lazy evaluation is replaced by the per-view join
    # so that Feast's own code still runs the on-demand transformations on top.
    job = store.get_historical_features(
        entity_df=entity_df,
        features=store.get_feature_service(args.feature_service) if args.feature_service else refs,
        full_feature_names=args.full_feature_names,
    )
    base = _retrieve_per_view(store, catalog, entity_df, fv_features, args.full_feature_names)
    table = pa.Table.from_pandas(base.reset_index(drop=True), preserve_index=False)
    job._to_arrow_internal = lambda timeout=None: table
    df = job.to_df()

    if len(df) != len(entity_df) or ROW_COL not in df.columns:
        raise RuntimeError(f"internal error: got {len(df)} rows for {len(entity_df)} entity rows")
    df = df.sort_values(ROW_COL, kind="stable").drop(columns=[ROW_COL]).reset_index(drop=True)
    for col in df.columns:
        if pd.api.types.is_datetime64_any_dtype(df[col].dtype):
            df[col] = df[col].dt.tz_localize(UTC) if df[col].dt.tz is None else df[col].dt.tz_convert(UTC)

    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    tmp = os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.{os.getpid()}.tmp")
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"rows": len(df), "columns": [str(c) for c in df.columns], "out": out}


# --------------------------------------------------------------------------- materialize


def cmd_materialize(args):
    if bool(args.start) != bool(args.end):
        raise InputError("--start and --end must be given together")
    start = _parse_iso(args.start, "--start") if args.start else None
    end = _parse_iso(args.end, "--end") if args.end else None
    if start is not None and start >= end:
        raise InputError(f"--start {_iso(start)} is not before --end {_iso(end)}")
    requested = _split_refs(args.views)
    # Cheap checks first (registry read without importing feast).
    cfg = _load_repo_config(args.repo)
    known = _Catalog(_load_registry(args.repo, cfg)[0], cfg["project"]).fvs
    unknown = [v for v in requested if v not in known]
    if unknown:
        raise InputError(f"unknown feature view(s): {', '.join(unknown)} (known: {', '.join(sorted(known)) or 'none'})")

    _import_feast()
    from feast import FeatureStore

    store = FeatureStore(repo_path=args.repo)
    fvs = {fv.name: fv for fv in store.list_feature_views()}
    with contextlib.suppress(Exception):
        fvs.update({fv.name: fv for fv in store.list_stream_feature_views()})
    if requested:
        unknown = [v for v in requested if v not in fvs]
        if unknown:
            raise InputError(
                f"unknown feature view(s): {', '.join(unknown)} (known: {', '.join(sorted(fvs)) or 'none'})"
            )
        offline_only = [v for v in requested if not fvs[v].online]
        if offline_only:
            raise InputError(f"feature view(s) not online, cannot materialize: {', '.join(offline_only)}")
        names = requested
    else:
        names = sorted(n for n, fv in fvs.items() if fv.online)
    if not names:
        raise InputError("no online feature views to materialize")

    now = _dt.datetime.now(UTC)
    report = []
    if start is not None:
        store.materialize(start_date=start, end_date=end, feature_views=names)
        report = [{"name": n, "start": _iso(start), "end": _iso(end)} for n in names]
        final_end = end
    else:
        final_end = now
        first = [n for n in names if not fvs[n].materialization_intervals]
        incr = [n for n in names if n not in first]
        # First run: materialize_incremental would start at now - ttl and miss older data,
        # so load everything since the epoch (the file source filters by timestamp).
        if first:
            store.materialize(start_date=EPOCH, end_date=now, feature_views=first)
        if incr:
            store.materialize_incremental(end_date=now, feature_views=incr)
        for n in names:
            s = EPOCH if n in first else fvs[n].most_recent_end_time
            report.append({"name": n, "start": _iso(s), "end": _iso(now)})
    return {"views": report, "end": _iso(final_end)}


# --------------------------------------------------------------------------- main


# --------------------------------------------------------------------------- rebase


def cmd_rebase(args):
    """Point the registry's infra records at this repo's files instead of --from's.

    Feast records the absolute path of each sqlite online-store table in the
    registry. A release starts as a copy of the serving one, so without this the
    new release's `feast apply` sees the path change and tears down the tables
    in the *serving* release's database.
    """
    cfg = _load_repo_config(args.repo)
    path = _local_registry_path(args.repo, cfg)
    if path is None or not os.path.exists(path):
        return {"rebased": 0, "note": "no local registry file"}
    old = os.path.realpath(args.from_repo).rstrip("/") + "/"
    new = os.path.realpath(args.repo).rstrip("/") + "/"
    Registry_pb2 = _import_registry_pb2_fast()
    proto = Registry_pb2.Registry()
    with open(path, "rb") as fh:
        proto.ParseFromString(fh.read())
    count = 0
    for obj in proto.infra.infra_objects:
        if obj.HasField("sqlite_table") and obj.sqlite_table.path.startswith(old):
            obj.sqlite_table.path = new + obj.sqlite_table.path[len(old) :]
            count += 1
    if count:
        tmp = f"{path}.featctl-tmp"
        with open(tmp, "wb") as fh:
            fh.write(proto.SerializeToString())
        os.replace(tmp, path)
    return {"rebased": count}


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise InputError(f"usage: {message}")


def _parser():
    p = _Parser(prog="hostagent.py", description="featctl host agent (JSON on stdout)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("describe", help="describe the applied registry")
    d.add_argument("--repo", required=True)
    d.add_argument("--full", action="store_true", help="skip the fast protobuf path (import feast)")

    h = sub.add_parser("historical", help="point-in-time correct training data to parquet")
    h.add_argument("--repo", required=True)
    h.add_argument("--entities", required=True)
    h.add_argument("--features", action="append", help="view:feature[,view:feature...]")
    h.add_argument("--feature-service")
    h.add_argument("--out", required=True)
    h.add_argument("--full-feature-names", action="store_true")

    m = sub.add_parser("materialize", help="materialize into the online store")
    m.add_argument("--repo", required=True)
    m.add_argument("--start")
    m.add_argument("--end")
    m.add_argument("--views", action="append")

    r = sub.add_parser("rebase", help="point the registry's infra paths at this repo")
    r.add_argument("--repo", required=True)
    r.add_argument("--from", dest="from_repo", required=True)
    return p


COMMANDS = {
    "describe": cmd_describe,
    "historical": cmd_historical,
    "materialize": cmd_materialize,
    "rebase": cmd_rebase,
}


def main(argv=None):
    _protect_stdout()
    try:
        args = _parser().parse_args(argv)
        repo = os.path.abspath(args.repo)
        if not os.path.isdir(repo):
            raise InputError(f"repo directory {repo} not found")
        args.repo = repo
        for attr in ("entities", "out"):
            if getattr(args, attr, None):
                setattr(args, attr, os.path.abspath(getattr(args, attr)))
        os.chdir(repo)  # like the feast CLI: relative paths in the repo resolve from here
        doc = COMMANDS[args.command](args)
        return _emit(doc, 0)
    except InputError as exc:
        return _emit({"error": _one_line(exc), "kind": "input"}, 1)
    except KeyboardInterrupt:
        return _emit({"error": "interrupted", "kind": "feast"}, 1)
    except SystemExit as exc:  # e.g. --help
        if exc.code in (0, None):
            return _emit({"error": "help requested", "kind": "input"}, 1)
        return _emit({"error": _one_line(f"exit {exc.code}"), "kind": "feast"}, 1)
    except BaseException as exc:
        traceback.print_exc(file=sys.stderr)
        kind = "input" if type(exc).__name__ in _INPUT_EXCEPTIONS else "feast"
        msg = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return _emit({"error": _one_line(msg), "kind": kind}, 1)


if __name__ == "__main__":
    sys.exit(main())
