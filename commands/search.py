"""Commands that search: one-shot `search` and the interactive `shell`."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from shoplens.commands.base import (DeviceOption, IndexOption, JsonOption, RichProgress, WideOption, app, err,
                                    handle_errors, json_text, literal, out, output_file, print_json, show)


# -- search ------------------------------------------------------------------------


def _weights(text: str | None) -> tuple[float, ...] | None:
    from shoplens.common.errors import QueryError

    if text is None:
        return None
    try:
        weights = tuple(float(part) for part in text.split(","))
    except ValueError:
        weights = ()
    if len(weights) not in (2, 3):
        raise QueryError(f"--weights takes two or three numbers lexical,dense[,native] such as 1,0.5,1; got {text!r}")
    return weights


@app.command()
@handle_errors
def search(
    query: Optional[str] = typer.Argument(None, help="Query text (optional with --image or --queries)."),
    queries: Optional[Path] = typer.Option(None, "--queries", help="Answer many queries in one process: a file of one query a line, or JSONL {text, image, filters, id, k, mode, fusion}; writes JSONL results."),
    output: Optional[Path] = typer.Option(None, "--out", callback=output_file, help="With --queries: write the JSONL results here instead of stdout."),
    image: Optional[Path] = typer.Option(None, "--image", help="Query photo: search by image, or by text and image together."),
    k: int = typer.Option(10, "-k", help="Results per page."),
    page: int = typer.Option(1, "--page", help="Page of results."),
    filters: Optional[List[str]] = typer.Option(None, "--filter", help='FIELD OP VALUE, repeatable (ANDed): "price<=3000", brand=Nike, "category=Shoes|Sandals".'),
    mode: str = typer.Option("hybrid", "--mode", help="hybrid, lexical (BM25 only), dense (joint image-text space only) or native (text-native space only)."),
    fusion: Optional[str] = typer.Option(None, "--fusion", help="rrf (reciprocal rank fusion) or wsum (weighted sum of normalized scores); default: the index's fusion plan."),
    rrf_k: Optional[float] = typer.Option(None, "--rrf-k", help="k of reciprocal rank fusion (default: the index's plan)."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Fusion weights lexical,dense[,native] (default: the index's plan)."),
    normalization: Optional[str] = typer.Option(None, "--norm", help="Score normalization for wsum: minmax or zscore."),
    adaptive: Optional[bool] = typer.Option(None, "--adaptive/--fixed-weights", help="Scale dense channels by their agreement with BM25 per query (default: the index's plan)."),
    candidates: int = typer.Option(200, "--candidates", help="Candidates fetched from each retriever."),
    no_rerank: bool = typer.Option(False, "--no-rerank", help="Skip the learned reranker."),
    explain: bool = typer.Option(False, "--explain", help="Show why each result ranked where it did."),
    no_collapse: bool = typer.Option(False, "--no-collapse", help="Show every listing, also duplicates (same title, brand and photo)."),
    no_spell: bool = typer.Option(False, "--no-spell", help="Search the words as typed (no spelling correction)."),
    strict_intent: bool = typer.Option(False, "--strict-intent", help='Price limits, audience, colour and type read from the query ("under 2000", "for men") become filters, not only a preference.'),
    no_intent: bool = typer.Option(False, "--no-intent", help="Do not read price limits, audience, colour or type from the query (nor the type and colour of the product a query photo shows)."),
    index_dir: Path = IndexOption,
    model: Optional[str] = typer.Option(None, "--model", help="Check that the index was built with this model."),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help="Check that the index was built with these weights."),
    device: str = DeviceOption,
    wide: bool = WideOption,
    as_json: bool = JsonOption,
):
    """Search the index by text, by image, or both; or many queries at once with --queries FILE."""
    from shoplens.common.errors import QueryError
    from shoplens.engine.batch import read_queries
    from shoplens.engine.query import SearchRequest, check_typed_text
    from shoplens.engine.search import SearchEngine

    request = SearchRequest(text=query, image=image, k=k, page=page, filters=list(filters or []), mode=mode,
                            fusion=fusion, rrf_k=rrf_k, weights=_weights(weights), normalization=normalization,
                            adaptive=adaptive, candidates=candidates, rerank=False if no_rerank else None,
                            explain=explain, collapse=not no_collapse, spell=not no_spell, intent=not no_intent,
                            strict_intent=strict_intent)
    if queries is None:
        if output is not None:  # the results went to the terminal and the file was never written, exit 0
            raise QueryError(f"--out writes the results of --queries FILE; for one query, redirect them instead "
                             f"(shoplens search ... --json > {output.name})")
        check_typed_text(query)
        request.validate()
    elif query:
        raise QueryError("give query text or --queries FILE, not both")
    else:
        batch = read_queries(queries, request)  # read and checked whole before the model loads
    engine = SearchEngine(index_dir, device=device, model=model, pretrained=pretrained, preload=False)
    if queries is not None:
        engine.warm()
        _search_batch(engine, batch, output)
        return
    engine.check(request)  # unknown filter fields before the model loads
    engine.warm()
    _print_response(engine.search(request), as_json, explain, wide)


def _print_response(response, as_json: bool, explain: bool, wide: bool) -> None:
    """One search's answer: JSON, or a results table (and the explanations with --explain)."""
    if as_json:
        print_json(response.to_json())
        return
    from shoplens.tui.display import describe_query, explain_view, generic_view, results_table

    if not response.results:
        out.print(f"no results for {literal(describe_query(response.query))}"
                  + (" (try fewer filters)" if response.query.get("filters") else ""))
        return
    show(results_table(response, wide=wide, width=out.width if out.is_terminal else None))
    if explain:
        show(*generic_view(getattr(response, "explain", None) or {}))
        show(*[explain_view(result) for result in response.results])


