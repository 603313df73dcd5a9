"""Feast's own command line (``feast apply``, ``feast plan``, ``feast serve``)
with the shared stores' variables loaded (by importing this package) and
featctl's fixes for Feast applied (compat.py): run as
``python -m featctl_agent.feast_cli apply`` in a release directory. ``serve``
also gets featctl's own endpoints (endpoints.py)."""

from __future__ import annotations

import sys


def main() -> None:
    from .compat import patch_feast

    patch_feast()
    if sys.argv[1:2] == ["serve"]:
        from .compat import fork_safe_registry
        from .endpoints import extend_feature_server

        fork_safe_registry()
        extend_feature_server()
    if sys.argv[1:2] == ["apply"]:
        import os

        from feast import FeatureStore

        from .rebase import rebase_shared_registry

        # A registry every release shares records another release's sqlite path.
        rebase_shared_registry(FeatureStore(repo_path=os.getcwd()), os.getcwd())
    from feast.cli.cli import cli

    sys.argv[0] = "feast"
    sys.exit(cli())


if __name__ == "__main__":
    main()
