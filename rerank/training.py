"""Training the LambdaMART reranker on graded judgments or on behaviour logs.

Features are logged by running the real retrieval for every training query,
through the same `SearchEngine.retrieve` and `Ranker.features` as serving, so
training and serving cannot drift. The model is an `xgboost.XGBRanker` with
the `rank:ndcg` objective, query groups, a validation split by query and early
stopping; on a GPU it trains with `device="cuda"`, otherwise CPU `hist`.
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
from shoplens.engine.query import SearchRequest
from shoplens.rerank.features import FEATURE_NAMES, FEATURE_VERSION, behaviour_columns
from shoplens.rerank.judgments import Judgments
from shoplens.rerank.model import Ranker
from shoplens.rerank.training_checks import check_config, check_known_products, split_for_validation

Progress = Callable[[str, int, int], None]


@dataclass
class RankerConfig:
    depth: int = 200  # candidates per query (the same depth is reranked at serving time)
    n_estimators: int = 600
    learning_rate: float = 0.05
    max_depth: int = 6
    min_child_weight: float = 1.0
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    early_stopping_rounds: int = 50
    validation_share: float = 0.2
    seed: int = 0
    use_behaviour: bool = True
    blank_behaviour_share: float = 0.3  # extra copies of training queries with behaviour missing
    device: str = "auto"


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
    version: int
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


def collect(engine, judgments: Judgments, depth: int, use_behaviour: bool = True,
            progress: Progress | None = None) -> TrainingData:
    """Run retrieval for every judged query and log its candidates' features and labels."""
    feature_source = Ranker(None, {"use_behaviour": use_behaviour}, engine.snapshot)
    rows, labels, groups, queries = [], [], [], []
    missing = 0
    for number, (query, grades) in enumerate(judgments.items()):
        request = SearchRequest(text=query, k=depth, candidates=depth, rerank_depth=depth)
        snapshot, candidates, _ = engine.retrieve(request, for_rerank=True)
        candidates = candidates.take(np.arange(min(depth, len(candidates))))
        if len(candidates) == 0:
            continue
        features = feature_source.features(snapshot, query, candidates, use_behaviour=use_behaviour)
        ids = snapshot.products.column_values("id", candidates.docnos)
        found = set(ids)
        missing += sum(1 for pid, grade in grades.items() if grade > 0 and pid not in found)
        rows.append(features)
        labels.append(np.array([grades.get(pid, 0) for pid in ids], dtype=np.float32))
        groups.append(np.full(len(ids), len(queries), dtype=np.int64))
        queries.append(query)
        if progress:
            progress("logging features", number + 1, len(judgments))
    if not rows:
        raise RankerError("no judged query returned any candidates; check that the judgments match this index")
    return TrainingData(np.concatenate(rows), np.concatenate(labels), np.concatenate(groups), queries, missing)


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
    )
    base_rounds = 0
    if base_model is not None:  # the sklearn wrapper feeds unnamed arrays; names go back on afterwards
        base_model = base_model.copy()
        base_model.feature_names = None
        base_rounds = base_model.num_boosted_rounds()
    order = np.argsort(train.groups, kind="stable")
    val_order = np.argsort(validation.groups, kind="stable")
    ranker.fit(train.features[order], train.labels[order], qid=train.groups[order],
               eval_set=[(validation.features[val_order], validation.labels[val_order])],
               eval_qid=[validation.groups[val_order]], verbose=False, xgb_model=base_model)
    booster = ranker.get_booster()
    booster.feature_names = list(FEATURE_NAMES)
    history = ranker.evals_result()["validation_0"]["ndcg@10"]
    best = int(ranker.best_iteration) if getattr(ranker, "best_iteration", None) is not None else base_rounds + len(history) - 1
    new_best = min(max(best - base_rounds, 0), len(history) - 1)  # rounds of this fit, after the base model's
    return booster, {"ndcg@10": float(history[new_best]), "ndcg@10_first_round": float(history[0])}, best, device


def split_queries(queries: list[str], share: float, seed: int) -> tuple[set[int], set[int]]:
    rng = random.Random(seed)
    indexes = list(range(len(queries)))
    rng.shuffle(indexes)
    cut = max(1, int(round(len(indexes) * share)))
    if len(indexes) < 2:
        raise RankerError("training needs at least two judged queries (one to train on, one to validate)")
    return set(indexes[cut:]), set(indexes[:cut])


