"""Online queries: ``online`` and ``score`` talk HTTP to the feature server
(through the workspace's tunnel process when one runs) and never import Feast
or pandas (pandas only to read an ``--entities`` file).

Entity rows come from ``--entity``/``--driver`` (query/rows.py) or a file;
request data from ``--request`` (one value for every row) or the file's
columns. Both are checked against the deployed registry before the query: a
missing join key or request field is one line naming what needs it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from featctl.errors import FeatctlError, FeatureServerError, HostKeyMismatch, SSHError, UsageError
from featctl.query.catalog import SUM_OUTPUT, Catalog, ScoreView, catalog, select_features
from featctl.query.inputs import parse_weights
from featctl.query.rows import entity_rows, key_text, request_values
from featctl.query.table import Table
from featctl.query.values import type_online
from featctl.session import Session
from featctl.workspace import Deployment

if TYPE_CHECKING:
    from featctl.query.server import FeatureServer

T = TypeVar("T")
#: Successive queries of one process start at successive hosts.
_TURN = itertools.count()


@dataclass
class Entities:
    """What a query sends: one list per join key and request field, and how many rows."""

    columns: dict[str, list[Any]] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    size: int = 0

    def row_text(self, i: int) -> str:
        return key_text({k: self.columns[k][i] for k in self.keys})


def _ask(session: Session, record: Deployment, call: Callable[[FeatureServer], T]) -> T:
    """Run ``call`` against a feature server; if the tunnel fails, once more directly
    (which also reports the real reason when the server is down).

    With several hosts, queries are spread over them (each command starts at
    another host) and a host that does not answer is skipped: the query fails
    only when no host answers, with the first host's reason.
    """
    count = record.host_count
    if count == 1:
        return _ask_host(session, record, 0, call)
    import os

    start = (os.getpid() + next(_TURN)) % count
    first: FeatctlError | None = None
    for step in range(count):
        index = (start + step) % count
        try:
            return _ask_host(session, record, index, call)
        except (FeatureServerError, SSHError) as exc:
            if isinstance(exc, HostKeyMismatch) or getattr(exc, "sent", False):
                raise
            first = first or exc
            session.close_host(index)
    assert first is not None
    first.message = f"the query failed on every host ({count} tried); host {start}: {first.message}"
    raise first


def _ask_host(session: Session, record: Deployment, index: int, call: Callable[[FeatureServer], T]) -> T:
    server = session.query_server(record, index)
    try:
        return call(server)
    except FeatureServerError as exc:
        if exc.sent or server is session.server(record, index):
            raise
    return call(session.direct_server(record, index))


def gather(
    cat: Catalog,
    refs: Sequence[str],
    *,
    entity_specs: Sequence[str] = (),
    driver_ids: Sequence[int] = (),
    entities_file: Path | None = None,
    request_specs: Sequence[str] = (),
    extra_requests: dict[str, Any] | None = None,
) -> Entities:
    """Entity rows and request data for ``refs``, typed and complete, or one line
    saying what is missing (before any connection)."""
    key_types = cat.join_key_types()
    field_types = {name: dtype for name, (dtype, _) in cat.request_fields().items()}
    requests = request_values(request_specs, field_types)
    requests.update(extra_requests or {})
    ents = Entities()
    if entities_file is not None:
        if entity_specs or driver_ids:
            raise UsageError("--entities already holds the entity rows: leave out --entity and --driver")
        from featctl.query.files import read_entities

        frame = read_entities(entities_file, required=(), key_types=key_types, timestamps=False)
        for col in frame.columns:
            values = frame[col].tolist()
            ents.columns[str(col)] = [None if isinstance(v, float) and v != v else v for v in values]
        ents.keys = [str(c) for c in frame.columns if str(c) in key_types] or [str(frame.columns[0])]
        ents.size = len(frame)
    else:
        rows = entity_rows(entity_specs, driver_ids, key_types)
        if not rows:
            raise UsageError("give the entities: --entity KEY=VALUE (repeatable), --driver ID or --entities FILE")
        ents.keys = list(rows[0])
        ents.columns = {k: [r[k] for r in rows] for k in ents.keys}
        ents.size = len(rows)
    for name, value in requests.items():
        ents.columns.setdefault(name, [value] * ents.size)
    for key, view in cat.keys_for(refs).items():
        if key not in ents.columns:
            raise UsageError(f"{view} needs the join key {key}: pass --entity {key}=VALUE (or a {key} column)")
    for name, (_, view) in cat.request_fields(refs).items():
        if name not in ents.columns:
            raise UsageError(
                f"on-demand view {view} needs the request field {name}: pass --request {name}=VALUE "
                f"(or a {name} column in --entities)"
            )
    return ents


def missing_notes(
    ents: Entities, columns: dict[str, list[Any]], by_view: dict[str, list[str]], computed: Sequence[str] = ()
) -> list[str]:
    """Rows the online store does not know: in no view at all, or in some views
    and not in others (each named). ``by_view``: view -> its columns in the
    answer; views in ``computed`` (on-demand) never count as missing one."""

    def empty(view: str, i: int) -> bool:
        return all(columns.get(c, [None] * ents.size)[i] is None for c in by_view[view])

    notes = []
    stored = [v for v in by_view if v not in computed and by_view[v]]
    for i in range(ents.size):
        if by_view and all(empty(v, i) for v in by_view if by_view[v]):
            notes.append(f"{ents.row_text(i)}: not found in the online store")
            continue
        missed = [v for v in stored if empty(v, i)]
        if missed:
            found = [v for v in by_view if v not in missed and by_view[v] and not empty(v, i)]
            notes.append(
                f"{ents.row_text(i)}: not found in {', '.join(missed)}"
                + (f" (found in {', '.join(found)})" if found else "")
                + "; its values from there are null"
            )
    return notes


def request_groups(cat: Any, refs: Sequence[str]) -> list[list[str]] | None:
    """Refs in requests Feast answers right, or None when one request does.

    Feast 0.67's feature server computes an on-demand view from input columns
    found by feature name: with another view's feature of the same name in the
    request (``driver_hourly_stats:conv_rate`` beside a score whose input is
    ``driver_quality_metrics:conv_rate``) the view answers null with HTTP 200,
    and with ``full_feature_names`` it is left out. So an on-demand view shares
    a request with no other view's feature of its inputs' names, and no request
    holds two features of the same name; the columns are put together here.
    """
    inputs: set[tuple[str, str]] = set()
    for ref in refs:
        odfv = cat.odfv(ref.partition(":")[0])
        if odfv is not None:
            for view, feats in cat._sources(odfv):
                inputs.update((view, f) for f in (feats or cat.views().get(view) or []))
    input_names = {name for _, name in inputs}

    def foreign(ref: str) -> bool:  # a plain feature named like an on-demand view's input, of another view
        view, _, name = ref.partition(":")
        return cat.odfv(view) is None and name in input_names and (view, name) not in inputs

    names = [r.partition(":")[2] for r in refs]
    if len(set(names)) == len(names) and not any(foreign(r) for r in refs):
        return None
    groups: list[list[str]] = []
    for ref in refs:
        is_odfv = cat.odfv(ref.partition(":")[0]) is not None
        for group in groups:
            if ref.partition(":")[2] in {g.partition(":")[2] for g in group}:
                continue
            if is_odfv and any(foreign(g) for g in group):
                continue
            if foreign(ref) and any(cat.odfv(g.partition(":")[0]) is not None for g in group):
                continue
            group.append(ref)
            break
        else:
            groups.append([ref])
    return groups


def _columns_by_view(refs: Sequence[str], wanted: Sequence[str], present: dict[str, list[Any]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for ref, col in zip(refs, wanted):
        out.setdefault(ref.partition(":")[0], []).extend([col] if col in present else [])
    return out


def online(
    session: Session,
    *,
    entity_specs: Sequence[str] = (),
    driver_ids: Sequence[int] = (),
    entities_file: Path | None = None,
    request_specs: Sequence[str] = (),
    features: Sequence[str] = (),
    feature_service: str | None = None,
    full_feature_names: bool = False,
) -> Table:
    """Online features for entity rows, with request data for on-demand views,
    exactly as Feast's ``get_online_features`` answers them; columns named
    ``view__feature`` with ``full_feature_names`` or when two views share a
    feature name."""
    record = session.deployment()
    cat = catalog(record)
    refs, service = select_features(cat, features, feature_service)
    ents = gather(
        cat,
        refs,
        entity_specs=entity_specs,
        driver_ids=driver_ids,
        entities_file=entities_file,
        request_specs=request_specs,
    )
    names_only = [r.partition(":")[2] for r in refs]
    # Two views with a feature of the same name: name columns view__feature.
    full = full_feature_names or len(set(names_only)) != len(names_only)
    wanted = [r.replace(":", "__") if full else r.partition(":")[2] for r in refs]
    groups = None if service else request_groups(cat, refs)
    if groups is None:
        columns = _ask(
            session,
            record,
            lambda srv: srv.online_features(
                ents.columns, features=[] if service else refs, feature_service=service, full_feature_names=full
            ),
        )
    else:
        columns = {}
        for group in groups:

            def call(srv: FeatureServer, g: list[str] = group) -> dict[str, list[Any]]:
                return srv.online_features(ents.columns, features=g)

            got = _ask(session, record, call)
            for ref in group:
                name = ref.partition(":")[2]
                columns[wanted[refs.index(ref)]] = got.get(name, [None] * ents.size)
            columns.update({k: v for k, v in got.items() if k in ents.columns})
    types = cat.feature_types()
    type_online(columns, {col: types.get(ref, "") for col, ref in zip(wanted, refs)})
    keys = [k for k in ents.keys if k in ents.columns]
    names = column_order(keys, wanted, columns)
    rows = [[ents.columns[c][i] if c in keys else columns[c][i] for c in names] for i in range(ents.size)]
    table = Table(names, rows, title="online features")
    odfvs = [v for v in {r.partition(":")[0] for r in refs} if cat.odfv(v) is not None]
    table.notes = missing_notes(ents, columns, _columns_by_view(refs, wanted, columns), odfvs)
    return table


def column_order(keys: Sequence[str], wanted: Sequence[str], columns: dict[str, Any]) -> list[str]:
    """The join keys, the features in the order asked for, then whatever else
    the server answered; a view whose schema lists its join key (a stream view
    often does) answers it as a feature too: one column of it, not two."""
    names = list(keys) + [c for c in wanted if c in columns and c not in keys]
    return names + [c for c in columns if c not in names]


def not_finite(value: Any) -> bool:
    """A number that does not fit a float: the server sends infinities as the
    strings "Infinity"/"-Infinity"/"NaN" (protobuf's JSON) or as floats."""
    if isinstance(value, str):
        return value in ("Infinity", "-Infinity", "NaN")
    return isinstance(value, float) and not math.isfinite(value)


def score_refs(spec: ScoreView) -> list[str]:
    """What the score reads: the weighted features and the view's outputs (featctl's sum: the features only)."""
    outputs = [] if spec.summed else [f"{spec.name}:{o}" for o in spec.outputs]
    return [f"{view}:{feat}" for feat, view in spec.weighted.items()] + outputs


def weighted_sum(values: Sequence[Any], weights: Sequence[float]) -> float | None:
    """featctl's own score, with the demo view's rule: None when a value is
    missing (None or NaN) or not a number, else sum(weight * value)."""
    total = 0.0
    for value, weight in zip(values, weights, strict=True):
        if value is None or isinstance(value, str) or value != value:
            return None
        total += float(weight) * float(value)
    return total


def score_spec(cat: Catalog, weight_specs: Sequence[str], view: str | None, configured: str | None) -> tuple[ScoreView, dict[str, float]]:
    """The scoring view (or featctl's sum, when the repository has none) and
    each weighted feature's weight (0 for a view's feature --weights leaves out)."""
    given = parse_weights(weight_specs, None)
    spec = cat.score_view(view, configured=configured, weighing=list(given))
    if spec.summed:
        return spec, {name.rpartition(":")[2]: w for name, w in given.items()}
    return spec, parse_weights(weight_specs, list(spec.weighted))


def score(
    session: Session,
    weight_specs: Sequence[str],
    *,
    entity_specs: Sequence[str] = (),
    driver_ids: Sequence[int] = (),
    view: str | None = None,
) -> Table:
    """The weighted score from the feature server, computed by the on-demand view
    that weighs features (``Catalog.score_view``) with the weights as request
    data, or by featctl from the features' online values when no view does."""
    record = session.deployment()
    cat = catalog(record)
    spec, weights = score_spec(cat, weight_specs, view, session.settings.score_view)
    coefs = {} if spec.summed else {spec.coef(f): w for f, w in weights.items()}
    refs = score_refs(spec)
    ents = gather(cat, refs, entity_specs=entity_specs, driver_ids=driver_ids, extra_requests=coefs)
    columns = _ask(session, record, lambda srv: srv.online_features(ents.columns, features=refs))
    types = cat.feature_types()
    type_online(columns, {ref.partition(":")[2]: types.get(ref, "") for ref in refs})
    feats = list(spec.weighted)
    if spec.summed:
        values = [columns.get(f, [None] * ents.size) for f in feats]
        columns[SUM_OUTPUT] = [weighted_sum([v[i] for v in values], [weights[f] for f in feats]) for i in range(ents.size)]
    out_cols = ents.keys + feats + [spec.coef(f) for f in feats] + spec.outputs
    rows = []
    overflowed: list[str] = []
    for i in range(ents.size):
        row: list[Any] = [ents.columns[k][i] for k in ents.keys]
        row += [columns.get(f, [None] * ents.size)[i] for f in feats]
        row += [weights[f] for f in feats]
        for out in spec.outputs:
            value = columns.get(out, [None] * ents.size)[i]
            if not_finite(value):
                overflowed.append(ents.row_text(i))
                value = None
            row.append(value)
        rows.append(row)
    table = Table(out_cols, rows, title=f"weighted score: {spec.describe()}")
    by_view: dict[str, list[str]] = {}
    for feat, source in spec.weighted.items():
        by_view.setdefault(source, []).append(feat)
    table.notes = missing_notes(ents, columns, by_view)
    if spec.summed:
        table.notes.append(f"{SUM_OUTPUT} = sum(weight * value), computed by featctl: {spec.describe()}")
    table.notes += [f"{t}: the score overflowed a 64-bit float (weights too large); shown as null" for t in overflowed]
    return table
