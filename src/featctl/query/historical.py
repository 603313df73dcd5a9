"""Offline queries: ``historical`` and the point-in-time ``score``. Feast runs
on the host (the agent's ``historical``), where the offline store's data
lives; here only the entity rows are checked and the result read.

Entity rows come from a file (join keys, ``event_timestamp``, request columns)
or from ``--entity``/``--driver`` at one ``--at`` time.
"""

from __future__ import annotations

import posixpath
import tempfile
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from featctl.errors import UsageError
from featctl.query.catalog import COEF_SUFFIX, SUM_OUTPUT, Catalog, catalog, select_features
from featctl.query.files import frame_table, numeric_column, read_entities, write_frame
from featctl.query.inputs import parse_weights
from featctl.query.online import gather, score_refs
from featctl.query.table import Table
from featctl.query.values import typed_frame
from featctl.remote import agent
from featctl.remote.ssh import q
from featctl.session import Session
from featctl.workspace import Deployment


def _frame(
    cat: Catalog,
    refs: Sequence[str],
    *,
    entities_file: Path | None,
    entity_specs: Sequence[str],
    driver_ids: Sequence[int],
    at: datetime | None,
    requests: dict[str, Any] | None = None,
) -> Any:
    """The entity frame for ``refs``: from the file, or the rows at ``at``."""
    import pandas as pd

    if entities_file is not None:
        if entity_specs or driver_ids or at is not None:
            raise UsageError("--entities already holds the rows and their times: leave out --entity, --driver and --at")
        frame = read_entities(entities_file, required=["event_timestamp"], key_types=cat.join_key_types())
        return _frame_checked(cat, refs, frame, entities_file)
    if at is None:
        raise UsageError("give --entities FILE, or --entity/--driver with --at TIME")
    ents = gather(cat, refs, entity_specs=entity_specs, driver_ids=driver_ids, extra_requests=requests)
    frame = pd.DataFrame(ents.columns)
    frame["event_timestamp"] = pd.Timestamp(at)
    return frame


def score_at(
    session: Session,
    *,
    entity_specs: Sequence[str] = (),
    driver_ids: Sequence[int] = (),
    weight_specs: Sequence[str] = (),
    at: datetime | None = None,
    entities_file: Path | None = None,
    out: Path | None = None,
    view: str | None = None,
) -> Table:
    """The score point-in-time from the offline store (runs Feast on the host).

    With a file, each row may carry its own weights (``<feature>_coef``
    columns); ``--weights`` fills the columns a file lacks, 0 the rest.
    """
    record = session.deployment()
    cat = catalog(record)
    frame = None
    if entities_file is not None:
        frame = read_entities(entities_file, required=["event_timestamp"], key_types=cat.join_key_types())
    given = parse_weights(weight_specs, None) if weight_specs else {}
    # A file's weight columns: <feature>_coef, or <view>__<feature>_coef for featctl's own sum.
    columns = [str(c) for c in (frame.columns if frame is not None else [])]
    in_file = {c: name for c in columns if (name := _weight_column(c)) is not None}
    named = [*given, *(n for n in in_file.values() if n not in given)]
    spec = cat.score_view(view, configured=session.settings.score_view, weighing=named)
    if spec.summed and frame is not None:
        frame = frame.rename(columns={c: spec.coef(n.rpartition(":")[2]) for c, n in in_file.items()})
    feats = list(spec.weighted)
    coef_cols = [spec.coef(f) for f in feats]
    refs = score_refs(spec)
    given = {name.rpartition(":")[2]: w for name, w in given.items()}
    if spec.summed:
        weights = {f: given.get(f, 0.0) for f in feats}
    else:
        weights = parse_weights(weight_specs, feats) if weight_specs or entities_file is None else {}
    if frame is not None and entities_file is not None:
        both = [f for f in given if spec.coef(f) in frame.columns]
        if both:
            raise UsageError(
                f"--weights {','.join(both)} and the {', '.join(spec.coef(f) for f in both)} column(s) of "
                f"{entities_file} both weigh {', '.join(both)}: give each weight once (--weights only fills "
                "weight columns the file lacks)"
            )
        for f, c in zip(feats, coef_cols):
            if c not in frame.columns:
                frame[c] = float(weights.get(f, 0.0))
            frame[c] = numeric_column(frame, c, entities_file)
        frame = _frame_checked(cat, refs, frame, entities_file)
    else:
        requests = {} if spec.summed else {c: float(weights[f]) for f, c in zip(feats, coef_cols)}
        frame = _frame(
            cat, refs, entities_file=None, entity_specs=entity_specs, driver_ids=driver_ids, at=at, requests=requests
        )
        for f, c in zip(feats, coef_cols):
            if spec.summed:
                frame[c] = float(weights[f])
    result = typed_frame(_historical_frame(session, record, frame, refs, None), column_types(cat, refs))
    if spec.summed:
        result[SUM_OUTPUT] = summed_column(result, feats, coef_cols)
    keys = [k for k in cat.keys_for(refs) if k in result.columns]
    cols = keys + ["event_timestamp"] + feats + coef_cols + spec.outputs
    result = result[[c for c in cols if c in result.columns]]
    notes = []
    for o in spec.outputs:
        if o in result.columns and result[o].dtype.kind == "f":
            inf = result[o].isin([float("inf"), float("-inf")])
            if bool(inf.any()):
                result[o] = result[o].astype(object)
                result.loc[inf, o] = None
                notes.append(f"{int(inf.sum())} score(s) overflowed a 64-bit float (weights too large); shown as null")
    if out is not None:
        return _written(result, out, notes)
    if spec.summed:
        notes.append(f"{SUM_OUTPUT} = sum(weight * value), computed by featctl: {spec.describe()}")
    table = frame_table(result, title=f"weighted score (point in time): {spec.describe()}")
    table.notes = notes
    return table


