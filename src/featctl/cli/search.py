"""search: vector similarity search over a feature view's embeddings."""

from __future__ import annotations

from typing import Annotated

import typer

from featctl.cli import options as o
from featctl.cli.app import make_session, output_format


def register(app: typer.Typer) -> None:
    app.command(
        epilog="Examples: featctl search --view city_embeddings --vector query.json --top-k 3   |   "
        "featctl search --view docs --vector '[0.1, 0.2, 0.3]' --features title,body --output json"
    )(search)


def search(
    view: Annotated[str, typer.Option("--view", help="The feature view whose vector field is searched.")],
    vector: Annotated[
        str,
        typer.Option(
            "--vector",
            help="The query embedding: a JSON list of numbers, or a file holding one (JSON, or numbers "
            "separated by spaces or commas). Its length is the view's embedding dimension.",
        ),
    ],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="How many nearest rows to return.")] = 5,
    features: Annotated[
        str | None,
        typer.Option(
            "--features",
            help="FEATURE[,FEATURE...] of the view to return [default: every feature of the view]",
            show_default=False,
        ),
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            "--metric",
            help="Distance metric to ask the online store for (e.g. COSINE, L2) [default: the view's own]",
            show_default=False,
        ),
    ] = None,
    output: o.Output = None,
    repo: o.Repo = None,
    workspace: o.Workspace = None,
    config: o.Config = None,
) -> None:
    """Nearest rows of a feature view to a query vector (Feast's retrieve_online_documents_v2, served by the
    feature server's /search), nearest first, with the online store's distance.

    The view needs a vector field (Field(..., vector_index=True)) and an online store that searches vectors
    (milvus, sqlite with sqlite-vec, postgres with pgvector, ...).
    """
    from featctl.cli.queries import _show
    from featctl.query.search import parse_vector
    from featctl.query.search import search as run

    fmt = output_format(output)
    query = parse_vector(vector)
    chosen = [f for f in (features or "").split(",") if f]
    session, _ = make_session(repo=repo, workspace=workspace, config=config)
    try:
        table = run(session, view, query, top_k=top_k, features=chosen, metric=metric)
    finally:
        session.close()
    _show(table, fmt)
