"""``featctl search``: vector similarity search over a feature view's
embeddings (Feast's ``retrieve_online_documents_v2``, which its feature server
serves on ``POST /search``), through the same tunnel as ``online``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from featctl.errors import UsageError
from featctl.query.catalog import catalog
from featctl.query.online import _ask
from featctl.query.table import Table
from featctl.session import Session

#: Columns Feast adds to a search answer beside the view's features.
DISTANCE = "distance"
MAX_TOP_K = 1000


def parse_vector(text: str) -> list[float]:
    """The query vector: a JSON list of numbers, or a file holding one (``.json``
    or whitespace/comma-separated numbers)."""
    raw = text
    if not text.lstrip().startswith("["):
        path = Path(text).expanduser()
        try:
            raw = path.read_text()
        except OSError as exc:
            raise UsageError(f"--vector {text!r} is neither a JSON list nor a readable file ({exc.strerror})") from None
    stripped = raw.strip()
    try:
        values = (
            json.loads(stripped) if stripped.startswith("[") else [float(x) for x in stripped.replace(",", " ").split()]
        )
    except ValueError as exc:
        raise UsageError(f"--vector is not a list of numbers: {exc}") from None
    if not isinstance(values, list) or not values:
        raise UsageError("--vector must be a non-empty list of numbers")
    out = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            raise UsageError(f"--vector item {i} ({v!r}) is not a finite number")
        out.append(float(v))
    return out


def search(
    session: Session,
    view: str,
    vector: Sequence[float],
    *,
    top_k: int = 5,
    features: Sequence[str] = (),
    metric: str | None = None,
) -> Table:
    """The ``top_k`` rows of ``view`` nearest to ``vector``, nearest first, with
    Feast's distance (its own metric, or ``metric``)."""
    if not 1 <= top_k <= MAX_TOP_K:
        raise UsageError(f"--top-k must be from 1 to {MAX_TOP_K} (got {top_k})")
    record = session.deployment()
    cat = catalog(record)
    views = {v["name"]: v for v in cat.desc.get("feature_views", [])}
    if cat.desc and view not in views:
        raise UsageError(f"unknown feature view {view!r}; feature views: {', '.join(sorted(views)) or 'none'}")
    names = [f["name"] for f in views.get(view, {}).get("features", [])]
    chosen = list(features) or names
    unknown = [f for f in chosen if names and f not in names]
    if unknown:
        raise UsageError(f"feature view {view!r} has no feature {unknown[0]!r}; it has: {', '.join(names)}")
    body: dict[str, Any] = {
        "features": [f"{view}:{f}" for f in chosen],
        "query": list(vector),
        "top_k": top_k,
        "api_version": 2,
    }
    if metric:
        body["distance_metric"] = metric
    columns = _ask(session, record, lambda srv: srv.search(body))
    keys = [k["name"] for k in views.get(view, {}).get("join_keys", []) if k["name"] in columns]
    order = keys + [c for c in chosen if c in columns] + [c for c in columns if c not in keys and c not in chosen]
    size = max((len(v) for v in columns.values()), default=0)
    rows = [[columns[c][i] if i < len(columns[c]) else None for c in order] for i in range(size)]
    table = Table(order, rows, title=f"nearest {top_k} of {view}")
    if size < top_k:
        table.notes.append(f"{size} row(s) found (top {top_k} asked): the view's online store holds no more")
    return table
