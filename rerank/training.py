"""Training the LambdaMART reranker on logged features, from graded judgments or behaviour logs.

This module works on plain data: a feature matrix with labels and query
groups (`TrainingData`), the model's metadata, labels fitted from events.
Logging the features runs the real retrieval and `Ranker.features`, the same
path as serving, so training and serving cannot drift; the engine does that
(`engine/learning.py`) and hands the matrix here. The model is an
`xgboost.XGBRanker` with the `rank:ndcg` objective, query groups, a
validation split by query and early stopping; on a GPU it trains with
`device="cuda"`, otherwise CPU `hist`.
"""

from __future__ import annotations

import datetime as _dt
import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from shoplens.common.errors import RankerError
from shoplens.indexers.writer import replace_component
from shoplens.rerank import behaviour
from shoplens.rerank.events import read_events
from shoplens.rerank.features import FEATURE_NAMES, FEATURE_VERSION, behaviour_columns
from shoplens.rerank.judgments import Judgments, JudgmentsError, load_judgments
from shoplens.rerank.labels import labels_from_behaviour
from shoplens.rerank.training_checks import split_for_validation

Progress = Callable[[str, int, int], None]


# RankerConfig.stop_tolerance: validation NDCG@10 a shop may give up for fewer trees (`--stop-tolerance`). 0 by
# default: on the full Myntra catalog's derived judgments validation NDCG was still rising at 500-600 rounds, and
# 0.002 kept 325 of 586 trees for about 0.004 less held-out NDCG (README, "Fewer trees")
STOP_TOLERANCE = 0.0


@dataclass
class RankerConfig:
    depth: int = 200  # candidates per query (the same depth is reranked at serving time)
    n_estimators: int = 1000
    learning_rate: float = 0.05
    max_depth: int = 6
    # LambdaMART hessians are small (pair weights times |delta NDCG|): a minimum of 1 blocks most splits and
    # early stopping then ends training within a few dozen rounds for lack of signal
    min_child_weight: float = 0.02
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    early_stopping_rounds: int = 100
    # serve the first round whose validation NDCG@10 is within this of the best round's: on a flat curve the
    # rounds after it cost prediction time (every tree runs for every candidate of every query) and buy little
    stop_tolerance: float = STOP_TOLERANCE
    validation_share: float = 0.2
    seed: int = 0
    use_behaviour: bool = True
    blank_behaviour_share: float = 0.3  # extra copies of training queries with behaviour missing
    device: str = "auto"
    # LambdaMART's gain per grade: "linear" (the grade itself, the gain eval's NDCG@10 counts) or "exponential"
    # (2^grade - 1, XGBoost's default, which weighs the top grade far above the next)
    gain: str = "linear"  # one of training_checks.GAINS


@dataclass
class TrainingData:
    features: np.ndarray
    labels: np.ndarray
    groups: np.ndarray  # query index per row
    queries: list[str]
    judged_missing: int = 0  # judged relevant products that retrieval did not return

    def subset(self, query_indexes: set[int]) -> "TrainingData":
        mask = np.isin(self.groups, list(query_indexes))
        return TrainingData(self.features[mask], self.labels[mask], self.groups[mask], self.queries)


@dataclass
class RankerReport:
    version: int | None  # None when the held-out check refused the model
    source: str
    queries_train: int
    queries_validation: int
    rows: int
    best_iteration: int
    validation: dict[str, float]
    device: str
    seconds_features: float
    seconds_training: float
    use_behaviour: bool
    continued_from: str | None = None
    label_counts: dict[str, int] = field(default_factory=dict)
    holdout: dict[str, Any] = field(default_factory=dict)  # held-out NDCG@10: new model, its fusion alone, current
    committed: bool = True
    forced: bool = False
    fusion: dict[str, Any] = field(default_factory=dict)
    predictor: str = ""  # what searches predict with: the compiled trees, or ONNX Runtime and why

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def xgboost_device(device: str = "auto") -> str:
    """cuda when asked or when auto finds a GPU and an XGBoost built with CUDA; else cpu."""
    import xgboost

    has_cuda = bool(xgboost.build_info().get("USE_CUDA"))
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_gpu = False
    if device == "cuda":
        if not (has_cuda and has_gpu):
            raise RankerError("--device cuda was asked for but XGBoost sees no GPU; use --device auto or cpu")
        return "cuda"
    return "cuda" if device == "auto" and has_cuda and has_gpu else "cpu"


