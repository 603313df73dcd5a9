"""Shared stores seen from the host: are they reachable, and the release's
parquet sources loaded into PostgreSQL (``stores = postgres``).

Connection details come from the FEATCTL_* variables the package loaded
(``__init__``); they are never printed: errors name host:port only.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

from .output import AgentError
from .pg_join import pg_csv
from .pg_retrieval import arrow_comment

TABLES_FILE = os.path.join("_featctl", "postgres_tables.json")
LOADS_TABLE = "featctl_loads"


def _pg_connect(timeout: int = 10) -> Any:
    import psycopg

    env = os.environ
    try:
        return psycopg.connect(
            host=env["FEATCTL_POSTGRES_HOST"],
            port=int(env["FEATCTL_POSTGRES_PORT"]),
            dbname=env["FEATCTL_POSTGRES_DB"],
            user=env["FEATCTL_POSTGRES_USER"],
            password=env["FEATCTL_POSTGRES_PASSWORD"],
            sslmode=env.get("FEATCTL_POSTGRES_SSLMODE") or "disable",
            sslrootcert=env.get("FEATCTL_POSTGRES_SSLROOTCERT") or None,
            connect_timeout=timeout,
        )
    except KeyError as exc:
        raise AgentError(f"the host has no {exc.args[0]}: redeploy to write run/stores.env") from None
    except psycopg.Error as exc:
        where = f"{env.get('FEATCTL_POSTGRES_HOST')}:{env.get('FEATCTL_POSTGRES_PORT')}"
        reason = " ".join(str(exc).split())[:200]
        raise AgentError(f"PostgreSQL at {where} is unreachable from the host: {reason}") from None


def redis_kwargs(raw: str) -> tuple[str, int, dict[str, Any]]:
    """host, port and redis-py keywords of a Feast Redis connection string,
    parsed as Feast 0.67 parses it (every ``k=v`` goes to redis-py, values
    JSON-decoded where they are JSON), so the check uses exactly the TLS
    settings the feature server will: ``ssl``, ``ssl_ca_certs``, ..."""
    address, *opts = raw.split(",")
    host, _, port = address.rpartition(":")
    kw: dict[str, Any] = {}
    for opt in opts:
        key, sep, value = opt.partition("=")
        if not sep:
            continue
        try:
            kw[key] = json.loads(value)
        except ValueError:
            kw[key] = value
    return host, int(port), kw


def _redis_check() -> None:
    import redis

    raw = os.environ.get("FEATCTL_REDIS_CONNECTION")
    if not raw:
        raise AgentError("the host has no FEATCTL_REDIS_CONNECTION: redeploy to write run/stores.env")
    host, port, kw = redis_kwargs(raw)
    try:
        client = redis.Redis(host=host, port=port, **{**kw, "socket_timeout": 5, "socket_connect_timeout": 5})
        client.ping()
    except redis.RedisError as exc:
        reason = " ".join(str(exc).split())[:200]
        raise AgentError(f"Redis at {host}:{port} is unreachable from the host: {reason}") from None


def cmd_check_stores(args: argparse.Namespace) -> dict[str, Any]:
    """Each store the release's variables name answers (one line naming the first that does not)."""
    checked = []
    only = set(filter(None, (getattr(args, "stores", None) or "redis,postgres").split(",")))
    if "redis" in only and os.environ.get("FEATCTL_REDIS_CONNECTION"):
        _redis_check()
        checked.append("redis")
    if "spark" in only:
        import shutil

        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise AgentError("Spark needs Java 17 or later on the host (e.g. the openjdk-17-jre-headless package)")
        checked.append("spark")
    if "postgres" in only and os.environ.get("FEATCTL_POSTGRES_HOST"):
        with _pg_connect() as conn:
            conn.execute("SELECT 1")
        checked.append("postgres")
    return {"checked": checked}


