"""featctl search without a host: the query vector's parsing, what is asked of
Feast's /search, and the answer's columns (the server is faked at its boundary)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from featctl.errors import UsageError
from featctl.query import search as mod
from featctl.workspace import Deployment

DESC = {
    "feature_views": [
        {
            "name": "docs",
            "features": [{"name": "vector", "dtype": "Array(Float32)"}, {"name": "title", "dtype": "String"}],
            "join_keys": [{"name": "doc_id", "dtype": "Int64"}],
        }
    ]
}


def test_vectors_from_json_or_a_file(tmp_path):
    assert mod.parse_vector("[1, 2.5, -3e-1]") == [1.0, 2.5, -0.3]
    (tmp_path / "q.txt").write_text("1 2,3\n4")
    assert mod.parse_vector(str(tmp_path / "q.txt")) == [1.0, 2.0, 3.0, 4.0]
    (tmp_path / "q.json").write_text("[0.5]")
    assert mod.parse_vector(str(tmp_path / "q.json")) == [0.5]


@pytest.mark.parametrize(
    ("text", "says"),
    [("[]", "non-empty"), ("[1, true]", "item 1"), ('[1, "x"]', "item 1"), ("[1e400]", "item 0"), ("/no/such", "neither")],
)
def test_bad_vectors(text, says):
    with pytest.raises(UsageError, match=says):
        mod.parse_vector(text)


def test_the_request_and_the_answers_columns(monkeypatch):
    sent = {}

    def fake_ask(session, record, call):
        server = SimpleNamespace(search=lambda body: sent.update(body) or {
            "doc_id": [3, 1], "title": ["c", "a"], "vector": [[0.0], [1.0]], "distance": [0.9, 0.5]})  # fmt: skip
        return call(server)

    monkeypatch.setattr(mod, "_ask", fake_ask)
    record = Deployment(target="local", name="x", registry=DESC)
    session = SimpleNamespace(deployment=lambda: record)
    table = mod.search(session, "docs", [0.1, 0.2], top_k=2, features=["title"], metric="COSINE")  # type: ignore[arg-type]
    assert sent == {
        "features": ["docs:title"], "query": [0.1, 0.2], "top_k": 2, "api_version": 2, "distance_metric": "COSINE"
    }  # fmt: skip
    assert table.columns[:2] == ["doc_id", "title"] and table.columns[-1] == "distance"
    assert table.rows[0][:2] == [3, "c"] and table.notes == []
    sent.clear()
    table = mod.search(session, "docs", [0.1], top_k=5)  # type: ignore[arg-type]
    assert sent["features"] == ["docs:vector", "docs:title"] and "distance_metric" not in sent
    assert table.notes == ["2 row(s) found (top 5 asked): the view's online store holds no more"]
    with pytest.raises(UsageError, match="--top-k"):
        mod.search(session, "docs", [0.1], top_k=0)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="unknown feature view 'nope'"):
        mod.search(session, "nope", [0.1])  # type: ignore[arg-type]


def test_documents_keep_their_own_key_and_rank():
    """agent/documents.py: one entry per document, in the store's ranking order
    (Feast 0.67 sorted the keys and gave documents each other's features)."""
    from featctl.agent.documents import in_order

    ranked = {"item_id": [181, 161, 60, 161]}
    unique, indexes, size = in_order(ranked)
    assert [u["item_id"] for u in unique] == [181, 161, 60, 161]
    assert indexes == ([0], [1], [2], [3]) and size == 4