def _with_blanked_behaviour(data: TrainingData, share: float, seed: int) -> TrainingData:
    """Add copies of some query groups with every behaviour feature missing, so the model also ranks
    well for products (or whole shops) without behaviour."""
    rng = random.Random(seed)
    chosen = [q for q in sorted(set(data.groups.tolist())) if rng.random() < share]
    if not chosen:
        return data
    mask = np.isin(data.groups, chosen)
    copy = data.features[mask].copy()
    copy[:, behaviour_columns()] = np.nan
    offset = int(data.groups.max()) + 1
    return TrainingData(np.concatenate([data.features, copy]), np.concatenate([data.labels, data.labels[mask]]),
                        np.concatenate([data.groups, data.groups[mask] + offset]), data.queries)


def gains(grades: np.ndarray, kind: str = "linear") -> np.ndarray:
    """LambdaMART's gain of each grade (the labels XGBoost is given, its own exponential gain turned off, so
    fractional grades fit too): the grade itself, or 2^grade - 1 (what XGBoost's exponential gain computes
    for whole grades)."""
    grades = np.asarray(grades, dtype=np.float64)
    return grades if kind == "linear" else np.exp2(grades) - 1.0


def fit(train: TrainingData, validation: TrainingData, config: RankerConfig, base_model=None):
    """An XGBRanker fitted with early stopping on validation NDCG@10."""
    import xgboost

    device = xgboost_device(config.device)
    ranker = xgboost.XGBRanker(
        objective="rank:ndcg", tree_method="hist", device=device, n_estimators=config.n_estimators,
        learning_rate=config.learning_rate, max_depth=config.max_depth, min_child_weight=config.min_child_weight,
        subsample=config.subsample, colsample_bytree=config.colsample_bytree, eval_metric=["ndcg@10"],
        early_stopping_rounds=config.early_stopping_rounds, random_state=config.seed,
        lambdarank_pair_method="topk", lambdarank_num_pair_per_sample=10,
        ndcg_exp_gain=False,  # the labels are the gains (`gains`)
    )
    base_rounds = 0
    if base_model is not None:  # the sklearn wrapper feeds unnamed arrays; names go back on afterwards
        base_model = base_model.copy()
        base_model.feature_names = None
        base_rounds = base_model.num_boosted_rounds()
    order = np.argsort(train.groups, kind="stable")
    val_order = np.argsort(validation.groups, kind="stable")
    ranker.fit(train.features[order], gains(train.labels[order], config.gain), qid=train.groups[order],
               eval_set=[(validation.features[val_order], gains(validation.labels[val_order], config.gain))],
               eval_qid=[validation.groups[val_order]], verbose=False, xgb_model=base_model)
    history = ranker.evals_result()["validation_0"]["ndcg@10"]
    best = int(ranker.best_iteration) if getattr(ranker, "best_iteration", None) is not None else base_rounds + len(history) - 1
    new_best = min(max(best - base_rounds, 0), len(history) - 1)  # rounds of this fit, after the base model's
    chosen = first_round_within(history, new_best, config.stop_tolerance)
    booster = ranker.get_booster()[: base_rounds + chosen + 1]  # the rounds after the chosen one only cost time
    booster.feature_names = list(FEATURE_NAMES)
    metrics = {"ndcg@10": float(history[chosen]), "ndcg@10_first_round": float(history[0]),
               "ndcg@10_best_round": float(history[new_best]), "best_round": base_rounds + new_best}
    return booster, metrics, base_rounds + chosen, device


