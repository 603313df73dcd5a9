"""A fix for Feast 0.67's vector search (``retrieve_online_documents_v2``,
the feature server's ``/search``) that featctl's feature servers apply.

Feast builds the answer with ``utils._get_unique_entities_from_values``, which
sorts the documents' entity keys and groups equal ones, then places the
documents' features, still in the online store's ranking order, at the sorted
keys' positions, while the entity key column keeps the ranking order: every
document whose key is not in ranking order got another document's features
and distance (seen on examples/rag with milvus-lite: item 181 answered with
item 121's summary and distance, exit 0). During a document search the keys
are now taken as they come, one per document, so each row is the document
the online store returned, nearest first. ``get_online_features`` is
unchanged (it reads the store per unique key, for which sorting is right).
"""

from __future__ import annotations

import contextvars
from typing import Any

_searching: contextvars.ContextVar[bool] = contextvars.ContextVar("featctl_document_search", default=False)


def in_order(table_entity_values: dict[str, list[Any]]) -> tuple[tuple[dict[str, Any], ...], tuple[list[int], ...], int]:
    """``_get_unique_entities_from_values`` without sorting or grouping: one
    entry per row, in the rows' order."""
    keys = list(table_entity_values)
    rows = list(zip(*table_entity_values.values()))
    return tuple(dict(zip(keys, r)) for r in rows), tuple([i] for i in range(len(rows))), len(rows)


def ranked_document_search() -> None:
    """Patch Feast (idempotent); imports ``feast.feature_store``."""
    from feast import feature_store, utils

    store = feature_store.FeatureStore
    if getattr(store._retrieve_from_online_store_v2, "__featctl__", False):
        return
    original_unique = utils._get_unique_entities_from_values
    original_retrieve = store._retrieve_from_online_store_v2

    def unique_entities(table_entity_values: Any) -> Any:
        if _searching.get():
            return in_order(table_entity_values)
        return original_unique(table_entity_values)

    def retrieve(self: Any, *args: Any, **kwargs: Any) -> Any:
        token = _searching.set(True)
        try:
            return original_retrieve(self, *args, **kwargs)
        finally:
            _searching.reset(token)

    retrieve.__featctl__ = True  # type: ignore[attr-defined]
    utils._get_unique_entities_from_values = unique_entities
    store._retrieve_from_online_store_v2 = retrieve
