"""Commands that search: one-shot `search` and the interactive `shell`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from shoplens.commands.base import (DeviceOption, IndexOption, JsonOption, app, handle_errors, out, print_json)


# -- search ------------------------------------------------------------------------


def _weights(text: str) -> tuple[float, float]:
    from shoplens.common.errors import QueryError

    try:
        lexical, dense = (float(part) for part in text.split(","))
    except ValueError:
        raise QueryError(f"--weights takes two numbers lexical,dense such as 1,1 or 0.3,0.7; got {text!r}") from None
    return lexical, dense


@app.command()
@handle_errors
def search(
    query: Optional[str] = typer.Argument(None, help="Query text (optional with --image)."),
    image: Optional[Path] = typer.Option(None, "--image", help="Query photo: search by image, or by text and image together."),
    k: int = typer.Option(10, "-k", help="Results per page."),
    page: int = typer.Option(1, "--page", help="Page of results."),
    filters: Optional[List[str]] = typer.Option(None, "--filter", help='FIELD OP VALUE, repeatable (ANDed): "price<=3000", brand=Nike, "category=Shoes|Sandals".'),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, lexical (BM25 only) or dense (vectors only)."),
    fusion: str = typer.Option("rrf", "--fusion", help="rrf (reciprocal rank fusion) or wsum (weighted sum of normalized scores)."),
    rrf_k: float = typer.Option(60.0, "--rrf-k", help="k of reciprocal rank fusion."),
    weights: str = typer.Option("1,1", "--weights", help="Fusion weights lexical,dense."),
    normalization: str = typer.Option("minmax", "--norm", help="Score normalization for wsum: minmax or zscore."),
    candidates: int = typer.Option(200, "--candidates", help="Candidates fetched from each retriever."),
    no_rerank: bool = typer.Option(False, "--no-rerank", help="Skip the learned reranker."),
    explain: bool = typer.Option(False, "--explain", help="Show why each result ranked where it did."),
    index_dir: Path = IndexOption,
    model: Optional[str] = typer.Option(None, "--model", help="Check that the index was built with this model."),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help="Check that the index was built with these weights."),
    device: str = DeviceOption,
    as_json: bool = JsonOption,
):
    """Search the index by text, by image, or both."""
    from shoplens.engine.query import SearchRequest
    from shoplens.engine.search import SearchEngine

    request = SearchRequest(text=query, image=image, k=k, page=page, filters=list(filters or []), mode=mode,
                            fusion=fusion, rrf_k=rrf_k, weights=_weights(weights), normalization=normalization,
                            candidates=candidates, rerank=False if no_rerank else None, explain=explain)
    request.validate()
    engine = SearchEngine(index_dir, device=device, model=model, pretrained=pretrained, preload=False)
    engine.check(request)  # unknown filter fields before the model loads
    engine.warm()
    response = engine.search(request)
    if as_json:
        print_json(response.to_json())
        return
    from shoplens.tui.display import explain_view, results_table

    if not response.results:
        out.print("no results" + (" (try fewer filters)" if request.filters else ""))
        return
    out.print(results_table(response))
    if explain:
        for result in response.results:
            out.print(explain_view(result))


# -- shell -------------------------------------------------------------------------


@app.command()
@handle_errors
def shell(
    index_dir: Path = IndexOption,
    k: int = typer.Option(10, "-k", help="Results per page."),
    thumbnails: bool = typer.Option(True, "--thumbnails/--no-thumbnails", help="Draw product thumbnails in the terminal."),
    device: str = DeviceOption,
):
    """Interactive search: type queries, refine with filters, page and explain. Type :help for commands."""
    from shoplens.engine.search import SearchEngine
    from shoplens.tui.shell import run_shell

    engine = SearchEngine(index_dir, device=device)
    run_shell(engine, out, k=k, thumbnails=thumbnails, history_path=Path.home() / ".shoplens_history")
