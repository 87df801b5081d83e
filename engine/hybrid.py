"""Hybrid retrieval: BM25 and dense candidates, fetched concurrently and fused."""

from __future__ import annotations

import time
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Callable

import numpy as np

from shoplens.engine.filters import parse_filters, pushdown_filters
from shoplens.engine.fusion import fuse
from shoplens.engine.query import SearchRequest


@dataclass
class QueryVectors:
    """The query in embedding space: text and/or image embeddings and the vector searched with."""

    text: np.ndarray | None
    image: np.ndarray | None
    combined: np.ndarray | None


@dataclass
class Candidates:
    """Fused candidates, best first, with every retrieval signal per candidate."""

    docnos: np.ndarray
    fused: np.ndarray
    bm25: np.ndarray  # NaN where the lexical retriever did not return the row
    bm25_rank: np.ndarray  # 1-based; NaN where absent
    dense: np.ndarray  # inner product of the query vector with the product vector; NaN without a query vector
    dense_rank: np.ndarray
    query: QueryVectors
    fused_rank: np.ndarray | None = None  # 1-based rank in the fused list (kept when a reranker reorders)

    def __post_init__(self) -> None:
        if self.fused_rank is None:
            self.fused_rank = np.arange(1, len(self.docnos) + 1)

    def __len__(self) -> int:
        return len(self.docnos)

    def take(self, order: np.ndarray) -> "Candidates":
        return Candidates(self.docnos[order], self.fused[order], self.bm25[order], self.bm25_rank[order],
                          self.dense[order], self.dense_rank[order], self.query, self.fused_rank[order])


def hybrid_search(snapshot, request: SearchRequest, encode: Callable[[SearchRequest], QueryVectors],
                  allowed: np.ndarray | None, executor: Executor | None, stages: dict[str, float]) -> Candidates:
    """Run the retrievers the request's mode asks for and fuse their lists.

    The lexical search starts first on the executor's thread, so it runs while
    the query is being encoded and the vector index searched.
    """
    text = (request.text or "").strip()
    use_lexical = request.mode in ("hybrid", "lexical") and bool(text)
    use_dense = request.mode in ("hybrid", "dense")
    lexical_allowed = allowed if (allowed is not None or snapshot.lexical.physical_deletes) \
        else snapshot.products.live
    dense_allowed = allowed if allowed is not None else (None if snapshot.products.live.all() else snapshot.products.live)

    # a server store applies the filters itself (the same rows as the mask, selected inside the server)
    pushdown = pushdown_filters(snapshot.products, parse_filters(request.filters)) if request.filters else None

    def run_lexical():
        started = time.perf_counter()
        result = snapshot.lexical.search(text, request.candidates, lexical_allowed, filters=pushdown)
        return result, (time.perf_counter() - started) * 1000

    future = executor.submit(run_lexical) if (use_lexical and executor is not None) else None
    lexical_result = None
    if use_lexical and future is None:
        lexical_result, stages["lexical"] = run_lexical()

    vectors = QueryVectors(None, None, None)
    dense_docnos = np.empty(0, np.int64)
    dense_scores = np.empty(0, np.float32)
    if use_dense or request.image is not None or request.rerank is not False:
        started = time.perf_counter()
        vectors = encode(request)
        stages["encode"] = (time.perf_counter() - started) * 1000
    if use_dense:
        started = time.perf_counter()
        dense_docnos, dense_scores = snapshot.vectors.search(vectors.combined, request.candidates, dense_allowed)
        stages["vector"] = (time.perf_counter() - started) * 1000

    if future is not None:
        lexical_result, stages["lexical"] = future.result()
    lexical_docnos, lexical_scores = lexical_result if lexical_result is not None else (np.empty(0, np.int64),
                                                                                        np.empty(0, np.float32))
    started = time.perf_counter()
    candidates = fuse_candidates(snapshot, request, vectors, lexical_docnos, lexical_scores, dense_docnos, dense_scores)
    stages["fuse"] = (time.perf_counter() - started) * 1000
    return candidates


def fuse_candidates(snapshot, request: SearchRequest, vectors: QueryVectors, lexical_docnos, lexical_scores,
                    dense_docnos, dense_scores) -> Candidates:
    runs, weights = [], []
    if len(lexical_docnos) or request.mode == "lexical":
        runs.append(dict(zip(lexical_docnos.tolist(), lexical_scores.tolist())))
        weights.append(request.weights[0])
    if len(dense_docnos) or request.mode == "dense":
        runs.append(dict(zip(dense_docnos.tolist(), dense_scores.tolist())))
        weights.append(request.weights[1])
    if len(runs) == 1:
        fused = runs[0]
    elif runs:
        fused = fuse(runs, request.fusion, weights, k=request.rrf_k, normalization=request.normalization)
    else:
        fused = {}
    docnos = np.fromiter(fused.keys(), dtype=np.int64, count=len(fused))
    scores = np.fromiter(fused.values(), dtype=np.float64, count=len(fused))
    order = np.lexsort((docnos, -scores))  # ties broken by docno, so results are deterministic
    docnos, scores = docnos[order], scores[order]

    bm25 = np.full(len(docnos), np.nan)
    bm25_rank = np.full(len(docnos), np.nan)
    lexical_position = {d: i for i, d in enumerate(lexical_docnos.tolist())}
    for row, docno in enumerate(docnos.tolist()):
        position = lexical_position.get(docno)
        if position is not None:
            bm25[row] = lexical_scores[position]
            bm25_rank[row] = position + 1
    dense_rank = np.full(len(docnos), np.nan)
    dense_position = {d: i for i, d in enumerate(dense_docnos.tolist())}
    for row, docno in enumerate(docnos.tolist()):
        position = dense_position.get(docno)
        if position is not None:
            dense_rank[row] = position + 1
    if vectors.combined is not None and len(docnos):
        dense = snapshot.vectors.vectors(docnos)["fused"] @ vectors.combined
    else:
        dense = np.full(len(docnos), np.nan)
    return Candidates(docnos, scores, bm25, bm25_rank, np.asarray(dense, dtype=np.float64), dense_rank, vectors)
