"""`shoplens bench ...`: the benchmarks of the README's Performance section (code in benchmarks/)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

from shoplens.common.errors import ConfigError
from shoplens.commands.base import (BENCH_DIR, DeviceOption, FieldMapOption, IndexOption, JsonOption, RichProgress,
                                    SaveOption, bench_app, command_line, finish_report, handle_errors, literal, out,
                                    output_file, output_folder, print_json)

MAX_CLIENTS = 256  # concurrent clients of a benchmark (threads or processes each)
MAX_THREADS = 256  # --threads 100000 asked the encoder and FAISS for 100,000 threads and hung


@bench_app.command("index")
@handle_errors
def bench_index(
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="Catalog to index (default: the Myntra catalog in ../shared)."),
    field_map: Optional[List[str]] = FieldMapOption,
    work_dir: Path = typer.Option(BENCH_DIR / "index", "--work-dir", callback=output_folder, help="Where the benchmark index is built."),
    queries: int = typer.Option(1000, "--queries", min=0, help="Text queries to time."),
    image_queries: int = typer.Option(200, "--image-queries", min=0, help="Image queries to time."),
    threads: int = typer.Option(1, "--threads", min=1, max=MAX_THREADS, help="Threads for query encoding and FAISS."),
    vector_index: str = typer.Option("auto", "--vector-index", help="Vector index kind."),
    device: str = DeviceOption,
    save: Optional[Path] = SaveOption,
    as_json: bool = JsonOption,
):
    """Index a whole catalog cold, then time searches: products/s, size on disk, p50/p99 per stage."""
    from shoplens.benchmarks import indexing, myntra

    if catalog is None:
        catalog = myntra.prepare(BENCH_DIR / "myntra")
        field_map = field_map or myntra.FIELD_MAP
        label = myntra.ATTRIBUTION
    else:
        label = str(catalog)
    command = command_line()
    with RichProgress(enabled=not as_json) as progress:
        report = indexing.run(catalog, work_dir, field_map or [], queries, image_queries, threads, device,
                              vector_index, label, progress, command=command)
    finish_report(report, as_json, save)


@bench_app.command("devdata")
@handle_errors
def bench_devdata(
    index_dir: Path = IndexOption,
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="The catalog the index was built from (default: Myntra in ../shared)."),
    field_map: Optional[List[str]] = FieldMapOption,
    out_dir: Path = typer.Option(BENCH_DIR / "devdata", "--out", callback=output_folder, help="Where to write queries, judgments and events."),
    queries: int = typer.Option(1000, "--queries", min=1, help="Derived text queries (split train/validation/test/log)."),
    photo_queries: Optional[int] = typer.Option(None, "--photo-queries", min=0, help="Photo queries: a product's own photo (default: a third of --queries; 0: none)."),
    text_photo_queries: Optional[int] = typer.Option(None, "--text-photo-queries", min=0, help="Text + photo queries: derived words and a product's photo (default: a third of --queries)."),
    sessions: int = typer.Option(20000, "--sessions", min=0, help="Simulated search sessions."),
    seed: int = typer.Option(1, "--seed"),
    as_json: bool = JsonOption,
):
    """Write DERIVED queries and graded judgments (text, photo, text + photo) and SIMULATED behaviour events
    for an indexed catalog."""
    from shoplens.benchmarks import devdata, myntra

    require_index(index_dir)  # before preparing a catalog
    if catalog is None:
        catalog = myntra.prepare(BENCH_DIR / "myntra")
        field_map = field_map or myntra.FIELD_MAP
    summary = devdata.build(catalog, index_dir, out_dir, field_map, queries, sessions, seed,
                            photo_queries=photo_queries, text_photo_queries=text_photo_queries)
    if as_json:
        print_json(summary)
    else:
        out.print(f"wrote {literal(str(out_dir))}: queries {summary['queries']} (by kind {summary['kinds']}), "
                  f"{summary['events']:,} simulated events from {summary['sessions']:,} sessions")


@bench_app.command("latency")
@handle_errors
def bench_latency(
    queries: Path = typer.Option(..., "--queries", help='One text query a line, or JSONL {"text", "image"}.'),
    index_dir: Path = IndexOption,
    k: int = typer.Option(10, "-k", min=1, max=1000),
    clients: str = typer.Option("1,2,4", "--clients", help="Concurrent client counts to try."),
    threads: int = typer.Option(1, "--threads", min=1, max=MAX_THREADS, help="Threads for query encoding and FAISS."),
    no_rerank: bool = typer.Option(False, "--no-rerank"),
    lexical: Optional[str] = typer.Option(None, "--lexical", help="Also run on a copy whose lexical store is on this backend (elasticsearch: SHOPLENS_ES_URL; opensearch: SHOPLENS_OS_URL), side by side."),
    vectors: Optional[str] = typer.Option(None, "--vectors", help="With --lexical: the copy's vector stores on this backend too (faiss, or the --lexical cluster: elasticsearch exact kNN or IVF on 7.10 and HNSW on 8+, opensearch HNSW)."),
    vector_index: Optional[str] = typer.Option(None, "--vector-index", help="With --vectors elasticsearch: the copy's vector index; on Elasticsearch 7.10 flat (exact, the default) or ivf (the query's nearest lists only), on 8+ hnsw (the default)."),
    encoder_runtime: Optional[str] = typer.Option(None, "--encoder-runtime", help="onnx, onnx-int8 or torch (default: what the index records)."),
    compare: bool = typer.Option(False, "--compare", help="Also run the other encoder runtime on the same queries in the same run."),
    cache_size: int = typer.Option(10_000, "--cache-size", min=0, help="Query-embedding cache entries for the cache measurement."),
    warm_rows: bool = typer.Option(False, "--warm-rows", help="First analyze every product for the reranker, as `serve` does in the background."),
    compare_bm25: bool = typer.Option(False, "--compare-bm25", help="Also run an engine that scores the candidates' BM25 by searching (no rows in memory), same queries, same run."),
    compare_trees: bool = typer.Option(False, "--compare-trees", help="Also run an engine whose reranker predicts with ONNX Runtime instead of the compiled trees, same queries, same run."),
    client_processes: bool = typer.Option(False, "--client-processes", help="Also run the concurrent clients as processes, each with its own engine (as `serve --workers N`)."),
    device: str = DeviceOption,
    save: Optional[Path] = SaveOption,
    as_json: bool = JsonOption,
):
    """Replay queries: per-stage and end-to-end p50/p95/p99 and throughput, one and several clients,
    with and without the query cache; --compare runs two encoder runtimes side by side (onnx and torch,
    or onnx-int8 and onnx), --compare-bm25 the candidates' BM25 from rows in memory and by searching,
    --compare-trees the reranker's compiled trees and ONNX Runtime."""
    from shoplens.benchmarks import latency

    counts = comma_numbers(clients, "--clients", MAX_CLIENTS)  # --clients 100000 started 100,000 threads
    report = latency.run(index_dir, queries, k, counts, threads, device, not no_rerank, command_line(), lexical=lexical,
                         vectors=vectors, compare=compare, runtime=encoder_runtime, cache_size=cache_size, warm_rows=warm_rows,
                         compare_bm25=compare_bm25, compare_trees=compare_trees, client_processes=client_processes,
                         vector_index=vector_index)
    finish_report(report, as_json, save)


