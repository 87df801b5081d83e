"""Choosing a fusion plan from judgments: the channels, weights, RRF k and adaptivity that rank best.

Pure numpy over each query's channel ranks (no retrieval): `ChannelRanks`
holds, per judged query, every candidate's rank in each channel and its
grade; `select_plan` scores every plan of a small grid by mean NDCG@10 and
returns the best. Serving fuses with `engine.fusion.fuse_channels`; the two
agree for RRF (tested).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from shoplens.engine import fusion
from shoplens.engine.fusion import CHANNELS, PHOTO_MATCH, FusionPlan, photo_leads

GRID_WEIGHTS = {"lexical": (0.0, 0.5, 1.0), "dense": (0.0, 0.25, 0.5, 1.0), "native": (0.0, 0.5, 1.0, 2.0)}
GRID_K = (10.0, 30.0, 60.0, 100.0)
PHOTO_GRID_WEIGHTS = {"lexical": (0.0, 0.5, 1.0), "dense": (0.5, 1.0, 2.0), "native": (0.0, 0.5)}


@dataclass
class ChannelRanks:
    """One judged query's candidates: docnos, 1-based rank per channel (NaN: absent), grades, ideal DCG."""

    docnos: np.ndarray
    ranks: np.ndarray  # (len(CHANNELS), n)
    grades: np.ndarray
    ideal_dcg: float
    photo: np.ndarray | None = None  # query photo to product photo similarity (NaN: no photo), for photo_match

    @classmethod
    def from_candidates(cls, candidates, grades_by_docno: dict[int, float], all_grades: list[float]) -> "ChannelRanks":
        ranks = np.vstack([candidates.bm25_rank, candidates.dense_rank, candidates.native_rank]).astype(np.float64)
        grades = np.array([grades_by_docno.get(int(d), 0.0) for d in candidates.docnos.tolist()])
        return cls(candidates.docnos.astype(np.int64), ranks, grades, ideal_dcg(all_grades),
                   np.asarray(candidates.photo, dtype=np.float64))

    def confidence(self) -> np.ndarray:
        """Per channel, the share of its weight an adaptive plan keeps (engine.fusion.channel_confidence)."""
        conf = np.ones(len(CHANNELS))
        lexical = np.isfinite(self.ranks[0])
        if lexical.sum() < fusion.AGREEMENT_MIN_LEXICAL:
            return conf
        lexical_head = lexical & (np.nan_to_num(self.ranks[0], nan=np.inf) <= fusion.AGREEMENT_LEXICAL)
        for c in range(1, len(CHANNELS)):
            head = np.isfinite(self.ranks[c]) & (np.nan_to_num(self.ranks[c], nan=np.inf) <= fusion.AGREEMENT_TOP)
            if head.sum() == 0:
                continue
            overlap = (head & lexical_head).sum() / head.sum()
            conf[c] = max(fusion.AGREEMENT_FLOOR, min(1.0, overlap / fusion.AGREEMENT_FULL))
        return conf


def ideal_dcg(grades: list[float], depth: int = 10) -> float:
    best = sorted((g for g in grades if g > 0), reverse=True)[:depth]
    return float(sum(g / np.log2(i + 2) for i, g in enumerate(best)))


def ndcg_at_10(order_grades: np.ndarray, ideal: float) -> float:
    """NDCG@10 with linear gains (as ranx computes it), given grades in ranked order."""
    if ideal <= 0:
        return 0.0
    top = order_grades[:10]
    return float((top / np.log2(np.arange(2, len(top) + 2))).sum() / ideal)


def plan_ndcg(samples: list[ChannelRanks], plan: FusionPlan) -> float:
    """Mean NDCG@10 of a plan's fused order over the samples (weighted RRF, rank-based)."""
    weights = np.array([plan.weight(c) for c in CHANNELS])
    total = 0.0
    for sample in samples:
        w = weights * (sample.confidence() if plan.adaptive else 1.0)
        w = np.where(np.isfinite(sample.ranks).any(axis=1), w, 0.0)
        contrib = np.where(np.isfinite(sample.ranks), w[:, None] / (plan.k + np.nan_to_num(sample.ranks, nan=1.0)), 0.0)
        scores = contrib.sum(axis=0)
        present = (np.isfinite(sample.ranks) & (w[:, None] > 0)).any(axis=0)
        scores = np.where(present, scores, -np.inf)
        leads = photo_leads(sample.photo if sample.photo is not None else np.full(len(scores), np.nan),
                            plan.photo_match)
        order = np.lexsort((sample.docnos, -scores, ~leads))
        order = order[np.isfinite(scores[order]) | leads[order]]
        total += ndcg_at_10(sample.grades[order], sample.ideal_dcg)
    return total / max(len(samples), 1)


def candidate_plans() -> list[FusionPlan]:
    """The grid: every weight combination with at least one channel, each RRF k, adaptive or not."""
    plans = []
    for lexical, dense, native in itertools.product(*(GRID_WEIGHTS[c] for c in CHANNELS)):
        if lexical + dense + native == 0:
            continue
        weights = (("lexical", lexical), ("dense", dense), ("native", native))
        for k, adaptive in itertools.product(GRID_K, (True, False)):
            plans.append(FusionPlan(method="rrf", k=k, weights=weights, adaptive=adaptive))
    return plans


def candidate_photo_plans() -> list[FusionPlan]:
    """The grid for queries with a photo: weights (the joint space carries the photo), RRF k, and whether the
    product in the photo leads; never adaptive (BM25 never saw the photo)."""
    plans = []
    for lexical, dense, native in itertools.product(*(PHOTO_GRID_WEIGHTS[c] for c in CHANNELS)):
        weights = (("lexical", lexical), ("dense", dense), ("native", native))
        for k, match in itertools.product(GRID_K, (None, PHOTO_MATCH)):
            plans.append(FusionPlan(method="rrf", k=k, weights=weights, adaptive=False, photo_match=match))
    return plans


def select_plan(samples: list[ChannelRanks], baseline: FusionPlan, max_queries: int = 1500,
                seed: int = 0, plans: list[FusionPlan] | None = None) -> tuple[FusionPlan, float, float]:
    """The grid plan (`plans`, else `candidate_plans()`) with the best mean NDCG@10 on (a sample of) the queries:
    (plan, its NDCG, baseline's NDCG).

    The baseline (the index's current plan) wins ties, so nothing changes without a gain.
    """
    if len(samples) > max_queries:
        chosen = np.random.default_rng(seed).choice(len(samples), max_queries, replace=False)
        samples = [samples[i] for i in sorted(chosen)]
    best_plan, best = baseline, plan_ndcg(samples, baseline)
    base_score = best
    for plan in candidate_plans() if plans is None else plans:
        score = plan_ndcg(samples, plan)
        if score > best + 1e-9:
            best_plan, best = plan, score
    return best_plan, best, base_score