def first_round_within(history, best: int, tolerance: float) -> int:
    """The first round (of `history`, validation NDCG@10 per round) within `tolerance` of round `best`'s."""
    floor = history[best] - tolerance
    return next(i for i in range(best + 1) if history[i] >= floor)


GUARD_MARGIN = 0.005  # a new model goes live unless its held-out NDCG@10 is more than this below the current order's
GUARD_SHARE = 0.15  # without a validation file: this share of queries for early stopping, the same for the guard


def split_samples(samples: list, share: float, seed: int) -> tuple[list, list, list]:
    """(train, early stopping, guard) by query; the guard's queries are never trained or stopped on."""
    if len(samples) < 3:
        raise RankerError("training needs at least three judged queries that retrieve candidates "
                          "(train, early stopping, held-out check)")
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    cut = max(1, int(round(len(order) * share)))
    guard, stop, train = order[:cut], order[cut:2 * cut], order[2 * cut:]
    if not train:
        train, stop = stop, guard
    return [samples[i] for i in train], [samples[i] for i in stop], [samples[i] for i in guard]


def halve(samples: list, seed: int) -> tuple[list, list]:
    """A validation set split into early-stopping and guard halves."""
    if len(samples) < 2:
        return samples, samples
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    cut = len(order) // 2
    return [samples[i] for i in order[cut:]], [samples[i] for i in order[:cut]]


@dataclass
class TrainingQueries:
    """Graded queries to train on, where they came from, and what the model's metadata should say about them."""

    judgments: Judgments
    source: str
    meta: dict[str, Any] = field(default_factory=dict)


def queries_from_judgments(path: Path, topics: Path | None = None) -> TrainingQueries:
    """Judged queries from a graded judgments file (or TREC qrels with topics)."""
    return TrainingQueries(load_judgments(path, topics), f"judgments:{path.name}")


def queries_from_events(path: Path) -> TrainingQueries:
    """Labels from a behaviour log alone: events folded, then a position-based click model fitted by EM."""
    stats = behaviour.fold(behaviour.BehaviourStats.empty(), read_events(path))
    labeled, model = labels_from_behaviour(stats)
    if len(labeled) < 2:
        raise JudgmentsError(f"{path.name} has clicks for {len(labeled)} quer(ies); at least two are needed")
    position_bias = {"model": "PBM fitted by EM", "examination": [round(float(x), 4) for x in model.examination[:20]],
                     "iterations": model.iterations}
    return TrainingQueries(labeled, f"events:{path.name}", {"position_bias": position_bias})


@dataclass
class FittedRanker:
    """A fitted booster and what its metadata records about the fit."""

    booster: Any
    validation: dict[str, float]
    best_iteration: int
    device: str
    queries: dict[str, int]  # train, validation
    rows: int
    label_counts: dict[str, int]
    seconds: float


def fit_ranker(data: TrainingData, validation: TrainingData | None, config: RankerConfig,
               base_model=None) -> FittedRanker:
    """Fit on logged features: validation queries split off unless given (`split_for_validation`: disjoint,
    with grades that differ), behaviour-blanked copies added."""
    train, validation = split_for_validation(data, validation, config.validation_share, config.seed)
    train_queries = len(set(train.groups.tolist()))
    if config.use_behaviour and config.blank_behaviour_share > 0:
        train = _with_blanked_behaviour(train, config.blank_behaviour_share, config.seed)
    started = time.perf_counter()
    booster, metrics, best, device = fit(train, validation, config, base_model)
    labels, counts = np.unique(data.labels, return_counts=True)
    return FittedRanker(booster, metrics, best, device,
                        {"train": train_queries, "validation": len(set(validation.groups.tolist()))},
                        int(len(train.labels)), {f"{label:g}": int(count) for label, count in zip(labels, counts)},
                        time.perf_counter() - started)


