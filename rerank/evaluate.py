"""Offline evaluation: BM25 only, dense only, hybrid and hybrid + rerank on the same judged queries.

Metrics are computed by ranx (NDCG@10, MRR@10, P@10, Recall@100; a product
with grade >= 1 counts as relevant for MRR, precision and recall).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from shoplens.common.errors import ConfigError
from shoplens.engine.query import SearchRequest
from shoplens.rerank.judgments import Judgments

METRICS = ("ndcg@10", "mrr@10", "precision@10", "recall@100")
SYSTEMS = {
    "bm25": {"mode": "lexical", "rerank": False},
    "dense": {"mode": "dense", "rerank": False},
    "hybrid": {"mode": "hybrid", "rerank": False},
    "hybrid+rerank": {"mode": "hybrid", "rerank": True},
}


@dataclass
class Evaluation:
    queries: int
    metrics: dict[str, dict[str, float]]  # system -> metric -> value
    runs: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict, repr=False)
    latency_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"queries": self.queries, "metrics": self.metrics, "latency_ms_mean": self.latency_ms}


def query_ids(judgments: Judgments) -> dict[str, str]:
    return {query: f"q{i + 1}" for i, query in enumerate(judgments)}


def run_system(engine, judgments: Judgments, settings: dict[str, Any], depth: int = 100,
               base: SearchRequest | None = None, progress: Callable | None = None) -> tuple[dict, float]:
    """One system's ranked lists for every query: {qid: {product id: score}} and the mean latency."""
    qids = query_ids(judgments)
    run: dict[str, dict[str, float]] = {}
    total_ms = 0.0
    base = base or SearchRequest()
    for number, query in enumerate(judgments):
        request = replace(base, text=query, k=depth, candidates=max(base.candidates, depth), **settings)
        response = engine.search(request)
        total_ms += response.took_ms
        # scores that keep the returned order exactly (ties in the engine's scores are already broken)
        run[qids[query]] = {r.id: float(depth - i) for i, r in enumerate(response.results)}
        if not run[qids[query]]:
            run[qids[query]] = {}
        if progress:
            progress(number + 1, len(judgments))
    return run, total_ms / max(len(judgments), 1)


def evaluate(engine, judgments: Judgments, systems: list[str] | None = None, base: SearchRequest | None = None,
             progress: Callable | None = None) -> Evaluation:
    """Each system on the same queries, scored with ranx."""
    import warnings

    from ranx import Qrels, Run
    from ranx import evaluate as ranx_evaluate

    warnings.filterwarnings("ignore", module="ranx")  # numba's cast warnings say nothing about the results

    systems = systems or [name for name in SYSTEMS if name != "hybrid+rerank" or engine.ranker(engine.snapshot)]
    qids = query_ids(judgments)
    qrels = Qrels.from_dict({qids[q]: {pid: int(g) for pid, g in grades.items()} for q, grades in judgments.items()})
    metrics, runs, latency = {}, {}, {}
    for name in systems:
        run, mean_ms = run_system(engine, judgments, SYSTEMS[name], base=base,
                                  progress=(lambda d, t, n=name: progress(n, d, t)) if progress else None)
        runs[name] = run
        latency[name] = mean_ms
        scores = ranx_evaluate(qrels, Run.from_dict(_non_empty(run), name=name), list(METRICS), make_comparable=True)
        metrics[name] = {metric: float(scores[metric]) for metric in METRICS}
    return Evaluation(len(judgments), metrics, runs, latency)


def _non_empty(run: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """ranx cannot hold a query with no results; make_comparable scores missing queries as zero."""
    return {qid: docs for qid, docs in run.items() if docs}


def check_run_dir(directory: Path) -> None:
    """Fail now if run files could not be written into `directory` (a file there, or no way to create it)."""
    directory = Path(directory)
    existing = next((p for p in [directory, *directory.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"--run-dir {directory}: {existing} is a file, not a directory; pass another path")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--run-dir {directory}: cannot write into {existing}; pass another path")
    for path in (directory / f"{name.replace('+', '_')}.trec" for name in SYSTEMS):
        if path.exists() and not path.is_file():
            raise ConfigError(f"--run-dir {directory}: {path} exists and is not a file")


def write_trec_runs(evaluation: Evaluation, directory: Path) -> list[Path]:
    """One TREC run file per system (`qid Q0 docid rank score system`)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, run in evaluation.runs.items():
        path = directory / f"{name.replace('+', '_')}.trec"
        with open(path, "w", encoding="utf-8") as handle:
            for qid, docs in run.items():
                for rank, (pid, score) in enumerate(sorted(docs.items(), key=lambda kv: -kv[1]), start=1):
                    handle.write(f"{qid} Q0 {pid} {rank} {score:g} {name}\n")
        paths.append(path)
    return paths
