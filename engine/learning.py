"""Training the reranker through the real retrieval: run every judged query's channels once, learn the
fusion plan on them, log the fused candidates' features exactly as serving computes them, fit
(`rerank.training`), check the model on held-out queries against the current order, and commit it
only when it is not worse.

Judged queries may be text, a photo, or both (`rerank.judgments`). The held-out check runs per query
kind: the model is recorded to cover (and at serving time reranks) only the kinds whose held-out
NDCG@10 is not worse than the fused order's by more than GUARD_MARGIN and, for kinds with a photo,
whose best-judged-product hit@1 is not lower; every other kind keeps the fused order."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from shoplens.common.errors import RankerError
from shoplens.engine.fusion_learning import (ChannelRanks, candidate_photo_plans, ideal_dcg, ndcg_at_10,
                                             select_plan)
from shoplens.engine.fusion import photo_leads
from shoplens.engine.hybrid import photo_plan
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.rerank import behaviour_store
from shoplens.rerank.features import FEATURE_NAMES
from shoplens.rerank.judgments import QUERY_KINDS, Judgments, judged_query
from shoplens.rerank.model import Ranker, compile_saved_trees
from shoplens.rerank.training import (GUARD_MARGIN, GUARD_SHARE, Progress, RankerConfig, RankerReport, TrainingData,
                                      fit_ranker, halve, ranker_meta, ranker_report, save_ranker, split_samples)
from shoplens.rerank.training_checks import check_config, check_known_products


@dataclass
class QuerySample:
    """One judged query's retrieved candidates (every channel, not yet fused) and its grades."""

    query: str  # the judgments' key
    candidates: Any  # engine.hybrid.Candidates, unfused union of the channels' lists
    grades: dict[str, float]
    ids: list[str]
    snapshot: Any
    text: str | None = None  # the query text (None for a photo alone)
    kind: str = "text"

    def plan(self, plan):
        """The fusion serving runs for this query: a query with a photo fuses with `photo_plan`."""
        return plan if self.kind == "text" else photo_plan(plan)


def gather(engine: SearchEngine, judgments: Judgments, depth: int, progress: Progress | None = None,
           label: str = "retrieving judged queries") -> list[QuerySample]:
    """Run every channel once for each judged query; fusion plans and features are then computed offline."""
    samples = []
    asked = {key: judged_query(judgments, key) for key in judgments}
    engine.prepare_queries([q.text for q in asked.values() if q.text])  # encoded in batches once
    for number, (key, grades) in enumerate(judgments.items()):
        query = asked[key]
        request = SearchRequest(text=query.text, image=query.image, k=depth, candidates=depth, rerank_depth=depth,
                                weights=(1.0, 1.0, 1.0))
        snapshot, candidates, _ = engine.retrieve(request, for_rerank=True)
        if len(candidates):
            ids = snapshot.products.column_values("id", candidates.docnos)
            # features read the judged text as given (the text retrieval searched, spelling corrected and price
            # phrase out, as serving reads it, made early stopping end within 14-69 rounds on the text-only
            # sample and cost 0.03-0.07 NDCG@10: not understood yet); stated intent comes from the candidates
            samples.append(QuerySample(key, candidates, grades, ids, snapshot, query.text, query.kind))
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
        fused = sample.candidates.refused(sample.plan(plan))
        candidates = fused.take(np.arange(min(depth, len(fused))))
        ids = sample.snapshot.products.column_values("id", candidates.docnos)
        features = feature_source.features(sample.snapshot, sample.text, candidates, use_behaviour=use_behaviour)
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


def _order_metrics(sample: QuerySample, candidates, scores: np.ndarray | None, plan=None) -> tuple[float, float]:
    """(NDCG@10, hit@1 of a best-judged product) of the candidates in score order (fused order without scores),
    the product in the query photo kept first as serving keeps it (`plan`'s photo_match)."""
    order = np.arange(len(candidates)) if scores is None else np.lexsort((np.arange(len(scores)), -scores))
    if plan is not None:
        order = order[np.argsort(~photo_leads(candidates.photo[order], plan.photo_match), kind="stable")]
    ids = sample.snapshot.products.column_values("id", candidates.docnos[order[:10]])
    grades = np.array([float(sample.grades.get(pid, 0)) for pid in ids])
    best = max(sample.grades.values(), default=0)
    hit = float(len(ids) > 0 and best > 0 and sample.grades.get(ids[0], 0) == best)
    return ndcg_at_10(grades, ideal_dcg(list(sample.grades.values()))), hit