def cmd_load_postgres(args: argparse.Namespace) -> dict[str, Any]:
    """Load the release's parquet sources into their tables, each table once
    (its name carries the file's digest; featctl_loads records finished loads)."""
    path = os.path.join(args.repo, TABLES_FILE)
    if not os.path.isfile(path):
        return {"loaded": [], "kept": []}
    with open(path, encoding="utf-8") as fh:
        tables: dict[str, str] = json.load(fh)
    loaded, kept = [], []
    with _pg_connect() as conn:
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {LOADS_TABLE} (table_name text PRIMARY KEY, source text, "
            "row_count bigint, seconds double precision, loaded_at timestamptz DEFAULT now())"
        )
        conn.commit()
        for table, rel in sorted(tables.items()):
            done = conn.execute(f"SELECT 1 FROM {LOADS_TABLE} WHERE table_name = %s", (table,)).fetchone()
            if done and conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None:
                kept.append(table)
                continue
            started = time.monotonic()
            rows = _load(conn, table, os.path.join(args.repo, rel))
            conn.execute(
                f"INSERT INTO {LOADS_TABLE} (table_name, source, row_count, seconds) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (table_name) DO UPDATE SET source = EXCLUDED.source, row_count = EXCLUDED.row_count, "
                "seconds = EXCLUDED.seconds, loaded_at = now()",
                (table, rel, rows, time.monotonic() - started),
            )
            conn.commit()
            loaded.append({"table": table, "source": rel, "rows": rows})
    return {"loaded": loaded, "kept": kept}


#: Rows per COPY batch: the file is streamed, never held in memory whole.
LOAD_BATCH_ROWS = 100_000


def _load(conn: Any, table: str, parquet: str) -> int:
    """One table from one parquet file, in one transaction (COPY), streamed batch
    by batch: memory stays at one batch whatever the file's size. Columns of
    scalar types go through Arrow's CSV writer (no Python object per value);
    a batch with lists, maps or structs is written row by row."""
    import pyarrow.parquet as pq

    source = pq.ParquetFile(parquet)
    schema = source.schema_arrow
    types = {f.name: pg_type(f.type) for f in schema}
    conn.execute(f'DROP TABLE IF EXISTS "{table}"')
    conn.execute(f'CREATE TABLE "{table}" ({", ".join(f"{chr(34)}{c}{chr(34)} {t}" for c, t in types.items())})')
    for field in schema:  # a struct and a map both become jsonb: the comment says which it was
        if types[field.name] == "jsonb":
            conn.execute(f"COMMENT ON COLUMN \"{table}\".\"{field.name}\" IS '{arrow_comment(field)}'")
    columns = ", ".join(f'"{c}"' for c in schema.names)
    flat = all(_csv_ready(f.type) for f in schema)
    rows = 0
    sql = f'COPY "{table}" ({columns}) FROM STDIN' + (" (FORMAT csv)" if flat else "")
    if flat:  # the CSV's times are UTC wall times without an offset (pg_join.pg_csv)
        conn.execute("SET LOCAL TimeZone = 'UTC'")
    with conn.cursor().copy(sql) as copy:
        for batch in source.iter_batches(batch_size=LOAD_BATCH_ROWS):
            rows += batch.num_rows
            if flat:
                copy.write(pg_csv(batch.columns, batch.schema.names))
            else:
                for row in _rows(batch, types):
                    copy.write_row(row)
    conn.execute(f'ANALYZE "{table}"')  # statistics for the planner now, not at autovacuum's leisure
    return rows


#: PostgreSQL element types an array column may have (anything else nested is jsonb).
_ARRAY_ELEMENTS = ("smallint", "int", "bigint", "real", "float", "double precision", "boolean", "text", "date",
                   "time", "timestamp", "timestamptz", "bytea")  # fmt: skip


_SCALARS = {"bool": "boolean", "int16": "smallint", "int32": "int", "int64": "bigint", "uint8": "smallint",
            "uint16": "int", "uint32": "bigint", "uint64": "bigint", "float": "float", "double": "double precision",
            "halffloat": "real", "string": "text"}  # fmt: skip


