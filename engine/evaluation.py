"""Offline evaluation: BM25 only, dense only, hybrid and hybrid + rerank on the same judged queries.

The engine runs the searches; `rerank.metrics` scores the ranked lists, over all queries and per query kind
(text, photo, text+photo). A system that cannot take a kind (BM25 and the text-native space read no photo)
leaves those queries unanswered: they score zero over all queries and the kind's row says n/a.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.rerank.judgments import Judgments, judged_query, sources, split_by_kind
from shoplens.rerank.metrics import Evaluation, Run, query_ids, ranked_run, score_by_kind, score_run
from shoplens.rerank.training_checks import check_known_products

SYSTEMS = {
    "bm25": {"mode": "lexical", "rerank": False, "intent": False},  # single retrievers: no intent boost
    "dense": {"mode": "dense", "rerank": False, "intent": False},
    "text-native": {"mode": "native", "rerank": False, "intent": False},
    "hybrid": {"mode": "hybrid", "rerank": False},
    "hybrid+rerank": {"mode": "hybrid", "rerank": True},
}


def applies(settings: dict[str, Any], kind: str) -> bool:
    """Whether a system's mode can take a query kind: BM25 and the text-native space need query text."""
    return kind != "photo" or settings.get("mode", "hybrid") not in ("lexical", "native")


def run_system(engine: SearchEngine, judgments: Judgments, settings: dict[str, Any], depth: int = 100,
               base: SearchRequest | None = None, progress: Callable | None = None) -> tuple[Run, float]:
    """One system's ranked lists for every query it can take: {qid: {product id: score}} and the mean latency."""
    qids = query_ids(judgments)
    run: Run = {}
    total_ms, searched = 0.0, 0
    base = base or SearchRequest()
    for number, key in enumerate(judgments):
        query = judged_query(judgments, key)
        if applies(settings, query.kind):
            request = replace(base, text=query.text, image=query.image, k=depth,
                              candidates=max(base.candidates, depth), **settings)
            response = engine.search(request)
            total_ms += response.took_ms
            searched += 1
            # ties in the engine's scores are already broken: keep its order exactly
            run[qids[key]] = ranked_run([r.id for r in response.results], depth)
        if progress:
            progress(number + 1, len(judgments))
    return run, total_ms / max(searched, 1)


def evaluate(engine: SearchEngine, judgments: Judgments, systems: list[str] | None = None,
             base: SearchRequest | None = None, progress: Callable | None = None) -> Evaluation:
    """Each system on the same queries, scored with ranx (hybrid + rerank only when the index has a reranker)."""
    check_judged_products(engine, judgments)
    systems = systems or [name for name in SYSTEMS if (name != "hybrid+rerank" or engine.ranker(engine.snapshot))
                          and (name != "text-native" or engine.snapshot.text_native is not None)]
    engine.prepare_queries(query_texts(judgments))  # query embeddings in batches, shared by every system
    metrics, runs, latency, by_kind = {}, {}, {}, {}
    for name in systems:
        run, mean_ms = run_system(engine, judgments, SYSTEMS[name], base=base,
                                  progress=(lambda d, t, n=name: progress(n, d, t)) if progress else None)
        runs[name] = run
        latency[name] = mean_ms
        metrics[name] = score_run(judgments, run)
        for kind, values in score_by_kind(judgments, run).items():
            by_kind.setdefault(kind, {})[name] = values
    kinds = {kind: len(part) for kind, part in split_by_kind(judgments).items()}
    by_kind = {kind: by_kind[kind] for kind in kinds if kind in by_kind}  # text, photo, text+photo
    return Evaluation(len(judgments), metrics, runs, latency, by_kind, kinds, sources(judgments))


def check_judged_products(engine: SearchEngine, judgments: Judgments) -> None:
    """Judgments of another catalog (none of their products in this index) are refused in one line, as
    `train-ranker` refuses them: scored, they would print zeros for every system and exit 0."""
    check_known_products(judgments, engine.snapshot.products.docno_by_id, "judgments")


def query_texts(judgments: Judgments) -> list[str]:
    """The text of every judged query that has text (to encode in batches)."""
    return [q.text for q in (judged_query(judgments, key) for key in judgments) if q.text]
