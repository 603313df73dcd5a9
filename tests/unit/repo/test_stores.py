"""A release on shared stores: the YAML names variables (never values), the
hosts' variables file, and FileSources that become PostgreSQL tables."""

from __future__ import annotations

import ast
import hashlib
import json

import pytest
import yaml

from featctl.errors import UsageError
from featctl.repo import stores
from featctl.repo.bundle import build
from tests.conftest import ROOT

FEATURES = '''from __future__ import annotations
from feast import FileSource, PushSource
import feast

PATH = "data/stats.parquet"
stats = FileSource(name="stats", path=PATH, timestamp_field="ts", created_timestamp_column="created")
other = feast.FileSource(path="data/other.parquet", timestamp_field="ts", field_mapping={"a": "b"})
push = PushSource(name="push", batch_source=FileSource(path="data/stats.parquet", timestamp_field="ts"))
'''


def repo_with(tmp_path, features=FEATURES, yaml_text="project: p\n"):
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "feature_store.yaml").write_text(yaml_text)
    (repo / "data" / "stats.parquet").write_bytes(b"stats-v1")
    (repo / "data" / "other.parquet").write_bytes(b"other")
    (repo / "features.py").write_text(features)
    return repo


def test_stores_are_rendered_as_variables_only(tmp_path):
    bundle = build(repo_with(tmp_path), stores=("redis", "postgres"))
    text = bundle.contents["feature_store.yaml"].decode()
    data = yaml.safe_load(text)
    assert data["online_store"] == {"type": "redis", "connection_string": "${FEATCTL_REDIS_CONNECTION}"}
    assert data["registry"]["registry_type"] == "sql" and data["registry"]["path"] == "${FEATCTL_POSTGRES_URL}"
    assert data["offline_store"]["type"] == "postgres"
    assert all(str(v).startswith("${") for k, v in data["offline_store"].items() if k not in ("type", "db_schema"))
    # Feast's extras for the host follow the rendered stores.
    assert bundle.config is not None and bundle.config.extras == ["postgres", "redis"]


def test_a_repository_that_names_its_stores_with_variables_keeps_them(tmp_path):
    own = "project: p\nonline_store:\n  type: redis\n  connection_string: ${MY_REDIS}\n"
    bundle = build(repo_with(tmp_path, yaml_text=own), stores=("redis",))
    assert "feature_store.yaml" not in bundle.contents  # uploaded as the user wrote it


def test_without_stores_nothing_is_rendered(tmp_path):
    bundle = build(repo_with(tmp_path))
    assert "feature_store.yaml" not in bundle.contents and "features.py" not in bundle.contents


def test_file_sources_become_postgres_tables_named_by_content(tmp_path):
    repo = repo_with(tmp_path)
    bundle = build(repo, stores=("postgres",))
    source = bundle.contents["features.py"].decode()
    ast.parse(source)  # still Python
    assert "FileSource(" not in source.replace("import FileSource", "")
    assert source.splitlines()[0] == "from __future__ import annotations"
    assert "PostgreSQLSource" in source.splitlines()[1]
    tables = json.loads(bundle.contents[stores.TABLES_FILE])
    digest = hashlib.sha256(b"stats-v1").hexdigest()
    stats_table = f"featctl_stats_{digest[:12]}"
    assert tables[stats_table] == "data/stats.parquet"
    assert f'PostgreSQLSource(table={stats_table!r}, name="stats", timestamp_field="ts"' in source
    assert "created_timestamp_column=\"created\"" in source and "field_mapping={\"a\": \"b\"}" in source
    assert len(tables) == 2  # the push source's batch source reads the same table
    # New content, new table: a release never reads another release's data.
    (repo / "data" / "stats.parquet").write_bytes(b"stats-v2")
    again = json.loads(build(repo, stores=("postgres",)).contents[stores.TABLES_FILE])
    assert stats_table not in again and "data/stats.parquet" in again.values()


