"""On-demand views on historical rows: Feast's own code, on the columns a view reads.

Feast 0.67 computes a python-mode on-demand view offline by turning the whole
retrieved table into Python objects (``pa_table.to_pydict()``) and calling the
view's function on that dict. At 100,000 rows almost all of that time goes to
columns the function never reads: the entity rows' ``event_timestamp`` alone
becomes 100,000 ``pandas.Timestamp`` objects (~1.5-2 s here).

So each python-mode view is handed, through Feast's own ``transform_arrow``
(the same preprocessing, conversion, function call and renaming), only the
columns it can read: its sources' features (under both of Feast's names), its
request fields, the join keys (as Feast's online path hands them to the same
function), and every other column whose name appears in the function's source
text (so a function that reads ``inputs["event_timestamp"]`` still gets it).
A view without source text, and pandas-mode views, get the whole table as in
Feast. The values are the function's own; only a function that looks at the
set of keys it was given (``len(inputs)``, iterating over every key) can tell.
"""

from __future__ import annotations

from typing import Any


def is_python_mode(odfv: Any) -> bool:
    mode = getattr(odfv, "mode", None)
    return str(getattr(mode, "value", mode)).lower() == "python"


def readable_columns(odfv: Any, join_keys: set[str]) -> set[str]:
    """The columns a view declares it reads, plus the join keys."""
    names = set(join_keys)
    for proj in odfv.source_feature_view_projections.values():
        for feature in proj.features:
            names.update({feature.name, f"{proj.name}__{feature.name}", f"{proj.name_to_use()}__{feature.name}"})
    for source in odfv.source_request_sources.values():
        names.update(field.name for field in source.schema)
    return names


class NarrowedView:
    """An on-demand view whose ``transform_arrow`` sees only the columns it can
    read; every other attribute is the view's own."""

    def __init__(self, odfv: Any, readable: set[str], udf_text: str) -> None:
        self._odfv = odfv
        self._readable = readable
        self._udf_text = udf_text

    def __getattr__(self, name: str) -> Any:
        return getattr(self._odfv, name)

    def columns(self, names: list[str]) -> list[int]:
        return [i for i, c in enumerate(names) if c in self._readable or c in self._udf_text]

    def transform_arrow(self, pa_table: Any, full_feature_names: bool = False) -> Any:
        return self._odfv.transform_arrow(pa_table.select(self.columns(pa_table.column_names)), full_feature_names)


def narrow_on_demand_views(job: Any, views: list[tuple[Any, list[str]]]) -> None:
    """Hand ``job``'s python-mode on-demand views only the columns they can read
    (its own list of views: the registry's cached objects stay untouched)."""
    odfvs = getattr(job, "_on_demand_feature_views", None)
    if not odfvs:
        return
    join_keys: set[str] = set()
    for fv, _ in views:
        jkm = dict(fv.projection.join_key_map or {})
        join_keys.update(jkm.get(c.name, c.name) for c in fv.entity_columns)
    narrowed = []
    for odfv in odfvs:
        udf_text = getattr(getattr(odfv, "feature_transformation", None), "udf_string", None)
        if is_python_mode(odfv) and isinstance(udf_text, str) and udf_text.strip():
            narrowed.append(NarrowedView(odfv, readable_columns(odfv, join_keys), udf_text))
        else:
            narrowed.append(odfv)
    job._on_demand_feature_views = narrowed
