"""Training the reranker through the real retrieval: run every judged query's channels once, learn the
fusion plan on them, log the fused candidates' features exactly as serving computes them, fit
(`rerank.training`), check the model on held-out queries against the current order, and commit it
only when it is not worse."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shoplens.common.errors import RankerError
from shoplens.engine.fusion_learning import ChannelRanks, ideal_dcg, ndcg_at_10, select_plan
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.rerank import behaviour
from shoplens.rerank.judgments import Judgments
from shoplens.rerank.model import Ranker
from shoplens.rerank.training import (GUARD_MARGIN, GUARD_SHARE, Progress, RankerConfig, RankerReport, TrainingData,
                                      fit_ranker, halve, ranker_meta, ranker_report, save_ranker, split_samples)
from shoplens.rerank.training_checks import check_config, check_known_products


@dataclass
class QuerySample:
    """One judged query's retrieved candidates (every channel, not yet fused) and its grades."""

    query: str
    candidates: Any  # engine.hybrid.Candidates, unfused union of the channels' lists
    grades: dict[str, float]
    ids: list[str]
    snapshot: Any


def gather(engine: SearchEngine, judgments: Judgments, depth: int, progress: Progress | None = None,
           label: str = "retrieving judged queries") -> list[QuerySample]:
    """Run every channel once for each judged query; fusion plans and features are then computed offline."""
    samples = []
    engine.prepare_queries(list(judgments))  # encoded in batches once, not one at a time below
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


def channel_ranks(samples: list[QuerySample]) -> list[ChannelRanks]:
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


def log_features(engine: SearchEngine, judgments: Judgments, depth: int, use_behaviour: bool = True,
                 progress: Progress | None = None, plan=None) -> TrainingData:
    """Run retrieval for every judged query and log its candidates' features and labels (the index's plan)."""
    samples = gather(engine, judgments, depth, progress)
    return features_for(samples, plan or engine.fusion_plan(engine.snapshot), depth, use_behaviour, progress)


def _ndcg_of(sample: QuerySample, candidates, scores: np.ndarray | None) -> float:
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


def _live_ranker(engine: SearchEngine):
    """The index's current reranker when it can score text queries with this feature set, else None."""
    try:
        ranker = engine.ranker(engine.snapshot)
    except RankerError:
        return None
    return ranker if ranker is not None and "text" in ranker.query_kinds else None


def _split(engine: SearchEngine, judgments: Judgments, validation: Judgments | None, config: RankerConfig,
           progress: Progress | None):
    """(train, early-stopping, held-out guard) samples: the guard's queries are never trained or stopped on."""
    samples = gather(engine, judgments, config.depth, progress)
    if validation:
        stop, guard = halve(gather(engine, validation, config.depth, progress, "retrieving validation queries"),
                            config.seed)
        return samples, stop, guard
    return split_samples(samples, GUARD_SHARE, config.seed)


def train_ranker(index_path: str | Path, judgments: Judgments, config: RankerConfig | None = None,
                 validation: Judgments | None = None, source: str = "judgments", progress: Progress | None = None,
                 continue_training: bool = False, extra_meta: dict[str, Any] | None = None, force: bool = False,
                 learn_fusion: bool = True) -> RankerReport:
    """Learn the fusion plan, log features, fit, check on held-out queries, and commit when not worse
    (or with `force`). With `continue_training` the live model is boosted further and its history kept."""
    config = config or RankerConfig()
    check_config(config)
    engine = SearchEngine(index_path, device="cpu" if config.device != "cuda" else "cuda")
    try:
        base_manifest = engine.snapshot.manifest
        check_known_products(judgments, engine.snapshot.products.docno_by_id, "judgments")
        live = _live_ranker(engine)
        base_model, previous = None, None
        if continue_training:
            if live is None:
                raise RankerError("there is no reranker to continue from; train one first without --continue")
            base_model, previous = live.booster, live.meta
        started = time.perf_counter()
        train_s, stop_s, guard_s = _split(engine, judgments, validation, config, progress)
        current_plan = engine.fusion_plan(engine.snapshot)
        plan, fusion_train, fusion_before = current_plan, None, None
        if learn_fusion and not continue_training:
            plan, fusion_train, fusion_before = select_plan(channel_ranks(train_s), current_plan, seed=config.seed)
        train_data = features_for(train_s, plan, config.depth, config.use_behaviour, progress)
        stop_data = features_for(stop_s, plan, config.depth, config.use_behaviour, progress)
        seconds_features = time.perf_counter() - started
        fitted = fit_ranker(train_data, stop_data, config, base_model)
        holdout = guard_metrics(guard_s, fitted.booster, plan, current_plan, live, config)
        holdout["fusion"] = {"train_ndcg@10": fusion_train, "train_ndcg@10_before": fusion_before}
        stats = behaviour.load(engine.snapshot.path / "behaviour")
        extra = {**(extra_meta or {}), "query_kinds": ["text"], "holdout": holdout, "fusion": plan.to_dict()}
        meta = ranker_meta(fitted, config, source, stats, engine.snapshot.version, previous, extra)
        meta["queries"]["holdout"] = holdout["queries"]
    finally:
        engine.close()
    accepted = holdout["new"] >= holdout["current"] - GUARD_MARGIN
    version = save_ranker(index_path, fitted.booster, meta, base_manifest) if (accepted or force) else None
    return ranker_report(version, meta, fitted, seconds_features, forced=bool(force and not accepted))
