"""Run by test_stores.py with a host's Feast environment (not collected by
pytest): are the stores reached with the CA that the settings name, through
Feast's own code, and refused without it?

    <env>/bin/python tls_probe.py <host>/run/stores.env <host>/current

The stores' CA is featctl's own, so no system trust store holds it: the
"without" attempts must fail, which shows the successful ones verified the
servers with the CA the settings pass (redis-py's ssl_ca_certs from the
connection string, libpq's sslrootcert from the offline store's
sslrootcert_path). HOME is an empty directory (no ~/.postgresql/root.crt) and
PGSSLROOTCERT is unset (the release's YAML alone). Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

env_file, release = sys.argv[1], Path(sys.argv[2])
for line in Path(env_file).read_text().splitlines():
    name, _, value = line.partition("=")
    os.environ[name] = value
os.environ.pop("PGSSLROOTCERT", None)
os.environ["HOME"] = tempfile.mkdtemp()

from feast.infra.online_stores.redis import RedisOnlineStore  # noqa: E402
from feast.infra.utils.postgres.connection_utils import _get_conn  # noqa: E402
from feast.repo_config import load_repo_config  # noqa: E402

config = load_repo_config(release, release / "feature_store.yaml")
conn_string = config.online_store.connection_string
_, params = RedisOnlineStore._parse_connection_string(conn_string)
out: dict[str, Any] = {
    "redis_params": {k: v for k, v in params.items() if k != "password"},
    "postgres_sslmode": config.offline_store.sslmode,
    "postgres_sslrootcert_path": config.offline_store.sslrootcert_path,
}


def attempt(name: str, fn: Any) -> None:
    try:
        fn()
        out[name] = "ok"
    except Exception as exc:
        out[name] = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def redis_ping(connection_string: str) -> None:
    online = config.online_store.model_copy(update={"connection_string": connection_string})
    RedisOnlineStore()._get_client(online).ping()


def pg_select(**update: Any) -> None:
    with _get_conn(config.offline_store.model_copy(update=update)) as conn:
        conn.execute("SELECT 1")


without_ca = ",".join(p for p in conn_string.split(",") if not p.startswith("ssl_ca_certs="))
attempt("redis_with_settings", lambda: redis_ping(conn_string))
attempt("redis_without_ca", lambda: redis_ping(without_ca))
attempt("postgres_with_settings", pg_select)
attempt("postgres_without_ca", lambda: pg_select(sslrootcert_path=None))
print(json.dumps(out))
