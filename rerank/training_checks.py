"""What training data must hold before a reranker is fitted, and an honest validation split.

A model trained on judgments that match no product, or on grades that never
differ among a query's candidates, learns nothing, yet XGBoost reports a
perfect NDCG@10 for it (a query whose labels are all equal scores 1). These
checks refuse such data with a message that says what is wrong, and make sure
validation never runs on a training query.
"""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

import numpy as np

from shoplens.common.errors import RankerError

if TYPE_CHECKING:  # pragma: no cover
    from shoplens.rerank.training import RankerConfig, TrainingData

MAX_DEPTH = 1000  # candidates per query
MAX_TREES = 10000


GAINS = ("linear", "exponential")  # LambdaMART's gain per grade: the grade itself, or 2^grade - 1


def check_config(config: "RankerConfig") -> None:
    """Option values that XGBoost or retrieval would only trip over later (or silently accept)."""
    _integer_in("--depth", config.depth, 1, MAX_DEPTH)
    _integer_in("--trees", config.n_estimators, 1, MAX_TREES)
    _integer_in("max_depth", config.max_depth, 1, 64)
    _integer_in("early_stopping_rounds", config.early_stopping_rounds, 1, MAX_TREES)
    if config.gain not in GAINS:
        raise RankerError(f"--gain must be {' or '.join(GAINS)}, got {str(config.gain)[:40]!r}")
    for name, value, low, high in (("learning_rate", config.learning_rate, 1e-6, 1.0),
                                   ("subsample", config.subsample, 1e-3, 1.0),
                                   ("colsample_bytree", config.colsample_bytree, 1e-3, 1.0),
                                   ("validation_share", config.validation_share, 1e-3, 0.9),
                                   ("blank_behaviour_share", config.blank_behaviour_share, 0.0, 1.0),
                                   ("min_child_weight", config.min_child_weight, 0.0, 1e6),
                                   ("--stop-tolerance", config.stop_tolerance, 0.0, 1.0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low <= value <= high:
            raise RankerError(f"{name} must be a number from {low:g} to {high:g}, got {value!r}")


def _integer_in(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RankerError(f"{name} must be a whole number from {low} to {high}, got {value!r}")


def check_known_products(judgments: dict[str, dict[str, int]], known: dict[str, Any] | set[str], what: str) -> None:
    """Refuse judgments none of whose products are in the index."""
    judged = {pid for grades in judgments.values() for pid in grades}
    if judged and not any(pid in known for pid in judged):
        raise RankerError(f"none of the {len(judged):,} product ids in the {what} is in this index; "
                          "check that the judgments belong to this catalog")


def varied_queries(data: "TrainingData") -> set[int]:
    """Query groups whose candidates carry at least two different grades (something to learn or measure)."""
    varied = set()
    for group in np.unique(data.groups):
        labels = data.labels[data.groups == group]
        if len(labels) and labels.min() != labels.max():
            varied.add(int(group))
    return varied


def split_for_validation(data: "TrainingData", validation: "TrainingData | None", share: float,
                         seed: int) -> tuple["TrainingData", "TrainingData"]:
    """(train, validation): disjoint by query text, each with graded variation, or a RankerError.

    Without a validation set, `share` of the queries are held out (chosen by `seed`), moved so
    that at least one held-out query has grades that differ. Queries whose grades never differ
    are left out of validation: XGBoost would score them 1.0 and hide a model that learned nothing.
    """
    varied = varied_queries(data)
    if not varied:
        raise RankerError("no judged query has candidates with different grades, so there is nothing to learn "
                          "(all grades equal, or the judged products are not retrieved); add judgments with "
                          "relevant and non-relevant products")
    if validation is not None:
        overlap = set(data.queries) & set(validation.queries)
        keep = {i for i, query in enumerate(validation.queries) if query not in overlap}
        held = validation.subset(keep & varied_queries(validation))
        if not len(held.labels):
            raise RankerError("no validation query is usable: each one is also a training query or has no "
                              "different grades among its candidates; validate on other queries")
        return data, held
    if len(varied) < 2:
        raise RankerError("training needs at least two judged queries whose candidates have different grades "
                          "(one to train on, one to validate); add judgments")
    present = sorted({int(g) for g in np.unique(data.groups)})
    order = list(present)
    random.Random(seed).shuffle(order)  # the same split by query as before these checks
    cut = max(1, int(round(len(order) * share)))
    train_set, val_set = set(order[cut:]), set(order[:cut])
    if not val_set & varied:  # move one query with something to measure into validation
        moved = min(train_set & varied)
        train_set.discard(moved)
        val_set.add(moved)
    if not train_set & varied:
        moved = max(val_set & varied)
        val_set.discard(moved)
        train_set.add(moved)
    return data.subset(train_set), data.subset(val_set & varied)
