"""What featctl reads from a user's Feast repository without Feast: its
``feature_store.yaml`` (project, registry, stores), the paths it names, the
Feast extras its stores need, and whether it is featctl's own demo.

Pure apart from reading files; never writes into the repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featctl import FEAST_VERSION
from featctl.errors import UsageError

CONFIG = "feature_store.yaml"
#: feature_store.yaml key that marks featctl's own demo repository, whose
#: sample data featctl generates (`featctl: {sample_data: drivers}`).
MARKER_KEY = "featctl"

#: Store type (as feature_store.yaml names it) -> the Feast extra it needs.
_ONLINE_EXTRAS = {
    "redis": "redis",
    "postgres": "postgres",
    "feast.infra.online_stores.contrib.postgres.PostgreSQLOnlineStore": "postgres",
    "cassandra": "cassandra",
    "hbase": "hbase",
    "mysql": "mysql",
    "snowflake.online": "snowflake",
    "dynamodb": "aws",
    "datastore": "gcp",
    "bigtable": "gcp",
    "elasticsearch": "elasticsearch",
    "qdrant": "qdrant",
    "milvus": "milvus",
    "couchbase.online": "couchbase",
    "hazelcast": "hazelcast",
}
_OFFLINE_EXTRAS = {
    "postgres": "postgres",
    "feast.infra.offline_stores.contrib.postgres_offline_store.postgres.PostgreSQLOfflineStore": "postgres",
    "spark": "spark",
    "feast.infra.offline_stores.contrib.spark_offline_store.spark.SparkOfflineStore": "spark",
    "duckdb": "duckdb",
    "trino": "trino",
    "mssql": "mssql",
    "bigquery": "gcp",
    "redshift": "aws",
    "athena": "aws",
    "snowflake.offline": "snowflake",
    "clickhouse": "clickhouse",
}


@dataclass
class RepoConfig:
    """The parts of feature_store.yaml featctl acts on."""

    path: Path
    data: dict[str, Any]
    #: Feast extras the stores need (redis, postgres, spark, ...).
    extras: list[str] = field(default_factory=list)

    @property
    def project(self) -> str:
        return str(self.data.get("project", ""))

    @property
    def is_demo(self) -> bool:
        marker = self.data.get(MARKER_KEY)
        return isinstance(marker, dict) and marker.get("sample_data") == "drivers"

    @property
    def registry(self) -> dict[str, Any]:
        reg = self.data.get("registry", "data/registry.db")
        return dict(reg) if isinstance(reg, dict) else {"path": reg}

    @property
    def registry_type(self) -> str:
        return str(self.registry.get("registry_type") or "file").lower()

    @property
    def online_store(self) -> dict[str, Any]:
        store = self.data.get("online_store")
        if store is None:
            return {"type": "sqlite", "path": "data/online_store.db"}
        if isinstance(store, str):
            return {"type": store}
        return dict(store)

    @property
    def single_process_online(self) -> str | None:
        """Why only one process may open the online store (an embedded store in
        a local file, e.g. milvus-lite), or None."""
        store = self.online_store
        kind = str(store.get("type", ""))
        if kind == "milvus" and store.get("path") and not store.get("host"):
            return f"the online store is milvus-lite (a file, {store['path']}, that one process opens)"
        return None


def load(repo: Path) -> RepoConfig:
    """Read ``feature_store.yaml``; a file Feast could not read is one line, exit 2."""
    import yaml

    path = repo / CONFIG
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"{repo} is not a Feast feature repository: it has no {CONFIG}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise UsageError(f"{path} is not valid YAML{at}") from None
    if not isinstance(data, dict) or not data.get("project"):
        raise UsageError(f"{path} names no project")
    cfg = RepoConfig(path, data)
    cfg.extras = extras_for(cfg)
    return cfg


#: Feast's feature server types (feature_store.yaml ``feature_server: type:``) -> the extra each needs.
FEATURE_SERVER_TYPES = {"local": None, "mcp": "mcp"}


def feature_server_type(cfg: RepoConfig) -> str:
    """feature_store.yaml's ``feature_server`` type ("local" when it names none);
    a type Feast 0.67 does not know is one line (exit 2) before anything runs."""
    server = cfg.data.get("feature_server")
    kind = str((server.get("type") if isinstance(server, dict) else None) or "local")
    if kind not in FEATURE_SERVER_TYPES:
        raise UsageError(
            f"{cfg.path}: feature_server type {kind!r} is not one Feast {FEAST_VERSION} serves "
            f"({', '.join(FEATURE_SERVER_TYPES)})"
        )
    return kind


def installable_extras() -> set[str]:
    """Every Feast extra ``extras_for`` may name, and the lock's own ``grpcio``:
    scripts/check-feast-extras resolves them together with the lock."""
    servers = {e for e in FEATURE_SERVER_TYPES.values() if e}
    return {*_ONLINE_EXTRAS.values(), *_OFFLINE_EXTRAS.values(), *servers, "postgres", "mysql", "spark", "grpcio"}


def extras_for(cfg: RepoConfig) -> list[str]:
    """The Feast extras the repository's stores need (``feast[redis,postgres]``)."""
    out: set[str] = set()
    server_extra = FEATURE_SERVER_TYPES[feature_server_type(cfg)]
    if server_extra:
        out.add(server_extra)
    online = cfg.online_store.get("type")
    if isinstance(online, str) and online in _ONLINE_EXTRAS:
        out.add(_ONLINE_EXTRAS[online])
    offline = cfg.data.get("offline_store")
    offline_type = offline.get("type") if isinstance(offline, dict) else offline
    if isinstance(offline_type, str) and offline_type in _OFFLINE_EXTRAS:
        out.add(_OFFLINE_EXTRAS[offline_type])
    if cfg.registry_type == "sql":
        path = str(cfg.registry.get("path", ""))
        out.add("postgres" if path.startswith("postgresql") else "mysql" if path.startswith("mysql") else "sql")
        out.discard("sql")
    engine = cfg.data.get("batch_engine")
    engine_type = engine.get("type") if isinstance(engine, dict) else engine
    if isinstance(engine_type, str) and engine_type.startswith("spark"):
        out.add("spark")
    return sorted(out)


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def local_path(repo: Path, raw: str) -> Path | None:
    """Where a path the repository names points on this machine (relative paths
    are relative to the repository, as Feast resolves them); None for remote URIs
    and values featctl cannot resolve (``${VAR}``)."""
    if is_remote(raw) or "${" in raw or "$" in raw.split("/")[0]:
        return None
    if raw.startswith("file://"):
        raw = raw[len("file://") :]
    p = Path(os.path.expanduser(raw))
    return Path(os.path.normpath(p if p.is_absolute() else repo / p))


def inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True