def _weight_column(column: str) -> str | None:
    """The feature a file's weight column weighs (``view:feature`` for ``view__feature_coef``)."""
    if not column.endswith(COEF_SUFFIX) or column == COEF_SUFFIX:
        return None
    base = column[: -len(COEF_SUFFIX)]
    view, sep, feat = base.partition("__")
    return f"{view}:{feat}" if sep and view and feat else base


def summed_column(result: Any, feats: Sequence[str], coef_cols: Sequence[str]) -> Any:
    """featctl's score per row: sum(weight * value), NaN (shown as null) when
    any value is missing (the demo view's rule), as 64-bit floats."""
    import pandas as pd

    total = pd.Series(0.0, index=result.index, dtype="float64")
    missing = pd.Series(False, index=result.index)
    for f, c in zip(feats, coef_cols, strict=True):
        values = pd.to_numeric(result[f], errors="coerce").astype("float64")
        missing |= values.isna()
        total += result[c].astype("float64") * values
    return total.where(~missing)


def _written(result: Any, out: Path, notes: list[str]) -> Table:
    """The rows went to ``out``: a table of no rows that says so (building 100,000
    printable rows costs seconds that nobody reads)."""
    write_frame(result, out)
    return Table([str(c) for c in result.columns], [], notes=[*notes, f"wrote {len(result)} rows to {out}"])


def column_types(cat: Catalog, refs: Sequence[str], *, full: bool = False) -> dict[str, str]:
    """Result column -> the declared Feast type of the feature it holds."""
    types = cat.feature_types()
    return {(ref.replace(":", "__") if full else ref.partition(":")[2]): types.get(ref, "") for ref in refs}


def _frame_checked(cat: Catalog, refs: Sequence[str], frame: Any, path: Path) -> Any:
    for key, view in cat.keys_for(refs).items():
        if key not in frame.columns:
            raise UsageError(
                f"entity file {path} lacks column {key} (the join key of {view}); "
                f"it has {', '.join(map(str, frame.columns))}"
            )
    return frame


