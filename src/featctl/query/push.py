"""``featctl push``: rows into the views a push source feeds, through the
feature server's ``/push`` (Feast's ``FeatureStore.push``), online, offline
or both.

Rows come from a file (.csv or .parquet) or from ``--entity``/``--set`` for
one row. Every value is typed from the cached registry summary (the push
source's views: join keys, features, the batch source's timestamp fields;
the batch source's other columns, null unless given: ``pushtarget.py``) and
checked before any connection: one line naming the row and column.

The feature server builds a pandas frame from the JSON it gets, and Feast's
two writers want different things from it: the online writer turns a
UnixTimestamp feature into seconds with ``int(value)`` (an ISO time fails,
and a float is taken for a missing value), the file offline store casts the
frame to the data file's schema (ISO times parse, numbers would be read as
nanoseconds). Online, such a feature travels as seconds in text. So ``--to both`` is
two requests: offline first (if Feast refuses the rows nothing was written),
then online, each with the times in the form its writer takes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featctl.errors import FeatctlError, UsageError
from featctl.query.catalog import catalog
from featctl.query.inputs import NUMBER, parse_timestamp
from featctl.query.keys import parse_key
from featctl.query.online import _ask
from featctl.query.pushtarget import PushTarget, carried, push_target, refuse_offline_into_postgres
from featctl.query.rows import split_pairs
from featctl.query.values import element_type
from featctl.session import Session
from featctl.workspace import Deployment

if TYPE_CHECKING:
    from featctl.query.server import FeatureServer

DESTINATIONS = ("online", "offline", "both")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


@dataclass
class PushResult:
    push_source: str
    views: list[str]
    rows: int
    to: str


# --- values -------------------------------------------------------------------------------------


def value_of(raw: Any, dtype: str, *, name: str, where: str) -> Any:
    """One value of a declared Feast type, from text (the command line, a CSV
    cell) or from a parquet cell; None for an empty one."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)) or type(raw).__name__ in ("NAType", "NaTType"):
        return None
    inner = element_type(dtype)
    if inner is not None:
        return _list_of(raw, inner, name=name, where=where)
    if isinstance(raw, str):
        return None if raw == "" else _from_text(raw, dtype, name=name, where=where)
    if hasattr(raw, "item") and not hasattr(raw, "to_pydatetime"):
        raw = raw.item()  # numpy scalars
    if dtype in ("Int32", "Int64"):
        if isinstance(raw, float) and raw.is_integer():
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise UsageError(f"{where}: {name} {raw!r} is not an integer ({name} is {dtype})")
        return parse_key(str(raw), dtype, name=name, where=where)
    if dtype.startswith("Float"):
        if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
            raise UsageError(f"{where}: {name} {raw!r} is not a finite number ({name} is {dtype})")
        return float(raw)
    if dtype == "Bool":
        if not isinstance(raw, (bool, int)) or raw not in (0, 1):
            raise UsageError(f"{where}: {name} {raw!r} is not true or false")
        return bool(raw)
    if dtype == "UnixTimestamp":
        if not isinstance(raw, datetime):
            raise UsageError(f"{where}: {name} {raw!r} is not a time ({name} is {dtype})")
        if hasattr(raw, "to_pydatetime"):
            raw = raw.to_pydatetime()
        return raw.replace(tzinfo=timezone.utc) if raw.tzinfo is None else raw.astimezone(timezone.utc)
    if dtype == "Json":
        return json.dumps(raw)
    raise UsageError(f"{where}: {name} {raw!r} is not text ({name} is {dtype})")


def _from_text(raw: str, dtype: str, *, name: str, where: str) -> Any:
    if dtype in ("Int32", "Int64"):
        return parse_key(raw, dtype, name=name, where=where)
    if dtype.startswith("Float"):
        if not NUMBER.fullmatch(raw) or not math.isfinite(float(raw)):
            raise UsageError(f"{where}: {name}={raw!r} is not a number ({name} is {dtype})")
        return float(raw)
    if dtype == "Bool":
        if raw.lower() not in _TRUE | _FALSE:
            raise UsageError(f"{where}: {name}={raw!r} is not true or false")
        return raw.lower() in _TRUE
    if dtype == "UnixTimestamp":
        return parse_timestamp(raw, option=f"{where}: {name}")
    if dtype == "Json":
        try:
            json.loads(raw)
        except ValueError:
            raise UsageError(f"{where}: {name} is not JSON ({name} is Json)") from None
    return raw


