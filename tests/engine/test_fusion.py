"""Fusion against values worked out by hand."""

import pytest

from shoplens.common.errors import ConfigError
from shoplens.engine.fusion import fuse, normalize, rrf, weighted_sum

LEXICAL = {"a": 12.0, "b": 8.0, "c": 4.0}  # ranks a=1, b=2, c=3
DENSE = {"c": 0.9, "d": 0.7, "a": 0.5}  # ranks c=1, d=2, a=3


def test_rrf_by_hand():
    fused = rrf([LEXICAL, DENSE], k=60)
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 63)
    assert fused["b"] == pytest.approx(1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["d"] == pytest.approx(1 / 62)


def test_weighted_rrf_by_hand():
    fused = rrf([LEXICAL, DENSE], weights=[2.0, 0.5], k=10)
    assert fused["a"] == pytest.approx(2 / 11 + 0.5 / 13)
    assert fused["d"] == pytest.approx(0.5 / 12)
    assert max(fused, key=fused.get) == "a"


def test_minmax_and_zscore_by_hand():
    assert normalize(LEXICAL, "minmax") == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0})
    # mean 8, population std sqrt(32/3)
    std = (32 / 3) ** 0.5
    assert normalize(LEXICAL, "zscore") == pytest.approx({"a": 4 / std, "b": 0.0, "c": -4 / std})
    assert normalize({"x": 3.0, "y": 3.0}, "minmax") == {"x": 1.0, "y": 1.0}
    assert normalize({"x": 3.0, "y": 3.0}, "zscore") == {"x": 0.0, "y": 0.0}


def test_weighted_sum_by_hand():
    fused = weighted_sum([LEXICAL, DENSE], weights=[1.0, 2.0], method="minmax")
    # dense min-max: c=1, d=0.5, a=0; a missing doc gets the run's lowest normalized score (0)
    assert fused["a"] == pytest.approx(1.0 + 2 * 0.0)
    assert fused["b"] == pytest.approx(0.5 + 2 * 0.0)
    assert fused["c"] == pytest.approx(0.0 + 2 * 1.0)
    assert fused["d"] == pytest.approx(0.0 + 2 * 0.5)


def test_weighted_sum_zscore_missing_gets_the_floor():
    fused = weighted_sum([{"a": 1.0, "b": 3.0}, {"b": 5.0, "c": 1.0}], method="zscore")
    # run 1: a=-1, b=1 ; run 2: b=1, c=-1 ; floors -1
    assert fused == pytest.approx({"a": -2.0, "b": 2.0, "c": -2.0})


def test_fuse_dispatch_and_errors():
    assert fuse([LEXICAL, DENSE], "rrf") == rrf([LEXICAL, DENSE])
    assert fuse([LEXICAL, DENSE], "wsum", normalization="zscore") == weighted_sum([LEXICAL, DENSE], method="zscore")
    with pytest.raises(ConfigError, match="rrf, wsum"):
        fuse([LEXICAL], "borda")
    with pytest.raises(ConfigError, match="2 retrievers"):
        rrf([LEXICAL, DENSE], weights=[1.0])
    with pytest.raises(ConfigError, match="non-negative"):
        rrf([LEXICAL], weights=[-1.0])
    with pytest.raises(ConfigError, match="minmax, zscore"):
        normalize(LEXICAL, "rank")


# -- fusion plans, channel confidence, learned plans ---------------------------------

from dataclasses import replace

import numpy as np

from shoplens.engine.fusion import FusionPlan, channel_confidence, fuse_channels
from shoplens.engine.fusion_learning import (ChannelRanks, candidate_photo_plans, ideal_dcg, ndcg_at_10, plan_ndcg,
                                             select_plan)
from shoplens.engine.hybrid import Candidates, QueryVectors


def test_channel_confidence_by_hand():
    lexical = list(range(100))
    assert channel_confidence(lexical[:10], [500, 501]) == 1.0  # short lexical list: full trust in the dense side
    agreeing = list(range(10)) + list(range(200, 210))  # 10 of its top 20 in the lexical head: 0.5
    assert channel_confidence(lexical, agreeing) == 1.0
    half = list(range(5)) + list(range(200, 215))  # 5 of 20 = 0.25 -> 0.25 / 0.5 = 0.5
    assert channel_confidence(lexical, half) == pytest.approx(0.5)
    assert channel_confidence(lexical, list(range(200, 220))) == pytest.approx(0.05)  # the floor
    # agreeing only with the lexical list's tail (ranks 51-100) is no agreement: a candidate list's tail
    # holds most of what any channel finds
    assert channel_confidence(lexical, list(range(60, 80))) == pytest.approx(0.05)


