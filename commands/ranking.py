"""Commands that train and evaluate models: the encoder's heads, the reranker, offline evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from shoplens.commands.base import (DeviceOption, FieldMapOption, IndexOption, JsonOption, RichProgress, app,
                                    handle_errors, literal, out, output_file, output_folder, parse_field_maps,
                                    print_json, show)


# -- train-encoder -----------------------------------------------------------------


@app.command("train-encoder")
@handle_errors
def train_encoder(
    catalog: Path = typer.Argument(..., help="Catalog to train on: image-title pairs, or text-only pairs when it has no images."),
    out_path: Path = typer.Option(Path("shoplens-heads.safetensors"), "--out", callback=output_file, help="Where to save the trained heads."),
    field_map: Optional[List[str]] = FieldMapOption,
    holdout: int = typer.Option(1000, "--holdout", help="Products held out for the reported metrics."),
    validation: int = typer.Option(1000, "--validation", help="Products for early stopping."),
    epochs: int = typer.Option(40, "--epochs", help="Most epochs (early stopping on validation)."),
    head: str = typer.Option("mlp", "--head", help="Projection head: mlp or linear."),
    embed_dim: int = typer.Option(256, "--embed-dim", help="Dimension of the joint space."),
    max_train: Optional[int] = typer.Option(None, "--max-train", help="Use at most this many training pairs."),
    type_field: Optional[str] = typer.Option(None, "--type-field", help="Attribute holding the product type (auto-detected)."),
    colour_field: Optional[str] = typer.Option(None, "--colour-field", help="Attribute holding the colour (auto-detected)."),
    cache_dir: Path = typer.Option(Path(".shoplens-cache"), "--cache-dir", callback=output_folder, help="Cache of tower features (reruns are quick)."),
    text_only: bool = typer.Option(False, "--text-only", help="Adapt the text head on pairs of each product's title and its other fields (automatic for a catalog without images)."),
    device: str = DeviceOption,
    as_json: bool = JsonOption,
):
    """Train the default model's projection heads on a catalog's image-title pairs, or, for a catalog without
    photos, adapt the text head on (title, category + attributes + description) pairs."""
    from shoplens.training.encoder import TrainConfig
    from shoplens.training.encoder import train_encoder as run_training

    config = TrainConfig(holdout=holdout, validation=validation, epochs=epochs, head=head, embed_dim=embed_dim,
                         max_train=max_train, type_field=type_field, colour_field=colour_field, text_only=text_only)
    with RichProgress(enabled=not as_json) as progress:
        result = run_training(catalog, out_path, config, parse_field_maps(field_map), device, cache_dir,
                              progress.reporter())
    if as_json:
        print_json(result.to_dict())
        return
    out.print(f"trained on {result.pairs_train:,} {result.pairs} pairs (best epoch {result.best_epoch}), saved {literal(result.output)}")
    out.print(f"held-out ({result.pairs_heldout:,} products): " + ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items()))
    if result.metrics_before:
        out.print("held-out with the shipped heads: " + ", ".join(f"{k} {v:.3f}" for k, v in result.metrics_before.items()))
    out.print(f"use it with: shoplens index CATALOG --pretrained {literal(result.output)}")


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
    stop_tolerance: float = typer.Option(0.0, "--stop-tolerance", help="Keep the first round whose validation NDCG@10 is within this of the best round's: fewer trees, faster reranking, a little NDCG given up (default 0: the best round)."),
    no_behaviour: bool = typer.Option(False, "--no-behaviour", help="Train without behaviour features."),
    continue_training: bool = typer.Option(False, "--continue", help="Continue from the index's current model (refresh with new data)."),
    force: bool = typer.Option(False, "--force", help="Commit the new model even when it ranks held-out queries worse than the current order."),
    keep_fusion: bool = typer.Option(False, "--keep-fusion", help="Keep the index's fusion plan instead of learning one from the judgments."),
    gain: str = typer.Option("linear", "--gain", help="LambdaMART's gain per grade: linear (the grade, as eval's NDCG@10 counts it) or exponential (2^grade - 1)."),
    device: str = DeviceOption,
    as_json: bool = JsonOption,
):
    """Train the XGBoost LambdaMART reranker (and the fusion plan) and save them in the index (a new version).

    The new model is checked on held-out queries (never trained or early-stopped
    on) against the current order (the live model, or hybrid without one); it is
    committed only when its NDCG@10 is not more than 0.005 below, unless --force.
    Judgments may mix text, photo and text + photo queries: each kind is checked
    on its own, and the model reranks only the kinds where it is not worse than
    the fused order (for photo kinds, also the best-judged product's hit@1).
    """
    from shoplens.engine.learning import train_ranker as run_training
    from shoplens.rerank.judgments import JudgmentsError, load_judgments
    from shoplens.rerank.training import RankerConfig, queries_from_events, queries_from_judgments

    if (judgments is None) == (from_events is None):
        raise JudgmentsError("give a judgments file or --from-events EVENTS (one of them)")
    config = RankerConfig(depth=depth, n_estimators=trees, use_behaviour=not no_behaviour, device=device, gain=gain,
                          stop_tolerance=stop_tolerance)
    queries = queries_from_events(from_events) if from_events is not None else queries_from_judgments(judgments, topics)
    validation_judgments = load_judgments(validation) if validation else None
    with RichProgress(enabled=not as_json) as progress:
        report = run_training(index_dir, queries.judgments, config, validation_judgments, queries.source,
                              progress.reporter(), continue_training, queries.meta, force=force,
                              learn_fusion=not keep_fusion)
    if as_json:
        print_json(report.to_dict())
        return
    print_ranker_report(report)


def _rounds(report) -> str:
    """The round kept, and the best round when the stop tolerance kept an earlier one."""
    validation = report.validation
    kept = f"round {report.best_iteration} kept (validation NDCG@10 {validation.get('ndcg@10', float('nan')):.4f}"
    best = validation.get("best_round")
    if best is None or best == report.best_iteration:
        return kept + ", the best round)"
    return kept + f"; best round {best}: {validation['ndcg@10_best_round']:.4f})"


def print_ranker_report(report) -> None:
    """The fusion, the held-out figures overall and per query kind, and whether the model was committed."""
    held = report.holdout
    fusion = report.fusion
    out.print(f"fusion: {fusion['method']} k={fusion['k']:g}, weights "
              + ", ".join(f"{k} {v:g}" for k, v in fusion["weights"].items())
              + (", adaptive" if fusion.get("adaptive") else ", fixed"))
    out.print(f"held-out NDCG@10 on {held['queries']} queries: new model {held['new']:.4f} "
              f"(its fusion alone {held['new_fusion_only']:.4f}); current order ({held['current_system']}) "
              f"{held['current']:.4f}")
    for kind, figures in (held.get("kinds") or {}).items():
        hits = (f"; hit@1 {figures['new_hit@1']:.3f} vs fused {figures['new_fusion_only_hit@1']:.3f}"
                if kind != "text" else "")
        verdict = "reranked" if kind in held.get("covered", []) else "not reranked: the fused order stands"
        out.print(f"  {kind} ({figures['queries']} queries): NDCG@10 {figures['new']:.4f} vs fused "
                  f"{figures['new_fusion_only']:.4f}{hits}; {verdict}")
    summary = (f"reranker trained on {report.queries_train} queries ({report.rows:,} rows), early-stopped on "
               f"{report.queries_validation}; {_rounds(report)}, device {report.device}; "
               f"features {report.seconds_features:.1f} s, training {report.seconds_training:.1f} s")
    if not report.committed:
        why = ("it ranks no query kind's held-out queries at least as well as the fused order" if not held.get("covered")
               else f"it ranks held-out queries worse than the current order by more than {held['margin']}")
        out.print(f"[bold yellow]not committed[/]: {why}; the index is unchanged (--force commits it anyway). {summary}")
        return
    out.print(f"[bold green]version {report.version}[/]{' (forced)' if report.forced else ''}: {summary}")
    if report.predictor:
        out.print(f"searches predict with {report.predictor}")


@app.command("eval")
@handle_errors
def eval_command(
    judgments: Path = typer.Argument(..., help='Graded judgments JSONL {"query", "id", "grade"}, or TREC qrels with --topics.'),
    topics: Optional[Path] = typer.Option(None, "--topics", help="Query texts for TREC qrels."),
    index_dir: Path = IndexOption,
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", callback=output_folder, help="Write one TREC run file per system here."),
    device: str = DeviceOption,
    as_json: bool = JsonOption,
):
    """NDCG@10, MRR@10, P@10 and Recall@100 for BM25, dense, hybrid and hybrid + rerank on the same queries."""
    from shoplens.engine.evaluation import SYSTEMS, evaluate
    from shoplens.engine.search import SearchEngine
    from shoplens.rerank.judgments import load_judgments
    from shoplens.rerank.metrics import check_run_dir, write_trec_runs

    if run_dir is not None:
        check_run_dir(run_dir, SYSTEMS)  # before the work, not after it
    judged = load_judgments(judgments, topics)
    engine = SearchEngine(index_dir, device=device)
    with RichProgress(enabled=not as_json) as progress:
        evaluation = evaluate(engine, judged, progress=progress.reporter())
    paths = write_trec_runs(evaluation, run_dir) if run_dir else []
    if as_json:
        print_json({**evaluation.to_dict(), "run_files": [str(p) for p in paths]})
        return
    show(*evaluation_tables(evaluation, judgments.name))
    for path in paths:
        out.print(f"wrote {literal(str(path))}")


def evaluation_tables(evaluation, name: str) -> list[Table]:
    """The overall table, then one per query kind when the judgments mix kinds (photo kinds add hit@1, hit@10);
    titles say where the judgments came from, as the file records it."""
    from shoplens.rerank.metrics import HIT_METRICS, METRICS

    origin = f"judgments: {', '.join(evaluation.sources)}" if evaluation.sources else "judgments' source not recorded"
    kinds = ", ".join(f"{count} {kind}" for kind, count in evaluation.queries_by_kind.items())
    tables = [_metrics_table(f"{evaluation.queries} queries ({kinds}), {name}; {origin}", evaluation.metrics,
                             METRICS, evaluation.latency_ms)]
    if len(evaluation.by_kind) > 1 or set(evaluation.by_kind) - {"text"}:
        for kind, systems in evaluation.by_kind.items():
            columns = METRICS + (HIT_METRICS if kind != "text" else ())
            skipped = [s for s in evaluation.metrics if s not in systems]
            note = f" ({', '.join(skipped)}: n/a, no query text)" if skipped else ""
            tables.append(_metrics_table(f"{kind} queries: {evaluation.queries_by_kind.get(kind, 0)}{note}",
                                         systems, columns, None))
    return tables


def _metrics_table(title: str, rows: dict, columns, latency: dict | None) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("system")
    for metric in columns:
        table.add_column(metric, justify="right")
    if latency is not None:
        table.add_column("mean ms", justify="right")
    for system, values in rows.items():
        table.add_row(system, *[f"{values[m]:.4f}" for m in columns],
                      *([f"{latency[system]:.1f}"] if latency is not None else []))
    return table