def pg_type(t: Any) -> str:
    """The PostgreSQL column type for an Arrow type a parquet source may hold,
    as Feast 0.67's ``arrow_to_pg_type`` maps the types it knows (timestamps,
    maps, structs and large strings as jsonb, float as PostgreSQL's float).

    That map refuses ``date32``, ``time``, ``decimal``, dictionary-encoded
    columns and lists of strings or floats (``Unsupported type: date32[day]``
    failed the whole load even for a column no view reads), names types
    PostgreSQL does not have (``tinyint``, ``binary``) and cannot take arrow's
    ``null`` (a column with no value, as in `feast init`'s label data: text
    here)."""
    import pyarrow as pa

    if str(t) in _SCALARS:
        return _SCALARS[str(t)]
    if pa.types.is_null(t):
        return "text"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_map(t) or pa.types.is_struct(t) or pa.types.is_large_string(t):
        return "jsonb"
    if pa.types.is_dictionary(t):
        return pg_type(t.value_type)
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision},{t.scale})"
    if pa.types.is_int8(t):
        return "smallint"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "bytea"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = pg_type(t.value_type)
        return f"{inner}[]" if inner in _ARRAY_ELEMENTS else "jsonb"
    from feast.type_map import arrow_to_pg_type  # what featctl does not know, Feast may

    return str(arrow_to_pg_type(str(t)))


def _csv_ready(t: Any) -> bool:
    """Types Arrow's CSV writer writes as PostgreSQL reads them (a large string is
    ``jsonb`` in Feast's type map: written as JSON row by row)."""
    import pyarrow as pa

    return bool(
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_string(t)
        or pa.types.is_timestamp(t)
        or pa.types.is_null(t)
    )


def _rows(batch: Any, types: dict[str, str]) -> Any:
    """Rows for COPY as Arrow's own Python values (dates, times, decimals,
    bytes, an integer column with nulls as integers: pandas made them floats
    that a bigint column refused; nested lists stay lists), NaN as NULL, a
    map's (key, value) pairs as a JSON object, the rest of jsonb as JSON text."""
    import pyarrow as pa

    columns = []
    for field, column in zip(batch.schema, batch.columns):
        values = column.to_pylist()
        if pa.types.is_floating(field.type):  # NaN is a missing value, as the CSV path writes it
            values = [None if v is not None and v != v else v for v in values]
        if pa.types.is_map(field.type):
            values = [None if v is None else dict(v) for v in values]
        if types[field.name] == "jsonb":
            values = [None if v is None else json.dumps(v, default=str) for v in values]
        columns.append(values)
    return zip(*columns)


SPARK_FILES = os.path.join("_featctl", "spark_files.json")


def cmd_prepare_spark(args: argparse.Namespace) -> dict[str, Any]:
    """Spark-readable copies of the release's parquet sources: Spark reads no
    nanosecond timestamps (pandas' default), so those become microseconds.
    Each copy is named by its source's content and written once."""
    path = os.path.join(args.repo, SPARK_FILES)
    if not os.path.isfile(path):
        return {"written": [], "kept": []}
    with open(path, encoding="utf-8") as fh:
        files: dict[str, str] = json.load(fh)
    import pyarrow as pa
    import pyarrow.parquet as pq

    written, kept = [], []
    for copy, source in sorted(files.items()):
        target = os.path.join(args.repo, copy)
        if os.path.isfile(target):
            kept.append(copy)
            continue
        table = pq.read_table(os.path.join(args.repo, source))
        fields = [
            pa.field(f.name, pa.timestamp("us", tz=f.type.tz)) if pa.types.is_timestamp(f.type) else f
            for f in table.schema
        ]
        table = table.cast(pa.schema(fields, metadata=table.schema.metadata))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = f"{target}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, target)
        written.append({"file": copy, "source": source, "rows": table.num_rows})
    return {"written": written, "kept": kept}
