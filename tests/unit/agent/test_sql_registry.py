"""Which registries the agent reads from PostgreSQL itself, and with what URI
(the read against Feast's SqlRegistry is in tests/integration/test_sql_registry.py)."""

import pytest

from featctl.agent.sql_registry import Unsupported, postgres_url


def sql(path: str, **extra: object) -> dict:
    return {"project": "p", "registry": {"registry_type": "sql", "path": path, **extra}}


@pytest.mark.parametrize(
    ("cfg", "uri"),
    [
        # featctl's own rendering (repo/stores.py), with the variables expanded
        (sql("postgresql+psycopg://feast:pw@127.0.0.1:5432/feast?sslmode=disable"),
         "postgresql://feast:pw@127.0.0.1:5432/feast?sslmode=disable"),
        # a %-escaped password stays escaped: libpq decodes it as SQLAlchemy does
        (sql("postgresql+psycopg2://u:p%40ss@db.example:6432/reg?sslmode=verify-full&sslrootcert=/ca.pem"),
         "postgresql://u:p%40ss@db.example:6432/reg?sslmode=verify-full&sslrootcert=/ca.pem"),
        (sql("postgresql://u@h/d"), "postgresql://u@h/d"),
        (sql("POSTGRES://u@h/d"), "postgresql://u@h/d"),
        # Feast reads from read_path when there is one
        (sql("postgresql+psycopg://w@primary/d", read_path="postgresql+psycopg://r@replica/d"),
         "postgresql://r@replica/d"),
        (sql("postgresql+psycopg://u@h/d", sqlalchemy_config_kwargs={"pool_pre_ping": True}),
         "postgresql://u@h/d"),
    ],
)
def test_postgres_registries_become_libpq_uris(cfg: dict, uri: str) -> None:
    assert postgres_url(cfg) == uri


@pytest.mark.parametrize(
    "registry",
    [
        "data/registry.db",
        {"path": "data/registry.db"},
        {"registry_type": "file", "path": "data/registry.db"},
        {"registry_type": "sql", "path": "sqlite:///data/registry.db"},
        {"registry_type": "sql", "path": "mysql+pymysql://u@h/d"},
        {"registry_type": "remote", "path": "localhost:6570"},
        {"registry_type": "sql"},
    ],
)
def test_other_registries_are_not_read_from_postgres(registry: object) -> None:
    assert postgres_url({"project": "p", "registry": registry}) is None


def test_connect_args_it_cannot_honour_leave_the_read_to_feast() -> None:
    with pytest.raises(Unsupported, match="connect_args"):
        postgres_url(sql("postgresql+psycopg://u@h/d", sqlalchemy_config_kwargs={"connect_args": {"options": "-c x"}}))
