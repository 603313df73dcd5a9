"""A release whose online store is new or another one is materialized in full:
the identity the agent reports for a release's online store."""

from __future__ import annotations

from featctl.agent.registry import _source_path, online_store_identity


def cfg(online):
    return {"project": "p", "online_store": online}


def test_each_releases_own_sqlite_copy_is_the_same_store(tmp_path):
    a, b = tmp_path / "releases" / "R1", tmp_path / "releases" / "R2"
    sqlite = {"type": "sqlite", "path": "data/online.db"}
    assert online_store_identity(str(a), cfg(sqlite)) == online_store_identity(str(b), cfg(sqlite))
    assert online_store_identity(str(a), cfg(sqlite)) != online_store_identity(
        str(a), cfg({"type": "sqlite", "path": "data/other.db"})
    )


def test_redis_another_server_or_db_is_another_store(tmp_path):
    ids = {
        online_store_identity(str(tmp_path), cfg({"type": "sqlite"})),
        online_store_identity(str(tmp_path), cfg({"type": "redis", "connection_string": "127.0.0.1:6379"})),
        online_store_identity(str(tmp_path), cfg({"type": "redis", "connection_string": "127.0.0.1:6379,db=1"})),
        online_store_identity(str(tmp_path), cfg({"type": "redis", "connection_string": "10.0.0.2:6379"})),
    }
    assert len(ids) == 4
    same = online_store_identity(str(tmp_path), cfg({"type": "redis", "connection_string": "127.0.0.1:6379"}))
    assert same in ids
    # the identity names no secret
    assert "secret" not in online_store_identity(
        str(tmp_path), cfg({"type": "redis", "connection_string": "h:1,password=secret"})
    )


class _Source:
    """A registry DataSource message with file options, at the boundary."""

    def __init__(self, uri):
        self.file_options = type("F", (), {"uri": uri})()

    def WhichOneof(self, _):
        return "file_options"


def test_a_source_built_from_abspath_reads_the_releases_own_file(tmp_path):
    release = tmp_path / "releases" / "R2"
    (release / "data").mkdir(parents=True)
    assert _source_path(_Source(str(release / "data" / "x.parquet")), str(release)) == "data/x.parquet"
    assert _source_path(_Source("data/x.parquet"), str(release)) == "data/x.parquet"
    assert _source_path(_Source("/elsewhere/x.parquet"), str(release)) == "/elsewhere/x.parquet"
    assert _source_path(_Source("s3://bucket/x.parquet"), str(release)) is None