@bench_app.command("recall")
@handle_errors
def bench_recall(
    index_dir: Optional[Path] = typer.Option(None, "--index", envvar="SHOPLENS_INDEX", help="Index whose product vectors to use (omit for synthetic only)."),
    synthetic: int = typer.Option(1_000_000, "--synthetic", min=0, max=10_000_000, help="Size of the synthetic vector set (0 to skip; else at least 1,000)."),
    queries: int = typer.Option(1000, "--queries", min=1, max=100_000),
    dim: Optional[int] = typer.Option(None, "--dim", min=8, max=4096, help="Synthetic dimension, a multiple of 8 (default: the index's, else 256)."),
    plot: Optional[Path] = typer.Option(BENCH_DIR / "recall.png", "--plot", callback=output_file, help="Recall-vs-throughput PNG."),
    no_peers: bool = typer.Option(False, "--no-peers", help="Skip hnswlib."),
    save: Optional[Path] = SaveOption,
    as_json: bool = JsonOption,
):
    """Approximate vs exact search: recall@10/@100 and queries/s for HNSW, IVF and IVF-PQ settings, and hnswlib."""
    from shoplens.benchmarks import recall

    if index_dir is not None:
        from shoplens.indexers.index import IndexDirectory

        IndexDirectory(index_dir).require()
    if 0 < synthetic < 1_000:
        raise ConfigError(f"--synthetic {synthetic} is too few vectors to train IVF-PQ (256 codes per sub-quantizer); "
                          "give 1,000 or more, or 0 to skip")
    if dim is not None and dim % 8:  # IVF-PQ splits a vector into dim/8 sub-quantizers
        raise ConfigError(f"--dim must be a multiple of 8 (IVF-PQ's dim/8 sub-quantizers), got {dim}")
    if synthetic == 0 and index_dir is None:
        raise ConfigError("nothing to measure: give --index INDEX, or --synthetic N (1,000 or more)")
    if index_dir is not None:
        require_index(index_dir)
    report = recall.run(index_dir, synthetic, queries, dim, plot, not no_peers, command_line())
    finish_report(report, as_json, save)


