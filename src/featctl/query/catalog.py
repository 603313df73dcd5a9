"""The deployed registry as queries need it, from the summary the workspace
caches (no Feast import, no connection): views of every kind, feature
services, join keys and their types, what on-demand views ask for."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from featctl.errors import UsageError
from featctl.workspace import Deployment

DEFAULT_JOIN_KEY = "driver_id"
COEF_SUFFIX = "_coef"


#: Feast types a weighted sum takes (the values become 64-bit floats).
NUMERIC = ("Int32", "Int64", "Float32", "Float64", "Bool")
#: The output of a score featctl computes itself (no on-demand view weighs the features).
SUM_OUTPUT = "score"


@dataclass(frozen=True)
class ScoreView:
    """An on-demand view that weighs features with ``<feature>_coef`` request
    fields or, with ``summed``, no view: featctl sums weight * value itself."""

    name: str
    #: weighted feature -> the feature view it is read from
    weighted: dict[str, str]
    #: the view's own output features
    outputs: list[str]
    summed: bool = False

    def describe(self) -> str:
        if self.summed:
            return "featctl's weighted sum (no on-demand view of the repository takes weights)"
        return f"on-demand view {self.name}"

    def coef(self, feature: str) -> str:
        return f"{feature}{COEF_SUFFIX}"


@dataclass(frozen=True)
class Catalog:
    """The deployed registry as far as queries need it: no Feast import."""

    desc: dict[str, Any]

    # --- views ------------------------------------------------------------------
    def _kinds(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for kind in ("feature_views", "on_demand_feature_views", "label_views"):
            out += [(kind, v) for v in self.desc.get(kind, [])]
        return out

    def views(self) -> dict[str, list[str]]:
        """Every view of every kind -> its feature names."""
        return {v["name"]: [f["name"] for f in v.get("features", [])] for _, v in self._kinds()}

    def feature_types(self) -> dict[str, str]:
        """``view:feature`` -> Feast type name."""
        return {f"{v['name']}:{f['name']}": f.get("dtype", "") for _, v in self._kinds() for f in v.get("features", [])}

    def services(self) -> dict[str, list[str]]:
        return {s["name"]: list(s.get("features", [])) for s in self.desc.get("feature_services", [])}

    def odfv(self, name: str) -> dict[str, Any] | None:
        return next((v for v in self.desc.get("on_demand_feature_views", []) if v["name"] == name), None)

    def _view(self, name: str) -> dict[str, Any] | None:
        return next((v for _, v in self._kinds() if v["name"] == name), None)

    # --- keys -------------------------------------------------------------------
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

    def _sources(self, odfv: dict[str, Any]) -> list[tuple[str, list[str]]]:
        if odfv.get("sources"):
            return [(s["view"], list(s.get("features", []))) for s in odfv["sources"]]
        return [(v, []) for v in odfv.get("source_feature_views", [])]

    def keys_for(self, refs: Sequence[str]) -> dict[str, str]:
        """Join keys the referenced features need -> the view that needs it."""
        out: dict[str, str] = {}
        for ref in refs:
            view = ref.partition(":")[0]
            odfv = self.odfv(view)
            names = [src for src, _ in self._sources(odfv)] if odfv else [view]
            for name in names:
                v = self._view(name)
                for k in (v or {}).get("join_keys", []):
                    out.setdefault(k["name"], view)
        return out

    # --- request data ---------------------------------------------------------
    def request_fields(self, refs: Sequence[str] | None = None) -> dict[str, tuple[str, str]]:
        """Request fields -> (type, the on-demand view asking for it), for the
        views ``refs`` reach (every on-demand view with ``refs`` None)."""
        wanted = None if refs is None else {r.partition(":")[0] for r in refs}
        out: dict[str, tuple[str, str]] = {}
        for v in self.desc.get("on_demand_feature_views", []):
            if wanted is not None and v["name"] not in wanted:
                continue
            for fields in (v.get("request_sources") or {}).values():
                for f in fields:
                    name = f["name"] if isinstance(f, dict) else str(f)
                    dtype = f.get("dtype", "String") if isinstance(f, dict) else "String"
                    out.setdefault(name, (dtype, v["name"]))
        return out

    # --- checks -----------------------------------------------------------------
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

    # --- score --------------------------------------------------------------------
    def score_view(
        self, name: str | None = None, *, configured: str | None = None, weighing: Sequence[str] | None = None
    ) -> ScoreView:
        """The on-demand view ``score`` uses: ``name`` (--view), else ``configured``
        (featctl.toml [score] view), else the one view whose request fields are all
        ``<feature>_coef`` weights of features it reads; with no such view and
        ``weighing`` (the features --weights names), featctl's own sum of them."""
        odfvs = self.desc.get("on_demand_feature_views", [])
        if not self.desc:  # an old deployment record without a summary: featctl's demo view
            return ScoreView(
                "driver_activity_rates_linear_combination_fv",
                {"conv_rate": "driver_quality_metrics", "acc_rate": "driver_quality_metrics"},
                ["linear_combination"],
            )
        chosen = name or configured
        if chosen:
            odfv = self.odfv(chosen)
            if odfv is None:
                known = ", ".join(v["name"] for v in odfvs) or "none"
                where = "--view" if name else "featctl.toml [score] view"
                raise UsageError(f"{where} {chosen!r} is not an on-demand view; on-demand views: {known}")
            spec = self._weighing(odfv)
            if spec is None:
                raise UsageError(
                    f"on-demand view {chosen!r} does not weigh features: its request fields are not all "
                    f"<feature>{COEF_SUFFIX} weights of features it reads"
                )
            return spec
        candidates = [s for s in (self._weighing(v) for v in odfvs) if s is not None]
        if len(candidates) == 1:
            return candidates[0]
        if not candidates and weighing:
            return self.summed(weighing)
        if not candidates:
            known = ", ".join(v["name"] for v in odfvs) or "none"
            raise UsageError(
                f"no on-demand view weighs features with <feature>{COEF_SUFFIX} request fields "
                f"(on-demand views: {known}); name one with --view or [score] view in featctl.toml"
            )
        raise UsageError(
            f"several on-demand views take weights: {', '.join(c.name for c in candidates)}; "
            "choose one with --view or [score] view in featctl.toml"
        )

    def summed(self, names: Sequence[str]) -> ScoreView:
        """The score of features ``names`` (``feature`` or ``view:feature``) that
        featctl computes: each one numeric feature of one feature view."""
        types = self.feature_types()
        weighted: dict[str, str] = {}
        for name in names:
            view, _, feat = name.rpartition(":")
            homes = [view] if view else [v["name"] for v in self.desc.get("feature_views", [])
                                         if any(f["name"] == feat for f in v.get("features", []))]  # fmt: skip
            if view:
                self.check_refs([name])
            if not homes:
                raise UsageError(f"no feature view has a feature {feat!r} to weigh")
            if len(homes) > 1:
                raise UsageError(
                    f"feature {feat!r} is in several views ({', '.join(homes)}): weigh one as VIEW:FEATURE"
                )
            if feat in weighted:
                raise UsageError(f"two weighted features are named {feat!r} ({weighted[feat]}, {homes[0]}): weigh one only")
            dtype = types.get(f"{homes[0]}:{feat}", "")
            if dtype and dtype not in NUMERIC:
                raise UsageError(f"feature {homes[0]}:{feat} is {dtype}, not a number: it cannot be weighed")
            weighted[feat] = homes[0]
        return ScoreView("", weighted, [SUM_OUTPUT], summed=True)

    def _weighing(self, odfv: dict[str, Any]) -> ScoreView | None:
        fields = list(self.request_fields([f"{odfv['name']}:x"]))
        if not fields or not all(f.endswith(COEF_SUFFIX) for f in fields):
            return None
        read: dict[str, str] = {}
        for view, feats in self._sources(odfv):
            names = feats or self.views().get(view, [])
            for f in names:
                read.setdefault(f, view)
        weighted = {f[: -len(COEF_SUFFIX)]: read.get(f[: -len(COEF_SUFFIX)], "") for f in fields}
        if not all(weighted.values()):
            return None
        return ScoreView(odfv["name"], weighted, [f["name"] for f in odfv.get("features", [])])


def catalog(record: Deployment | None) -> Catalog:
    return Catalog((record.registry if record else None) or {})


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
