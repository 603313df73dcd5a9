"""A read-only snapshot of a release's registry, for an application's bundle
(``featctl client-config``): the ``Registry`` proto as Feast's file registry
keeps it, whatever the release's registry is (a file, or Feast's SQL registry
on PostgreSQL), read the way the agent reads it everywhere (``registry.py``:
no partial file from a concurrent apply, SQL without ``import feast``).

Run as ``python -m featctl_agent.snapshot REPO OUT``; writes OUT (0644: a
registry holds no secret) and prints one JSON document (``agent/__init__.py``).
"""

from __future__ import annotations

import os
import sys

from .output import emit, one_line, protect_stdout
from .registry import load_registry
from .repo import load_repo_config


def snapshot(repo: str, out: str) -> dict[str, object]:
    cfg = load_repo_config(repo)
    proto, how = load_registry(repo, cfg)
    data = proto.SerializeToString()
    tmp = f"{out}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, out)
    return {"path": out, "bytes": len(data), "project": cfg["project"], "read": how}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    protect_stdout()
    if len(args) != 2:
        return emit({"error": "usage: python -m featctl_agent.snapshot REPO OUT", "kind": "input"}, 1)
    try:
        return emit(snapshot(args[0], args[1]), 0)
    except Exception as exc:
        return emit({"error": one_line(exc), "kind": "feast"}, 1)


if __name__ == "__main__":
    sys.exit(main())
