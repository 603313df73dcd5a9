"""Entity rows and request data as users give them on the command line:
``--entity customer_id=C001`` (repeatable; ``--entity a=1,b=x`` for a
composite key), ``--driver 1001`` (shorthand for ``--entity driver_id=1001``)
and ``--request NAME=VALUE`` (one value for every row). Values are typed by
the registry's declared types before anything is sent (pure, no I/O)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from featctl.errors import UsageError
from featctl.query.inputs import NUMBER
from featctl.query.keys import parse_key

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


def split_pairs(spec: str, *, option: str) -> list[tuple[str, str]]:
    """``a=1,b=x`` -> [("a", "1"), ("b", "x")]; names must be identifiers."""
    pairs = []
    for item in spec.split(","):
        name, sep, value = item.partition("=")
        if not sep or not _NAME.fullmatch(name):
            raise UsageError(f"{option} {spec!r}: {item!r} is not NAME=VALUE")
        pairs.append((name, value))
    names = [n for n, _ in pairs]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise UsageError(f"{option} {spec!r} names {dup} twice")
    return pairs


def entity_rows(
    entity_specs: Sequence[str], driver_ids: Sequence[int], key_types: Mapping[str, str]
) -> list[dict[str, Any]]:
    """One dict per row, every row with the same keys, values of the keys' types.

    A key the registry does not know is refused (with the known keys named);
    without a registry summary (an old deployment) values pass as integers when
    they look like one.
    """
    rows: list[dict[str, Any]] = []
    for spec in entity_specs:
        row: dict[str, Any] = {}
        for name, raw in split_pairs(spec, option="--entity"):
            if key_types and name not in key_types:
                raise UsageError(
                    f"--entity {spec!r}: {name} is not a join key of this deployment; "
                    f"its join keys are {', '.join(sorted(key_types))}"
                )
            dtype = key_types.get(name) or ("Int64" if re.fullmatch(r"[+-]?[0-9]+", raw) else "String")
            row[name] = parse_key(raw, dtype, name=name, where=f"--entity {spec!r}")
        rows.append(row)
    rows += [{"driver_id": d} for d in driver_ids]
    if not rows:
        return rows
    keys = list(rows[0])
    for i, row in enumerate(rows[1:], start=2):
        if set(row) != set(keys):
            raise UsageError(
                f"entity row {i} names {', '.join(row)} but row 1 names {', '.join(keys)}: every row needs the same keys"
            )
    return rows


def parse_request_value(raw: str, dtype: str, *, name: str, where: str) -> Any:
    """A request-data value of a declared Feast type (Float/Int/String/Bool)."""
    if dtype.startswith("Float"):
        if not NUMBER.fullmatch(raw):
            raise UsageError(f"{where}: {name}={raw!r} is not a number ({name} is {dtype})")
        return float(raw)
    if dtype.startswith(("Int", "UnixTimestamp")):
        return parse_key(raw, dtype if dtype in ("Int64", "Int32") else "Int64", name=name, where=where)
    if dtype == "Bool":
        low = raw.lower()
        if low not in _TRUE | _FALSE:
            raise UsageError(f"{where}: {name}={raw!r} is not true or false")
        return low in _TRUE
    return raw


def request_values(specs: Sequence[str], field_types: Mapping[str, str]) -> dict[str, Any]:
    """``--request NAME=VALUE`` values, typed; a name no on-demand view asks for is refused."""
    out: dict[str, Any] = {}
    for spec in specs:
        for name, raw in split_pairs(spec, option="--request"):
            if field_types and name not in field_types:
                known = ", ".join(sorted(field_types)) or "none"
                raise UsageError(f"--request {name}: no on-demand view asks for it; request fields: {known}")
            if name in out:
                raise UsageError(f"--request {name} is given twice")
            out[name] = parse_request_value(raw, field_types.get(name, "String"), name=name, where="--request")
    return out


def key_text(row: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.items())