def historical(
    session: Session,
    entities_file: Path | None = None,
    *,
    entity_specs: Sequence[str] = (),
    driver_ids: Sequence[int] = (),
    at: datetime | None = None,
    request_specs: Sequence[str] = (),
    features: Sequence[str] = (),
    feature_service: str | None = None,
    out: Path | None = None,
    full_feature_names: bool = False,
) -> Table:
    """Point-in-time correct features: one row per entity row, in order;
    ``full_feature_names``: columns named ``view__feature`` (Feast's option)."""
    if not features and not feature_service:
        raise UsageError("give --features VIEW:FEATURE or --feature-service NAME")
    known = session.workspace.load()  # the cached registry summary: no connection yet
    cat = catalog(known)
    refs, service = select_features(cat, features, feature_service)
    if not full_feature_names:
        _refuse_namesakes(refs)
    if entities_file is not None:
        if request_specs:
            raise UsageError("--entities holds the request data as columns: leave out --request")
        frame = read_entities(entities_file, required=["event_timestamp"], key_types=cat.join_key_types())
        frame = _frame_checked(cat, refs, frame, entities_file)
    else:
        from featctl.query.rows import request_values

        fields = {n: t for n, (t, _) in cat.request_fields().items()}
        frame = _frame(
            cat,
            refs,
            entities_file=None,
            entity_specs=entity_specs,
            driver_ids=driver_ids,
            at=at,
            requests=request_values(request_specs, fields),
        )
    record = session.deployment()
    result = _historical_frame(session, record, frame, [] if service else refs, service, full=full_feature_names)
    result = typed_frame(result, column_types(cat, refs, full=full_feature_names))
    if out is not None:
        return _written(result, out, [])
    return frame_table(result, title="historical features")


def _refuse_namesakes(refs: Sequence[str]) -> None:
    """Two views' features of one name would be one column: Feast refuses them
    (FeatureNameCollisionError); say so before anything runs, with the way out."""
    seen: dict[str, str] = {}
    for ref in refs:
        view, _, name = ref.partition(":")
        if name in seen and seen[name] != view:
            raise UsageError(
                f"{seen[name]}:{name} and {ref} would both be column {name!r}: pass --full-feature-names "
                f"(columns {seen[name]}__{name} and {view}__{name})"
            )
        seen.setdefault(name, view)


def _historical_frame(
    session: Session, record: Deployment, frame: Any, refs: Sequence[str], service: str | None, *, full: bool = False
) -> Any:
    """The result rows: from the serving feature server when it can answer
    (query/served.py), else from the agent's ``historical`` command."""
    import os

    from featctl.query.served import served_frame, via

    how = via()
    # FEATCTL_HISTORICAL_ENGINE=feast: Feast's own retrieval per view (the agent's --engine).
    engine = "feast" if os.environ.get("FEATCTL_HISTORICAL_ENGINE") == "feast" else None
    result = None
    if how != "process" and engine is None and "spark" not in session.settings.stores:
        result = served_frame(session, record, frame, refs, service, required=how == "server", full_feature_names=full)
    if result is None:
        result = _process_frame(session, record, frame, refs, service, engine, full)
    if len(result) != len(frame):
        raise UsageError(f"historical retrieval returned {len(result)} rows for {len(frame)} entity rows")
    return result


def _process_frame(
    session: Session,
    record: Deployment,
    frame: Any,
    refs: Sequence[str],
    service: str | None,
    engine: str | None,
    full: bool = False,
) -> Any:
    """The agent's ``historical`` command in a process of its own on host 0:
    entity rows up and the result down as parquet over SFTP."""
    import pandas as pd

    conn = session.connection(record)
    layout = session.layout(record)
    token = uuid.uuid4().hex
    tmp_dir = posixpath.join(layout.base, "tmp")
    remote_in = posixpath.join(tmp_dir, f"{token}-entities.parquet")
    remote_out = posixpath.join(tmp_dir, f"{token}-result.parquet")
    with tempfile.TemporaryDirectory(prefix="featctl-") as tmp:
        local_in = Path(tmp) / "entities.parquet"
        local_out = Path(tmp) / "result.parquet"
        frame.to_parquet(local_in, index=False)
        conn.makedirs(tmp_dir)
        try:
            conn.put_files([(local_in, remote_in)])
            args = ["--entities", remote_in, "--out", remote_out]
            args += ["--feature-service", service] if service else ["--features", ",".join(refs)]
            args += ["--engine", engine] if engine else []
            args += ["--full-feature-names"] if full else []
            agent.run_agent(conn, layout, "historical", args, timeout=session.settings.command_timeout)
            conn.get_file(remote_out, local_out)
        finally:
            conn.run(f"rm -f {q(remote_in)} {q(remote_out)}", timeout=30, check=False)
        return pd.read_parquet(local_out)
