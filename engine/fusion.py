"""Fusing ranked candidate lists: weighted reciprocal rank fusion and weighted score sums.

Pure functions over plain data: each run is a mapping of doc -> score in
rank order (best first), as a retriever returned it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Hashable, Mapping, Sequence

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


# -- fusion plans: which channels, how much each counts, and whether the weights adapt per query --

CHANNELS = ("lexical", "dense", "native")  # BM25, the joint image-text space, the text tower's own space
PLAN_METHODS = ("rrf", "wsum")
AGREEMENT_TOP = 20  # a dense channel's head compared with the lexical list's head
AGREEMENT_LEXICAL = 50  # how deep the lexical head goes (the whole candidate list is no test: most heads meet it)
AGREEMENT_FULL = 0.5  # overlap at which a dense channel keeps its full weight
AGREEMENT_FLOOR = 0.05  # the least share of its weight a disagreeing channel keeps
AGREEMENT_MIN_LEXICAL = 20  # with fewer lexical results than this, there is nothing to agree with: full weight


@dataclass(frozen=True)
class FusionPlan:
    """How ranked lists become one: method, RRF k or normalization, per-channel weights, adaptivity.

    `adaptive`: per query, each dense channel's weight is scaled by how much
    its head agrees with the lexical list (see `channel_confidence`), so a
    dense space that reads a catalog badly cannot drag the fused list far
    below the lexical one. Plans are plain data: the index records one
    (`train-ranker` learns it from judgments) and search uses it by default.
    """

    method: str = "rrf"
    k: float = 60.0
    weights: tuple[tuple[str, float], ...] = (("lexical", 1.0), ("dense", 0.5), ("native", 1.0))
    normalization: str = "minmax"
    adaptive: bool = True
    # queries with a photo: a candidate whose own photo is at least this similar to the query photo (cosine)
    # is the product in the photo and leads the fused list; None: no such rule
    photo_match: float | None = None
    photo: "FusionPlan | None" = None  # the plan of queries with a photo (None: DEFAULT_PHOTO_PLAN)

    def weight(self, channel: str) -> float:
        return dict(self.weights).get(channel, 0.0)

    def to_dict(self) -> dict[str, Any]:
        data = {"method": self.method, "k": self.k, "weights": dict(self.weights),
                "normalization": self.normalization, "adaptive": self.adaptive}
        if self.photo_match is not None:
            data["photo_match"] = self.photo_match
        if self.photo is not None:
            data["photo"] = self.photo.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, default: "FusionPlan | None" = None) -> "FusionPlan":
        """A recorded plan; `default` (else DEFAULT_PLAN) when none is recorded."""
        default = default or DEFAULT_PLAN
        if not data:
            return default
        weights = data.get("weights") or dict(default.weights)
        if data.get("method", "rrf") not in PLAN_METHODS:
            raise ConfigError(f"unknown fusion method {data.get('method')!r}; use one of {', '.join(PLAN_METHODS)}")
        match = data.get("photo_match")
        return cls(method=data.get("method", "rrf"), k=float(data.get("k", 60.0)),
                   weights=tuple((c, float(weights.get(c, 0.0))) for c in CHANNELS),
                   normalization=data.get("normalization", "minmax"), adaptive=bool(data.get("adaptive", True)),
                   photo_match=None if match is None else float(match),
                   photo=cls.from_dict(data["photo"], DEFAULT_PHOTO_PLAN) if data.get("photo") else None)

    def for_photo(self) -> "FusionPlan":
        """The plan a query with a photo fuses with: this plan's photo plan, else DEFAULT_PHOTO_PLAN."""
        return self.photo if self.photo is not None else DEFAULT_PHOTO_PLAN


DEFAULT_PLAN = FusionPlan()
# the cosine of two photos' embeddings from which they count as one picture (the same file gives 1.0; a resized or
# re-compressed copy stays close to it, while two photos of different products rarely pass 0.9)
PHOTO_MATCH = 0.95
# a query with a photo: the joint space carries the photo, so it is not scaled down by its agreement with BM25
# (which never saw the photo) and weighs as much as the text; the text-native list, which reads the text a second
# time, only gives reranker features; and the product in the photo, when the catalog holds it, leads (rank
# fusion alone rewards what both lists like, so words that many products match would push it down)
DEFAULT_PHOTO_PLAN = FusionPlan(weights=(("lexical", 1.0), ("dense", 1.0), ("native", 0.0)), adaptive=False,
                                photo_match=PHOTO_MATCH)
