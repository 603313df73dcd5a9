"""The deployed registry as queries need it, from the summary the workspace
caches (no Feast import, no connection)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from featctl.errors import UsageError
from featctl.workspace import Deployment

DEFAULT_JOIN_KEY = "driver_id"


@dataclass(frozen=True)
class Catalog:
    """The deployed registry as far as queries need it: no Feast import."""

    desc: dict[str, Any]

    def views(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for kind in ("feature_views", "on_demand_feature_views"):
            for v in self.desc.get(kind, []):
                out[v["name"]] = [f["name"] for f in v.get("features", [])]
        return out

    def services(self) -> dict[str, list[str]]:
        return {s["name"]: list(s.get("features", [])) for s in self.desc.get("feature_services", [])}

    def join_key(self) -> str:
        for e in self.desc.get("entities", []):
            if e.get("join_keys"):
                return str(e["join_keys"][0])
        return DEFAULT_JOIN_KEY

    def join_key_types(self) -> dict[str, str]:
        """Join key -> Feast type name ("Int64", "String", ...), as far as the
        cached summary knows (summaries from older deploys carry none)."""
        out: dict[str, str] = {}
        for v in self.desc.get("feature_views", []) + self.desc.get("label_views", []):
            for k in v.get("join_keys", []):
                out.setdefault(k["name"], k["dtype"])
        for e in self.desc.get("entities", []):
            out.update({k: t for k, t in (e.get("join_key_types") or {}).items() if t not in ("Unknown", "Invalid")})
        return out

    def odfv(self, name: str) -> dict[str, Any] | None:
        return next((v for v in self.desc.get("on_demand_feature_views", []) if v["name"] == name), None)

    def check_refs(self, refs: Sequence[str]) -> None:
        if not self.desc:
            return
        views = self.views()
        for ref in refs:
            view, _, feat = ref.partition(":")
            if view not in views:
                raise UsageError(
                    f"unknown feature view {view!r} in {ref!r}; deployed views: {', '.join(sorted(views))}"
                )
            if feat not in views[view]:
                raise UsageError(f"feature view {view!r} has no feature {feat!r}; it has: {', '.join(views[view])}")

    def check_service(self, name: str) -> list[str]:
        services = self.services()
        if self.desc and name not in services:
            raise UsageError(f"unknown feature service {name!r}; deployed: {', '.join(sorted(services)) or 'none'}")
        return services.get(name, [])

    def default_features(self) -> list[str]:
        return [f"{v['name']}:{f['name']}" for v in self.desc.get("feature_views", []) for f in v.get("features", [])]


def catalog(record: Deployment) -> Catalog:
    return Catalog(record.registry or {})


def select_features(cat: Catalog, features: Sequence[str], feature_service: str | None) -> tuple[list[str], str | None]:
    if features and feature_service:
        raise UsageError("give either --features or --feature-service, not both")
    if feature_service:
        return cat.check_service(feature_service), feature_service
    refs = list(features) or cat.default_features()
    if not refs:
        raise UsageError("give --features VIEW:FEATURE or --feature-service NAME")
    cat.check_refs(refs)
    return refs, None

