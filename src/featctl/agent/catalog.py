"""What historical retrieval and materialization need from one project's registry."""

from __future__ import annotations

from typing import Any

from .output import InputError
from .registry import DUMMY_JOIN_KEY

#: A source of an on-demand view: (feature view, its features used, join key map).
OdfvSource = tuple[str, list[str], dict[str, str]]


def split_refs(values: list[str] | None) -> list[str]:
    refs: list[str] = []
    for value in values or []:
        refs.extend(r.strip() for r in value.split(",") if r.strip())
    return list(dict.fromkeys(refs))


class Catalog:
    """Views, on-demand views and services of one project in a registry proto."""

    def __init__(self, proto: Any, project: str) -> None:
        def mine(objs: Any) -> list[Any]:
            return [o for o in objs if o.spec.project == project]

        entity_keys = {e.spec.name: e.spec.join_key for e in mine(proto.entities)}
        #: name -> (features, join keys)
        self.fvs: dict[str, tuple[list[str], list[str]]] = {}
        labels = mine(proto.label_views) if "label_views" in proto.DESCRIPTOR.fields_by_name else []
        for fv in mine(proto.feature_views) + mine(proto.stream_feature_views) + labels:
            keys = [c.name for c in fv.spec.entity_columns]
            if not keys:
                keys = [entity_keys.get(e, e) for e in fv.spec.entities]
            keys = [k for k in keys if k != DUMMY_JOIN_KEY]
            self.fvs[fv.spec.name] = ([f.name for f in fv.spec.features], keys)
        #: name -> (features, sources, {request source: [field]})
        self.odfvs: dict[str, tuple[list[str], list[OdfvSource], dict[str, list[str]]]] = {}
        for od in mine(proto.on_demand_feature_views):
            sources: list[OdfvSource] = []
            requests: dict[str, list[str]] = {}
            for key in sorted(od.spec.sources):
                src = od.spec.sources[key]
                which = src.WhichOneof("source")
                if which == "feature_view_projection":
                    pr = src.feature_view_projection
                    sources.append((pr.feature_view_name, [c.name for c in pr.feature_columns], dict(pr.join_key_map)))
                elif which == "feature_view":
                    spec = src.feature_view.spec
                    sources.append((spec.name, [f.name for f in spec.features], {}))
                elif which == "request_data_source":
                    rds = src.request_data_source
                    requests[rds.name or key] = [f.name for f in rds.request_data_options.schema]
            self.odfvs[od.spec.name] = ([f.name for f in od.spec.features], sources, requests)
        #: name -> ["view:feature", ...]
        self.services: dict[str, list[str]] = {}
        for fs in mine(proto.feature_services):
            refs: list[str] = []
            for pr in fs.spec.features:
                view = pr.feature_view_name_alias or pr.feature_view_name
                refs.extend(f"{view}:{c.name}" for c in pr.feature_columns)
            self.services[fs.spec.name] = refs

    def resolve(
        self, refs: list[str], service_name: str | None
    ) -> tuple[dict[str, list[str]], dict[str, str]]:
        """Validate a request.

        Returns (fv_features, required): fv_features is an ordered dict
        {feature view: [feature, ...]} of the base features to join (including the
        inputs of requested on-demand views) and required {column: why} lists the
        entity-file columns the request needs.
        """
        if service_name:
            if service_name not in self.services:
                known = ", ".join(sorted(self.services)) or "none"
                raise InputError(f"unknown feature service {service_name!r} (known: {known})")
            refs = self.services[service_name]
        unknown: list[str] = []
        wanted: list[tuple[str, str]] = []
        for ref in refs:
            view, sep, feat = ref.partition(":")
            view = view.split("@", 1)[0]  # view@vN:feature
            if not sep or not view or not feat:
                unknown.append(f"{ref} (expected view:feature)")
                continue
            if view in self.fvs:
                feats = self.fvs[view][0]
            elif view in self.odfvs:
                feats = self.odfvs[view][0]
            else:
                unknown.append(f"{ref} (no feature view {view!r})")
                continue
            if feat not in feats:
                unknown.append(f"{ref} (view {view!r} has no feature {feat!r})")
            else:
                wanted.append((view, feat))
        if unknown:
            raise InputError("unknown feature ref(s): " + "; ".join(unknown))
        if not wanted:
            raise InputError("no features requested")

        fv_features: dict[str, list[str]] = {}
        required: dict[str, str] = {}
        odfv_names: list[str] = []

        def need(view: str, feats: list[str], why: str, jkm: dict[str, str] | None = None) -> None:
            if view not in self.fvs:
                raise InputError(f"{why}: source {view!r} is not a known feature view")
            lst = fv_features.setdefault(view, [])
            lst.extend(f for f in feats if f not in lst)
            for key in self.fvs[view][1]:
                key = (jkm or {}).get(key, key)
                required.setdefault(key, f"join key of {view}" + (f", {why}" if why else ""))

        for view, feat in wanted:
            if view in self.fvs:
                need(view, [feat], "")
            elif view not in odfv_names:
                odfv_names.append(view)
        for name in odfv_names:
            _, sources, requests = self.odfvs[name]
            for view, feats, jkm in sources:
                need(view, feats, f"input of {name}", jkm)
            for rname, fields in requests.items():
                for field in fields:
                    required.setdefault(field, f"request data {rname} for {name}")
        return fv_features, required
