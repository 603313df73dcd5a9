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
    assert env["FEATCTL_REDIS_CONNECTION"] == "10.0.0.5:6380,password=Rpw1,ssl=true"
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