def train_ranker(index_path: str | Path, judgments: Judgments, config: RankerConfig | None = None,
                 validation: Judgments | None = None, source: str = "judgments", progress: Progress | None = None,
                 continue_training: bool = False, extra_meta: dict[str, Any] | None = None) -> RankerReport:
    """Log features, fit, and commit the model as a new version of the index."""
    from shoplens.engine.search import SearchEngine
    from shoplens.rerank import behaviour as behaviour_module

    config = config or RankerConfig()
    check_config(config)
    engine = SearchEngine(index_path, device="cpu" if config.device != "cuda" else "cuda")
    base_manifest = engine.snapshot.manifest
    check_known_products(judgments, engine.snapshot.products.docno_by_id, "judgments")
    base_model, continued_from, history = None, None, []
    if continue_training:
        existing = engine.ranker(engine.snapshot)
        if existing is None:
            raise RankerError("there is no reranker to continue from; train one first without --continue")
        base_model, continued_from = existing.booster, existing.meta.get("trained_at")
        history = list(existing.meta.get("history", []))
    started = time.perf_counter()
    data = collect(engine, judgments, config.depth, config.use_behaviour, progress)
    validation_data = collect(engine, validation, config.depth, config.use_behaviour, progress) if validation else None
    train_data, validation_data = split_for_validation(data, validation_data, config.validation_share, config.seed)
    seconds_features = time.perf_counter() - started
    train_queries = len(set(train_data.groups.tolist()))
    if config.use_behaviour and config.blank_behaviour_share > 0:
        train_data = _with_blanked_behaviour(train_data, config.blank_behaviour_share, config.seed)
    started = time.perf_counter()
    booster, metrics, best, device = fit(train_data, validation_data, config, base_model)
    seconds_training = time.perf_counter() - started

    stats = behaviour_module.load(engine.snapshot.path / "behaviour")
    labels, counts = np.unique(data.labels, return_counts=True)
    meta = {
        "feature_names": FEATURE_NAMES, "feature_version": FEATURE_VERSION, "objective": "rank:ndcg",
        "trained_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": source, "use_behaviour": config.use_behaviour, "depth": config.depth,
        "queries": {"train": train_queries, "validation": len(set(validation_data.groups.tolist()))},
        "rows": int(len(train_data.labels)), "label_counts": {str(int(label)): int(count) for label, count in zip(labels, counts)},
        "validation": metrics, "best_iteration": best, "device": device,
        "params": {k: v for k, v in asdict(config).items() if k not in ("device",)},
        "behaviour_seen": behaviour_module.summary(stats) if stats.has_data else None,
        "continued_from": continued_from, "trained_on_version": engine.snapshot.version,
        **(extra_meta or {}),
    }
    # everything this model has learned from, oldest first (a refresh adds to it)
    meta["history"] = history + [{"trained_at": meta["trained_at"], "source": source, "queries": meta["queries"],
                                  "rows": meta["rows"], "rounds": best + 1, "index_version": engine.snapshot.version,
                                  "behaviour_events": (meta["behaviour_seen"] or {}).get("events", 0)}]
    engine.close()
    version = save_ranker(index_path, booster, meta, base_manifest)
    return RankerReport(version=version, source=source, queries_train=meta["queries"]["train"],
                        queries_validation=meta["queries"]["validation"], rows=meta["rows"], best_iteration=best,
                        validation=metrics, device=device, seconds_features=round(seconds_features, 2),
                        seconds_training=round(seconds_training, 2), use_behaviour=config.use_behaviour,
                        continued_from=continued_from, label_counts=meta["label_counts"])


def save_ranker(index_path: str | Path, booster, meta: dict[str, Any], base_manifest: dict[str, Any] | None = None) -> int:
    """Commit a new version whose `ranker/` holds this model; every other store is carried over.

    Training runs without the writer lock (it takes minutes; updates go on meanwhile). With
    `base_manifest`, the version training started from, the commit is refused when another
    reranker was committed or the model changed since: this one would silently replace it.
    """
    from shoplens.indexers.writer import replace_component

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

    summary = {k: meta[k] for k in ("trained_at", "source", "use_behaviour", "queries", "validation",
                                    "best_iteration", "device", "feature_version")}
    return replace_component(index_path, "ranker", "ranker", write, {"ranker": summary}, expect=expect)