@bench_app.command("quality")
@handle_errors
def bench_quality(
    judgments: Path = typer.Option(..., "--judgments", help="Graded judgments JSONL (e.g. .bench/devdata/judgments.test.jsonl)."),
    index_dir: Path = IndexOption,
    no_peers: bool = typer.Option(False, "--no-peers", help="Skip bm25s, rank_bm25 and txtai."),
    no_txtai: bool = typer.Option(False, "--no-txtai", help="Skip txtai (it embeds the whole corpus)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use only the first N queries."),
    lexical: Optional[str] = typer.Option(None, "--lexical", help="Also run on a copy whose lexical store is on this backend (elasticsearch: SHOPLENS_ES_URL; opensearch: SHOPLENS_OS_URL), side by side."),
    vectors: Optional[str] = typer.Option(None, "--vectors", help="With --lexical: the copy's vector stores on this backend too (faiss, or the --lexical cluster: elasticsearch exact kNN or IVF on 7.10 and HNSW on 8+, opensearch HNSW)."),
    vector_index: Optional[str] = typer.Option(None, "--vector-index", help="With --vectors elasticsearch: the copy's vector index; on Elasticsearch 7.10 flat (exact, the default) or ivf (the query's nearest lists only), on 8+ hnsw (the default)."),
    device: str = DeviceOption,
    save: Optional[Path] = SaveOption,
    as_json: bool = JsonOption,
):
    """NDCG@10, MRR@10, P@10, R@100 for every ShopLens configuration and for bm25s, rank_bm25 and txtai."""
    from shoplens.benchmarks import quality

    report = quality.run(index_dir, judgments, not no_peers, not no_txtai, limit, command_line(), device, lexical, vectors,
                         vector_index)
    finish_report(report, as_json, save)


@bench_app.command("shoppers")
@handle_errors
def bench_shoppers(
    index_dir: Path = IndexOption,
    judgments: Optional[Path] = typer.Option(None, "--judgments", help="Graded judgments (default: benchmarks/shopper_judgments.jsonl)."),
    write_judgments: Optional[Path] = typer.Option(None, "--write-judgments", callback=output_file, help="First regenerate the judgments from benchmarks/shopper_queries.jsonl against this catalog."),
    rerank: bool = typer.Option(False, "--rerank", help="Let the index's reranker run too."),
    device: str = DeviceOption,
    save: Optional[Path] = SaveOption,
    as_json: bool = JsonOption,
):
    """NDCG@10 and each query's top 5 for the hand-written shopper queries: as typed, with spelling, with intent."""
    from shoplens.benchmarks import shoppers

    if write_judgments is not None:
        shoppers.write_judgments(write_judgments)
    report = shoppers.run(index_dir, judgments or shoppers.JUDGMENTS, device, rerank, command_line())
    if not as_json:
        for label, tops in report.extra["top5"].items():
            out.print(f"[bold]{label}[/bold]")
            for query, lines in tops.items():
                out.print(f"  {literal(query)}")
                for line in lines:
                    out.print(f"      {literal(line)}")
    finish_report(report, as_json, save)


