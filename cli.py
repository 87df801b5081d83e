"""`shoplens`: index a catalog, search it, and inspect the index, from the terminal.

This module only parses arguments and prints; the work happens in `engine`,
`indexers`, `rerank` and `benchmarks`. Errors a user can fix are printed as
one line on stderr with a non-zero exit code, never as a traceback.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from engine.errors import ShopLensError

app = typer.Typer(
    name="shoplens",
    help="Multimodal product search: index a catalog, search it by text or image, benchmark it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
out = Console()
err = Console(stderr=True)

DEFAULT_INDEX = "shoplens-index"
IndexOption = typer.Option(DEFAULT_INDEX, "--index", envvar="SHOPLENS_INDEX",
                           help="Index directory (or set SHOPLENS_INDEX).")
DeviceOption = typer.Option("auto", "--device", help="auto (GPU when there is one), cpu or cuda.")
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON on stdout.")


def handle_errors(function: Callable) -> Callable:
    """Print a ShopLensError as one line and exit non-zero, instead of a traceback."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ShopLensError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


class RichProgress:
    """Progress bars on stderr, one per stage of a long job."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and err.is_terminal or os.environ.get("SHOPLENS_PROGRESS") == "1"
        self._progress: Progress | None = None

    def __enter__(self):
        if self.enabled:
            self._progress = Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                                      TimeElapsedColumn(), TimeRemainingColumn(), console=err, transient=False)
            self._progress.start()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.stop()

    def stage(self, name: str, total: int | None):
        if self._progress is None:
            return lambda done: None
        task = self._progress.add_task(name, total=total)
        return lambda done: self._progress.advance(task, done)

    def reporter(self) -> Callable[[str, int, int], None]:
        """A (stage, done, total) callback, for code that reports totals rather than increments."""
        tasks: dict[str, tuple[Callable[[int], None], list[int]]] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = (self.stage(stage, total), [0])
            advance, seen = tasks[stage]
            advance(done - seen[0])
            seen[0] = done

        return report


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def parse_field_maps(values: list[str] | None) -> dict[str, list[str]]:
    from indexers.catalog import parse_field_map

    return parse_field_map(values or [])


# -- index -------------------------------------------------------------------------


@app.command()
@handle_errors
def index(
    catalog: Path = typer.Argument(..., help="Catalog file: .jsonl, .jsonl.gz, .csv or .parquet."),
    index_dir: Path = IndexOption,
    field_map: Optional[List[str]] = typer.Option(None, "--map", help="canonical=column[,column]: map a catalog's column names, e.g. --map title=productDisplayName --map category=masterCategory,subCategory."),
    strict: bool = typer.Option(False, "--strict", help="Fail on any bad row and leave the previous index untouched."),
    model: str = typer.Option("shoplens-lite0-minilm", "--model", help="open_clip model name (default: the offline ShopLens model)."),
    pretrained: Optional[str] = typer.Option(None, "--pretrained", help="open_clip weights tag or checkpoint path (heads file for the default model)."),
    device: str = DeviceOption,
    lexical: str = typer.Option("tantivy", "--lexical", help="Lexical backend: tantivy (embedded) or elasticsearch (SHOPLENS_ES_URL)."),
    vector_index: str = typer.Option("auto", "--vector-index", help="auto (exact below 20,000 products, HNSW above), flat, hnsw, ivf or ivfpq."),
    image_weight: float = typer.Option(0.5, "--image-weight", help="Share of the image embedding in a product's vector (0..1)."),
    keep_versions: int = typer.Option(10, "--keep-versions", help="How many committed versions to keep for rollback."),
    as_json: bool = JsonOption,
):
    """Index a catalog (a new version of INDEX; unchanged products reuse their embeddings)."""
    from indexers.writer import WriteOptions, build_index, check_options

    options = WriteOptions(model=model, pretrained=pretrained, device=device, lexical_backend=lexical,
                           vector_config={"kind": vector_index, "image_weight": image_weight},
                           keep_versions=keep_versions)
    check_options(options)
    with RichProgress(enabled=not as_json) as progress:
        report = build_index(catalog, index_dir, options, parse_field_maps(field_map), strict=strict, progress=progress)
    if as_json:
        print_json(report.to_dict())
        return
    print_commit(report, index_dir)


def print_commit(report, index_dir: Path) -> None:
    out.print(f"[bold green]version {report.version}[/] of {index_dir}: {report.products:,} products "
              f"({report.added:,} added, {report.updated:,} updated, {report.unchanged:,} unchanged, "
              f"{report.deleted:,} deleted) in {report.seconds.get('total', 0):.1f} s")
    out.print(f"encoded {report.texts_encoded:,} texts and {report.images_encoded:,} images; "
              f"{report.embeddings_reused:,} embeddings reused from the cache")
    if report.rejects:
        err.print(f"[yellow]{len(report.rejects)} bad row(s) skipped[/], written to {report.rejects_path}:")
        for reject in report.rejects[:5]:
            err.print(f"  {reject.describe()}", highlight=False)
        if len(report.rejects) > 5:
            err.print(f"  ... and {len(report.rejects) - 5} more")
    if report.image_problems:
        err.print(f"[yellow]{len(report.image_problems)} image(s) could not be used[/]; those products are indexed from their text:")
        for problem in report.image_problems[:5]:
            err.print(f"  id {problem.id}: {problem.reason} ({problem.path})", highlight=False)
        if len(report.image_problems) > 5:
            err.print(f"  ... and {len(report.image_problems) - 5} more")
    if report.compacted:
        compacted = report.compacted
        out.print(f"compacted into version {compacted.version}: {compacted.rows_before:,} rows -> "
                  f"{compacted.rows_after:,}")


# -- search ------------------------------------------------------------------------


def _weights(text: str) -> tuple[float, float]:
    from engine.errors import QueryError

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
    from engine.query import SearchRequest
    from engine.search import SearchEngine

    request = SearchRequest(text=query, image=image, k=k, page=page, filters=list(filters or []), mode=mode,
                            fusion=fusion, rrf_k=rrf_k, weights=_weights(weights), normalization=normalization,
                            candidates=candidates, rerank=False if no_rerank else None, explain=explain)
    request.validate()
    engine = SearchEngine(index_dir, device=device, model=model, pretrained=pretrained)
    response = engine.search(request)
    if as_json:
        print_json(response.to_json())
        return
    from engine.display import explain_view, results_table

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
    from engine.search import SearchEngine
    from engine.shell import run_shell

    engine = SearchEngine(index_dir, device=device)
    run_shell(engine, out, k=k, thumbnails=thumbnails, history_path=Path.home() / ".shoplens_history")


# -- info --------------------------------------------------------------------------


@app.command()
@handle_errors
def info(index_dir: Path = IndexOption, as_json: bool = JsonOption):
    """What the index holds: model, sizes, backends, counts, versions, reranker."""
    from indexers.inspect import describe_index

    details = describe_index(index_dir)
    if as_json:
        print_json(details)
        return
    table = Table(show_header=False, title=f"ShopLens index {index_dir}", title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in details.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items() if not isinstance(v, (dict, list)))
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        table.add_row(key, str(value))
    out.print(table)


# -- train-encoder -----------------------------------------------------------------


@app.command("train-encoder")
@handle_errors
def train_encoder(
    catalog: Path = typer.Argument(..., help="Catalog with images and titles to train on."),
    out_path: Path = typer.Option(Path("shoplens-heads.safetensors"), "--out", help="Where to save the trained heads."),
    field_map: Optional[List[str]] = typer.Option(None, "--map", help="canonical=column, as for `index`."),
    holdout: int = typer.Option(1000, "--holdout", help="Products held out for the reported metrics."),
    validation: int = typer.Option(1000, "--validation", help="Products for early stopping."),
    epochs: int = typer.Option(40, "--epochs", help="Most epochs (early stopping on validation)."),
    head: str = typer.Option("mlp", "--head", help="Projection head: mlp or linear."),
    embed_dim: int = typer.Option(256, "--embed-dim", help="Dimension of the joint space."),
    max_train: Optional[int] = typer.Option(None, "--max-train", help="Use at most this many training pairs."),
    type_field: Optional[str] = typer.Option(None, "--type-field", help="Attribute holding the product type (auto-detected)."),
    colour_field: Optional[str] = typer.Option(None, "--colour-field", help="Attribute holding the colour (auto-detected)."),
    cache_dir: Path = typer.Option(Path(".shoplens-cache"), "--cache-dir", help="Cache of tower features (reruns are quick)."),
    device: str = DeviceOption,
    as_json: bool = JsonOption,
):
    """Train the default model's projection heads on a catalog's image-title pairs."""
    from indexers.encoders.training import TrainConfig
    from indexers.encoders.training import train_encoder as run_training

    config = TrainConfig(holdout=holdout, validation=validation, epochs=epochs, head=head, embed_dim=embed_dim,
                         max_train=max_train, type_field=type_field, colour_field=colour_field)
    with RichProgress(enabled=not as_json) as progress:
        result = run_training(catalog, out_path, config, parse_field_maps(field_map), device, cache_dir,
                              progress.reporter())
    if as_json:
        print_json(result.to_dict())
        return
    out.print(f"trained on {result.pairs_train:,} pairs (best epoch {result.best_epoch}), saved {result.output}")
    out.print(f"held-out ({result.pairs_heldout:,} products): " + ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items()))
    out.print(f"use it with: shoplens index CATALOG --pretrained {result.output}")


# -- incremental updates ------------------------------------------------------------


@app.command()
@handle_errors
def update(
    delta: Path = typer.Argument(..., help="Products to add or change (.jsonl, .csv, .parquet); rows for known ids are patches."),
    index_dir: Path = IndexOption,
    field_map: Optional[List[str]] = typer.Option(None, "--map", help="canonical=column, as for `index`."),
    strict: bool = typer.Option(False, "--strict", help="Fail on any bad row and change nothing."),
    device: str = DeviceOption,
    as_json: bool = JsonOption,
):
    """Upsert new and changed products (one new version; only changed content is re-encoded)."""
    from indexers.updates import apply_delta

    with RichProgress(enabled=not as_json) as progress:
        report = apply_delta(index_dir, delta, field_map, strict=strict, device=device, progress=progress)
    print_json(report.to_dict()) if as_json else print_commit(report, index_dir)


@app.command()
@handle_errors
def delete(
    ids: Optional[str] = typer.Option(None, "--ids", help="Comma-separated product ids."),
    ids_file: Optional[Path] = typer.Option(None, "--file", help="File of ids, one a line (or JSONL with an id)."),
    index_dir: Path = IndexOption,
    strict: bool = typer.Option(False, "--strict", help="Fail if any id is unknown, and delete nothing."),
    as_json: bool = JsonOption,
):
    """Delete products from every store at once (one new version)."""
    from engine.errors import ConfigError
    from indexers.updates import delete_products, read_ids

    if (ids is None) == (ids_file is None):
        raise ConfigError("give --ids 1,2,3 or --file ids.txt (one of them)")
    wanted = ids.split(",") if ids is not None else read_ids(ids_file)
    report = delete_products(index_dir, wanted, strict=strict, source=str(ids_file or "--ids"))
    print_json(report.to_dict()) if as_json else print_commit(report, index_dir)


@app.command()
@handle_errors
def watch(
    inbox: Path = typer.Argument(..., help="Directory where delta, *.delete.txt and *.events.jsonl files land."),
    index_dir: Path = IndexOption,
    window: float = typer.Option(10.0, "--window", help="Seconds a batch of normal changes may wait."),
    priority_window: float = typer.Option(1.0, "--priority-window", help="Seconds price/availability changes and deletes may wait."),
    max_rows: int = typer.Option(5000, "--max-rows", help="A batch this large commits at once."),
    poll: float = typer.Option(0.5, "--poll", help="Seconds between looks at the inbox."),
    field_map: Optional[List[str]] = typer.Option(None, "--map", help="canonical=column, as for `index`."),
    once: bool = typer.Option(False, "--once", help="Apply what is in the inbox now, then exit."),
    as_json: bool = JsonOption,
):
    """Keep applying files as they land in INBOX; each batch is one commit. Ctrl-C stops."""
    from indexers.watch import WatchConfig, Watcher

    def report(record: dict) -> None:
        if as_json:
            sys.stdout.write(json.dumps(record) + "\n")
            sys.stdout.flush()
        elif record.get("error"):
            err.print(f"[yellow]{record['queue']}[/]: {record['error']}", highlight=False)
        else:
            details = ", ".join(f"{k} {v}" for k, v in record.items() if k not in ("queue", "version"))
            out.print(f"[bold green]version {record['version']}[/] ({record['queue']}): {details}")

    config = WatchConfig(window_seconds=window, priority_window_seconds=priority_window, max_batch_rows=max_rows,
                         poll_seconds=poll, field_map=list(field_map or []))
    watcher = Watcher(index_dir, inbox, config, on_commit=report)
    if not as_json and not once:
        out.print(f"watching {inbox} (Ctrl-C to stop)")
    try:
        watcher.run(once=once)
    except KeyboardInterrupt:
        watcher.step(force=True)


@app.command()
@handle_errors
def versions(
    index_dir: Path = IndexOption,
    keep: Optional[int] = typer.Option(None, "--keep", help="From now on keep this many versions (a new version records it)."),
    as_json: bool = JsonOption,
):
    """Committed versions kept for rollback, newest first, with what changed."""
    from indexers.maintenance import list_versions, set_retention

    if keep is not None:
        set_retention(index_dir, keep)
    rows = list_versions(index_dir)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"versions of {index_dir}", title_justify="left")
    for column in ("version", "kind", "created", "products", "change"):
        table.add_column(column, justify="right" if column in ("version", "products") else "left", overflow="fold")
    for row in rows:
        change = ", ".join(f"{k} {v}" for k, v in row["change"].items() if v not in (0, None, "", []) and k != "catalog")
        table.add_row(f"{row['version']}{' *' if row['current'] else ''}", row["kind"], row["created_at"],
                      f"{row['products']:,}", change)
    out.print(table)


@app.command()
@handle_errors
def rollback(
    version: int = typer.Argument(..., help="The version to restore (see `shoplens versions`)."),
    index_dir: Path = IndexOption,
    as_json: bool = JsonOption,
):
    """Restore an earlier version (as a new version, so the rollback can itself be undone)."""
    from indexers.maintenance import rollback as run_rollback

    new_version = run_rollback(index_dir, version)
    if as_json:
        print_json({"version": new_version, "restored": version})
        return
    out.print(f"[bold green]version {new_version}[/]: restored version {version}")


@app.command()
@handle_errors
def check(
    index_dir: Path = IndexOption,
    deep: int = typer.Option(0, "--deep", help="Also re-encode this many random products and compare embeddings."),
    version: Optional[int] = typer.Option(None, "--version", help="Check this version instead of the current one."),
    as_json: bool = JsonOption,
):
    """Verify that every store holds the same products at the same version; non-zero exit on any difference."""
    from indexers.maintenance import check_index

    report = check_index(index_dir, deep=deep, version=version)
    if as_json:
        print_json(report.to_dict())
    else:
        facts = ", ".join(f"{k} {v}" for k, v in report.facts.items())
        if report.ok:
            out.print(f"[bold green]ok[/]: version {report.version}: {facts}")
        else:
            for problem in report.problems:
                err.print(f"[bold red]problem:[/] {problem}", highlight=False)
        for warning in report.warnings:
            err.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
@handle_errors
def compact(index_dir: Path = IndexOption, as_json: bool = JsonOption):
    """Rewrite the stores without deleted and replaced rows, reclaiming their space."""
    from indexers.maintenance import compact as run_compact

    report = run_compact(index_dir)
    if as_json:
        print_json(report.to_dict())
        return
    out.print(f"[bold green]version {report.version}[/]: {report.rows_before:,} rows -> {report.rows_after:,}; "
              f"{report.bytes_before / 2 ** 20:.1f} MB -> {report.bytes_after / 2 ** 20:.1f} MB")


# -- behaviour and reranking -------------------------------------------------------


@app.command()
@handle_errors
def events(
    events_file: Path = typer.Argument(..., help="Behaviour events, JSONL: {ts, type: impression|click|cart|order, id, query?, position?}."),
    index_dir: Path = IndexOption,
    strict: bool = typer.Option(False, "--strict", help="Fail on any bad line and fold nothing."),
    force: bool = typer.Option(False, "--force", help="Fold a file even if it was folded before."),
    as_json: bool = JsonOption,
):
    """Validate behaviour events and fold them into the index's aggregates (one new version)."""
    from rerank.behaviour import apply_events

    report = apply_events(index_dir, events_file, strict=strict, force=force)
    if as_json:
        print_json(report.to_dict())
        return
    if report.version is None:
        out.print("no valid events to fold")
    else:
        kinds = ", ".join(f"{count:,} {name}s" for name, count in report.by_type.items())
        out.print(f"[bold green]version {report.version}[/]: folded {report.folded:,} events ({kinds}) "
                  f"in {report.seconds:.2f} s, {report.events_per_second:,.0f} events/s")
    if report.rejects:
        err.print(f"[yellow]{len(report.rejects)} bad line(s) skipped[/], written to {report.rejects_path}:")
        for reject in report.rejects[:5]:
            err.print(f"  {reject.describe()}", highlight=False)


