"""The sample data step of a deploy, for featctl's own demo repository only
(marked in its feature_store.yaml, see repo/feature_store.py): generate the
driver data when it is missing; check existing files once per content. Any
other repository's files are never created, changed or checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from featctl.errors import UsageError

DATA_FILES = ("data/driver_stats.parquet", "data/driver_stats_with_productivity.parquet")


def prepare_sample_data(repo: Path, checked: Path | None = None) -> list[str]:
    """Generate the demo repository's driver data when it is missing (the caller
    checks that ``repo`` is the demo).

    Existing files are checked (their columns) once per content: ``checked``
    remembers the size and mtime of files already found good, so a redeploy
    does not pay for importing pandas and pyarrow again.
    """
    import json

    def stamp() -> dict[str, Any]:
        out: dict[str, Any] = {"repo": str(repo)}
        for rel in DATA_FILES:
            st = (repo / rel).stat()
            out[rel] = [st.st_size, st.st_mtime_ns]
        return out

    try:
        if checked is not None and json.loads(checked.read_text()) == stamp():
            return [f"kept existing {rel} (unchanged since the last check)" for rel in DATA_FILES]
    except (OSError, ValueError):
        pass
    from featctl.store.sampledata import SampleDataError, ensure_sample_data

    try:
        messages = list(ensure_sample_data(repo))
    except SampleDataError as exc:
        raise UsageError(str(exc)) from None
    if checked is not None:
        from featctl.workspace import write_private

        write_private(checked, json.dumps(stamp()))
    return messages

