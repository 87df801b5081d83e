"""Hybrid retrieval: BM25, the joint space and the text-native space, fetched concurrently and fused."""

from __future__ import annotations

import math
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from shoplens.engine.filters import parse_filters, pushdown_filters
from shoplens.common.errors import ConfigError
from shoplens.engine.fusion import DEFAULT_PLAN, PHOTO_MATCH, FusionPlan, channel_confidence, fuse_channels, photo_leads
from shoplens.engine.query import SearchRequest
from shoplens.indexers.vector.base import similarities


@dataclass
class QueryVectors:
    """The query in embedding space: text and/or image embeddings and the vector searched with.

    `native` is the query text's embedding in the text tower's own space (the
    same forward pass as `text`); None without query text or without such a tower.
    """

    text: np.ndarray | None
    image: np.ndarray | None
    combined: np.ndarray | None
    native: np.ndarray | None = None


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


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
    native: np.ndarray | None = None  # text-native similarity of every candidate; NaN where not computable
    native_rank: np.ndarray | None = None
    channel_weights: dict[str, float] = field(default_factory=dict)  # the weights fusion used for this query
    text: str | None = None  # the query text retrieval searched with (spelling corrected, price phrase taken out)
    intent: Any = None  # engine.intent.Intent: what the query states (price, audience, colour, type), or None
    photo: np.ndarray | None = None  # query photo to product photo similarity; NaN without either photo
    # the query's similarities to each candidate's stored vectors (indexers.vector.base.similarities), computed
    # where the rows were read for fusion, so the reranker does not read them again; None: not computed
    sims: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.fused_rank is None:
            self.fused_rank = np.arange(1, len(self.docnos) + 1)
        if self.native is None:
            self.native = _nan(len(self.docnos))
        if self.native_rank is None:
            self.native_rank = _nan(len(self.docnos))
        if self.photo is None:
            self.photo = _nan(len(self.docnos))

    def __len__(self) -> int:
        return len(self.docnos)

    def take(self, order: np.ndarray) -> "Candidates":
        return Candidates(self.docnos[order], self.fused[order], self.bm25[order], self.bm25_rank[order],
                          self.dense[order], self.dense_rank[order], self.query, self.fused_rank[order],
                          self.native[order], self.native_rank[order], dict(self.channel_weights), self.text,
                          self.intent, self.photo[order],
                          None if self.sims is None else {name: v[order] for name, v in self.sims.items()})

    def channel_runs(self) -> dict[str, dict[int, float]]:
        """Each channel's list (docno -> score, best first), rebuilt from the ranks."""
        return {name: dict(zip(self.docnos[by_rank].tolist(), values.tolist()))
                for name, (by_rank, values) in self._channel_lists().items()}

    def _channel_lists(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per channel: the positions it found in rank order, and their scores (minus the rank where it has none)."""
        lists = {}
        for name, ranks, scores in (("lexical", self.bm25_rank, self.bm25), ("dense", self.dense_rank, self.dense),
                                    ("native", self.native_rank, self.native)):
            found = np.flatnonzero(np.isfinite(ranks))
            by_rank = found[np.argsort(ranks[found], kind="stable")]
            lists[name] = by_rank, np.where(np.isfinite(scores[by_rank]), scores[by_rank], -ranks[by_rank])
        return lists

    def fused_scores(self, plan: FusionPlan) -> tuple[np.ndarray, dict[str, float]]:
        """Each candidate's fused score under `plan` (-inf when no fused channel found it) and the effective
        weights: `fuse_channels` over `channel_runs`, vectorized for rank fusion (the query path's plan)."""
        if plan.method != "rrf":
            fused, weights = fuse_channels(self.channel_runs(), plan)
            return np.array([fused.get(int(d), -np.inf) for d in self.docnos.tolist()], dtype=np.float64), weights
        lists = {name: pair for name, pair in self._channel_lists().items() if len(pair[0]) and plan.weight(name) > 0}
        weights = {name: plan.weight(name) for name in lists}
        if plan.adaptive and "lexical" in lists:
            lexical = self.docnos[lists["lexical"][0]].tolist()
            for name in lists:
                if name != "lexical":
                    weights[name] *= channel_confidence(lexical, self.docnos[lists[name][0]].tolist())
        scores = np.full(len(self.docnos), -np.inf)
        if len(lists) == 1:  # one channel: its own scores (minus its ranks where it has none), as fuse_channels
            by_rank, values = next(iter(lists.values()))
            scores[by_rank] = values
            return scores, weights
        if lists and not (math.isfinite(plan.k) and plan.k >= 0):
            raise ConfigError(f"RRF k must be a finite, non-negative number, got {plan.k}")
        if any(not math.isfinite(w) for w in weights.values()):
            raise ConfigError("fusion weights must be finite, non-negative numbers")
        total, found = np.zeros(len(self.docnos)), np.zeros(len(self.docnos), dtype=bool)
        for name, (by_rank, values) in lists.items():  # the same additions, in the same order, as engine.fusion.rrf
            by_value = by_rank[np.argsort(-values, kind="stable")]
            total[by_value] += weights[name] / (plan.k + np.arange(1, len(by_value) + 1, dtype=np.float64))
            found[by_value] = True
        scores[found] = total[found]
        return scores, weights

    def refused(self, plan: FusionPlan) -> "Candidates":
        """The same candidates fused again with another plan (training tries plans without retrieving again)."""
        scores, weights = self.fused_scores(plan)
        order = np.lexsort((self.docnos, -scores, ~photo_leads(self.photo, plan.photo_match)))
        out = self.take(order)
        out.fused = np.where(np.isfinite(scores[order]), scores[order], 0.0)
        out.fused_rank = np.arange(1, len(order) + 1)
        out.channel_weights = weights
        return out


def hybrid_search(snapshot, request: SearchRequest, encode: Callable[[SearchRequest], QueryVectors],
                  allowed: np.ndarray | None, executor: Executor | None, stages: dict[str, float],
                  plan: FusionPlan = DEFAULT_PLAN, intent: Any = None) -> Candidates:
    """Run the retrievers the request's mode asks for and fuse their lists.

    The lexical search starts first on the executor's thread, so it runs while
    the query is being encoded and the vector indexes searched. `intent` (what
    the query states, engine.intent) travels with the candidates to the reranker.
    """
    text = (request.text or "").strip()
    use_lexical = request.mode in ("hybrid", "lexical") and bool(text)
    use_dense = request.mode in ("hybrid", "dense")
    # searched even when the plan gives it no weight: its ranks are reranker features, as in training
    use_native = request.mode in ("hybrid", "native") and bool(text) and snapshot.text_native is not None
    lexical_allowed = allowed if (allowed is not None or snapshot.lexical.physical_deletes) \
        else snapshot.products.live
    dense_allowed = allowed if allowed is not None else \
        (None if snapshot.vectors.physical_deletes or snapshot.products.live.all() else snapshot.products.live)

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

    empty = (np.empty(0, np.int64), np.empty(0, np.float32))
    vectors = QueryVectors(None, None, None)
    if use_dense or use_native or request.image is not None or request.rerank is not False:
        started = time.perf_counter()
        vectors = encode(request)
        stages["encode"] = (time.perf_counter() - started) * 1000
    started = time.perf_counter()
    dense, native = _vector_lists(snapshot, request, vectors, (use_dense, use_native), dense_allowed, pushdown,
                                  executor)
    if use_dense or use_native:
        stages["vector"] = (time.perf_counter() - started) * 1000

    if future is not None:
        lexical_result, stages["lexical"] = future.result()
    lexical = lexical_result if lexical_result is not None else empty
    started = time.perf_counter()
    candidates = union_candidates(snapshot, vectors, {"lexical": lexical, "dense": dense, "native": native})
    candidates.text, candidates.intent = text or None, intent
    candidates = candidates.refused(query_plan(request, plan))
    stages["fuse"] = (time.perf_counter() - started) * 1000
    return candidates


def _vector_lists(snapshot, request: SearchRequest, vectors: QueryVectors, use: tuple[bool, bool], allowed,
                  pushdown, executor: Executor | None) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """The joint space's and the text-native space's lists (empty where `use` or the query vectors say none).
    On a cluster both searches are round trips, so the text-native one runs on `executor` beside the joint one."""
    empty = (np.empty(0, np.int64), np.empty(0, np.float32))
    use_dense, use_native = use[0] and vectors.combined is not None, use[1] and vectors.native is not None

    def run_native():
        return snapshot.text_native.search(vectors.native, request.candidates, allowed, filters=pushdown)

    pending = executor.submit(run_native) if use_native and executor is not None and snapshot.text_native.remote \
        else None
    dense = snapshot.vectors.search(vectors.combined, request.candidates, allowed, filters=pushdown) \
        if use_dense else empty
    native = pending.result() if pending is not None else (run_native() if use_native else empty)
    return dense, native


def query_plan(request: SearchRequest, plan: FusionPlan) -> FusionPlan:
    """The fusion one request runs: one channel alone outside hybrid mode, the photo plan for a query with a
    photo, else `plan`."""
    if request.mode != "hybrid":
        return FusionPlan(weights=((_MODE_CHANNEL[request.mode], 1.0),), adaptive=False)
    return photo_plan(plan) if request.image is not None else plan


def photo_lead_order(candidates: Candidates, plan: FusionPlan, by_fused_rank: bool = False) -> np.ndarray | None:
    """A stable order that puts the product in the query photo first again after a reranker or intent boosts moved
    the list; None when the leads are first already (or nothing leads). The photo matches at the plan's threshold,
    or at PHOTO_MATCH when the plan fuses without one (a learned plan may): whatever the fusion learned, the
    reranker never moves the pictured product down. Several listings showing the very same photo keep the current
    order among themselves, or with `by_fused_rank` (a photo without words: nothing tells identical pictures
    apart) their fused order."""
    leads = photo_leads(candidates.photo, PHOTO_MATCH if plan.photo_match is None else plan.photo_match)
    if not leads.any():
        return None
    first = np.flatnonzero(leads)
    if by_fused_rank:
        first = first[np.argsort(candidates.fused_rank[first], kind="stable")]
    order = np.concatenate([first, np.flatnonzero(~leads)])
    return None if np.array_equal(order, np.arange(len(order))) else order


def photo_plan(plan: FusionPlan) -> FusionPlan:
    """The fusion of a query with a photo: the plan's photo plan (learned by train-ranker from judged queries
    with a photo), else engine.fusion.DEFAULT_PHOTO_PLAN."""
    return plan.for_photo()


_MODE_CHANNEL = {"lexical": "lexical", "dense": "dense", "native": "native"}


def union_candidates(snapshot, vectors: QueryVectors, lists: dict[str, tuple[np.ndarray, np.ndarray]]) -> Candidates:
    """Every product any channel returned, with each channel's score and rank (not yet fused)."""
    docnos = np.unique(np.concatenate([lists[name][0] for name in ("lexical", "dense", "native")]).astype(np.int64))
    n = len(docnos)
    signals = {}
    for name, (found, scores) in lists.items():
        score, rank = _nan(n), _nan(n)
        if len(found):
            rows = np.searchsorted(docnos, found)
            score[rows] = scores
            rank[rows] = np.arange(1, len(found) + 1)
        signals[name] = (score, rank)
    dense, photo, sims = _nan(n), _nan(n), None
    if n and vectors.combined is not None:
        stored = snapshot.vectors.vectors(docnos)
        dense = np.asarray(stored["fused"] @ vectors.combined, dtype=np.float64)
        sims = similarities(stored, vectors.text, vectors.image)
        if vectors.image is not None:
            photo = sims["sim_image_image"].astype(np.float64)
    native = _nan(n)
    if vectors.native is not None and snapshot.text_native is not None and n:
        native = np.asarray(snapshot.text_native.vectors(docnos, parts=("text",))["text"] @ vectors.native,
                            dtype=np.float64)
    return Candidates(docnos, np.zeros(n), signals["lexical"][0], signals["lexical"][1], dense, signals["dense"][1],
                      vectors, native=native, native_rank=signals["native"][1], photo=photo, sims=sims)
