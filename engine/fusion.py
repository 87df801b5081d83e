"""Fusing ranked candidate lists: weighted reciprocal rank fusion and weighted score sums.

Pure functions over plain data: each run is a mapping of doc -> score in
rank order (best first), as a retriever returned it.
"""

from __future__ import annotations

import math
from typing import Hashable, Mapping, Sequence

import numpy as np

from shoplens.common.errors import ConfigError

FUSION_METHODS = ("rrf", "wsum")
NORMALIZATIONS = ("minmax", "zscore")


def rrf(runs: Sequence[Mapping[Hashable, float]], weights: Sequence[float] | None = None, k: float = 60.0) -> dict:
    """Weighted reciprocal rank fusion: score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1.

    A document missing from a run gets nothing from it.
    """
    weights = _weights(runs, weights)
    if not math.isfinite(k) or k < 0:
        raise ConfigError(f"RRF k must be a finite, non-negative number, got {k}")
    fused: dict = {}
    for run, weight in zip(runs, weights):
        ranked = sorted(run.items(), key=lambda item: -item[1])
        for rank, (doc, _) in enumerate(ranked, start=1):
            fused[doc] = fused.get(doc, 0.0) + weight / (k + rank)
    return fused


def normalize(scores: Mapping[Hashable, float], method: str = "minmax") -> dict:
    """Min-max to [0, 1] or z-score; a run whose scores are all equal maps to 1 (min-max) or 0 (z-score)."""
    if method not in NORMALIZATIONS:
        raise ConfigError(f"unknown normalization {method!r}; use one of {', '.join(NORMALIZATIONS)}")
    if not scores:
        return {}
    values = np.fromiter(scores.values(), dtype=np.float64, count=len(scores))
    if method == "minmax":
        low, high = values.min(), values.max()
        normed = np.ones_like(values) if high == low else (values - low) / (high - low)
    else:
        std = values.std()
        normed = np.zeros_like(values) if std == 0 else (values - values.mean()) / std
    return dict(zip(scores.keys(), normed.tolist()))


def weighted_sum(runs: Sequence[Mapping[Hashable, float]], weights: Sequence[float] | None = None,
                 method: str = "minmax") -> dict:
    """Weighted sum of per-run normalized scores.

    A document missing from a run gets that run's lowest normalized score, so
    being absent never beats being found.
    """
    weights = _weights(runs, weights)
    normalized = [normalize(run, method) for run in runs]
    floors = [min(run.values()) if run else 0.0 for run in normalized]
    docs = {doc for run in runs for doc in run}
    return {doc: sum(w * run.get(doc, floor) for run, w, floor in zip(normalized, weights, floors)) for doc in docs}


def fuse(runs: Sequence[Mapping[Hashable, float]], method: str = "rrf", weights: Sequence[float] | None = None,
         k: float = 60.0, normalization: str = "minmax") -> dict:
    """Dispatch on the method name; raises ConfigError listing valid names."""
    if method == "rrf":
        return rrf(runs, weights, k)
    if method == "wsum":
        return weighted_sum(runs, weights, normalization)
    raise ConfigError(f"unknown fusion method {method!r}; use one of {', '.join(FUSION_METHODS)}")


def _weights(runs, weights):
    if weights is None:
        return [1.0] * len(runs)
    weights = [float(w) for w in weights]
    if len(weights) != len(runs):
        raise ConfigError(f"{len(weights)} fusion weights given for {len(runs)} retrievers")
    if any(not math.isfinite(w) or w < 0 for w in weights):
        raise ConfigError("fusion weights must be finite, non-negative numbers")
    return weights
