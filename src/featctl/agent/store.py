"""Is the online store featctl can see on the host intact? (sqlite only)."""

from __future__ import annotations

import os
from typing import Any


def store_problems(proto: Any, own_path: str | None = None, project: str | None = None) -> list[str]:
    """What is wrong with the sqlite online store the registry's infra records:
    a missing file, a file that is not a database, a missing table. (A server
    that still holds the deleted file open answers until it restarts: the file
    is what the next restart and the next release see.)

    ``own_path``: the release's own sqlite file, checked instead of the path
    the registry records. A registry every release shares (Feast's SQL
    registry) records the path of the release that applied last, which may be
    another release, or one that failed and is gone. ``project``: only its
    tables, those of its feature views (Feast names them ``<project>_<view>``):
    a shared registry holds every project's infra, and another project's
    tables are not in this file (a name prefix cannot tell: ``featctl_other_x``
    could be project ``featctl``'s view ``other_x``).
    """
    import sqlite3

    ours = None
    if project is not None:
        views = list(proto.feature_views) + list(proto.stream_feature_views)
        ours = {f"{project}_{v.spec.name}" for v in views if v.spec.project == project}
    tables: dict[str, list[str]] = {}
    for obj in proto.infra.infra_objects:
        if obj.HasField("sqlite_table") and (ours is None or obj.sqlite_table.name in ours):
            tables.setdefault(own_path or obj.sqlite_table.path, []).append(obj.sqlite_table.name)
    problems = []
    for path, names in sorted(tables.items()):
        if not os.path.exists(path):
            problems.append(f"the online store {path} is missing")
            continue
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            finally:
                conn.close()
        except sqlite3.Error as exc:
            problems.append(f"the online store {path} cannot be read: {exc}")
            continue
        missing = sorted(set(names) - have)
        if missing:
            problems.append(f"the online store {path} lacks table(s) {', '.join(missing)}")
    return problems
