"""Feature queries: online (feature server over SSH), score, historical.

``online`` and ``score`` without ``--at`` talk HTTP to the feature server and
never import Feast or pandas. Historical retrieval runs Feast on the host
(featctl's host agent), where the offline store's data lives.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from featctl.errors import FeatureServerError, UsageError
from featctl.query.table import Table
from featctl.query.weights import COEF_SUFFIX, parse_weights, weight_names
from featctl.remote import host as remote
from featctl.session import Session
from featctl.workspace import Deployment

if TYPE_CHECKING:
    from featctl.query.server import FeatureServer

T = TypeVar("T")

SCORE_VIEW = "driver_activity_rates_linear_combination_fv"
SCORE_FEATURE = "linear_combination"
DEFAULT_JOIN_KEY = "driver_id"


# --- what the deployed registry holds (cached in the deployment record) ---------


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


def _select(cat: Catalog, features: Sequence[str], feature_service: str | None) -> tuple[list[str], str | None]:
    if features and feature_service:
        raise UsageError("give either --features or --feature-service, not both")
    if feature_service:
        return cat.check_service(feature_service), feature_service
    refs = list(features) or cat.default_features()
    if not refs:
        raise UsageError("give --features VIEW:FEATURE or --feature-service NAME")
    cat.check_refs(refs)
    return refs, None


# --- online ---------------------------------------------------------------------


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
    refs, service = _select(cat, features, feature_service)
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


# --- score ----------------------------------------------------------------------


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
    for i, d in enumerate(drivers):
        row: list[Any] = [d]
        row += [columns.get(n, [None] * len(drivers))[i] for n in names]
        row += [weights[n] for n in names]
        row.append(columns.get(SCORE_FEATURE, [None] * len(drivers))[i])
        rows.append(row)
    table = Table(out_cols, rows, title="weighted score")
    table.notes = _missing_note(key, drivers, columns, names)
    return table


def score_at(
    session: Session,
    *,
    drivers: Sequence[int] = (),
    weight_specs: Sequence[str] = (),
    at: datetime | None = None,
    entities_file: Path | None = None,
    out: Path | None = None,
) -> Table:
    """The score point-in-time from the offline store (runs Feast on the host)."""
    import pandas as pd

    record = session.deployment()
    cat = catalog(record)
    names, source = score_spec(cat)
    key = cat.join_key()
    coef_cols = [f"{n}{COEF_SUFFIX}" for n in names]
    if entities_file is not None:
        if drivers or at is not None:
            raise UsageError("--entities already holds drivers and times: leave out --driver and --at")
        frame = read_entities(entities_file, required=[key, "event_timestamp"])
        if weight_specs:
            weights = parse_weights(weight_specs, names)
            for n, c in zip(names, coef_cols):
                if c not in frame.columns:
                    frame[c] = weights[n]
        for c in coef_cols:
            if c not in frame.columns:
                frame[c] = 0.0
            frame[c] = _numeric_column(frame, c, entities_file)
    else:
        weights = parse_weights(weight_specs, names)
        if at is None or not drivers:
            raise UsageError("--at needs --driver (or use --entities FILE)")
        frame = pd.DataFrame({key: list(drivers), "event_timestamp": [pd.Timestamp(at)] * len(drivers)})
        for n, c in zip(names, coef_cols):
            frame[c] = float(weights[n])
    refs = [f"{source}:{n}" for n in names] + [f"{SCORE_VIEW}:{SCORE_FEATURE}"]
    result = _historical_frame(session, record, frame, refs, None)
    cols = [key, "event_timestamp"] + names + coef_cols + [SCORE_FEATURE]
    result = result[[c for c in cols if c in result.columns]]
    if out is not None:
        write_frame(result, out)
    return frame_table(result, title="weighted score (point in time)")


# --- historical ---------------------------------------------------------------------


def read_entities(path: Path, *, required: Sequence[str]) -> Any:
    """Read an entity file (.csv or .parquet) and check its columns; timestamps become UTC."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise UsageError(f"entity file {path} must be .csv or .parquet")
    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except FileNotFoundError:
        raise UsageError(f"entity file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise UsageError(
            f"cannot read entity file {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from None
    except Exception as exc:  # pyarrow and the csv parser raise their own types
        raise UsageError(
            f"cannot read entity file {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise UsageError(
            f"entity file {path} lacks column(s) {', '.join(missing)}; it has {', '.join(map(str, frame.columns))}"
        )
    if frame.empty:
        raise UsageError(f"entity file {path} has no rows")
    frame["event_timestamp"] = _utc_column(frame["event_timestamp"], path)
    return frame


def _utc_column(col: Any, path: Path) -> Any:
    """ISO 8601 strings or datetimes to UTC; a value without a zone is UTC."""
    import pandas as pd

    try:
        if pd.api.types.is_datetime64_any_dtype(col):
            return col.dt.tz_localize("UTC") if col.dt.tz is None else col.dt.tz_convert("UTC")
        # utc=True treats naive values as UTC and converts the rest, mixed zones included.
        return pd.to_datetime(col.astype(str), utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise UsageError(f"entity file {path}: event_timestamp is not ISO 8601 ({str(exc).splitlines()[0]})") from None


def _numeric_column(frame: Any, column: str, path: Path) -> Any:
    import pandas as pd

    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() | ~values.apply(lambda v: pd.notna(v) and abs(v) != float("inf"))
    if bool(bad.any()):
        row = int(bad.to_numpy().nonzero()[0][0])
        raise UsageError(f"entity file {path}: {column} in row {row + 1} is not a finite number")
    return values.astype("float64")


def historical(
    session: Session,
    entities_file: Path,
    *,
    features: Sequence[str] = (),
    feature_service: str | None = None,
    out: Path | None = None,
) -> Table:
    if not features and not feature_service:
        raise UsageError("give --features VIEW:FEATURE or --feature-service NAME")
    if out is not None and out.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise UsageError(f"--out {out} must end in .csv or .parquet")
    frame = read_entities(entities_file, required=["event_timestamp"])  # bad input fails before any SSH
    record = session.deployment()
    cat = catalog(record)
    refs, service = _select(cat, features, feature_service)
    if cat.join_key() not in frame.columns:
        raise UsageError(
            f"entity file {entities_file} lacks column {cat.join_key()}; it has {', '.join(map(str, frame.columns))}"
        )
    result = _historical_frame(session, record, frame, [] if service else refs, service)
    if out is not None:
        write_frame(result, out)
    return frame_table(result, title="historical features")


def _historical_frame(
    session: Session, record: Deployment, frame: Any, refs: Sequence[str], service: str | None
) -> Any:
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
            remote.run_agent(conn, layout, "historical", args, timeout=session.settings.command_timeout)
            conn.get_file(remote_out, local_out)
        finally:
            conn.run(f"rm -f {remote_in} {remote_out}", timeout=30, check=False)
        result = pd.read_parquet(local_out)
    if len(result) != len(frame):
        raise UsageError(f"historical retrieval returned {len(result)} rows for {len(frame)} entity rows")
    return result


def write_frame(frame: Any, out: Path) -> None:
    """Write a result atomically as .csv or .parquet (by suffix)."""
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise UsageError(f"--out {out} must end in .csv or .parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False, date_format="%Y-%m-%dT%H:%M:%S.%f%z")
        else:
            frame.to_parquet(tmp, index=False)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def frame_table(frame: Any, title: str) -> Table:
    import math

    import pandas as pd

    rows: list[list[Any]] = []
    for rec in frame.itertuples(index=False, name=None):
        row: list[Any] = []
        for v in rec:
            if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
                row.append(None)
            elif isinstance(v, pd.Timestamp):
                row.append(v.to_pydatetime())
            elif hasattr(v, "item"):
                row.append(v.item())
            else:
                row.append(v)
        rows.append(row)
    return Table([str(c) for c in frame.columns], rows, title=title)