def ranker_meta(fitted: FittedRanker, config: RankerConfig, source: str, stats: behaviour.BehaviourStats,
                index_version: int, previous: dict[str, Any] | None = None,
                extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The model's meta.json: features, training data, validation, behaviour seen and its training history.

    `previous` is the meta of the model this one continues from (its history is kept, oldest first).
    """
    meta = {
        "feature_names": FEATURE_NAMES, "feature_version": FEATURE_VERSION, "objective": "rank:ndcg",
        "trained_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": source, "use_behaviour": config.use_behaviour, "depth": config.depth,
        "queries": fitted.queries, "rows": fitted.rows, "label_counts": fitted.label_counts,
        "validation": fitted.validation, "best_iteration": fitted.best_iteration, "device": fitted.device,
        "params": {k: v for k, v in asdict(config).items() if k not in ("device",)},
        "behaviour_seen": behaviour.summary(stats) if stats.has_data else None,
        "continued_from": previous.get("trained_at") if previous else None, "trained_on_version": index_version,
        **(extra or {}),
    }
    meta["history"] = list((previous or {}).get("history", [])) + [{
        "trained_at": meta["trained_at"], "source": source, "queries": meta["queries"], "rows": meta["rows"],
        "rounds": fitted.best_iteration + 1, "index_version": index_version,
        "behaviour_events": (meta["behaviour_seen"] or {}).get("events", 0)}]
    return meta


def ranker_report(version: int | None, meta: dict[str, Any], fitted: FittedRanker, seconds_features: float,
                  forced: bool = False) -> RankerReport:
    """What `shoplens train-ranker` prints about a model: committed (version) or refused by the held-out check."""
    return RankerReport(version=version, source=meta["source"], queries_train=meta["queries"]["train"],
                        queries_validation=meta["queries"]["validation"], rows=meta["rows"],
                        best_iteration=fitted.best_iteration, validation=fitted.validation, device=fitted.device,
                        seconds_features=round(seconds_features, 2), seconds_training=round(fitted.seconds, 2),
                        use_behaviour=meta["use_behaviour"], continued_from=meta["continued_from"],
                        label_counts=meta["label_counts"], holdout=meta.get("holdout", {}),
                        committed=version is not None, forced=forced, fusion=meta.get("fusion", {}))


def save_ranker(index_path: str | Path, booster, meta: dict[str, Any], base_manifest: dict[str, Any] | None = None) -> int:
    """Commit a new version whose `ranker/` holds this model; every other store is carried over.

    Training runs without the writer lock (it takes minutes; updates go on meanwhile). With
    `base_manifest`, the version training started from, the commit is refused when another
    reranker was committed or the model changed since: this one would silently replace it.
    """

    def expect(parent: dict[str, Any]) -> None:
        if base_manifest is None:
            return
        if parent.get("ranker") != base_manifest.get("ranker") or parent.get("model") != base_manifest.get("model"):
            raise RankerError(f"the index's reranker or model changed while training (version "
                              f"{base_manifest.get('version')} -> {parent.get('version')}); nothing was committed; "
                              "train again")
    def write(directory: Path, parent: Path | None) -> None:
        booster.save_model(str(directory / "model.json"))
        (directory / "meta.json").write_text(json.dumps(meta, indent=2, default=str))

    summary = {k: meta.get(k) for k in ("trained_at", "source", "use_behaviour", "queries", "validation",
                                        "best_iteration", "device", "feature_version", "query_kinds")}
    holdout = meta.get("holdout") or {}
    summary["holdout"] = {k: holdout.get(k) for k in ("queries", "new", "new_fusion_only", "current", "current_system",
                                                      "kinds")}
    updates: dict[str, Any] = {"ranker": summary}
    if meta.get("fusion"):  # the learned fusion plan is what serving fuses with from this version on
        updates["fusion"] = {**meta["fusion"], "source": meta.get("source"), "trained_at": meta.get("trained_at")}
    return replace_component(index_path, "ranker", "ranker", write, updates, expect=expect)
