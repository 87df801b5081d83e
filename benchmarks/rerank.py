"""`shoplens bench rerank`: what the learned reranker adds, with and without behaviour, and what it costs.

On copies of an index without behaviour, with derived judgments and simulated
events from `shoplens bench devdata`:

- A: events folded, reranker trained with behaviour features;
- B: events folded, the same reranker trained without behaviour features;
- C: no events at all (a new shop), A's reranker.

All are evaluated on the same test queries (never seen in training or in the
simulated logs). The cost of reranking is the `rerank` stage of searches that
rerank 200 candidates (features, then XGBoost), one query at a time.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from shoplens.benchmarks.common import Report, percentiles
from shoplens.engine.evaluation import evaluate
from shoplens.engine.learning import train_ranker
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.writer import replace_component
from shoplens.rerank.folding import apply_events
from shoplens.rerank.judgments import judged_query, load_judgments
from shoplens.rerank.metrics import METRICS, Evaluation
from shoplens.rerank.training import RankerConfig, xgboost_device


def _copy(index: Path, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(index, target)
    return target


def run(index: Path, devdata: Path, work: Path, trees: int = 600, depth: int = 200, device: str = "auto",
        command: str = "") -> Report:
    train = load_judgments(devdata / "judgments.train.jsonl")
    validation = load_judgments(devdata / "judgments.validation.jsonl")
    test = load_judgments(devdata / "judgments.test.jsonl")
    work.mkdir(parents=True, exist_ok=True)
    report = Report(title="Learned reranking", command=command,
                    data=f"{index}; {len(train)} train / {len(validation)} validation / {len(test)} test queries and "
                         f"simulated events from {devdata} (derived and simulated, see its README)")

    with_behaviour = _copy(index, work / "with-behaviour")
    apply_events(with_behaviour, devdata / "events.simulated.jsonl")
    started = time.perf_counter()
    trained = train_ranker(with_behaviour, train, RankerConfig(n_estimators=trees, depth=depth, device="cpu"),
                           validation=validation, source="judgments.train.jsonl")
    cpu_seconds = time.perf_counter() - started
    engine = SearchEngine(with_behaviour, device=device)
    evaluation = evaluate(engine, test)
    report.table(f"test queries ({len(test)}), index with behaviour, reranker trained with behaviour",
                 ["system", *METRICS, "mean ms"],
                 [[name, *values.values(), evaluation.latency_ms[name]] for name, values in evaluation.metrics.items()])
    rows = _behaviour_comparison(evaluation, index, with_behaviour, work, train, validation, test, trees, depth, device)
    report.table("NDCG@10 on the test queries", ["configuration", "ndcg@10", "comparison"], rows)

    for kind, systems in evaluation.by_kind.items():
        if set(evaluation.by_kind) != {"text"}:
            columns = ["ndcg@10", *(("hit@1", "hit@10") if kind != "text" else ())]
            report.table(f"{kind} test queries ({evaluation.queries_by_kind[kind]})", ["system", *columns],
                         [[name, *(values[c] for c in columns)] for name, values in systems.items()])
    texts = [q.text for q in (judged_query(test, key) for key in test) if q.kind == "text"]
    costs = _rerank_costs(engine, texts[:200], depth)
    cost = percentiles(costs)
    training_rows = [["cpu (hist)", cpu_seconds, trained.seconds_training, trained.best_iteration]]
    if xgboost_device("auto") == "cuda":
        gpu_copy = _copy(with_behaviour, work / "gpu")
        started = time.perf_counter()
        gpu = train_ranker(gpu_copy, train,
                           RankerConfig(n_estimators=trees, depth=depth, device="cuda"), validation=validation)
        training_rows.append(["cuda", time.perf_counter() - started, gpu.seconds_training, gpu.best_iteration])
    report.table(f"reranking cost per query, {depth} candidates (features + XGBoost), ms",
                 ["queries", "p50", "p95", "p99"], [[len(costs), *cost.values()]])
    report.table("training", ["device", "total s (features + fit)", "fit s", "best round"], training_rows)
    report.extra["summary"] = {"ndcg": {r[0]: r[1] for r in rows}, "rerank_ms": cost, "metrics": evaluation.metrics,
                               "by_kind": evaluation.by_kind}
    return report


def _behaviour_comparison(evaluation: Evaluation, index: Path, with_behaviour: Path, work: Path, train, validation,
                          test, trees: int, depth: int, device: str) -> list[list]:
    """NDCG@10 of the reranker against the retrievers, without behaviour features, and in a shop with no behaviour."""
    best_single = max(evaluation.metrics["bm25"]["ndcg@10"], evaluation.metrics["dense"]["ndcg@10"])
    reranked = evaluation.metrics["hybrid+rerank"]["ndcg@10"]

    without = _copy(with_behaviour, work / "without-behaviour-features")
    train_ranker(without, train, RankerConfig(n_estimators=trees, depth=depth, device="cpu", use_behaviour=False),
                 validation=validation, source="judgments.train.jsonl")
    no_features = evaluate(SearchEngine(without, device=device), test, systems=["hybrid+rerank"])

    new_shop = _copy(index, work / "no-behaviour-at-all")
    model_dir = IndexDirectory(with_behaviour).version_path(IndexDirectory(with_behaviour).current_version()) / "ranker"
    replace_component(new_shop, "ranker", "ranker",
                      lambda target, parent: shutil.copytree(model_dir, target, dirs_exist_ok=True),
                      {key: IndexDirectory(with_behaviour).manifest()[key] for key in ("ranker", "fusion")
                       if key in IndexDirectory(with_behaviour).manifest()})
    cold = evaluate(SearchEngine(new_shop, device=device), test, systems=["hybrid", "hybrid+rerank"])
    return [
        ["hybrid (no reranker)", evaluation.metrics["hybrid"]["ndcg@10"], "-"],
        ["best single retriever", best_single, "-"],
        ["reranker with behaviour features (index with behaviour)", reranked,
         f"{(reranked / best_single - 1) * 100:+.1f}% vs best single retriever"],
        ["same reranker trained without behaviour features", no_features.metrics["hybrid+rerank"]["ndcg@10"],
         f"{(reranked / no_features.metrics['hybrid+rerank']['ndcg@10'] - 1) * 100:+.1f}% for behaviour"],
        ["behaviour-trained reranker, shop with no behaviour at all", cold.metrics["hybrid+rerank"]["ndcg@10"],
         f"hybrid alone there: {cold.metrics['hybrid']['ndcg@10']:.4f}"],
    ]


def _rerank_costs(engine: SearchEngine, queries: list[str], depth: int) -> list[float]:
    """The rerank stage's milliseconds for each query (features, then XGBoost, over `depth` candidates)."""
    costs = []
    for query in queries:
        response = engine.search(SearchRequest(text=query, k=10, candidates=depth, rerank_depth=depth))
        costs.append(response.stages_ms["rerank"])
    return costs
