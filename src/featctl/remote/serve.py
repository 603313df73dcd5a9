"""Start Feast's feature server for featctl (runs on the host, in the Feast env).

Same arguments as ``feast serve``. Before starting it makes Feast 0.67 honour
``registry.serve_features_while_materializing`` for the file registry too (only
its SQL and remote registries read the setting), so a feature view keeps
serving its last values while it is being materialized instead of failing
requests for the whole run.
"""

from __future__ import annotations

import sys


def main() -> None:
    from feast.infra.registry.base_registry import BaseRegistry

    try:
        from pathlib import Path

        import yaml

        cfg = yaml.safe_load(Path("feature_store.yaml").read_text()) or {}
        registry = cfg.get("registry")
        wanted = isinstance(registry, dict) and bool(registry.get("serve_features_while_materializing"))
    except Exception:
        wanted = False
    if wanted:
        BaseRegistry.serve_features_while_materializing = True

    from feast.cli.cli import cli

    sys.argv = ["feast", "serve", *sys.argv[1:]]
    cli()


if __name__ == "__main__":
    main()