@app.command("train-ranker")
@handle_errors
def train_ranker(
    judgments: Optional[Path] = typer.Argument(None, help='Graded judgments JSONL {"query", "id", "grade"}, or TREC qrels with --topics.'),
    topics: Optional[Path] = typer.Option(None, "--topics", help="Query texts for TREC qrels: qid<TAB>text per line."),
    from_events: Optional[Path] = typer.Option(None, "--from-events", help="Learn from behaviour logs alone (position-bias corrected labels)."),
    validation: Optional[Path] = typer.Option(None, "--validation", help="Judgments for early stopping (default: 20% of the queries)."),
    index_dir: Path = IndexOption,
    depth: int = typer.Option(200, "--depth", help="Candidates per query (the depth reranked at search time)."),
    trees: int = typer.Option(600, "--trees", help="Most boosting rounds (early stopping picks the best)."),
    no_behaviour: bool = typer.Option(False, "--no-behaviour", help="Train without behaviour features."),
    continue_training: bool = typer.Option(False, "--continue", help="Continue from the index's current model (refresh with new data)."),
    device: str = DeviceOption,
    as_json: bool = JsonOption,
):
    """Train the XGBoost LambdaMART reranker and save it in the index (a new version)."""
    from rerank.judgments import JudgmentsError, load_judgments
    from rerank.training import RankerConfig
    from rerank.training import train_ranker as run_training

    if (judgments is None) == (from_events is None):
        raise JudgmentsError("give a judgments file or --from-events EVENTS (one of them)")
    config = RankerConfig(depth=depth, n_estimators=trees, use_behaviour=not no_behaviour, device=device)
    extra: dict[str, Any] = {}
    if from_events is not None:
        from rerank.behaviour import BehaviourStats, fold, read_events
        from rerank.labels import labels_from_behaviour

        stats = fold(BehaviourStats.empty(), read_events(from_events))
        labeled, model = labels_from_behaviour(stats)
        if len(labeled) < 2:
            raise JudgmentsError(f"{from_events.name} has clicks for {len(labeled)} quer(ies); at least two are needed")
        judged, source = labeled, f"events:{from_events.name}"
        extra["position_bias"] = {"model": "PBM fitted by EM", "examination": [round(float(x), 4) for x in model.examination[:20]],
                                  "iterations": model.iterations}
    else:
        judged, source = load_judgments(judgments, topics), f"judgments:{judgments.name}"
    validation_judgments = load_judgments(validation) if validation else None
    with RichProgress(enabled=not as_json) as progress:
        report = run_training(index_dir, judged, config, validation_judgments, source, progress.reporter(),
                              continue_training, extra)
    if as_json:
        print_json(report.to_dict())
        return
    out.print(f"[bold green]version {report.version}[/]: reranker trained on {report.queries_train} queries "
              f"({report.rows:,} rows), validated on {report.queries_validation}; best round {report.best_iteration}, "
              f"validation NDCG@10 {report.validation['ndcg@10']:.4f}; device {report.device}; "
              f"features {report.seconds_features:.1f} s, training {report.seconds_training:.1f} s")


