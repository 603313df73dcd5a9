"""``featctl search`` on Feast's own RAG example (examples/rag: milvus-lite
with a COSINE index, definitions as upstream, data of the same schema with
seeded embeddings): the top k equal numpy's cosine ranking, and the
single-process store runs with one feature server worker, every read answered."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.integration.conftest import Deployed, _deploy

pytestmark = pytest.mark.integration

RAG = ROOT / "tests" / "data" / "rag"
DIM = 384
ROWS = 200
DATA = "city_wikipedia_summaries_with_embeddings.parquet"


def _frame() -> pd.DataFrame:
    rng = np.random.default_rng(22)
    vectors = rng.normal(size=(ROWS, DIM)).astype("float32")
    return pd.DataFrame(
        {
            "id": np.arange(ROWS, dtype="int64"),
            "item_id": np.arange(ROWS, dtype="int64"),
            "event_timestamp": pd.Timestamp("2025-01-09 13:36:59.280589"),
            "state": [f"state {i % 7}" for i in range(ROWS)],
            "wiki_summary": [f"summary {i}" for i in range(ROWS)],
            "sentence_chunks": [f"chunk {i}" for i in range(ROWS)],
            "vector": list(vectors),
        }
    )


@pytest.fixture(scope="module")
def rag(tmp_path_factory) -> Iterator[Deployed]:
    root = tmp_path_factory.mktemp("rag")
    repo = root / "feature_repo"
    (repo / "data").mkdir(parents=True)
    for name in ("example_repo.py", "feature_store.yaml"):
        shutil.copy(RAG / name, repo / name)
    _frame().to_parquet(repo / "data" / DATA, index=False)
    yield from _deploy(root)


def _cosine_top(query: np.ndarray, k: int) -> list[int]:
    frame = _frame()
    matrix = np.stack(frame.vector.values).astype("float64")
    sims = matrix @ query / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query))
    return [int(i) for i in frame.item_id.values[np.argsort(-sims)[:k]]]


def test_top_k_equals_numpys_cosine_ranking(rag: Deployed, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    for trial in range(3):
        query = rng.normal(size=DIM)
        path = tmp_path / f"q{trial}.json"
        path.write_text(json.dumps([float(x) for x in query]))
        rows = rag.json("search", "--view", "city_embeddings", "--vector", str(path), "--top-k", "3")
        assert [r["item_id"] for r in rows] == _cosine_top(query, 3), rows
        frame = _frame().set_index("item_id")
        for r in rows:
            assert r["state"] == frame.loc[r["item_id"], "state"]
            v = frame.loc[r["item_id"], "vector"].astype("float64")
            assert r["distance"] == pytest.approx(
                float(v @ query / (np.linalg.norm(v) * np.linalg.norm(query))), abs=1e-5
            )
    # an inline vector, and the features asked for only
    query = list(_frame().vector[11].astype(float))
    rows = rag.json(
        "search", "--view", "city_embeddings", "--vector", json.dumps(query), "-k", "1", "--features", "state"
    )
    assert rows == [{"item_id": 11, "state": "state 4", "distance": pytest.approx(1.0, abs=1e-5)}]


def test_bad_search_input_is_one_line(rag: Deployed) -> None:
    for args, says in [
        (["--view", "nope", "--vector", "[1,2]"], "unknown feature view 'nope'"),
        (["--view", "city_embeddings", "--vector", "[1, NaN]"], "--vector"),
        (["--view", "city_embeddings", "--vector", "[1,2]", "--top-k", "0"], "--top-k"),
        (["--view", "city_embeddings", "--vector", "[1,2]", "--features", "x"], "has no feature 'x'"),
    ]:
        res = rag.run("search", *args)
        assert res.returncode == 2 and says in res.stderr, (args, res.stderr)
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_milvus_lite_runs_one_worker_and_every_read_answers(rag: Deployed) -> None:
    assert "runs with 1 worker, not 2" in rag.first_deploy.stderr
    rec = rag.record()
    group = Path(rec["remote_base_dir"]) / "releases" / rec["release"] / ".featctl" / "server-group.pid"
    workers = subprocess.run(["pgrep", "-P", group.read_text().strip()], capture_output=True, text=True).stdout.split()
    assert len(workers) == 1
    frame = _frame().set_index("item_id")
    for item in range(6):
        rows = rag.json("online", "--entity", f"item_id={item}", "--features", "city_embeddings:state")
        assert rows == [{"item_id": item, "state": frame.loc[item, "state"]}]