def _list_of(raw: Any, inner: str, *, name: str, where: str) -> list[Any] | None:
    if isinstance(raw, str):
        if raw == "":
            return None
        try:
            raw = json.loads(raw)
        except ValueError:
            raise UsageError(f'{where}: {name} is not a JSON array (e.g. [0.1, 0.2] or ["a", "b"])') from None
    if hasattr(raw, "tolist"):
        raw = raw.tolist()
    if not isinstance(raw, (list, tuple)):
        raise UsageError(f"{where}: {name} is not a list (a JSON array such as [1, 2])")
    out = []
    for item in raw:
        if inner == "String" and not isinstance(item, str):
            raise UsageError(f"{where}: {name} holds {item!r}, not text: write strings in quotes")
        value = value_of(item, inner, name=name, where=where)
        if value is None:
            raise UsageError(f"{where}: {name} holds an empty item; Feast lists cannot")
        out.append(value)
    return out


# --- rows -----------------------------------------------------------------------------------------


def rows_from_options(
    target: PushTarget, entity_specs: Sequence[str], set_specs: Sequence[str], at: datetime | None, now: datetime
) -> dict[str, list[Any]]:
    """One row from ``--entity KEY=VALUE`` (a composite key as a=1,b=x),
    ``--set NAME=VALUE`` per feature and ``--at`` (default: now)."""
    if len(entity_specs) != 1:
        raise UsageError(
            "push one row with one --entity KEY=VALUE (a=1,b=x for a composite key), or use --entities FILE"
        )
    row: dict[str, Any] = {}
    where = f"--entity {entity_specs[0]!r}"
    for name, raw in split_pairs(entity_specs[0], option="--entity"):
        if name not in target.keys:
            raise UsageError(f"{where}: {name} is not a join key of {target.name}; its keys: {', '.join(target.keys)}")
        row[name] = parse_key(raw, target.keys[name], name=name, where=where)
    columns = target.columns
    for spec in set_specs:
        name, sep, raw = spec.partition("=")
        if not sep:
            raise UsageError(f"--set {spec!r} is not NAME=VALUE")
        if name not in columns or name in target.keys:
            raise UsageError(f"--set {name}: {target.name} has no such feature; {target.takes()}")
        if name in row:
            raise UsageError(f"--set {name} is given twice")
        row[name] = value_of(raw, columns[name], name=name, where="--set")
    if at is not None:
        if target.timestamp in row:
            raise UsageError(f"give the event time once: --at or --set {target.timestamp}=...")
        row[target.timestamp] = at
    row.setdefault(target.timestamp, now)
    return _complete(target, {k: [v] for k, v in row.items()}, 1, "--set", now)