def test_a_non_parquet_or_computed_path_is_refused_with_its_line(tmp_path):
    csv = "from feast import FileSource\ns = FileSource(path='data/x.csv', timestamp_field='ts')\n"
    repo = repo_with(tmp_path, features=csv)
    (repo / "data" / "x.csv").write_text("a\n")
    with pytest.raises(UsageError, match=r"features.py:2: FileSource 'data/x.csv' is not a parquet file"):
        build(repo, stores=("postgres",))
    computed = "from feast import FileSource\nimport os\ns = FileSource(path=os.getenv('X'), timestamp_field='ts')\n"
    with pytest.raises(UsageError, match="not a string literal"):
        build(repo_with(tmp_path / "b", features=computed), stores=("postgres",))


def test_env_lines_hold_every_variable_the_yaml_names():
    where = {
        "redis": {"host": "10.0.0.5", "port": 6380, "tls": True},
        "postgres": {"host": "pg.internal", "port": 6432, "database": "feast", "user": "feast", "sslmode": "verify-full",
                     "ca_file": "/etc/featctl/ca.pem"},
    }
    text = stores.env_lines(where, {"redis": "Rpw1", "postgres": "Ppw2"})
    env = dict(line.split("=", 1) for line in text.splitlines())
    assert env["FEATCTL_REDIS_CONNECTION"] == "10.0.0.5:6380,password=Rpw1,ssl=true"  # no CA given: the system's
    assert env["FEATCTL_POSTGRES_URL"] == (
        "postgresql+psycopg://feast:Ppw2@pg.internal:6432/feast?sslmode=verify-full&sslrootcert=/etc/featctl/ca.pem"
    )
    rendered: dict = {}
    stores.render(rendered, ("redis", "postgres"))
    named = {part.split("}")[0] for part in json.dumps(rendered).split("${")[1:]}
    assert named <= set(env)
    assert stores.env_lines({}, {}) == ""


def test_spark_reads_a_microsecond_copy_by_an_absolute_path(tmp_path):
    bundle = build(repo_with(tmp_path), stores=("redis", "spark"))
    data = yaml.safe_load(bundle.contents["feature_store.yaml"])
    assert data["offline_store"]["type"] == "spark" and data["batch_engine"]["type"] == "spark.engine"
    assert data["offline_store"]["spark_conf"]["spark.ui.enabled"] == "false"
    source = bundle.contents["features.py"].decode()
    ast.parse(source)
    assert "SparkSource(path=" in source and "file_format='parquet'" in source and "__file__" in source
    files = json.loads(bundle.contents[stores.SPARK_FILES])
    assert sorted(files.values()) == ["data/other.parquet", "data/stats.parquet"]
    assert all(copy.startswith("_featctl/spark/featctl_") for copy in files)
    assert stores.TABLES_FILE not in bundle.contents
    assert bundle.config is not None and "spark" in bundle.config.extras


TLS_STORES = {
    "redis": {"host": "127.0.0.1", "port": 6380, "tls": True, "ca_file": "/opt/featctl/tls/ca.crt"},
    "postgres": {"host": "127.0.0.1", "port": 6432, "database": "feast", "user": "feast", "sslmode": "verify-full",
                 "ca_file": "/opt/featctl/tls/ca.crt"},
}


def _env(where, passwords=None):
    text = stores.env_lines(where, passwords or {"redis": "Rpw1", "postgres": "Ppw2"})
    return dict(line.split("=", 1) for line in text.splitlines())


def test_redis_over_tls_gets_the_ca_file_in_its_connection_string():
    """Issue #16 item 1: Feast hands every k=v of the connection string to
    redis-py; without ssl_ca_certs redis-py checks the server against the
    system store, which does not hold the stores' CA."""
    env = _env(TLS_STORES)
    assert env["FEATCTL_REDIS_CONNECTION"] == (
        "127.0.0.1:6380,password=Rpw1,ssl=true,ssl_ca_certs=/opt/featctl/tls/ca.crt"
    )
    # Parsed the way Feast 0.67 parses it (RedisOnlineStore._parse_connection_string).
    from featctl.agent.stores import redis_kwargs

    host, port, kw = redis_kwargs(env["FEATCTL_REDIS_CONNECTION"])
    assert (host, port) == ("127.0.0.1", 6380)
    assert kw == {"password": "Rpw1", "ssl": True, "ssl_ca_certs": "/opt/featctl/tls/ca.crt"}


