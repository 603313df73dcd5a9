"""Start Feast's feature server for featctl (runs on the host, in the Feast env).

Same arguments as ``feast serve``. It also sets
``registry.serve_features_while_materializing`` class-wide when
feature_store.yaml asks for it, so a feature view keeps serving its last values
while it is materialized. Feast 0.67's file registry reads the setting itself
as well (bench/materialize_throughput.py: 0 failed queries with stock
``feast serve`` and the option), so this is belt and braces; what matters is
the option in feature_store.yaml (297 failed queries without it).
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
