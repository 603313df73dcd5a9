"""Feast's own command line (``feast apply``, ``feast plan``, ``feast serve``)
with the shared stores' variables loaded (by importing this package) and
featctl's fixes for Feast applied (compat.py): run as
``python -m featctl_agent.feast_cli apply`` in a release directory. ``serve``
also gets featctl's own endpoints (endpoints.py)."""

from __future__ import annotations

import sys

#: The Unix socket a server binds instead of its --host/--port (featctl sets it
#: for every server it starts: nothing of a deployment listens on TCP).
BIND = "FEATCTL_BIND"


def bind_unix(command: str, path: str) -> None:
    """Make Feast's ``serve`` / ``ui`` / ``serve_offline`` listen on the Unix
    socket ``path`` (its directory is the deployment's 0700 ``run/s``) instead
    of a TCP port any local account could reach. Feast builds each server's
    address from --host/--port inside its own start function, so the address
    is replaced where the server takes it."""
    import os

    os.umask(0o077)
    if command == "serve":
        from feast import feature_server

        app_class = feature_server.FeastServeApplication
        load_config = app_class.load_config

        def bound(self: object) -> None:
            load_config(self)
            cfg = self.cfg  # type: ignore[attr-defined]
            cfg.set("bind", [f"unix:{path}"])
            cfg.set("umask", "0o077")
            # gunicorn's control socket defaults to ~/.gunicorn/gunicorn.ctl,
            # shared by every feature server of the user; featctl does not use it.
            if "control_socket_disable" in cfg.settings:
                cfg.set("control_socket_disable", True)

        app_class.load_config = bound
    elif command == "ui":
        import uvicorn

        run = uvicorn.run

        def run_unix(app: object, **kwargs: object) -> None:
            kwargs.pop("host", None)
            kwargs.pop("port", None)
            run(app, uds=path, **kwargs)

        uvicorn.run = run_unix
    elif command == "serve_offline":
        from feast import offline_server

        init = offline_server.OfflineServer.__init__

        def init_unix(self: object, store: object, location: str, *args: object, **kwargs: object) -> None:
            init(self, store, f"grpc+unix://{path}", *args, **kwargs)

        offline_server.OfflineServer.__init__ = init_unix


def main() -> None:
    import os

    from . import watch
    from .compat import patch_feast

    watch.watch_client()
    patch_feast()
    # The feature server materializes (the schedule, `featctl materialize`): its
    # JVM is sized and exits on out-of-memory, but a stall never kills a server.
    watch.install(json_errors=False, stall_watch=sys.argv[1:2] != ["serve"])
    if os.environ.get(BIND) and sys.argv[1:2]:
        bind_unix(sys.argv[1], os.environ[BIND])
    if sys.argv[1:2] == ["serve"]:
        from .compat import fork_safe_registry
        from .documents import ranked_document_search
        from .endpoints import extend_feature_server

        fork_safe_registry()
        extend_feature_server()
        ranked_document_search()
    if sys.argv[1:2] == ["apply"]:
        import os

        from feast import FeatureStore

        from .rebase import rebase_shared_registry

        # A registry every release shares records another release's sqlite path.
        rebase_shared_registry(FeatureStore(repo_path=os.getcwd()), os.getcwd())
    from feast.cli.cli import cli

    sys.argv[0] = "feast"
    try:
        sys.exit(cli())
    finally:
        watch.done()  # pyspark stops its JVM at exit: no death


if __name__ == "__main__":
    main()
