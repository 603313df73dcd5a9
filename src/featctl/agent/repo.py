"""A feature repository on the host: its feature_store.yaml and registry path."""

from __future__ import annotations

import os
from typing import Any

from .output import InputError


def load_repo_config(repo: str) -> dict[str, Any]:
    path = os.path.join(repo, "feature_store.yaml")
    if not os.path.isfile(path):
        raise InputError(f"{path} not found: not a Feast repo")
    import yaml  # PyYAML is a Feast dependency

    with open(path, encoding="utf-8") as fh:
        # Feast expands ${VAR} in feature_store.yaml the same way.
        cfg = yaml.safe_load(os.path.expandvars(fh.read())) or {}
    if not isinstance(cfg, dict) or not cfg.get("project"):
        raise InputError(f"{path}: no 'project' defined")
    return cfg


def local_registry_path(repo: str, cfg: dict[str, Any]) -> str | None:
    """Path of a local file registry, or None when the registry is not a local file."""
    reg = cfg.get("registry", "data/registry.db")
    if isinstance(reg, dict):
        rtype = str(reg.get("registry_type", "file") or "file").lower()
        if rtype != "file" or reg.get("registry_store_type"):
            return None
        reg = reg.get("path")
    if not isinstance(reg, str) or not reg:
        return None
    if reg.startswith("file://"):
        reg = reg[len("file://") :]
    elif "://" in reg:  # s3://, gs://, postgresql://...
        return None
    return reg if os.path.isabs(reg) else os.path.join(repo, reg)
