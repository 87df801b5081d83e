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

Progress = Callable[[str, int, int], None]


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
    version: int | None
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


@dataclass
class QuerySample:
    """One judged query's retrieved candidates (every channel, not yet fused) and its grades."""

    query: str
    candidates: Any  # engine.hybrid.Candidates, unfused union of the channels' lists
    grades: dict[str, float]
    ids: list[str]
    snapshot: Any


def gather(engine, judgments: Judgments, depth: int, progress: Progress | None = None,
           label: str = "retrieving judged queries") -> list[QuerySample]:
    """Run every channel once for each judged query; fusion plans and features are then computed offline."""
    samples = []
    for number, (query, grades) in enumerate(judgments.items()):
        request = SearchRequest(text=query, k=depth, candidates=depth, rerank_depth=depth, weights=(1.0, 1.0, 1.0))
        snapshot, candidates, _ = engine.retrieve(request, for_rerank=True)
        if len(candidates):
            ids = snapshot.products.column_values("id", candidates.docnos)
            samples.append(QuerySample(query, candidates, grades, ids, snapshot))
        if progress:
            progress(label, number + 1, len(judgments))
    if not samples:
        raise RankerError("no judged query returned any candidates; check that the judgments match this index")
    return samples


def channel_ranks(samples: list[QuerySample]) -> list:
    from shoplens.engine.fusion_learning import ChannelRanks

    out = []
    for sample in samples:
        by_docno = {int(d): float(sample.grades.get(pid, 0)) for d, pid in zip(sample.candidates.docnos.tolist(), sample.ids)}
        out.append(ChannelRanks.from_candidates(sample.candidates, by_docno, list(sample.grades.values())))
    return out


def features_for(samples: list[QuerySample], plan, depth: int, use_behaviour: bool,
                 progress: Progress | None = None) -> TrainingData:
    """Fuse each sample with `plan`, keep the top `depth`, and log features and labels exactly as serving would."""
    feature_source = Ranker(None, {"use_behaviour": use_behaviour}, samples[0].snapshot)
    rows, labels, groups, queries = [], [], [], []
    missing = 0
    for number, sample in enumerate(samples):
        fused = sample.candidates.refused(plan)
        candidates = fused.take(np.arange(min(depth, len(fused))))
        ids = sample.snapshot.products.column_values("id", candidates.docnos)
        features = feature_source.features(sample.snapshot, sample.query, candidates, use_behaviour=use_behaviour)
        found = set(ids)
        missing += sum(1 for pid, grade in sample.grades.items() if grade > 0 and pid not in found)
        rows.append(features)
        labels.append(np.array([sample.grades.get(pid, 0) for pid in ids], dtype=np.float32))
        groups.append(np.full(len(ids), len(queries), dtype=np.int64))
        queries.append(sample.query)
        if progress:
            progress("logging features", number + 1, len(samples))
    return TrainingData(np.concatenate(rows), np.concatenate(labels), np.concatenate(groups), queries, missing)


def collect(engine, judgments: Judgments, depth: int, use_behaviour: bool = True,
            progress: Progress | None = None, plan=None) -> TrainingData:
    """Run retrieval for every judged query and log its candidates' features and labels."""
    samples = gather(engine, judgments, depth, progress)
    return features_for(samples, plan or engine.fusion_plan(engine.snapshot), depth, use_behaviour, progress)


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


def _ndcg_of(sample: QuerySample, candidates, scores: np.ndarray | None) -> float:
    from shoplens.engine.fusion_learning import ideal_dcg, ndcg_at_10

    order = np.arange(len(candidates)) if scores is None else np.lexsort((np.arange(len(scores)), -scores))
    ids = sample.snapshot.products.column_values("id", candidates.docnos[order[:10]])
    grades = np.array([float(sample.grades.get(pid, 0)) for pid in ids])
    return ndcg_at_10(grades, ideal_dcg(list(sample.grades.values())))


def guard_metrics(samples: list[QuerySample], booster, plan, current_plan, live, config: RankerConfig) -> dict:
    """Held-out NDCG@10 of the new model, of its fusion alone, and of the current order (live model or hybrid)."""
    source = Ranker(booster, {"use_behaviour": config.use_behaviour}, samples[0].snapshot)
    new, fusion_only, current = [], [], []
    for sample in samples:
        head = sample.candidates.refused(plan).take(np.arange(min(config.depth, len(sample.candidates))))
        new.append(_ndcg_of(sample, head, source.score(source.features(sample.snapshot, sample.query, head))))
        fusion_only.append(_ndcg_of(sample, head, None))
        old = sample.candidates.refused(current_plan).take(np.arange(min(config.depth, len(sample.candidates))))
        scores = live.score(live.features(sample.snapshot, sample.query, old)) if live is not None else None
        current.append(_ndcg_of(sample, old, scores))
    return {"queries": len(samples), "new": float(np.mean(new)), "new_fusion_only": float(np.mean(fusion_only)),
            "current": float(np.mean(current)), "current_system": "live model" if live is not None else "hybrid",
            "margin": GUARD_MARGIN}


def _live_ranker(engine):
    """The index's current reranker when it can score text queries with this feature set, else None."""
    try:
        ranker = engine.ranker(engine.snapshot)
    except RankerError:
        return None
    return ranker if ranker is not None and "text" in ranker.query_kinds else None