@app.command("eval")
@handle_errors
def eval_command(
    judgments: Path = typer.Argument(..., help='Graded judgments JSONL {"query", "id", "grade"}, or TREC qrels with --topics.'),
    topics: Optional[Path] = typer.Option(None, "--topics", help="Query texts for TREC qrels."),
    index_dir: Path = IndexOption,
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Write one TREC run file per system here."),
    device: str = DeviceOption,
    as_json: bool = JsonOption,
):
    """NDCG@10, MRR@10, P@10 and Recall@100 for BM25, dense, hybrid and hybrid + rerank on the same queries."""
    from engine.search import SearchEngine
    from rerank.evaluate import METRICS, evaluate, write_trec_runs
    from rerank.judgments import load_judgments

    judged = load_judgments(judgments, topics)
    engine = SearchEngine(index_dir, device=device)
    with RichProgress(enabled=not as_json) as progress:
        evaluation = evaluate(engine, judged, progress=progress.reporter())
    paths = write_trec_runs(evaluation, run_dir) if run_dir else []
    if as_json:
        print_json({**evaluation.to_dict(), "run_files": [str(p) for p in paths]})
        return
    table = Table(title=f"{evaluation.queries} queries, {judgments.name}", title_justify="left")
    table.add_column("system")
    for metric in METRICS:
        table.add_column(metric, justify="right")
    table.add_column("mean ms", justify="right")
    for system, values in evaluation.metrics.items():
        table.add_row(system, *[f"{values[m]:.4f}" for m in METRICS], f"{evaluation.latency_ms[system]:.1f}")
    out.print(table)
    for path in paths:
        out.print(f"wrote {path}")