def test_a_channel_answering_another_query_cannot_pull_the_list_far_below_bm25():
    """A dense channel whose head is some other query's (it read this catalog badly) against the old rule:
    the confidence now drops it to the floor, so BM25's order survives fusion."""
    lexical = {d: 100.0 - d for d in range(100)}
    wrong = {d: 1.0 - d / 1000 for d in [*range(60, 75), *range(300, 305)]}  # meets only the lexical tail
    plan = FusionPlan(k=60, weights=(("lexical", 1.0), ("dense", 0.5), ("native", 1.0)), adaptive=True)
    fused, weights = fuse_channels({"lexical": lexical, "dense": wrong, "native": wrong}, plan)
    assert weights["native"] == pytest.approx(0.05) and weights["dense"] == pytest.approx(0.025)
    top10 = sorted(fused, key=lambda d: -fused[d])[:10]
    assert top10 == list(range(10))


def test_the_default_plan_of_a_catalog_without_photos():
    from shoplens.engine.fusion import DEFAULT_PLAN, TEXT_ONLY_PLAN, default_plan

    def manifest(with_image, pretrained="shoplens-myntra"):
        return {"counts": {"products": 1000, "with_image": with_image}, "model": {"pretrained": pretrained}}

    assert default_plan(manifest(1000)) == DEFAULT_PLAN
    assert default_plan(manifest(0)) == TEXT_ONLY_PLAN and TEXT_ONLY_PLAN.weight("dense") == 0.0
    assert default_plan(manifest(0, "/shops/hardware/text-heads.safetensors")) == DEFAULT_PLAN  # adapted heads
    assert FusionPlan.from_dict(None, TEXT_ONLY_PLAN) == TEXT_ONLY_PLAN
    learned = {"method": "rrf", "k": 30.0, "weights": {"lexical": 1.0, "dense": 1.0, "native": 0.0}}
    assert FusionPlan.from_dict(learned, TEXT_ONLY_PLAN).weight("dense") == 1.0  # a learned plan wins


def test_fuse_channels_adaptive_weights_by_hand():
    lexical = {d: 100.0 - d for d in range(30)}
    dense = {d: 1.0 - d / 100 for d in range(100, 130)}  # shares nothing with lexical
    plan = FusionPlan(k=60, weights=(("lexical", 1.0), ("dense", 1.0), ("native", 0.0)), adaptive=True)
    fused, weights = fuse_channels({"lexical": lexical, "dense": dense, "native": {}}, plan)
    assert weights == {"lexical": 1.0, "dense": pytest.approx(0.05)}
    assert fused[0] == pytest.approx(1 / 61)
    assert fused[100] == pytest.approx(0.05 / 61)
    fixed, _ = fuse_channels({"lexical": lexical, "dense": dense}, FusionPlan(k=60, weights=plan.weights, adaptive=False))
    assert fixed[100] == pytest.approx(1 / 61)


def _candidates(rng, n=60):
    docnos = np.arange(n)
    ranks = []
    for _ in range(3):
        chosen = rng.choice(n, 40, replace=False)
        rank = np.full(n, np.nan)
        rank[chosen] = np.arange(1, 41)
        ranks.append(rank)
    scores = [np.where(np.isfinite(r), 1.0 / r, np.nan) for r in ranks]
    return Candidates(docnos, np.zeros(n), scores[0], ranks[0], scores[1], ranks[1], QueryVectors(None, None, None),
                      native=scores[2], native_rank=ranks[2])


def test_learned_plan_scores_match_serving_fusion():
    """plan_ndcg (vectorized, for training) ranks exactly as Candidates.refused (serving) does."""
    rng = np.random.default_rng(0)
    for adaptive in (True, False):
        plan = FusionPlan(k=10, weights=(("lexical", 1.0), ("dense", 0.25), ("native", 2.0)), adaptive=adaptive)
        candidates = _candidates(rng)
        grades = {int(d): float(rng.integers(0, 4)) for d in candidates.docnos}
        sample = ChannelRanks.from_candidates(candidates, grades, list(grades.values()))
        served = candidates.refused(plan)
        expected = ndcg_at_10(np.array([grades[int(d)] for d in served.docnos]), ideal_dcg(list(grades.values())))
        assert plan_ndcg([sample], plan) == pytest.approx(expected)


