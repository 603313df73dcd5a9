"""Fixes for Feast 0.67 that featctl applies in every Feast process it starts
on the host (``feast apply``/``plan``/``serve`` through ``feast_cli``, and the
agent's own Feast commands). Each one names the defect it works around.
"""

from __future__ import annotations

from typing import Any

_done = False


def _list_spelling(pa_type_as_str: str) -> str:
    """``list<element: string>`` -> ``list<item: string>``.

    pyarrow reads a list column of a parquet file written with compliant nested
    types (pyarrow's default since 13) as ``list<element: T>``; Feast 0.67's
    ``pa_to_feast_value_type`` knows the ``list<item: T>`` spelling and only a
    few ``element`` ones (``list<element: str>``, not ``string``), so an
    offline push to a FileSource with an Array(String) feature fails with
    ``KeyError: 'list<element: string>'``.
    """
    for prefix in ("list<element: ", "large_list<element: ", "large_list<item: "):
        if pa_type_as_str.startswith(prefix) and pa_type_as_str.endswith(">"):
            return "list<item: " + _list_spelling(pa_type_as_str[len(prefix) : -1]) + ">"
    return pa_type_as_str


def patch_feast() -> None:
    """Apply the fixes (idempotent); imports ``feast.type_map`` (not all of Feast)."""
    global _done
    if _done:
        return
    from feast import type_map

    original = type_map.pa_to_feast_value_type

    def pa_to_feast_value_type(pa_type_as_str: str) -> Any:
        return original(_list_spelling(pa_type_as_str))

    pa_to_feast_value_type.__doc__ = original.__doc__
    type_map.pa_to_feast_value_type = pa_to_feast_value_type
    _done = True