# -- bench -------------------------------------------------------------------------

bench_app = typer.Typer(help="Benchmarks: measured figures printed as tables (code in benchmarks/).",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")
BENCH_DIR = Path(".bench")


def finish_report(report, as_json: bool, save: Optional[Path]) -> None:
    from benchmarks.common import save_report

    save_report(report, save)
    if as_json:
        print_json(report.to_json())
    else:
        report.render(out)


@bench_app.command("index")
@handle_errors
def bench_index(
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="Catalog to index (default: the Myntra catalog in ../shared)."),
    field_map: Optional[List[str]] = typer.Option(None, "--map", help="canonical=column, as for `index`."),
    work_dir: Path = typer.Option(BENCH_DIR / "index", "--work-dir", help="Where the benchmark index is built."),
    queries: int = typer.Option(1000, "--queries", help="Text queries to time."),
    image_queries: int = typer.Option(200, "--image-queries", help="Image queries to time."),
    threads: int = typer.Option(1, "--threads", help="Threads for query encoding and FAISS."),
    vector_index: str = typer.Option("auto", "--vector-index", help="Vector index kind."),
    device: str = DeviceOption,
    save: Optional[Path] = typer.Option(None, "--save", help="Also write the report as JSON here."),
    as_json: bool = JsonOption,
):
    """Index a whole catalog cold, then time searches: products/s, size on disk, p50/p99 per stage."""
    from benchmarks import indexing, myntra

    if catalog is None:
        catalog = myntra.prepare(BENCH_DIR / "myntra")
        field_map = field_map or myntra.FIELD_MAP
        label = myntra.ATTRIBUTION
    else:
        label = str(catalog)
    command = _command_line()
    with RichProgress(enabled=not as_json) as progress:
        report = indexing.run(catalog, work_dir, field_map or [], queries, image_queries, threads, device,
                              vector_index, label, progress, command=command)
    finish_report(report, as_json, save)