def train_ranker(index_path: str | Path, judgments: Judgments, config: RankerConfig | None = None,
                 validation: Judgments | None = None, source: str = "judgments", progress: Progress | None = None,
                 continue_training: bool = False, extra_meta: dict[str, Any] | None = None, force: bool = False,
                 learn_fusion: bool = True) -> RankerReport:
    """Learn the fusion plan, log features, fit, check on held-out queries, and commit when not worse."""
    from shoplens.engine.fusion_learning import select_plan
    from shoplens.engine.search import SearchEngine

    config = config or RankerConfig()
    engine = SearchEngine(index_path, device="cpu" if config.device != "cuda" else "cuda")
    live = _live_ranker(engine)
    base_model, continued_from, history = None, None, []
    if continue_training:
        if live is None:
            raise RankerError("there is no reranker to continue from; train one first without --continue")
        base_model, continued_from = live.booster, live.meta.get("trained_at")
        history = list(live.meta.get("history", []))
    started = time.perf_counter()
    samples = gather(engine, judgments, config.depth, progress)
    if validation:
        train_s = samples
        stop_s, guard_s = halve(gather(engine, validation, config.depth, progress, "retrieving validation queries"),
                                config.seed)
    else:
        train_s, stop_s, guard_s = split_samples(samples, GUARD_SHARE, config.seed)
    current_plan = engine.fusion_plan(engine.snapshot)
    plan, fusion_train, fusion_before = current_plan, None, None
    if learn_fusion and not continue_training:
        plan, fusion_train, fusion_before = select_plan(channel_ranks(train_s), current_plan, seed=config.seed)
    train_data = features_for(train_s, plan, config.depth, config.use_behaviour, progress)
    stop_data = features_for(stop_s, plan, config.depth, config.use_behaviour, progress)
    seconds_features = time.perf_counter() - started
    train_queries = len(train_s)
    if config.use_behaviour and config.blank_behaviour_share > 0:
        train_data = _with_blanked_behaviour(train_data, config.blank_behaviour_share, config.seed)
    started = time.perf_counter()
    booster, metrics, best, device = fit(train_data, stop_data, config, base_model)
    seconds_training = time.perf_counter() - started
    holdout = guard_metrics(guard_s, booster, plan, current_plan, live, config)
    holdout["fusion"] = {"train_ndcg@10": fusion_train, "train_ndcg@10_before": fusion_before}
    accepted = holdout["new"] >= holdout["current"] - GUARD_MARGIN
    meta = _meta(engine, config, source, train_queries, len(stop_s), train_data, metrics, best, device,
                 continued_from, history, holdout, plan, extra_meta)
    engine.close()
    version = save_ranker(index_path, booster, meta) if (accepted or force) else None
    return RankerReport(version=version, source=source, queries_train=train_queries,
                        queries_validation=len(stop_s), rows=meta["rows"], best_iteration=best,
                        validation=metrics, device=device, seconds_features=round(seconds_features, 2),
                        seconds_training=round(seconds_training, 2), use_behaviour=config.use_behaviour,
                        continued_from=continued_from, label_counts=meta["label_counts"], holdout=holdout,
                        committed=version is not None, forced=bool(force and not accepted), fusion=plan.to_dict())


def _meta(engine, config, source, train_queries, stop_queries, train_data, metrics, best, device, continued_from,
          history, holdout, plan, extra_meta) -> dict[str, Any]:
    from shoplens.rerank import behaviour as behaviour_module

    stats = behaviour_module.load(engine.snapshot.path / "behaviour")
    labels, counts = np.unique(train_data.labels, return_counts=True)
    meta = {
        "feature_names": FEATURE_NAMES, "feature_version": FEATURE_VERSION, "objective": "rank:ndcg",
        "trained_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": source, "use_behaviour": config.use_behaviour, "depth": config.depth,
        "query_kinds": ["text"],
        "queries": {"train": train_queries, "validation": stop_queries, "holdout": holdout["queries"]},
        "rows": int(len(train_data.labels)),
        "label_counts": {str(int(label)): int(count) for label, count in zip(labels, counts)},
        "validation": metrics, "holdout": holdout, "fusion": plan.to_dict(), "best_iteration": best, "device": device,
        "params": {k: v for k, v in asdict(config).items() if k not in ("device",)},
        "behaviour_seen": behaviour_module.summary(stats) if stats.has_data else None,
        "continued_from": continued_from, "trained_on_version": engine.snapshot.version,
        **(extra_meta or {}),
    }
    # everything this model has learned from, oldest first (a refresh adds to it)
    meta["history"] = history + [{"trained_at": meta["trained_at"], "source": source, "queries": meta["queries"],
                                  "rows": meta["rows"], "rounds": best + 1, "index_version": engine.snapshot.version,
                                  "behaviour_events": (meta["behaviour_seen"] or {}).get("events", 0),
                                  "holdout_ndcg@10": round(holdout["new"], 4)}]
    return meta


def save_ranker(index_path: str | Path, booster, meta: dict[str, Any]) -> int:
    """Commit a new version whose `ranker/` holds this model; every other store is carried over."""
    from shoplens.indexers.writer import replace_component

    def write(directory: Path, parent: Path | None) -> None:
        booster.save_model(str(directory / "model.json"))
        (directory / "meta.json").write_text(json.dumps(meta, indent=2, default=str))

    summary = {k: meta.get(k) for k in ("trained_at", "source", "use_behaviour", "queries", "validation",
                                        "best_iteration", "device", "feature_version", "query_kinds")}
    holdout = meta.get("holdout") or {}
    summary["holdout"] = {k: holdout.get(k) for k in ("queries", "new", "new_fusion_only", "current", "current_system")}
    updates: dict[str, Any] = {"ranker": summary}
    if meta.get("fusion"):
        updates["fusion"] = {**meta["fusion"], "source": meta.get("source"), "trained_at": meta.get("trained_at")}
    return replace_component(index_path, "ranker", "ranker", write, updates)