# a catalog without photos, indexed with heads trained on another shop's photos: the joint space then holds
# only the title read through a head made for pictures it never saw (a weaker copy of the text-native
# channel), so it gives reranker features but no fused weight; the text-native channel counts half as much
# as BM25, so a text model that reads the shop's language badly cannot pull the list far below BM25
TEXT_ONLY_PLAN = FusionPlan(weights=(("lexical", 1.0), ("dense", 0.0), ("native", 0.5)))
SHIPPED_HEADS_TAG = "shoplens-myntra"  # the `pretrained` tag of the heads the default model ships with
PHOTO_SHARE = 0.05  # below this share of products with a photo, a catalog counts as text-only


def default_plan(manifest: Mapping[str, Any]) -> FusionPlan:
    """The plan of an index with no learned plan: DEFAULT_PLAN, or TEXT_ONLY_PLAN for a catalog (almost)
    without photos whose joint space uses the shipped heads (heads adapted to the catalog's own text,
    `train-encoder --text-only`, keep the joint space's weight)."""
    counts = manifest.get("counts") or {}
    products = counts.get("products") or 0
    photos = (counts.get("with_image") or 0) / products if products else 1.0
    shipped = (manifest.get("model") or {}).get("pretrained") in (None, SHIPPED_HEADS_TAG)
    return TEXT_ONLY_PLAN if photos < PHOTO_SHARE and shipped else DEFAULT_PLAN


def photo_leads(photo: np.ndarray, threshold: float | None) -> np.ndarray:
    """Which candidates lead the fused list as the product in the query photo: their own photo at least
    `threshold` similar to it (cosine; none without a threshold or a query photo)."""
    if threshold is None:
        return np.zeros(len(photo), dtype=bool)
    return np.nan_to_num(np.asarray(photo, dtype=np.float64), nan=-np.inf) >= threshold


def channel_confidence(lexical: Sequence[Hashable], other: Sequence[Hashable]) -> float:
    """Share of its weight a dense channel keeps for one query, from its agreement with the lexical list.

    1.0 when the lexical list is short (few or no term matches: a typo, a
    query in other words, a photo) or when at least AGREEMENT_FULL of the
    dense channel's top AGREEMENT_TOP are also among the lexical head;
    falling linearly to AGREEMENT_FLOOR when they share nothing. `lexical`
    is in rank order; only its first AGREEMENT_LEXICAL count.
    """
    if len(lexical) < AGREEMENT_MIN_LEXICAL or not other:
        return 1.0
    head = list(other)[:AGREEMENT_TOP]
    overlap = len(set(head) & set(list(lexical)[:AGREEMENT_LEXICAL])) / len(head)
    return float(max(AGREEMENT_FLOOR, min(1.0, overlap / AGREEMENT_FULL)))


def fuse_channels(runs: Mapping[str, Mapping[Hashable, float]], plan: FusionPlan) -> tuple[dict, dict[str, float]]:
    """Fuse named channel runs (each best first) with a plan; returns (fused scores, effective weights).

    A channel with weight 0, or with an empty run, takes no part.
    """
    present = {name: run for name, run in runs.items() if run and plan.weight(name) > 0}
    weights = {name: plan.weight(name) for name in present}
    if plan.adaptive and "lexical" in present:
        lexical = list(present["lexical"])
        for name in present:
            if name != "lexical":
                weights[name] *= channel_confidence(lexical, list(present[name]))
    if not present:
        return {}, {}
    if len(present) == 1:
        name = next(iter(present))
        return dict(present[name]), weights
    names = list(present)
    fused = fuse([present[n] for n in names], plan.method, [weights[n] for n in names], k=plan.k,
                 normalization=plan.normalization)
    return fused, weights
