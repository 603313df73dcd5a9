"""What queries know from the cached registry summary: keys, request fields,
and which on-demand view `score` uses."""

from __future__ import annotations

import pytest

from featctl.errors import UsageError
from featctl.query.catalog import Catalog


def odfv(name, sources, request, outputs=("score",)):
    return {
        "name": name,
        "features": [{"name": o, "dtype": "Float64"} for o in outputs],
        "sources": [{"view": v, "features": f} for v, f in sources.items()],
        "source_feature_views": list(sources),
        "request_sources": {"req": [{"name": r, "dtype": "Float64"} for r in request]},
    }


DESC = {
    "entities": [
        {"name": "customer", "join_keys": ["customer_id"], "join_key_types": {"customer_id": "String"}},
        {"name": "store", "join_keys": ["store_id"], "join_key_types": {"store_id": "Invalid"}},
    ],
    "feature_views": [
        {
            "name": "stats",
            "features": [{"name": "spend", "dtype": "Float64"}, {"name": "loyalty", "dtype": "Float64"}],
            "join_keys": [{"name": "customer_id", "dtype": "String"}],
        },
        {
            "name": "visits",
            "features": [{"name": "count", "dtype": "Int64"}],
            "join_keys": [{"name": "customer_id", "dtype": "String"}, {"name": "store_id", "dtype": "Int64"}],
        },
    ],
    "on_demand_feature_views": [
        odfv("weighted", {"stats": ["spend", "loyalty"]}, ["spend_coef", "loyalty_coef"]),
        odfv("plus", {"stats": ["spend"]}, ["bonus"], outputs=("spend_plus",)),
    ],
    "label_views": [{"name": "labels", "features": [{"name": "ok", "dtype": "Int64"}], "join_keys": []}],
    "feature_services": [{"name": "svc", "features": ["visits:count", "plus:spend_plus"]}],
}


def test_keys_and_their_types():
    cat = Catalog(DESC)
    # A key declared without a type takes the one the views inferred.
    assert cat.join_key_types() == {"customer_id": "String", "store_id": "Int64"}
    assert cat.keys_for(["visits:count"]) == {"customer_id": "visits", "store_id": "visits"}
    assert cat.keys_for(["weighted:score"]) == {"customer_id": "weighted"}


def test_request_fields_follow_the_views_asked_for():
    cat = Catalog(DESC)
    assert cat.request_fields(["stats:spend"]) == {}
    assert cat.request_fields(cat.services()["svc"]) == {"bonus": ("Float64", "plus")}


def test_every_kind_of_view_can_be_referenced():
    cat = Catalog(DESC)
    cat.check_refs(["labels:ok", "plus:spend_plus", "visits:count"])
    with pytest.raises(UsageError, match="unknown feature view 'nope'"):
        cat.check_refs(["nope:x"])


def test_score_finds_the_one_weighing_view():
    spec = Catalog(DESC).score_view()
    assert spec.name == "weighted" and spec.weighted == {"spend": "stats", "loyalty": "stats"}
    assert spec.outputs == ["score"]


def test_score_view_by_name_and_config():
    cat = Catalog(DESC)
    assert cat.score_view(configured="weighted").name == "weighted"
    with pytest.raises(UsageError, match="does not weigh features"):
        cat.score_view("plus")
    with pytest.raises(UsageError, match=r"featctl.toml .score. view 'stats' is not an on-demand view"):
        cat.score_view(configured="stats")


def test_score_with_none_or_several_candidates_lists_them():
    none = {**DESC, "on_demand_feature_views": [DESC["on_demand_feature_views"][1]]}
    with pytest.raises(UsageError, match=r"no on-demand view weighs features .*on-demand views: plus"):
        Catalog(none).score_view()
    two = {
        **DESC,
        "on_demand_feature_views": [*DESC["on_demand_feature_views"], odfv("w2", {"stats": ["spend"]}, ["spend_coef"])],
    }
    with pytest.raises(UsageError, match="several on-demand views take weights: weighted, w2"):
        Catalog(two).score_view()


def test_an_on_demand_view_never_shares_a_request_with_a_namesake_of_its_inputs():
    """Feast 0.67 answers the on-demand view null (HTTP 200) when another view's
    feature has the name of one of its inputs, and drops it with full names."""
    from featctl.query.online import request_groups

    desc = {
        **DESC,
        "feature_views": [
            *DESC["feature_views"],
            {"name": "hourly", "features": [{"name": "spend", "dtype": "Float64"}, {"name": "n", "dtype": "Int64"}],
             "join_keys": [{"name": "customer_id", "dtype": "String"}]},
        ],
    }
    cat = Catalog(desc)
    # Nothing clashes: one request, as before.
    assert request_groups(cat, ["stats:spend", "weighted:score", "visits:count"]) is None
    assert request_groups(cat, ["hourly:n", "weighted:score"]) is None
    # hourly:spend is named like weighted's input stats:spend: apart.
    groups = request_groups(cat, ["hourly:spend", "weighted:score", "hourly:n"])
    assert groups is not None and sorted(map(sorted, groups)) == [["hourly:n", "hourly:spend"], ["weighted:score"]]
    # Two features of one name (full names wanted) never share a request either.
    groups = request_groups(cat, ["stats:spend", "hourly:spend", "weighted:score"])
    assert groups is not None
    for g in groups:
        names = [r.partition(":")[2] for r in g]
        assert len(names) == len(set(names))
        assert not ("weighted:score" in g and "hourly:spend" in g)
    assert sorted(r for g in groups for r in g) == sorted(["stats:spend", "hourly:spend", "weighted:score"])


# --- featctl's own sum, for repositories without a weighing view ---------------------------------------------
SUMMABLE = {
    "feature_views": [
        {"name": "stats", "features": [{"name": "spend", "dtype": "Float64"}, {"name": "tier", "dtype": "String"}]},
        {"name": "visits", "features": [{"name": "count", "dtype": "Int64"}, {"name": "spend", "dtype": "Float32"}]},
        {"name": "flags", "features": [{"name": "vip", "dtype": "Bool"}]},
    ],
    "on_demand_feature_views": [],
}


def test_without_a_weighing_view_the_named_features_are_summed():
    spec = Catalog(SUMMABLE).score_view(weighing=["count", "stats:spend", "vip"])
    assert spec.summed and spec.outputs == ["score"]
    assert spec.weighted == {"count": "visits", "spend": "stats", "vip": "flags"}
    assert "featctl's weighted sum" in spec.describe()
    # a weighing view, when there is one, is still the one used
    assert Catalog(DESC).score_view(weighing=["spend"]).name == "weighted"


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["spend"], r"feature 'spend' is in several views \(stats, visits\): weigh one as VIEW:FEATURE"),
        (["nothing"], "no feature view has a feature 'nothing'"),
        (["tier"], "feature stats:tier is String, not a number"),
        (["stats:spend", "visits:spend"], "two weighted features are named 'spend'"),
        (["nope:spend"], "unknown feature view 'nope'"),
        (["stats:count"], "feature view 'stats' has no feature 'count'"),
    ],
)
def test_what_featctl_will_not_sum(names, message):
    with pytest.raises(UsageError, match=message):
        Catalog(SUMMABLE).score_view(weighing=names)