def _command_line() -> str:
    return "shoplens " + " ".join(sys.argv[1:])


@bench_app.command("devdata")
@handle_errors
def bench_devdata(
    index_dir: Path = IndexOption,
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="The catalog the index was built from (default: Myntra in ../shared)."),
    field_map: Optional[List[str]] = typer.Option(None, "--map", help="canonical=column, as for `index`."),
    out_dir: Path = typer.Option(BENCH_DIR / "devdata", "--out", help="Where to write queries, judgments and events."),
    queries: int = typer.Option(1000, "--queries", help="Derived queries (split train/validation/test/log)."),
    sessions: int = typer.Option(20000, "--sessions", help="Simulated search sessions."),
    seed: int = typer.Option(1, "--seed"),
    as_json: bool = JsonOption,
):
    """Write DERIVED queries and graded judgments and SIMULATED behaviour events for an indexed catalog."""
    from benchmarks import devdata, myntra

    if catalog is None:
        catalog = myntra.prepare(BENCH_DIR / "myntra")
        field_map = field_map or myntra.FIELD_MAP
    summary = devdata.build(catalog, index_dir, out_dir, field_map, queries, sessions, seed)
    if as_json:
        print_json(summary)
    else:
        out.print(f"wrote {out_dir}: queries {summary['queries']}, {summary['events']:,} simulated events "
                  f"from {summary['sessions']:,} sessions")