@bench_app.command("scale")
@handle_errors
def bench_scale(
    index_dir: Path = IndexOption,
    sizes: str = typer.Option("10000,100000,1000000", "--sizes", help="Catalog sizes."),
    work_dir: Path = typer.Option(BENCH_DIR / "scale", "--work-dir", callback=output_folder),
    queries: int = typer.Option(200, "--queries", min=1),
    plot: Optional[Path] = typer.Option(BENCH_DIR / "scale.png", "--plot", callback=output_file),
    save: Optional[Path] = SaveOption,
    as_json: bool = JsonOption,
):
    """Build time, memory, size and latency at growing catalog sizes (synthetic products derived from INDEX)."""
    from shoplens.benchmarks import scale

    catalog_sizes = comma_numbers(sizes, "--sizes")
    require_index(index_dir)
    report = scale.run(index_dir, catalog_sizes, work_dir, queries, plot, command=command_line())
    finish_report(report, as_json, save)


@bench_app.command("rerank")
@handle_errors
def bench_rerank(
    index_dir: Path = IndexOption,
    devdata: Path = typer.Option(BENCH_DIR / "devdata", "--devdata", help="Output of `shoplens bench devdata`."),
    work_dir: Path = typer.Option(BENCH_DIR / "rerank", "--work-dir", callback=output_folder),
    trees: int = typer.Option(600, "--trees", min=1),
    depth: int = typer.Option(200, "--depth", min=1, help="Candidates reranked per query."),
    device: str = DeviceOption,
    save: Optional[Path] = SaveOption,
    as_json: bool = JsonOption,
):
    """The reranker with and without behaviour, on a shop without behaviour, and its cost per query."""
    from shoplens.benchmarks import rerank

    report = rerank.run(index_dir, devdata, work_dir, trees, depth, device, command_line())
    finish_report(report, as_json, save)


