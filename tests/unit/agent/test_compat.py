"""featctl's fixes for Feast 0.67 on the host (agent/compat.py)."""

from __future__ import annotations

from featctl.agent.compat import _list_spelling


def test_feasts_list_spellings_are_normalised_for_its_type_map():
    assert _list_spelling("list<element: string>") == "list<item: string>"
    assert _list_spelling("large_list<element: float>") == "list<item: float>"
    assert _list_spelling("list<element: list<element: int64>>") == "list<item: list<item: int64>>"
    assert _list_spelling("string") == "string" and _list_spelling("list<item: double>") == "list<item: double>"
