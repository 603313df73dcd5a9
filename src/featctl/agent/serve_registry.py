"""Feast's registry server (gRPC), bound to the host's loopback only.

``feast serve_registry`` binds every interface (``[::]:PORT``) whatever its
``-h`` says (that only moves its optional REST server). featctl runs the same
server through Feast's own ``start_server`` with the listening address
replaced by ``127.0.0.1``, so the port is reachable only through SSH.

Run from the release directory::

    python -m featctl_agent.serve_registry PORT
"""

from __future__ import annotations

import sys
from typing import Any


def _loopback(make_server: Any) -> Any:
    def server(*args: Any, **kwargs: Any) -> Any:
        srv = make_server(*args, **kwargs)
        for name in ("add_insecure_port", "add_secure_port"):
            add = getattr(srv, name)

            def bound(address: str, *rest: Any, _add: Any = add) -> Any:
                return _add(address.replace("[::]", "127.0.0.1", 1), *rest)

            setattr(srv, name, bound)
        return srv

    return server


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        sys.stderr.write("usage: python -m featctl_agent.serve_registry PORT\n")
        return 2
    import grpc

    grpc.server = _loopback(grpc.server)
    from feast import FeatureStore
    from feast.registry_server import start_server

    start_server(FeatureStore(repo_path="."), int(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