@bench_app.command("latency")
@handle_errors
def bench_latency(
    queries: Path = typer.Option(..., "--queries", help='One text query a line, or JSONL {"text", "image"}.'),
    index_dir: Path = IndexOption,
    k: int = typer.Option(10, "-k"),
    clients: str = typer.Option("1,2,4", "--clients", help="Concurrent client counts to try."),
    threads: int = typer.Option(1, "--threads", help="Threads for query encoding and FAISS."),
    no_rerank: bool = typer.Option(False, "--no-rerank"),
    device: str = DeviceOption,
    save: Optional[Path] = typer.Option(None, "--save", help="Also write the report as JSON here."),
    as_json: bool = JsonOption,
):
    """Replay queries: per-stage and end-to-end p50/p95/p99 and throughput, one and several clients."""
    from benchmarks import latency

    counts = [int(c) for c in clients.split(",") if c.strip()]
    report = latency.run(index_dir, queries, k, counts, threads, device, not no_rerank, _command_line())
    finish_report(report, as_json, save)


@bench_app.command("recall")
@handle_errors
def bench_recall(
    index_dir: Optional[Path] = typer.Option(None, "--index", envvar="SHOPLENS_INDEX", help="Index whose product vectors to use (omit for synthetic only)."),
    synthetic: int = typer.Option(1_000_000, "--synthetic", help="Size of the synthetic vector set (0 to skip)."),
    queries: int = typer.Option(1000, "--queries"),
    dim: Optional[int] = typer.Option(None, "--dim", help="Synthetic dimension (default: the index's, else 256)."),
    plot: Optional[Path] = typer.Option(BENCH_DIR / "recall.png", "--plot", help="Recall-vs-throughput PNG."),
    no_peers: bool = typer.Option(False, "--no-peers", help="Skip hnswlib."),
    save: Optional[Path] = typer.Option(None, "--save"),
    as_json: bool = JsonOption,
):
    """Approximate vs exact search: recall@10/@100 and queries/s for HNSW, IVF and IVF-PQ settings, and hnswlib."""
    from benchmarks import recall

    if index_dir is not None:
        from indexers.index import IndexDirectory

        IndexDirectory(index_dir).require()
    report = recall.run(index_dir, synthetic, queries, dim, plot, not no_peers, _command_line())
    finish_report(report, as_json, save)


