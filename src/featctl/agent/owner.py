"""Which workspace last changed the deployment (stdlib only).

``run/owner.json`` holds the deployment id, the workspace that last deployed
(host name and path) and a generation that grows with every change. A copy of
a workspace carries the same id but is not the last writer, and featctl
refuses it before it runs Terraform.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from .common import now, write
from .lock import lock_holder


def _path(base: str) -> str:
    run = os.path.join(base, "run")
    os.makedirs(run, exist_ok=True)
    return os.path.join(run, "owner.json")


def read_owner(base: str) -> dict[str, Any] | None:
    try:
        with open(_path(base)) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cmd_owner(args: argparse.Namespace) -> dict[str, Any]:
    """The recorded owner and the deploy lock's holder; with --claim, record a new owner."""
    if args.claim:
        claim = json.loads(args.claim)
        claim["updated"] = now()
        write(_path(args.base), json.dumps(claim, sort_keys=True))
    return {"owner": read_owner(args.base), "lock": lock_holder(args.base)}