def test_select_plan_prefers_the_channel_that_finds_relevant_products():
    rng = np.random.default_rng(1)
    samples = []
    for _ in range(20):
        candidates = _candidates(rng)
        head = candidates.native_rank <= 5  # only the text-native channel's head is relevant
        grades = {int(d): 3.0 if h else 0.0 for d, h in zip(candidates.docnos, head)}
        samples.append(ChannelRanks.from_candidates(candidates, grades, list(grades.values())))
    plan, best, before = select_plan(samples, FusionPlan(weights=(("lexical", 1.0), ("dense", 1.0), ("native", 0.0))))
    assert best > before
    assert plan.weight("native") > 0 and plan.weight("native") >= plan.weight("lexical")
    assert best == pytest.approx(1.0)


def test_ideal_and_ndcg_by_hand():
    assert ideal_dcg([3, 0, 1]) == pytest.approx(3 + 1 / np.log2(3))
    assert ndcg_at_10(np.array([1.0, 3.0]), ideal_dcg([3, 1])) == pytest.approx((1 + 3 / np.log2(3)) / (3 + 1 / np.log2(3)))


def test_the_product_in_the_photo_leads_and_the_rest_keep_their_fused_order():
    from shoplens.engine.fusion import DEFAULT_PHOTO_PLAN, PHOTO_MATCH, photo_leads

    assert photo_leads(np.array([0.2, np.nan, 0.95, 0.999]), 0.95).tolist() == [False, False, True, True]
    assert not photo_leads(np.array([1.0]), None).any()  # a plan without the rule
    # words put products 0..29 first in BM25 (dense orders them the other way round); the photo's product (40)
    # is only dense #1, and photo-identical
    lexical = {d: 100.0 - d for d in range(30)}
    dense = {40: 0.9, **{d: 0.5 + d / 100 for d in range(30)}}
    docnos = np.array(sorted(set(lexical) | set(dense)))
    bm25_rank = np.array([d + 1.0 if d in lexical else np.nan for d in docnos])
    dense_rank = np.array([1.0 if d == 40 else 31.0 - d for d in docnos])
    photo = np.where(docnos == 40, 1.0, 0.6)
    candidates = Candidates(docnos, np.zeros(len(docnos)), np.where(np.isfinite(bm25_rank), 100.0 - docnos, np.nan),
                            bm25_rank, np.array([dense[d] for d in docnos]), dense_rank,
                            QueryVectors(None, None, None), photo=photo)
    plain = candidates.refused(replace(DEFAULT_PHOTO_PLAN, photo_match=None))
    assert list(plain.docnos).index(40) > 0  # rank fusion alone: the words' consensus wins
    led = candidates.refused(DEFAULT_PHOTO_PLAN)
    assert DEFAULT_PHOTO_PLAN.photo_match == PHOTO_MATCH
    assert led.docnos[0] == 40 and list(led.docnos[1:]) == [d for d in plain.docnos if d != 40]
    # training scores the same order (plan_ndcg with the photo similarities)
    grades = {int(d): (4.0 if d == 40 else 1.0 if d < 5 else 0.0) for d in docnos}
    sample = ChannelRanks.from_candidates(candidates, grades, list(grades.values()))
    for plan in (DEFAULT_PHOTO_PLAN, replace(DEFAULT_PHOTO_PLAN, photo_match=None)):
        served = candidates.refused(plan)
        expected = ndcg_at_10(np.array([grades[int(d)] for d in served.docnos]), ideal_dcg(list(grades.values())))
        assert plan_ndcg([sample], plan) == pytest.approx(expected)
    chosen, best, before = select_plan([sample], replace(DEFAULT_PHOTO_PLAN, photo_match=None),
                                       plans=candidate_photo_plans())
    assert chosen.photo_match == PHOTO_MATCH and best > before


def test_a_plan_records_its_photo_plan():
    from shoplens.engine.fusion import DEFAULT_PHOTO_PLAN

    photo = FusionPlan(k=10.0, weights=(("lexical", 0.5), ("dense", 2.0), ("native", 0.0)), adaptive=False,
                       photo_match=0.97)
    plan = FusionPlan(k=30.0, photo=photo)
    assert FusionPlan.from_dict(plan.to_dict()) == plan
    assert FusionPlan.from_dict(plan.to_dict()).for_photo() == photo
    assert FusionPlan().for_photo() == DEFAULT_PHOTO_PLAN  # no recorded photo plan: the default one
    older = {"method": "rrf", "k": 30.0, "weights": {"lexical": 1.0, "dense": 1.0, "native": 0.0}}  # before photo plans
    assert FusionPlan.from_dict(older).for_photo() == DEFAULT_PHOTO_PLAN
