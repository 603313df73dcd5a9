"""Shell completion of feature references and feature service names from the
workspace's cached registry summary: no connection, no Feast."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _desc(ctx: Any) -> dict[str, Any]:
    from featctl.config import load_settings
    from featctl.errors import FeatctlError
    from featctl.workspace import Workspace

    params = getattr(ctx, "params", {}) or {}
    try:
        settings = load_settings({"workspace": params.get("workspace")}, config_path=params.get("config"))
        record = Workspace(Path(settings.workspace)).load()
    except (FeatctlError, OSError):
        return {}
    return (record.registry if record else None) or {}


def features(ctx: Any, incomplete: str) -> list[str]:
    """``view:feature`` references of every kind of view, after a comma too."""
    from featctl.query.catalog import Catalog

    done, _, current = incomplete.rpartition(",")
    prefix = f"{done}," if done else ""
    refs = sorted(f"{v}:{f}" for v, feats in Catalog(_desc(ctx)).views().items() for f in feats)
    return [prefix + r for r in refs if r.startswith(current)]


def feature_services(ctx: Any, incomplete: str) -> list[str]:
    from featctl.query.catalog import Catalog

    return sorted(s for s in Catalog(_desc(ctx)).services() if s.startswith(incomplete))
