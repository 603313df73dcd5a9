"""Point a copied release's registry at its own files."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .registry import import_registry_pb2_fast
from .repo import load_repo_config, local_registry_path


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
