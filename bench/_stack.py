"""Real stores for benchmarks that run featctl's host agent directly (no SSH, no deploy):

* ``feast_env(extras)``: a Feast environment as a host with those stores gets it (uv, the
  pinned lock + ``feast[extras]==0.67.0``), built once under TMP and reused;
* ``postgres()``: a PostgreSQL cluster on loopback, TLS only, started and removed by
  featctl's own store scripts (terraform/modules/stores/scripts/start-postgres.sh,
  stop-postgres.sh) with a CA and certificate from featctl.provision.tls;
* ``release(repo, dest, stores)``: the release featctl would upload for those stores
  (featctl.repo.bundle: the rendered feature_store.yaml, PostgreSQLSource/SparkSource
  definitions), written to ``dest``; ``agent_env()`` the variables its hosts get.

Standard library only, plus featctl itself (the harness's .venv has it installed).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import FEAST_PY, ROOT, TMP, free_port, log, run

UV = ROOT / ".venv" / "bin" / "uv"
REQUIREMENTS = ROOT / "src" / "featctl" / "agent" / "requirements.txt"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
SCRIPTS = ROOT / "terraform" / "modules" / "stores" / "scripts"


def feast_env(extras: tuple[str, ...] = ()) -> Path:
    """The python of a Feast environment with ``extras`` (the plain pinned one: .venv-feast)."""
    if not extras:
        return FEAST_PY
    env = TMP / "envs" / ("feast-" + "-".join(sorted(extras)))
    py = env / "bin" / "python"
    probe = {"postgres": "psycopg", "spark": "pyspark", "redis": "redis", "duckdb": "duckdb, ibis"}
    check = "import feast.protos, " + ", ".join(probe.get(e, e) for e in extras)
    if py.exists() and subprocess.run([py, "-c", check], capture_output=True).returncode == 0:
        return py
    log(f"building a Feast environment with extras {','.join(extras)} in {env} (uv)")
    shutil.rmtree(env, ignore_errors=True)
    uv_env = {**os.environ, "UV_SYSTEM_CERTS": "1"}
    run([UV, "venv", "--quiet", "--python", FEAST_PY, env], env=uv_env)
    run([UV, "pip", "install", "--quiet", "--python", py, "--compile-bytecode", "-r", REQUIREMENTS,
         f"feast[{','.join(sorted(extras))}]==0.67.0"], env=uv_env, timeout=1800)
    return py


@contextlib.contextmanager
def postgres(database: str = "feast", user: str = "feast") -> Iterator[dict[str, Any]]:
    """A PostgreSQL cluster on 127.0.0.1 for the duration, TLS only with a CA featctl generates as for
    the local target: {host, port, database, user, password, sslmode, ca_file}."""
    from featctl.provision.tls import ensure_store_tls
    from featctl.workspace import Workspace

    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(f"{PG_BIN}/initdb not found (scripts/bootstrap --dev installs postgresql-15)")
    TMP.mkdir(parents=True, exist_ok=True)
    ws = TMP / f"pg-{uuid.uuid4().hex[:8]}"
    ws.mkdir(mode=0o700)
    tls = ensure_store_tls(Workspace(ws), ["127.0.0.1"], label="featctl-bench")
    secret = ws / "postgres.password"
    password = uuid.uuid4().hex
    secret.write_text(password)
    secret.chmod(0o600)
    env = {**os.environ, "DATA_DIR": f"/var/tmp/featctl-postgres-bench-{uuid.uuid4().hex[:12]}/data", "PORT": str(free_port()),
           "PASSWORD_FILE": str(secret), "PG_BIN": str(PG_BIN), "DATABASE": database, "DB_USER": user,
           "TLS_CA": tls["ca_cert"], "TLS_CERT": tls["server_cert"], "TLS_KEY": tls["server_key"]}
    try:
        run(["sh", SCRIPTS / "start-postgres.sh"], env=env, timeout=300)
        log(f"PostgreSQL on 127.0.0.1:{env['PORT']} (TLS), data in {env['DATA_DIR']}")
        yield {"host": "127.0.0.1", "port": int(env["PORT"]), "database": database, "user": user,
               "password": password, "sslmode": "verify-full", "ca_file": tls["ca_cert"]}
    finally:
        run(["sh", SCRIPTS / "stop-postgres.sh"], env=env, timeout=300, check=False)
        shutil.rmtree(ws, ignore_errors=True)


def env_file(path: Path, pg: dict[str, Any] | None) -> Path:
    """A host's run/stores.env (0600) for these stores, written by featctl's own code."""
    from featctl.repo.stores import env_lines

    stores = {"postgres": {k: pg[k] for k in ("host", "port", "database", "user", "sslmode", "ca_file")}} if pg else {}
    path.write_text(env_lines(stores, {"postgres": pg["password"]} if pg else {}))
    path.chmod(0o600)
    return path


def release(repo: Path, dest: Path, stores: tuple[str, ...]) -> list[str]:
    """Write the release featctl builds from ``repo`` for ``stores`` into ``dest``; its notes."""
    from featctl.repo import bundle

    b = bundle.build(repo, stores=stores)
    if dest.exists():
        shutil.rmtree(dest)
    for rel, real in b.files.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel not in b.contents:
            try:
                os.link(real, target)  # large data files: no copy
            except OSError:
                shutil.copy2(real, target)
    for rel, data in b.contents.items():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return b.notes