def test_a_ca_path_feast_cannot_carry_is_refused():
    where = {"redis": {**TLS_STORES["redis"], "ca_file": "/work/a,b/tls/ca.crt"}}
    with pytest.raises(UsageError, match="comma"):
        stores.env_lines(where, {"redis": "Rpw1"})


def test_postgres_offline_store_gets_the_ca_file():
    """Issue #16 item 2: Feast 0.67's PostgreSQLConfig passes sslrootcert=None
    unless sslrootcert_path is set; libpq then looks for ~/.postgresql/root.crt."""
    data: dict = {}
    stores.render(data, ("postgres",))
    assert data["offline_store"]["sslrootcert_path"] == "${FEATCTL_POSTGRES_SSLROOTCERT}"
    env = _env(TLS_STORES)
    assert env["FEATCTL_POSTGRES_SSLROOTCERT"] == "/opt/featctl/tls/ca.crt"
    assert env["FEATCTL_POSTGRES_SSLMODE"] == "verify-full"
    # libpq's own fallback, for a release whose YAML predates sslrootcert_path.
    assert env["PGSSLROOTCERT"] == "/opt/featctl/tls/ca.crt"
    # Without a CA the variable is still defined (Feast leaves an undefined ${...} as it is).
    plain = {"postgres": {**TLS_STORES["postgres"], "sslmode": "disable", "ca_file": None}}
    assert _env(plain)["FEATCTL_POSTGRES_SSLROOTCERT"] == ""


def test_rendered_postgres_keys_are_fields_of_feasts_config():
    """The offline store's keys are PostgreSQLConfig fields of the pinned Feast
    (read from its source, not guessed)."""
    import sys

    feast_src = ROOT / ".venv-feast" / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    config = feast_src / "feast" / "infra" / "utils" / "postgres" / "postgres_config.py"
    if not config.is_file():
        pytest.fail(f"{config} is missing: run scripts/bootstrap --dev (it builds .venv-feast, Feast 0.67.0)")
    tree = ast.parse(config.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "PostgreSQLConfig")
    fields = {n.target.id for n in cls.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    data: dict = {}
    stores.render(data, ("postgres",))
    assert set(data["offline_store"]) - {"type"} <= fields, set(data["offline_store"]) - fields


def test_the_ca_path_is_quoted_in_the_registry_url():
    where = {"postgres": {**TLS_STORES["postgres"], "ca_file": "/w/sp ace&x/tls/ca.crt"}}
    url = _env(where)["FEATCTL_POSTGRES_URL"]
    assert url.endswith("?sslmode=verify-full&sslrootcert=/w/sp%20ace%26x/tls/ca.crt")


def test_each_host_reads_the_ca_under_its_own_directory():
    """The stores output names the CA on host 0; the local target's other hosts
    have their own directories, with the same layout under them."""
    rebased = stores.for_host(TLS_STORES, "/opt/featctl", "/ws/local/host-1")
    assert rebased["redis"]["ca_file"] == "/ws/local/host-1/tls/ca.crt"
    assert rebased["postgres"]["ca_file"] == "/ws/local/host-1/tls/ca.crt"
    assert stores.for_host(TLS_STORES, "/opt/featctl", "/opt/featctl") == TLS_STORES
    elsewhere = {"redis": {**TLS_STORES["redis"], "ca_file": "/etc/ssl/ca.pem"}}
    assert stores.for_host(elsewhere, "/opt/featctl", "/x") == elsewhere
