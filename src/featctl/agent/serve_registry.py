"""Feast's registry server (gRPC) on a Unix socket of the deployment.

``feast serve_registry`` binds every interface (``[::]:PORT``) whatever its
``-h`` says (that only moves its optional REST server), with no credential:
any account that reaches it can delete a feature view. featctl runs the same
server through Feast's own ``start_server`` with the listening address
replaced by the Unix socket in ``FEATCTL_BIND`` (in the deployment's 0700
``run/s``), so only the deployment's user reaches it, through SSH.

Run from the release directory::

    FEATCTL_BIND=<base>/run/s/<port> python -m featctl_agent.serve_registry PORT
"""

from __future__ import annotations

import sys
from typing import Any


def _bound_to(make_server: Any, address: str) -> Any:
    def server(*args: Any, **kwargs: Any) -> Any:
        srv = make_server(*args, **kwargs)
        for name in ("add_insecure_port", "add_secure_port"):
            add = getattr(srv, name)

            def bound(_address: str, *rest: Any, _add: Any = add) -> Any:
                return _add(address, *rest)

            setattr(srv, name, bound)
        return srv

    return server


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        sys.stderr.write("usage: python -m featctl_agent.serve_registry PORT\n")
        return 2
    import os

    import grpc

    path = os.environ.get("FEATCTL_BIND")
    if not path:
        sys.stderr.write("serve_registry: FEATCTL_BIND (the Unix socket to listen on) is not set\n")
        return 2
    os.umask(0o077)
    grpc.server = _bound_to(grpc.server, f"unix:{path}")
    from feast import FeatureStore

    from .compat import patch_feast

    patch_feast()
    from feast.registry_server import start_server

    start_server(FeatureStore(repo_path="."), int(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