@bench_app.command("quality")
@handle_errors
def bench_quality(
    judgments: Path = typer.Option(..., "--judgments", help="Graded judgments JSONL (e.g. .bench/devdata/judgments.test.jsonl)."),
    index_dir: Path = IndexOption,
    no_peers: bool = typer.Option(False, "--no-peers", help="Skip bm25s, rank_bm25 and txtai."),
    no_txtai: bool = typer.Option(False, "--no-txtai", help="Skip txtai (it embeds the whole corpus)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use only the first N queries."),
    device: str = DeviceOption,
    save: Optional[Path] = typer.Option(None, "--save"),
    as_json: bool = JsonOption,
):
    """NDCG@10, MRR@10, P@10, R@100 for every ShopLens configuration and for bm25s, rank_bm25 and txtai."""
    from benchmarks import quality

    report = quality.run(index_dir, judgments, not no_peers, not no_txtai, limit, _command_line(), device)
    finish_report(report, as_json, save)


@bench_app.command("scale")
@handle_errors
def bench_scale(
    index_dir: Path = IndexOption,
    sizes: str = typer.Option("10000,100000,1000000", "--sizes", help="Catalog sizes."),
    work_dir: Path = typer.Option(BENCH_DIR / "scale", "--work-dir"),
    queries: int = typer.Option(200, "--queries"),
    plot: Optional[Path] = typer.Option(BENCH_DIR / "scale.png", "--plot"),
    save: Optional[Path] = typer.Option(None, "--save"),
    as_json: bool = JsonOption,
):
    """Build time, memory, size and latency at growing catalog sizes (synthetic products derived from INDEX)."""
    from benchmarks import scale

    report = scale.run(index_dir, [int(s) for s in sizes.split(",")], work_dir, queries, plot, command=_command_line())
    finish_report(report, as_json, save)


