"""Graded labels from behaviour logs alone, corrected for position bias.

Shoppers click what they look at, and they look at the top of a list more:
raw click-through rates reward whatever was ranked high. ShopLens fits a
position-based click model (PBM) to the logged impressions and clicks with
expectation-maximization (Chuklin, Markov and de Rijke, "Click Models for Web
Search", 2015, section 4.2):

    P(click | query q, product d, position p) = theta_p * alpha_qd

theta_p is the chance position p is examined, alpha_qd the chance product d
attracts a click for q once examined. EM alternates between the posterior of
"examined" and "attractive" for non-clicked impressions and re-estimating
theta and alpha. Logs in which a product was shown at different positions
(re-rankings, small randomizations) are what separate the two.

Labels (0-4) then come from the debiased attractiveness alpha_qd, relative to
the most attractive product of the same query, plus the strongest signals:

    0  shown at least `min_impressions` times and never clicked
    1-3  clicked: 1 + round(2 * alpha_qd / max alpha of the query)
    +1 (up to 4) when the product was put in the cart or ordered for that query
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from shoplens.rerank.behaviour import BehaviourStats


@dataclass
class ClickModel:
    examination: np.ndarray  # theta by position (index 0 = position 1), normalized so position 1 is 1.0
    attractiveness: dict[tuple[str, str], float]
    iterations: int


def fit_position_model(stats: BehaviourStats, iterations: int = 100, tolerance: float = 1e-6) -> ClickModel:
    """PBM parameters from the (query, product, position) impression and click counts."""
    table = stats.positions
    if len(table["position"]) == 0:
        return ClickModel(np.ones(1), {}, 0)
    pairs = list(zip(table["query"].tolist(), table["id"].tolist()))
    index: dict[tuple[str, str], int] = {}
    pair_of = np.array([index.setdefault(pair, len(index)) for pair in pairs], dtype=np.int64)
    position = table["position"].astype(np.int64) - 1
    shown = table["impressions"].astype(np.float64)
    clicked = np.minimum(table["clicks"].astype(np.float64), shown)
    positions = int(position.max()) + 1
    theta = 1.0 / np.arange(1, positions + 1)
    alpha = np.full(len(index), 0.2)
    shown_by_pair = np.bincount(pair_of, weights=shown, minlength=len(index))
    shown_by_position = np.bincount(position, weights=shown, minlength=positions)
    done = 0
    for done in range(1, iterations + 1):
        a, t = alpha[pair_of], theta[position]
        denominator = np.maximum(1.0 - t * a, 1e-12)
        not_clicked = shown - clicked
        attractive = clicked + not_clicked * a * (1.0 - t) / denominator
        examined = clicked + not_clicked * t * (1.0 - a) / denominator
        new_alpha = np.bincount(pair_of, weights=attractive, minlength=len(index)) / np.maximum(shown_by_pair, 1e-12)
        new_theta = np.bincount(position, weights=examined, minlength=positions) / np.maximum(shown_by_position, 1e-12)
        new_theta = np.where(shown_by_position > 0, new_theta, theta)
        change = max(np.abs(new_alpha - alpha).max(), np.abs(new_theta - theta).max())
        alpha, theta = np.clip(new_alpha, 1e-6, 1.0), np.clip(new_theta, 1e-6, 1.0)
        if change < tolerance:
            break
    normalized = theta / theta[0] if theta[0] > 0 else theta
    return ClickModel(normalized, {pair: float(alpha[i]) for pair, i in index.items()}, done)


def labels_from_behaviour(stats: BehaviourStats, min_impressions: int = 3,
                          model: ClickModel | None = None) -> tuple[dict[str, dict[str, int]], ClickModel]:
    """Graded labels per query from logged behaviour (see the module docstring for the scale)."""
    model = model or fit_position_model(stats)
    qp = stats.query_products
    labels: dict[str, dict[str, int]] = {}
    best: dict[str, float] = {}
    for (query, _), value in model.attractiveness.items():
        best[query] = max(best.get(query, 0.0), value)
    for i, (query, pid) in enumerate(zip(qp["query"].tolist(), qp["id"].tolist())):
        impressions, clicks = int(qp["impressions"][i]), int(qp["clicks"][i])
        converted = int(qp["carts"][i]) + int(qp["orders"][i]) > 0
        if clicks == 0 and not converted:
            if impressions >= min_impressions:
                labels.setdefault(query, {})[pid] = 0
            continue
        alpha = model.attractiveness.get((query, pid))
        if alpha is None:  # clicks without logged positions: no correction possible, a plain click
            grade = 1
        else:
            grade = 1 + int(round(2.0 * alpha / best[query])) if best.get(query) else 1
        labels.setdefault(query, {})[pid] = min(4, grade + (1 if converted else 0))
    labels = {q: grades for q, grades in labels.items() if any(g > 0 for g in grades.values())}
    return labels, model