def rows_from_file(target: PushTarget, path: Path, now: datetime) -> dict[str, list[Any]]:
    """Rows from a .csv (cells as text; lists as JSON arrays) or .parquet file."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet", ".pq"):
        raise UsageError(f"--entities {path} must be .csv or .parquet")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False) if suffix == ".csv" else pd.read_parquet(path)
    except FileNotFoundError:
        raise UsageError(f"--entities {path} does not exist") from None
    except Exception as exc:  # pandas, pyarrow and the csv parser raise their own types
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(f"cannot read --entities {path}: {first}") from None
    if frame.empty:
        raise UsageError(f"--entities {path} has no rows")
    columns = target.columns
    unknown = [str(c) for c in frame.columns if str(c) not in columns]
    if unknown:
        raise UsageError(
            f"{path} has column(s) {', '.join(unknown)} that push source {target.name} does not take; "
            f"it takes {', '.join(columns)}"
        )
    first_row = 2 if suffix == ".csv" else 1
    out: dict[str, list[Any]] = {}
    for col in frame.columns:
        name, dtype = str(col), columns[str(col)]
        values = []
        for i, raw in enumerate(frame[col].tolist()):
            where = f"{path}, {'line' if suffix == '.csv' else 'row'} {i + first_row}"
            values.append(value_of(raw, dtype, name=name, where=where))
        out[name] = values
    return _complete(target, out, len(frame), str(path), now)


def _complete(
    target: PushTarget, rows: dict[str, list[Any]], size: int, where: str, now: datetime
) -> dict[str, list[Any]]:
    """Every column the views need, keys and times never empty; the created
    time (when the source has one) defaults to now."""
    if target.created and target.created not in rows:
        rows[target.created] = [now] * size
    for col, dtype in target.source_only.items():  # the batch source's other columns: null unless given
        values = rows.setdefault(col, [None] * size)
        if not carried(dtype) and any(v is not None for v in values):
            raise UsageError(f"{where}: featctl push does not carry {dtype} values ({col}); leave it out (null)")
    missing = [c for c in target.columns if c not in rows]
    if missing:
        raise UsageError(
            f"{where}: push source {target.name} needs every column of {', '.join(target.views)}; missing "
            f"{', '.join(missing)} (an empty value is null: --set NAME= or an empty cell)"
        )
    for col in [*target.keys, target.timestamp]:
        empty = [i for i, v in enumerate(rows[col]) if v is None]
        if empty:
            raise UsageError(f"{where}: {col} is empty in row {empty[0] + 1}; every row needs its {col}")
    if all(v is None for f in target.features for v in rows[f]):
        raise UsageError(f"{where}: no row has a feature value; Feast would silently write nothing")
    return {c: rows[c] for c in target.columns}


def payload(target: PushTarget, rows: dict[str, list[Any]], to: str) -> dict[str, list[Any]]:
    """The JSON columns for one ``/push`` request (module docstring: times differ)."""
    out: dict[str, list[Any]] = {}
    for col in target.columns if to == "offline" else target.online_columns():
        seconds = to == "online" and col in target.features
        out[col] = [_wire(v, seconds) for v in rows[col]]
    return out


def _wire(value: Any, seconds: bool) -> Any:
    if isinstance(value, list):
        return [_wire(v, seconds) for v in value]
    if isinstance(value, datetime):
        # Seconds as text: a missing value beside numbers would make the column float, and
        # Feast's online writer reads every float there as a missing time.
        return str(int(value.timestamp())) if seconds else value.isoformat()
    return value


# --- the command ----------------------------------------------------------------------------------


def push(
    session: Session,
    view: str,
    *,
    entities_file: Path | None = None,
    entity_specs: Sequence[str] = (),
    set_specs: Sequence[str] = (),
    at: datetime | None = None,
    to: str = "online",
) -> PushResult:
    """Push rows through the feature server; every check runs before any connection."""
    if to not in DESTINATIONS:
        raise UsageError(f"--to {to!r} is not one of {', '.join(DESTINATIONS)}")
    record = session.deployment()
    target = push_target(catalog(record), view)
    if to != "online":
        refuse_offline_into_postgres(target, getattr(record, "stores", None))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    if entities_file is not None:
        if entity_specs or set_specs or at is not None:
            raise UsageError("--entities already holds the rows: leave out --entity, --set and --at")
        rows = rows_from_file(target, entities_file, now)
    else:
        rows = rows_from_options(target, entity_specs, set_specs, at, now)
    if to == "online":
        given = [c for c in target.source_only if any(v is not None for v in rows[c])]
        if given:
            raise UsageError(
                f"{', '.join(given)}: a column of push source {target.name}'s batch source that none of its views "
                f"({', '.join(target.views)}) holds, so only an offline push writes it: --to offline or both"
            )
    if to in ("offline", "both"):  # offline first: if Feast refuses the rows, nothing was written
        _send(session, record, target.name, payload(target, rows, "offline"), "offline")
    if to in ("online", "both"):
        try:
            _send(session, record, target.name, payload(target, rows, "online"), "online")
        except FeatctlError as exc:
            if to == "both":
                exc.message = f"the rows are in the offline store, but the online write failed: {exc.message}"
            raise
    size = len(rows[target.timestamp])
    return PushResult(push_source=target.name, views=target.views, rows=size, to=to)


def _send(session: Session, record: Deployment, source: str, body: dict[str, list[Any]], to: str) -> None:
    timeout = session.settings.command_timeout

    def call(server: FeatureServer) -> None:
        server.push(source, body, to, timeout=timeout)

    _ask(session, record, call)