@bench_app.command("updates")
@handle_errors
def bench_updates(
    index_dir: Path = IndexOption,
    count: int = typer.Option(1000, "--count", min=1, help="Products changed per update."),
    events_file: Optional[Path] = typer.Option(None, "--events", help="An events file to fold (e.g. .bench/devdata/events.simulated.jsonl)."),
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="Catalog to rebuild from, for the comparison."),
    field_map: Optional[List[str]] = FieldMapOption,
    cold_rebuild: Optional[float] = typer.Option(None, "--cold-rebuild-seconds", min=0.001, max=10_000_000, help="Cold build time from `bench index`, for the ratio."),
    cold_report: Optional[Path] = typer.Option(None, "--cold-rebuild-from", help="Or: the saved `bench index --save` report to take it from."),
    work_dir: Path = typer.Option(BENCH_DIR / "updates", "--work-dir", callback=output_folder),
    searches: int = typer.Option(300, "--searches", min=1, help="Queries replayed idle and while updates are committed."),
    device: str = DeviceOption,
    save: Optional[Path] = SaveOption,
    as_json: bool = JsonOption,
):
    """Update-to-searchable time by kind of change vs a rebuild; events/s; search latency during writes."""
    from shoplens.benchmarks import updates

    require_index(index_dir)
    for option, path in (("--events", events_file), ("--catalog", catalog), ("--cold-rebuild-from", cold_report)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{option} {path} is not a file; check the path")
    if cold_rebuild is None and cold_report is not None:
        cold_rebuild = updates.cold_build_seconds(cold_report)
    report = updates.run(index_dir, work_dir, count, events_file, catalog, field_map, cold_rebuild, device,
                         command_line(), searches)
    finish_report(report, as_json, save)


@bench_app.command("serve")
@handle_errors
def bench_serve(
    index_dir: Path = IndexOption,
    work_dir: Path = typer.Option(BENCH_DIR / "serve", "--work-dir", callback=output_folder, help="Where the index copy and the server log go."),
    requests: int = typer.Option(200, "--requests", min=1, help="Most searches per load level."),
    seconds: float = typer.Option(60.0, "--seconds", min=0.1, help="Most seconds per load level."),
    count: int = typer.Option(1000, "--count", min=1, help="Products changed per update commit."),
    interval: float = typer.Option(3.0, "--interval", min=0.1, help="Seconds between update commits."),
    queries: int = typer.Option(200, "--queries", min=1, help="Derived queries replayed."),
    clients: str = typer.Option("1,2,4,8", "--clients", help="Concurrent clients per level, comma-separated."),
    warm_queries: str = typer.Option("0", "--warm-queries", help="The server's --warm-queries; several (0,3) run the server once each, to compare in one run."),
    before: Optional[Path] = typer.Option(None, "--before", help="Also run the server under this Python first (another checkout's venv, e.g. ../main/.venv/bin/python), to compare old and new code in one run."),
    writer_nice: str = typer.Option("0", "--writer-nice", help="The writer process's niceness increment (as `update --nice`); several (0,10) run the server once each, to compare in one run."),
    device: str = DeviceOption,
    save: Optional[Path] = SaveOption,
    as_json: bool = JsonOption,
):
    """`shoplens serve` under loopback load: searches/s and p50/p95/p99 by clients, idle and during updates."""
    from shoplens.benchmarks import serve
    from shoplens.common.errors import ConfigError

    levels = tuple(comma_numbers(clients, "--clients", MAX_CLIENTS))
    try:
        warm = tuple(int(part) for part in warm_queries.split(","))
    except ValueError:
        raise ConfigError(f"--warm-queries takes numbers such as 0,3; got {warm_queries!r}") from None
    if not warm or min(warm) < 0 or max(warm) > 20:
        raise ConfigError("--warm-queries takes numbers from 0 to 20, such as 0,3")
    try:
        nices = tuple(int(part) for part in writer_nice.split(","))
    except ValueError:
        nices = ()
    if not nices or min(nices) < 0 or max(nices) > 19:
        raise ConfigError(f"--writer-nice takes numbers from 0 to 19, such as 0,10; got {writer_nice!r}")
    if before is not None and not (before.is_file() and os.access(before, os.X_OK)):
        raise ConfigError(f"--before {before} is not an executable Python; give another checkout's .venv/bin/python")
    report = serve.run(index_dir, work_dir, requests, seconds, count, interval, queries, device, command_line(), levels,
                       warm, None if before is None else str(before), nices)
    finish_report(report, as_json, save)


@bench_app.command("textonly")
@handle_errors
def bench_textonly(
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="JSONL catalog (default: the bundled sample data/myntra-sample; 'myntra' for ../shared)."),
    field_map: Optional[List[str]] = typer.Option(None, "--map", help="canonical=column, as for `index`."),
    work_dir: Path = typer.Option(BENCH_DIR / "textonly", "--work-dir", callback=output_folder, help="Where the text-only catalog and index go."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Use only the first N products."),
    heads: Optional[Path] = typer.Option(None, "--heads", help="Projection heads to index with (e.g. from `train-encoder --text-only`)."),
    queries: int = typer.Option(400, "--queries", min=1, help="Derived queries (split train/validation/test)."),
    trees: int = typer.Option(600, "--trees", min=1, help="Most boosting rounds for the reranker."),
    seed: int = typer.Option(1, "--seed"),
    device: str = DeviceOption,
    save: Optional[Path] = SaveOption,
    as_json: bool = JsonOption,
):
    """A shop without photos: images withheld, indexed, derived judgments, reranker trained; NDCG@10 of
    BM25, dense, default hybrid, learned-fusion hybrid and hybrid + rerank on held-out queries."""
    from shoplens.benchmarks import myntra, textonly

    label = ""
    if catalog is None:
        catalog = Path(__file__).resolve().parent.parent / "data" / "myntra-sample" / "products.jsonl"
    elif str(catalog) == "myntra":
        catalog = myntra.SHARED / "products.jsonl.gz"
        field_map = field_map or myntra.FIELD_MAP
        label = myntra.ATTRIBUTION
    with RichProgress(enabled=not as_json) as progress:
        report = textonly.run(catalog, work_dir, field_map, limit, heads, queries, trees, seed=seed,
                              device="cpu" if device == "auto" else device, command=command_line(), label=label,
                              progress=progress)
    finish_report(report, as_json, save)


@bench_app.command("warmup")
@handle_errors
def bench_warmup(
    queries: Path = typer.Option(..., "--queries", help='The queries the first shoppers ask: one text a line, or JSONL {"text", "image"}.'),
    index_dir: Path = IndexOption,
    warm_up: int = typer.Option(100, "--warm-up", min=1, max=10_000, help="Warm-up queries (as `serve --warm-up`): the index's most shown ones, or --warm-up-file's."),
    warm_up_file: Optional[Path] = typer.Option(None, "--warm-up-file", help="Warm-up queries, one a line (plain text, or JSON lines with \"text\")."),
    lexical: Optional[str] = typer.Option(None, "--lexical", help="Run on two fresh copies on this cluster (elasticsearch: SHOPLENS_ES_URL; opensearch: SHOPLENS_OS_URL)."),
    vectors: Optional[str] = typer.Option(None, "--vectors", help="With --lexical: the copies' vector stores on this backend too."),
    k: int = typer.Option(10, "-k", min=1, max=1000),
    device: str = DeviceOption,
    save: Optional[Path] = SaveOption,
    as_json: bool = JsonOption,
):
    """A cold engine against one warmed with frequent queries (as `serve --warm-up` does before /ready):
    the first and second pass over the same queries, p50 to max, on fresh copies of the index."""
    from shoplens.benchmarks import warmup
    from shoplens.engine.warmup import read_query_file

    require_index(index_dir)
    if warm_up_file is not None:
        read_query_file(warm_up_file)  # a bad file is one line before any copy is made
    with RichProgress(enabled=not as_json) as progress:
        report_stage = progress.reporter()
        report = warmup.run(index_dir, queries, warm_up, warm_up_file, lexical, vectors, k, device, command_line(),
                            progress=lambda done, total: report_stage("warming up", done, total))
    finish_report(report, as_json, save)


@bench_app.command("startup")
@handle_errors
def bench_startup(
    index_dir: Path = IndexOption,
    query: str = typer.Option("red dress", "--query", callback=lambda text: _searchable(text, "--query"), help="The query each fresh process searches."),
    runs: int = typer.Option(5, "--runs", min=1, max=100, help="Fresh processes to time (after one to warm the page cache)."),
    save: Optional[Path] = SaveOption,
    as_json: bool = JsonOption,
):
    """A one-shot `shoplens search` as a fresh process: wall seconds, and import / open / warm / search stages."""
    from shoplens.benchmarks import startup
    from shoplens.indexers.index import IndexDirectory

    IndexDirectory(index_dir).require()
    report = startup.run(index_dir, query, runs, command_line())
    finish_report(report, as_json, save)


def comma_numbers(text: str, option: str, most: int | None = None) -> list[int]:
    """"1,2,4" as whole numbers of at least 1 (client counts, catalog sizes), and at most `most`."""
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        numbers = []
    if not numbers or min(numbers) < 1 or (most is not None and max(numbers) > most):
        bound = f"from 1 to {most:,}" if most is not None else "of at least 1"
        raise ConfigError(f"{option} takes whole numbers {bound}, comma-separated, such as 1,2,4; got {text!r}")
    return numbers


def require_index(index_dir: Path) -> None:
    """A missing or broken --index is a one-line error before a benchmark prepares anything."""
    from shoplens.indexers.index import IndexDirectory

    IndexDirectory(index_dir).current_version()


def _searchable(text: str, option: str) -> str:
    """A query every timed `shoplens search` process will take: refused here, not as a traceback when the
    first process exits 2."""
    from shoplens.common.errors import QueryError
    from shoplens.engine.query import SearchRequest, check_typed_text

    try:
        check_typed_text(text)
        SearchRequest(text=text).validate()
    except QueryError as exc:
        raise typer.BadParameter(f"{option}: {exc}") from None
    return text
