"""How many rows a feature view's source holds, when featctl can tell cheaply."""

from __future__ import annotations

import os


def source_rows(path: str | None, repo: str | None) -> int | None:
    """Rows of a parquet source (a file or a directory of them), from the files'
    footers; None when unknown (another kind of source, unreadable). A deploy
    leaves a view of 0 rows unmaterialized: Feast's file store fails on an
    empty source instead of loading nothing."""
    if not path or path.startswith("postgres:"):
        return None
    full = path if os.path.isabs(path) or not repo else os.path.join(repo, path)
    try:
        import pyarrow.parquet as pq

        if os.path.isfile(full):
            return int(pq.ParquetFile(full).metadata.num_rows)
        if os.path.isdir(full):
            files = [os.path.join(d, f) for d, _, names in os.walk(full) for f in names if not f.startswith((".", "_"))]
            return sum(int(pq.ParquetFile(f).metadata.num_rows) for f in files)
    except Exception:  # not parquet, unreadable: the materialization says what is wrong
        return None
    return None
