"""Online queries: ``online`` and ``score`` talk HTTP to the feature server
(through the workspace's tunnel process when one runs) and never import Feast
or pandas."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from featctl.errors import FeatureServerError, UsageError
from featctl.query.catalog import Catalog, catalog, select_features
from featctl.query.inputs import COEF_SUFFIX, parse_weights, weight_names
from featctl.query.table import Table
from featctl.session import Session
from featctl.workspace import Deployment

if TYPE_CHECKING:
    from featctl.query.server import FeatureServer

T = TypeVar("T")

SCORE_VIEW = "driver_activity_rates_linear_combination_fv"
SCORE_FEATURE = "linear_combination"


def _ask(session: Session, record: Deployment, call: Callable[[FeatureServer], T]) -> T:
    """Run ``call`` against the feature server; if the tunnel fails, once more directly
    (which also reports the real reason when the server is down)."""
    server = session.query_server(record)
    try:
        return call(server)
    except FeatureServerError:
        if server is session.server(record):
            raise
    return call(session.direct_server(record))


def _missing_note(
    key: str, ids: Sequence[int], columns: dict[str, list[Any]], feature_cols: Sequence[str]
) -> list[str]:
    notes = []
    for i, entity in enumerate(ids):
        if feature_cols and all(columns.get(c, [None] * len(ids))[i] is None for c in feature_cols):
            notes.append(f"{key} {entity}: not found in the online store")
    return notes


def online(
    session: Session, drivers: Sequence[int], *, features: Sequence[str] = (), feature_service: str | None = None
) -> Table:
    record = session.deployment()
    cat = catalog(record)
    refs, service = select_features(cat, features, feature_service)
    key = cat.join_key()
    names_only = [r.partition(":")[2] for r in refs]
    # Two views with a feature of the same name: name columns view__feature.
    full = len(set(names_only)) != len(names_only)
    columns = _ask(
        session,
        record,
        lambda srv: srv.online_features(
            {key: list(drivers)}, features=[] if service else refs, feature_service=service, full_feature_names=full
        ),
    )
    wanted = [r.replace(":", "__") if full else r.partition(":")[2] for r in refs]
    names = [key] + [c for c in wanted if c in columns] + [c for c in columns if c != key and c not in wanted]
    rows = [[drivers[i] if c == key else columns[c][i] for c in names] for i in range(len(drivers))]
    table = Table(names, rows, title="online features")
    table.notes = _missing_note(key, drivers, columns, [c for c in names if c != key])
    return table


def score_spec(cat: Catalog) -> tuple[list[str], str]:
    """(weighted feature names, their source view) for the score's on-demand view."""
    odfv = cat.odfv(SCORE_VIEW)
    if cat.desc and odfv is None:
        raise UsageError(f"the deployed repository has no on-demand view {SCORE_VIEW!r}; `score` needs it")
    fields: list[str] = []
    if odfv:
        for req in (odfv.get("request_sources") or {}).values():
            fields += [f["name"] if isinstance(f, dict) else str(f) for f in req]
    names = weight_names(fields) or ["conv_rate", "acc_rate"]
    sources = (odfv or {}).get("source_feature_views") or ["driver_quality_metrics"]
    return names, str(sources[0])


def score(session: Session, drivers: Sequence[int], weight_specs: Sequence[str]) -> Table:
    """The weighted score from the feature server, computed by the on-demand view."""
    record = session.deployment()
    cat = catalog(record)
    names, source = score_spec(cat)
    weights = parse_weights(weight_specs, names)
    key = cat.join_key()
    entities: dict[str, list[Any]] = {key: list(drivers)}
    for name, w in weights.items():
        entities[f"{name}{COEF_SUFFIX}"] = [w] * len(drivers)
    refs = [f"{source}:{n}" for n in names] + [f"{SCORE_VIEW}:{SCORE_FEATURE}"]
    columns = _ask(session, record, lambda srv: srv.online_features(entities, features=refs))
    out_cols = [key] + names + [f"{n}{COEF_SUFFIX}" for n in names] + [SCORE_FEATURE]
    rows = []
    overflowed = []
    for i, d in enumerate(drivers):
        row: list[Any] = [d]
        row += [columns.get(n, [None] * len(drivers))[i] for n in names]
        row += [weights[n] for n in names]
        value = columns.get(SCORE_FEATURE, [None] * len(drivers))[i]
        if not_finite(value):
            overflowed.append(d)
            value = None
        row.append(value)
        rows.append(row)
    table = Table(out_cols, rows, title="weighted score")
    table.notes = _missing_note(key, drivers, columns, names)
    table.notes += [
        f"{key} {d}: the score overflowed a 64-bit float (weights too large); shown as null" for d in overflowed
    ]
    return table


def not_finite(value: Any) -> bool:
    """A number that does not fit a float: the server sends infinities as the
    strings "Infinity"/"-Infinity"/"NaN" (protobuf's JSON) or as floats."""
    if isinstance(value, str):
        return value in ("Infinity", "-Infinity", "NaN")
    return isinstance(value, float) and not math.isfinite(value)

