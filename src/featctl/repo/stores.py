"""Shared stores in a release: what featctl writes into the release's copy of
``feature_store.yaml`` and definitions when a deployment runs on Redis and
PostgreSQL (``stores = ["redis", "postgres"]``).

Connection details never enter a file featctl writes into a release: the
YAML names ``${FEATCTL_*}`` variables, which Feast expands when it loads the
file, and featctl provides them on each host in a 0600 file (``run/stores.env``,
see ``env_lines``). A repository whose own ``feature_store.yaml`` already names
a store with ``${...}`` values keeps its section as it is.

With ``postgres``, the release's ``FileSource`` definitions of parquet files
become ``PostgreSQLSource`` definitions reading a table loaded from that file
(one table per file content, so a release never sees another release's data);
``_featctl/postgres_tables.json`` tells the host agent what to load.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from featctl.errors import UsageError

#: The variables featctl provides on the hosts (names only: values are secret).
REDIS_CONNECTION = "FEATCTL_REDIS_CONNECTION"
POSTGRES_URL = "FEATCTL_POSTGRES_URL"
POSTGRES_VARS = ("HOST", "PORT", "DB", "USER", "PASSWORD", "SSLMODE", "SSLROOTCERT")
TABLES_FILE = "_featctl/postgres_tables.json"
#: Spark's copies of the parquet sources (Spark reads no nanosecond timestamps,
#: which pandas writes by default): release path of the copy -> of the source.
SPARK_FILES = "_featctl/spark_files.json"
_SOURCE_IMPORT = (
    "from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource"
)
#: Spark in local mode on the host: its cores, UTC, no web UI, no network listener.
SPARK_CONF = {
    "spark.master": "local[*]",
    "spark.ui.enabled": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}
_SPARK_IMPORT = "from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource"
#: FileSource keywords a PostgreSQLSource takes too.
_KEPT = ("name", "timestamp_field", "created_timestamp_column", "field_mapping", "description", "tags", "owner")


def _templated(value: Any) -> bool:
    return "${" in json.dumps(value)


def render(data: dict[str, Any], stores: tuple[str, ...]) -> list[str]:
    """Point ``data`` (a feature_store.yaml mapping, changed in place) at the
    shared stores; return what changed, for the user."""
    changed = []
    if "redis" in stores:
        online = data.get("online_store")
        if not (isinstance(online, dict) and online.get("type") == "redis" and _templated(online)):
            data["online_store"] = {"type": "redis", "connection_string": f"${{{REDIS_CONNECTION}}}"}
            changed.append("online store -> Redis")
    if "spark" in stores:
        offline = data.get("offline_store")
        if not (isinstance(offline, dict) and offline.get("type") == "spark"):
            data["offline_store"] = {"type": "spark", "spark_conf": dict(SPARK_CONF)}
            changed.append("offline store -> Spark (local mode, the repository's parquet files)")
        engine = data.get("batch_engine")
        if not (isinstance(engine, dict) and engine.get("type") == "spark.engine"):
            data["batch_engine"] = {"type": "spark.engine", "spark_conf": dict(SPARK_CONF)}
            changed.append("materialization -> Spark compute engine")
    if "postgres" in stores:
        registry = data.get("registry")
        if not (isinstance(registry, dict) and registry.get("registry_type") == "sql" and _templated(registry)):
            data["registry"] = {
                "registry_type": "sql",
                "path": f"${{{POSTGRES_URL}}}",
                "cache_ttl_seconds": 60,
                "sqlalchemy_config_kwargs": {"pool_pre_ping": True},
            }
            changed.append("registry -> PostgreSQL (Feast's SQL registry)")
        offline = data.get("offline_store")
        if "spark" in stores:
            pass  # Spark reads the data; PostgreSQL holds the registry
        elif not (isinstance(offline, dict) and offline.get("type") == "postgres" and _templated(offline)):
            data["offline_store"] = {
                "type": "postgres",
                "host": "${FEATCTL_POSTGRES_HOST}",
                "port": "${FEATCTL_POSTGRES_PORT}",
                "database": "${FEATCTL_POSTGRES_DB}",
                "db_schema": "public",
                "user": "${FEATCTL_POSTGRES_USER}",
                "password": "${FEATCTL_POSTGRES_PASSWORD}",
                "sslmode": "${FEATCTL_POSTGRES_SSLMODE}",
                # Feast 0.67 passes sslrootcert=None without it: libpq would look
                # for ~/.postgresql/root.crt, which no host has.
                "sslrootcert_path": "${FEATCTL_POSTGRES_SSLROOTCERT}",
            }
            changed.append("offline store -> PostgreSQL (the repository's parquet sources loaded into tables)")
    return changed


def env_lines(stores: Mapping[str, Mapping[str, Any]], passwords: Mapping[str, str]) -> str:
    """The hosts' ``run/stores.env``: ``NAME=value`` lines (values are letters,
    digits and URL/host/path characters: no quoting needed, nothing a shell expands).

    A store's ``ca_file`` (the CA certificate's path on the host) reaches every
    client: redis-py through the connection string (``ssl_ca_certs``, which
    Feast passes on), libpq through ``sslrootcert`` (registry URL, offline
    store, featctl's agent) and ``PGSSLROOTCERT`` (a release whose YAML names
    no ``sslrootcert_path``). Without it TLS clients would check the servers
    against the system's store, which does not hold the stores' CA.
    """
    from urllib.parse import quote

    out: dict[str, str] = {}
    redis = stores.get("redis")
    if redis is not None:
        conn = f"{redis['host']}:{redis['port']},password={passwords['redis']}"
        if redis.get("tls"):
            conn += ",ssl=true"
            if redis.get("ca_file"):
                ca = str(redis["ca_file"])
                if "," in ca:
                    raise UsageError(
                        f"the CA file {ca} holds a comma, which Feast's Redis connection string cannot carry; "
                        "use a workspace path without commas"
                    )
                conn += f",ssl_ca_certs={ca}"
        out[REDIS_CONNECTION] = conn
    pg = stores.get("postgres")
    if pg is not None:
        sslmode = str(pg.get("sslmode") or "disable")
        query = f"?sslmode={sslmode}"
        ca_file = str(pg.get("ca_file") or "")
        if ca_file:
            query += f"&sslrootcert={quote(ca_file)}"
            out["PGSSLROOTCERT"] = ca_file
        out.update(
            {
                "FEATCTL_POSTGRES_HOST": str(pg["host"]),
                "FEATCTL_POSTGRES_PORT": str(pg["port"]),
                "FEATCTL_POSTGRES_DB": str(pg["database"]),
                "FEATCTL_POSTGRES_USER": str(pg["user"]),
                "FEATCTL_POSTGRES_PASSWORD": passwords["postgres"],
                "FEATCTL_POSTGRES_SSLMODE": sslmode,
                # Always defined: Feast leaves an undefined ${...} in the YAML as it is.
                "FEATCTL_POSTGRES_SSLROOTCERT": ca_file,
                POSTGRES_URL: (
                    f"postgresql+psycopg://{pg['user']}:{passwords['postgres']}@{pg['host']}:{pg['port']}/"
                    f"{pg['database']}{query}"
                ),
            }
        )
    for name, value in out.items():
        if "\n" in value or "'" in value:
            raise UsageError(f"{name} would hold a line break or a quote; check the stores' outputs and the workspace path")
    return "".join(f"{k}={v}\n" for k, v in sorted(out.items()))


def for_host(stores: Mapping[str, Mapping[str, Any]], base: str, host_base: str) -> dict[str, dict[str, Any]]:
    """The stores as a host whose deployment directory is ``host_base`` sees them.

    A stack reports each store's ``ca_file`` as its path on host 0, whose
    deployment directory is ``base``; every host keeps the CA at the same place
    under its own directory (the local target's hosts have one each).
    """
    prefix = base.rstrip("/") + "/"
    out: dict[str, dict[str, Any]] = {}
    for name, where in stores.items():
        copy = dict(where)
        ca = copy.get("ca_file")
        if isinstance(ca, str) and ca.startswith(prefix):
            copy["ca_file"] = host_base.rstrip("/") + "/" + ca[len(prefix) :]
        out[name] = copy
    return out


# --- FileSource -> PostgreSQLSource --------------------------------------------------


def table_name(release_path: str, digest: str) -> str:
    """A PostgreSQL table per file content (<= 63 characters)."""
    stem = re.sub(r"[^a-z0-9_]", "_", Path(release_path).stem.lower())[:30].strip("_") or "data"
    return f"featctl_{stem}_{digest[:12]}"


def _is_file_source(call: ast.Call) -> bool:
    f = call.func
    return (isinstance(f, ast.Name) and f.id == "FileSource") or (
        isinstance(f, ast.Attribute) and f.attr == "FileSource"
    )


def _offsets(source: bytes) -> list[int]:
    starts = [0]
    for line in source.splitlines(keepends=True):
        starts.append(starts[-1] + len(line))
    return starts


def to_postgres_sources(
    rel: str, source: bytes, resolve: Any, digest_of: Any, tables: dict[str, str]
) -> bytes | None:
    """``source`` with each ``FileSource(path="...parquet", ...)`` call replaced by a
    ``PostgreSQLSource`` of its table; None when the file has none.

    ``resolve(literal) -> release path | None`` finds the file a path names;
    ``digest_of(release path) -> sha256``; ``tables`` collects table -> file.
    """

    def replacement(where: str, kws: dict[str, ast.expr]) -> tuple[str, list[str]]:
        table = table_name(where, digest_of(where))
        tables[table] = where
        return "PostgreSQLSource", [f"table={table!r}"] + ([] if "name" in kws else [f"name={table!r}"])

    return _rewrite(rel, source, resolve, replacement, _SOURCE_IMPORT, "postgres")


def to_spark_sources(rel: str, source: bytes, resolve: Any, digest_of: Any, files: dict[str, str]) -> bytes | None:
    """``source`` with each ``FileSource(path="...parquet", ...)`` call replaced by a
    ``SparkSource`` reading the host agent's Spark-readable copy of that file
    (microsecond timestamps) in the release, by an absolute path from the
    definitions' own location (Spark resolves paths against its working
    directory, not the repository). ``files`` collects copy -> source. None
    when the file has none."""
    up = "../" * rel.count("/")
    here = "__import__('os').path.dirname(__import__('os').path.abspath(__file__))"

    def replacement(source_file: str, kws: dict[str, ast.expr]) -> tuple[str, list[str]]:
        where = f"_featctl/spark/{table_name(source_file, digest_of(source_file))}.parquet"
        files[where] = source_file
        path = f"__import__('os').path.normpath(__import__('os').path.join({here}, {up + where!r}))"
        return "SparkSource", [f"path={path}", "file_format='parquet'"]

    return _rewrite(rel, source, resolve, replacement, _SPARK_IMPORT, "spark")


def _rewrite(rel: str, source: bytes, resolve: Any, replacement: Any, import_line: str, store: str) -> bytes | None:
    """``source`` with every parquet ``FileSource(...)`` call replaced by what
    ``replacement(release path, keywords) -> (class, first arguments)`` says
    (the kept keywords follow); None when the file has none or is no Python."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    consts = _string_constants(tree)
    starts = _offsets(source)
    spans: list[tuple[int, int, bytes]] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and _is_file_source(node)):
            continue
        kws = {kw.arg: kw.value for kw in node.keywords if kw.arg}
        kind, args = replacement(_parquet_of(rel, node, kws, consts, resolve), kws)
        spans.append(_call(source, starts, node, kws, kind, args))
    return _apply(source, spans, import_line, store) if spans else None