def _guard_row(sample: QuerySample, source: Ranker, plan, current_plan, live, depth: int) -> dict[str, float]:
    """One held-out query: the new model's order, its fusion alone, and the current order (live model where it
    covers the query's kind, else fused with the current plan)."""
    head = sample.candidates.refused(sample.plan(plan)).take(np.arange(min(depth, len(sample.candidates))))
    new = _order_metrics(sample, head, source.score(source.features(sample.snapshot, sample.text, head)),
                         sample.plan(plan))
    fused = _order_metrics(sample, head, None)
    old = sample.candidates.refused(sample.plan(current_plan)).take(np.arange(min(depth, len(sample.candidates))))
    live_covers = live is not None and sample.kind in live.query_kinds
    current = _order_metrics(sample, old, live.score(live.features(sample.snapshot, sample.text, old))
                             if live_covers else None, sample.plan(current_plan))
    return {"new": new[0], "new_fusion_only": fused[0], "current": current[0],
            "new_hit@1": new[1], "new_fusion_only_hit@1": fused[1], "current_hit@1": current[1]}


def kind_covered(kind: str, metrics: dict[str, float]) -> bool:
    """Whether the model may rerank a query kind: held-out NDCG@10 not below its fusion alone by more than
    GUARD_MARGIN and, for a kind with a photo, the best-judged product at #1 no less often."""
    if metrics["new"] < metrics["new_fusion_only"] - GUARD_MARGIN:
        return False
    return kind == "text" or metrics["new_hit@1"] >= metrics["new_fusion_only_hit@1"]


def guard_metrics(samples: list[QuerySample], booster, plan, current_plan, live, config: RankerConfig,
                  trained_kinds: list[str] | None = None) -> dict:
    """Held-out figures per query kind and overall: the new model's order, its fusion alone, the current order.

    `covered` lists the kinds the model may rerank (trained on and `kind_covered`); overall, `new` is what
    serving would show with it: reranked for those kinds, the new fusion alone for the others.
    """
    source = Ranker(booster, {"use_behaviour": config.use_behaviour}, samples[0].snapshot)
    rows: dict[str, list[dict[str, float]]] = {}
    for sample in samples:
        rows.setdefault(sample.kind, []).append(_guard_row(sample, source, plan, current_plan, live, config.depth))
    kinds = {kind: {"queries": len(rows[kind]), **{name: float(np.mean([r[name] for r in rows[kind]]))
                                                   for name in rows[kind][0]}}
             for kind in QUERY_KINDS if kind in rows}
    trained = trained_kinds if trained_kinds is not None else list(kinds)
    covered = [kind for kind in kinds if kind in trained and kind_covered(kind, kinds[kind])]
    served = [row["new" if kind in covered else "new_fusion_only"] for kind in kinds for row in rows[kind]]
    every = [row for kind in kinds for row in rows[kind]]
    return {"queries": len(samples), "new": float(np.mean(served)),
            "new_fusion_only": float(np.mean([r["new_fusion_only"] for r in every])),
            "current": float(np.mean([r["current"] for r in every])),
            "current_system": "live model" if live is not None else "hybrid", "margin": GUARD_MARGIN,
            "kinds": kinds, "covered": covered}


def _live_ranker(engine: SearchEngine):
    """The index's current reranker when it loads with this feature set, else None."""
    try:
        return engine.ranker(engine.snapshot)
    except RankerError:
        return None


def _by_kind(samples: list[QuerySample], split, parts: int) -> tuple[list, ...]:
    """`split` applied to each query kind's samples on its own, the `parts` joined: every part holds each kind
    in proportion (a kind with fewer than three queries goes to the first part only)."""
    joined: list[list] = [[] for _ in range(parts)]
    for kind in QUERY_KINDS:
        group = [s for s in samples if s.kind == kind]
        pieces = split(group) if len(group) >= 3 else (group, *([[]] * (parts - 1)))
        joined = [a + list(b) for a, b in zip(joined, pieces)]
    return tuple(joined)


def _split(engine: SearchEngine, judgments: Judgments, validation: Judgments | None, config: RankerConfig,
           progress: Progress | None):
    """(train, early-stopping, held-out guard) samples: the guard's queries are never trained or stopped on."""
    samples = gather(engine, judgments, config.depth, progress)
    if validation:
        held = gather(engine, validation, config.depth, progress, "retrieving validation queries")
        stop, guard = _by_kind(held, lambda group: halve(group, config.seed), 2)
        return (samples, stop, guard) if guard else (samples, *halve(held, config.seed))
    train, stop, guard = _by_kind(samples, lambda group: split_samples(group, GUARD_SHARE, config.seed), 3)
    if not guard:
        raise RankerError("training needs at least three judged queries of one kind that retrieve candidates "
                          "(train, early stopping, held-out check)")
    return train, stop, guard


