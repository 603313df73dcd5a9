"""Offline queries: ``historical`` and the point-in-time ``score``. Feast
runs on the host (the agent's ``historical``), where the offline store's data
lives; here only the entity file is checked and the result read."""

from __future__ import annotations

import os
import posixpath
import tempfile
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from featctl.errors import UsageError
from featctl.query.catalog import catalog, select_features
from featctl.query.inputs import COEF_SUFFIX, parse_weights
from featctl.query.keys import check_key_column
from featctl.query.online import SCORE_FEATURE, SCORE_VIEW, score_spec
from featctl.query.table import Table
from featctl.remote import agent
from featctl.remote.ssh import q
from featctl.session import Session
from featctl.workspace import Deployment


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
        frame = read_entities(entities_file, required=[key, "event_timestamp"], key_types=cat.join_key_types())
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
    notes = []
    if SCORE_FEATURE in result.columns:
        inf = result[SCORE_FEATURE].isin([float("inf"), float("-inf")])
        if bool(inf.any()):
            result.loc[inf, SCORE_FEATURE] = None
            notes.append(f"{int(inf.sum())} score(s) overflowed a 64-bit float (weights too large); shown as null")
    if out is not None:
        write_frame(result, out)
    table = frame_table(result, title="weighted score (point in time)")
    table.notes = notes
    return table


def read_entities(path: Path, *, required: Sequence[str], key_types: dict[str, str] | None = None) -> Any:
    """Read an entity file (.csv or .parquet) and check its columns: timestamps
    become UTC, and each join key column present must fit its declared type."""
    import pandas as pd

    key_types = key_types or {}
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise UsageError(f"entity file {path} must be .csv or .parquet")
    try:
        # Keys as text from CSV, so "007" stays "007" and 2**70 is caught, not rounded.
        frame = pd.read_csv(path, dtype={k: str for k in key_types}) if suffix == ".csv" else pd.read_parquet(path)
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
    for key, dtype in key_types.items():
        if key in frame.columns:
            frame[key] = check_key_column(frame, key, dtype, path=str(path), csv=suffix == ".csv")
    frame["event_timestamp"] = _utc_column(frame["event_timestamp"], path)
    return frame


def _utc_column(col: Any, path: Path) -> Any:
    """ISO 8601 strings or datetimes to UTC; a value without a zone is UTC."""
    import pandas as pd

    from featctl.query.inputs import EARLIEST, LATEST

    try:
        if pd.api.types.is_datetime64_any_dtype(col):
            out = col.dt.tz_localize("UTC") if col.dt.tz is None else col.dt.tz_convert("UTC")
        else:
            # utc=True treats naive values as UTC and converts the rest, mixed zones included.
            out = pd.to_datetime(col.astype(str), utc=True, format="ISO8601")
        # Feast on the host holds times as nanoseconds: 1677-09-22 to 2262-04-10.
        if len(out) and (out.min() < pd.Timestamp(EARLIEST) or out.max() >= pd.Timestamp(LATEST)):
            raise pd.errors.OutOfBoundsDatetime(f"{out.min()} .. {out.max()}")
        return out
    except pd.errors.OutOfBoundsDatetime as exc:
        raise UsageError(
            f"entity file {path}: an event_timestamp is outside 1677-09-22..2262-04-10 ({str(exc).splitlines()[0]})"
        ) from None
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
    known = session.workspace.load()  # the cached registry summary knows the key types
    key_types = catalog(known).join_key_types() if known else {}
    frame = read_entities(entities_file, required=["event_timestamp"], key_types=key_types)  # before any SSH
    record = session.deployment()
    cat = catalog(record)
    refs, service = select_features(cat, features, feature_service)
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
            agent.run_agent(conn, layout, "historical", args, timeout=session.settings.command_timeout)
            conn.get_file(remote_out, local_out)
        finally:
            conn.run(f"rm -f {q(remote_in)} {q(remote_out)}", timeout=30, check=False)
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

