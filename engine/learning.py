"""Training the reranker through the real retrieval: log every training query's candidates and their
features exactly as serving computes them, then fit (`rerank.training`) and commit the model."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from shoplens.common.errors import RankerError
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.rerank import behaviour
from shoplens.rerank.judgments import Judgments
from shoplens.rerank.model import Ranker
from shoplens.rerank.training import (Progress, RankerConfig, RankerReport, TrainingData, fit_ranker, ranker_meta,
                                      ranker_report, save_ranker)
from shoplens.rerank.training_checks import check_config, check_known_products


def log_features(engine: SearchEngine, judgments: Judgments, depth: int, use_behaviour: bool = True,
                 progress: Progress | None = None) -> TrainingData:
    """Run retrieval for every judged query and log its candidates' features and labels."""
    feature_source = Ranker(None, {"use_behaviour": use_behaviour}, engine.snapshot)
    engine.prepare_queries(list(judgments))  # encoded in batches once, not one at a time below
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


def train_ranker(index_path: str | Path, judgments: Judgments, config: RankerConfig | None = None,
                 validation: Judgments | None = None, source: str = "judgments", progress: Progress | None = None,
                 continue_training: bool = False, extra_meta: dict[str, Any] | None = None) -> RankerReport:
    """Log features, fit, and commit the model as a new version of the index.

    With `continue_training` the index's current model is boosted further and its history kept.
    """
    config = config or RankerConfig()
    check_config(config)
    engine = SearchEngine(index_path, device="cpu" if config.device != "cuda" else "cuda")
    try:
        base_manifest = engine.snapshot.manifest
        check_known_products(judgments, engine.snapshot.products.docno_by_id, "judgments")
        base_model, previous = None, None
        if continue_training:
            existing = engine.ranker(engine.snapshot)
            if existing is None:
                raise RankerError("there is no reranker to continue from; train one first without --continue")
            base_model, previous = existing.booster, existing.meta
        started = time.perf_counter()
        data = log_features(engine, judgments, config.depth, config.use_behaviour, progress)
        validation_data = log_features(engine, validation, config.depth, config.use_behaviour, progress) \
            if validation else None
        seconds_features = time.perf_counter() - started
        fitted = fit_ranker(data, validation_data, config, base_model)
        stats = behaviour.load(engine.snapshot.path / "behaviour")
        meta = ranker_meta(fitted, config, source, stats, engine.snapshot.version, previous, extra_meta)
    finally:
        engine.close()
    version = save_ranker(index_path, fitted.booster, meta, base_manifest)
    return ranker_report(version, meta, fitted, seconds_features)