@bench_app.command("rerank")
@handle_errors
def bench_rerank(
    index_dir: Path = IndexOption,
    devdata: Path = typer.Option(BENCH_DIR / "devdata", "--devdata", help="Output of `shoplens bench devdata`."),
    work_dir: Path = typer.Option(BENCH_DIR / "rerank", "--work-dir"),
    trees: int = typer.Option(600, "--trees"),
    depth: int = typer.Option(200, "--depth", help="Candidates reranked per query."),
    device: str = DeviceOption,
    save: Optional[Path] = typer.Option(None, "--save"),
    as_json: bool = JsonOption,
):
    """The reranker with and without behaviour, on a shop without behaviour, and its cost per query."""
    from benchmarks import rerank

    report = rerank.run(index_dir, devdata, work_dir, trees, depth, device, _command_line())
    finish_report(report, as_json, save)


@bench_app.command("updates")
@handle_errors
def bench_updates(
    index_dir: Path = IndexOption,
    count: int = typer.Option(1000, "--count", help="Products changed per update."),
    events_file: Optional[Path] = typer.Option(None, "--events", help="An events file to fold (e.g. .bench/devdata/events.simulated.jsonl)."),
    catalog: Optional[Path] = typer.Option(None, "--catalog", help="Catalog to rebuild from, for the comparison."),
    field_map: Optional[List[str]] = typer.Option(None, "--map"),
    cold_rebuild: Optional[float] = typer.Option(None, "--cold-rebuild-seconds", help="Cold build time from `bench index`, for the ratio."),
    cold_report: Optional[Path] = typer.Option(None, "--cold-rebuild-from", help="Or: the saved `bench index --save` report to take it from."),
    work_dir: Path = typer.Option(BENCH_DIR / "updates", "--work-dir"),
    searches: int = typer.Option(300, "--searches", help="Queries replayed idle and while updates are committed."),
    device: str = DeviceOption,
    save: Optional[Path] = typer.Option(None, "--save"),
    as_json: bool = JsonOption,
):
    """Update-to-searchable time by kind of change vs a rebuild; events/s; search latency during writes."""
    from benchmarks import updates

    if cold_rebuild is None and cold_report is not None:
        cold_rebuild = updates.cold_build_seconds(cold_report)
    report = updates.run(index_dir, work_dir, count, events_file, catalog, field_map, cold_rebuild, device,
                         _command_line(), searches)
    finish_report(report, as_json, save)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()


if __name__ == "__main__":
    main()