def learn_plans(samples: list[QuerySample], current, seed: int = 0):
    """The fusion plan with the best NDCG@10 on the training queries: text queries choose the plan's weights,
    queries with a photo its photo plan (each kind keeps the current choice without queries of its own).
    Returns (plan, {train NDCG@10 of the chosen plans and of the current ones})."""
    text = [s for s in samples if s.kind == "text"]
    photo = [s for s in samples if s.kind != "text"]
    plan, figures = current, {"train_ndcg@10": None, "train_ndcg@10_before": None}
    if text:
        plan, figures["train_ndcg@10"], figures["train_ndcg@10_before"] = select_plan(
            channel_ranks(text), current, seed=seed)
    chosen = current.photo
    if photo:
        chosen, figures["photo_train_ndcg@10"], figures["photo_train_ndcg@10_before"] = select_plan(
            channel_ranks(photo), current.for_photo(), seed=seed, plans=candidate_photo_plans())
    return replace(plan, photo=chosen), figures


def _decide(holdout: dict, trained_kinds: list[str], force: bool) -> tuple[bool, list[str]]:
    """(commit?, the kinds the model reranks): committed when it covers a kind and what serving would show is not
    worse than the current order; forced, it covers every kind it was trained on."""
    accepted = bool(holdout["covered"]) and holdout["new"] >= holdout["current"] - GUARD_MARGIN
    return accepted, (holdout["covered"] if accepted or not force else list(trained_kinds))


def train_ranker(index_path: str | Path, judgments: Judgments, config: RankerConfig | None = None,
                 validation: Judgments | None = None, source: str = "judgments", progress: Progress | None = None,
                 continue_training: bool = False, extra_meta: dict[str, Any] | None = None, force: bool = False,
                 learn_fusion: bool = True) -> RankerReport:
    """Learn the fusion plan, log features, fit, check on held-out queries per query kind, and commit when not
    worse (or with `force`). With `continue_training` the live model is boosted further and its history kept."""
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
            if live.feature_names != FEATURE_NAMES:
                raise RankerError(f"the live reranker reads {len(live.feature_names)} features, this ShopLens computes "
                                  f"{len(FEATURE_NAMES)}: train a new one (without --continue)")
            base_model, previous = live.booster, live.meta
        started = time.perf_counter()
        train_s, stop_s, guard_s = _split(engine, judgments, validation, config, progress)
        trained = [kind for kind in QUERY_KINDS if any(s.kind == kind for s in train_s)]
        current_plan = engine.fusion_plan(engine.snapshot)
        plan, fusion = (learn_plans(train_s, current_plan, config.seed) if learn_fusion and not continue_training
                        else (current_plan, {}))
        train_data = features_for(train_s, plan, config.depth, config.use_behaviour, progress)
        stop_data = features_for(stop_s, plan, config.depth, config.use_behaviour, progress)
        seconds_features = time.perf_counter() - started
        fitted = fit_ranker(train_data, stop_data, config, base_model)
        holdout = guard_metrics(guard_s, fitted.booster, plan, current_plan, live, config, trained)
        holdout["fusion"] = fusion
        accepted, kinds = _decide(holdout, trained, force)
        stats = behaviour_store.load(engine.snapshot.path / "behaviour")
        extra = {**(extra_meta or {}), "query_kinds": kinds, "query_kinds_trained": trained, "holdout": holdout,
                 "fusion": plan.to_dict(),
                 "queries_by_kind": {kind: sum(1 for s in train_s if s.kind == kind) for kind in trained}}
        meta = ranker_meta(fitted, config, source, stats, engine.snapshot.version, previous, extra)
        meta["queries"]["holdout"] = holdout["queries"]
    finally:
        engine.close()
    version = save_ranker(index_path, fitted.booster, meta, base_manifest) if (accepted or force) else None
    report = ranker_report(version, meta, fitted, seconds_features, forced=bool(force and not accepted))
    if version is not None:  # searches then predict with native code from their first query
        if progress is not None:
            progress("compiling the trees", 0, 1)
        report.predictor = compile_saved_trees(index_path, version)
    return report
