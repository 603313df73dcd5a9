"""Remove the deployment's data from stores that outlive its host: online
tables in Redis/PostgreSQL/..., and its project in a SQL registry.

Unlike ``feast teardown`` (which, with a SQL registry, deletes every project
in it), only this repository's project is removed, including its version
history rows (left behind by Feast, they break the next apply).
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from .registry import import_feast
from .repo import load_repo_config


def cmd_teardown(args: argparse.Namespace) -> dict[str, Any]:
    cfg = load_repo_config(args.repo)
    online = cfg.get("online_store") or {}
    online_type = str((online.get("type") if isinstance(online, dict) else online) or "sqlite")
    registry = cfg.get("registry")
    sql = isinstance(registry, dict) and str(registry.get("registry_type", "")).lower() == "sql"
    if online_type == "sqlite" and not sql:
        return {"skipped": "the stores are files of the host"}  # they go with it, no Feast import
    import_feast()
    from feast import FeatureStore

    store = FeatureStore(repo_path=args.repo)
    tables: list[Any] = list(store.list_feature_views())
    with contextlib.suppress(Exception):
        tables += list(store.list_label_views())
    entities = store.list_entities()
    store._get_provider().teardown_infra(store.project, tables, entities)
    if sql:
        store.registry.delete_project(store.project)
        engine = getattr(store.registry, "write_engine", None)
        if engine is not None:
            from sqlalchemy import text

            with contextlib.suppress(Exception), engine.begin() as conn:
                conn.execute(
                    text("DELETE FROM feature_view_version_history WHERE project_id = :p"), {"p": store.project}
                )
    return {"project": store.project, "tables": [t.name for t in tables], "registry_project_removed": sql}
