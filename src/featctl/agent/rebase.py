"""Point a copied release's registry at its own files."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .registry import import_registry_pb2_fast
from .repo import load_repo_config, local_registry_path


def rebase_shared_registry(store: Any, repo: str) -> int:
    """Forget the sqlite infra records of other releases in a registry every
    release shares (Feast's SQL registry), before ``feast apply`` in ``repo``.

    The SQL registry records the sqlite tables of the release that applied
    last: the serving one, or one that failed and was removed. Left as they
    are, the next release's apply sees its own path as a change and tears the
    tables down at the recorded one: in the serving release's database while
    it serves (its queries then fail with "no such table"), or, for a removed
    release, it fails with FileNotFoundError (Feast creates the directory of a
    missing database without its parents). Without them, apply creates its
    tables in the release's own database (``CREATE TABLE IF NOT EXISTS``: a copy
    of the serving database keeps its rows). Only records in sibling releases
    (``<base>/releases/*``) are dropped; returns how many.
    """
    from feast.infra.registry.sql import managed_infra
    from feast.protos.feast.core.InfraObject_pb2 import Infra as InfraProto
    from sqlalchemy import create_engine, inspect, select, update

    config = store.config  # not store.registry: Feast's SqlRegistry reads the infra (and fails on it) when built
    reg = config.registry
    if str(getattr(reg, "registry_type", "file")) != "sql":
        return 0
    own = os.path.realpath(repo).rstrip("/") + "/"
    releases = os.path.dirname(own.rstrip("/")) + "/"
    where = (managed_infra.c.project_id == config.project) & (managed_infra.c.infra_name == "infra_obj")
    engine = create_engine(reg.path, **(getattr(reg, "sqlalchemy_config_kwargs", None) or {}))
    try:
        if not inspect(engine).has_table(managed_infra.name):
            return 0  # a registry nothing was applied to yet
        with engine.begin() as conn:
            row = conn.execute(select(managed_infra.c.infra_proto).where(where)).first()
            if row is None:
                return 0
            proto = InfraProto.FromString(row[0])
            keep = [
                obj
                for obj in proto.infra_objects
                if not (
                    obj.HasField("sqlite_table")
                    and obj.sqlite_table.path.startswith(releases)
                    and not obj.sqlite_table.path.startswith(own)
                )
            ]
            dropped = len(proto.infra_objects) - len(keep)
            if dropped:
                del proto.infra_objects[:]
                proto.infra_objects.extend(keep)
                conn.execute(update(managed_infra).where(where).values(infra_proto=proto.SerializeToString()))
    finally:
        engine.dispose()
    return dropped


def cmd_rebase(args: argparse.Namespace) -> dict[str, Any]:
    """Point the registry's infra records at this repo's files instead of --from's.

    Feast records the absolute path of each sqlite online-store table in the
    registry. A release starts as a copy of the serving one, so without this the
    new release's `feast apply` sees the path change and tears down the tables
    in the *serving* release's database.
    """
    cfg = load_repo_config(args.repo)
    path = local_registry_path(args.repo, cfg)
    if path is None or not os.path.exists(path):
        return {"rebased": 0, "note": "no local registry file"}
    old = os.path.realpath(args.from_repo).rstrip("/") + "/"
    new = os.path.realpath(args.repo).rstrip("/") + "/"
    Registry_pb2 = import_registry_pb2_fast()
    proto = Registry_pb2.Registry()
    with open(path, "rb") as fh:
        proto.ParseFromString(fh.read())
    count = 0
    for obj in proto.infra.infra_objects:
        if obj.HasField("sqlite_table") and obj.sqlite_table.path.startswith(old):
            obj.sqlite_table.path = new + obj.sqlite_table.path[len(old) :]
            count += 1
    if count:
        tmp = f"{path}.featctl-tmp"
        with open(tmp, "wb") as fh:
            fh.write(proto.SerializeToString())
        os.replace(tmp, path)
    return {"rebased": count}
