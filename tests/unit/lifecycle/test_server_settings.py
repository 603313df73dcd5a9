"""What featctl.toml says runs on the host, compared with what the serving
release runs (#24 item 5): server_workers, and one worker where the online
store is a file only one process may open."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from featctl.lifecycle.common import server_differs, server_workers
from featctl.lifecycle.plan import PlanResult
from featctl.repo.feature_store import RepoConfig


def settings(tmp_path, workers: int = 2, online: str = "") -> SimpleNamespace:
    (tmp_path / "feature_store.yaml").write_text(f"project: p\n{online}")
    return SimpleNamespace(repo=tmp_path, server_workers=workers)


@pytest.mark.parametrize(
    ("recorded", "workers", "want"),
    [
        (2, 2, None),
        (None, 2, None),  # a release from before featctl recorded it: the default's
        (None, 1, "server_workers 2 -> 1"),
        (1, 4, "server_workers 1 -> 4"),
    ],
)
def test_server_differs(tmp_path, recorded, workers, want):
    assert server_differs(SimpleNamespace(workers=recorded), settings(tmp_path, workers)) == want


def test_milvus_lite_gets_one_worker(tmp_path):
    lite = "online_store:\n  type: milvus\n  path: data/online_store.db\n"
    assert server_workers(settings(tmp_path, 2, lite)) == 1
    assert server_differs(SimpleNamespace(workers=2), settings(tmp_path, 2, lite)) == "server_workers 2 -> 1"
    remote = "online_store:\n  type: milvus\n  host: milvus.internal\n  port: 19530\n"
    assert server_workers(settings(tmp_path, 3, remote)) == 3
    assert RepoConfig(tmp_path, {"online_store": {"type": "sqlite"}}).single_process_online is None


def test_no_repository_leaves_the_setting_as_is(tmp_path):
    assert server_workers(SimpleNamespace(repo=tmp_path / "missing", server_workers=3)) == 3


def test_plan_counts_a_server_change():
    result = PlanResult(target="local", server=["server_workers 2 -> 1"])
    assert result.changes
    assert [(r.kind, r.name, r.change) for r in result.rows()] == [
        ("host", "feature server", "new release (server_workers 2 -> 1)")
    ]
    assert not PlanResult(target="local").changes
