"""Offline evaluation: BM25 only, dense only, hybrid and hybrid + rerank on the same judged queries.

The engine runs the searches; `rerank.metrics` scores the ranked lists.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.rerank.judgments import Judgments
from shoplens.rerank.metrics import Evaluation, Run, query_ids, ranked_run, score_run

SYSTEMS = {
    "bm25": {"mode": "lexical", "rerank": False, "intent": False},  # single retrievers: no intent boost
    "dense": {"mode": "dense", "rerank": False, "intent": False},
    "text-native": {"mode": "native", "rerank": False, "intent": False},
    "hybrid": {"mode": "hybrid", "rerank": False},
    "hybrid+rerank": {"mode": "hybrid", "rerank": True},
}


def run_system(engine: SearchEngine, judgments: Judgments, settings: dict[str, Any], depth: int = 100,
               base: SearchRequest | None = None, progress: Callable | None = None) -> tuple[Run, float]:
    """One system's ranked lists for every query: {qid: {product id: score}} and the mean latency."""
    qids = query_ids(judgments)
    run: Run = {}
    total_ms = 0.0
    base = base or SearchRequest()
    for number, query in enumerate(judgments):
        request = replace(base, text=query, k=depth, candidates=max(base.candidates, depth), **settings)
        response = engine.search(request)
        total_ms += response.took_ms
        # ties in the engine's scores are already broken: keep its order exactly
        run[qids[query]] = ranked_run([r.id for r in response.results], depth)
        if progress:
            progress(number + 1, len(judgments))
    return run, total_ms / max(len(judgments), 1)


def evaluate(engine: SearchEngine, judgments: Judgments, systems: list[str] | None = None,
             base: SearchRequest | None = None, progress: Callable | None = None) -> Evaluation:
    """Each system on the same queries, scored with ranx (hybrid + rerank only when the index has a reranker)."""
    systems = systems or [name for name in SYSTEMS if (name != "hybrid+rerank" or engine.ranker(engine.snapshot))
                          and (name != "text-native" or engine.snapshot.text_native is not None)]
    engine.prepare_queries(list(judgments))  # query embeddings in batches, shared by every system
    metrics, runs, latency = {}, {}, {}
    for name in systems:
        run, mean_ms = run_system(engine, judgments, SYSTEMS[name], base=base,
                                  progress=(lambda d, t, n=name: progress(n, d, t)) if progress else None)
        runs[name] = run
        latency[name] = mean_ms
        metrics[name] = score_run(judgments, run)
    return Evaluation(len(judgments), metrics, runs, latency)