def _call(
    source: bytes, starts: list[int], node: ast.Call, kws: dict[str, ast.expr], kind: str, args: list[str]
) -> tuple[int, int, bytes]:
    """The byte span of ``node`` and its replacement: ``kind(args..., kept keywords)``."""
    for key in _KEPT:
        if key in kws:
            args.append(f"{key}={ast.get_source_segment(source.decode(), kws[key])}")
    assert node.end_lineno is not None and node.end_col_offset is not None
    begin = starts[node.lineno - 1] + node.col_offset
    end = starts[node.end_lineno - 1] + node.end_col_offset
    return begin, end, f"{kind}({', '.join(args)})".encode()


def _string_constants(tree: ast.Module) -> dict[str, str]:
    return {
        t.id: stmt.value.value
        for stmt in tree.body
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)
        for t in stmt.targets
        if isinstance(t, ast.Name)
    }


def _parquet_of(rel: str, node: ast.Call, kws: dict[str, ast.expr], consts: dict[str, str], resolve: Any) -> str:
    """The release path of the parquet file a FileSource call names, or one line why not."""
    raw = kws.get("path")
    value: Any = consts.get(raw.id) if isinstance(raw, ast.Name) else raw.value if isinstance(raw, ast.Constant) else None
    line = f"{rel}:{node.lineno}"
    if not isinstance(value, str):
        raise UsageError(f"{line}: a FileSource whose path is not a string literal cannot move to another offline store")
    where = resolve(value)
    if where is None or not where.endswith(".parquet"):
        raise UsageError(
            f"{line}: FileSource {value!r} is not a parquet file in the release; "
            "featctl moves parquet files only to another offline store"
        )
    return str(where)


def _apply(source: bytes, spans: list[tuple[int, int, bytes]], import_line: str, store: str) -> bytes:
    out = source
    for begin, end, call in sorted(spans, reverse=True):
        out = out[:begin] + call + out[end:]
    # The import goes after any `from __future__` lines (they must come first).
    lines = out.splitlines(keepends=True)
    at = 0
    for i, ln in enumerate(lines):
        if ln.startswith(b"from __future__"):
            at = i + 1
    lines.insert(at, f"{import_line}  # added by featctl (stores = {store})\n".encode())
    return b"".join(lines)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