def _search_batch(engine, batch: list, output: Optional[Path]) -> None:
    """`search --queries FILE`: JSONL results on stdout (or --out), a summary on stderr; exit 1 if any failed."""
    import sys
    import time
    from contextlib import nullcontext

    from shoplens.common.outputs import atomic_output
    from shoplens.engine.batch import run_batch

    started, failed = time.perf_counter(), 0
    with (atomic_output(output) if output else nullcontext(sys.stdout)) as handle:  # --out: whole, or not at all
        with RichProgress(enabled=output is not None) as progress:
            advance = progress.stage("queries", len(batch))
            for record in run_batch(engine, batch):
                failed += "error" in record
                if "error" in record:
                    err.print(f"[yellow]line {record['line']}:[/] {literal(str(record['error']))}", highlight=False)
                handle.write(json_text(record, indent=None) + "\n")
                advance(1)
        handle.flush()
    seconds = time.perf_counter() - started
    err.print(f"{len(batch) - failed:,} of {len(batch):,} queries answered in {seconds:.1f} s "
              f"({seconds / len(batch) * 1000:.0f} ms a query)" + (f"; results in {literal(str(output))}" if output else ""),
              highlight=False)
    if failed:
        raise typer.Exit(1)


# -- shell -------------------------------------------------------------------------


@app.command()
@handle_errors
def shell(
    index_dir: Path = IndexOption,
    k: int = typer.Option(10, "-k", min=1, max=100, help="Results per page (1-100)."),
    thumbs: str = typer.Option("off", "--thumbs", help="Product thumbnails: off, on (two text rows in the table) or grid (a gallery below it); :thumbs toggles."),
    no_thumbnails: bool = typer.Option(False, "--no-thumbnails", hidden=True, help="Same as --thumbs off."),
    wide: bool = WideOption,
    history: Path = typer.Option(Path("~/.shoplens_history"), "--history",
                                 callback=lambda path: output_file(path.expanduser()), help="File that keeps the lines you type (Up arrow / Ctrl-R recall them)."),
    device: str = DeviceOption,
):
    """Interactive search: type queries, refine with filters, page, explain, compare, save. Type :help for commands."""
    from shoplens.common.errors import ConfigError
    from shoplens.engine.search import SearchEngine
    from shoplens.tui.display import THUMB_MODES
    from shoplens.tui.shell import run_shell

    if thumbs not in THUMB_MODES:
        raise ConfigError(f"--thumbs takes {', '.join(THUMB_MODES)}, got {thumbs!r}")
    engine = SearchEngine(index_dir, device=device)
    history.parent.mkdir(parents=True, exist_ok=True)  # --history was checked to be writable; the history appends
    run_shell(engine, out, k=k, thumbnails="off" if no_thumbnails else thumbs, wide=wide,
              history_path=history)
