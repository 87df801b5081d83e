"""Per-kind metrics and the best-judged product's hit rate, against values worked out by hand."""

import pytest

from shoplens.rerank.judgments import JudgedQuery, Judgments
from shoplens.rerank.metrics import hit_rate, query_ids, score_by_kind


def judgments() -> Judgments:
    return Judgments({"shoes": {"a": 2, "b": 1}, "[photo p1]": {"x": 4, "y": 2}, "[photo p2]": {"z": 4, "w": 4}},
                     queries={"[photo p1]": JudgedQuery(None, "p1"), "[photo p2]": JudgedQuery(None, "p2")})


def test_hit_rate_counts_a_best_judged_product_in_the_top_k():
    judged = judgments()
    qids = query_ids(judged)
    run = {qids["shoes"]: {"b": 3.0, "a": 2.0}, qids["[photo p1]"]: {"y": 3.0, "x": 2.0},
           qids["[photo p2]"]: {"w": 3.0}}
    # shoes: best a at #2; p1: best x at #2; p2: w ties z for the best grade, at #1
    assert hit_rate(judged, run, 1) == pytest.approx(1 / 3)
    assert hit_rate(judged, run, 2) == pytest.approx(1.0)


def test_score_by_kind_scores_each_kind_alone_and_leaves_out_what_a_system_cannot_take():
    judged = judgments()
    qids = query_ids(judged)
    run = {qids["shoes"]: {"a": 2.0, "b": 1.0}, qids["[photo p1]"]: {"y": 3.0, "x": 2.0},
           qids["[photo p2]"]: {"z": 1.0}}
    scores = score_by_kind(judged, run)
    assert set(scores) == {"text", "photo"}
    assert scores["text"]["ndcg@10"] == pytest.approx(1.0) and "hit@1" not in scores["text"]
    assert scores["photo"]["hit@1"] == pytest.approx(0.5) and scores["photo"]["hit@10"] == pytest.approx(1.0)
    # p1: DCG 2 + 4/log2(3) against ideal 4 + 2/log2(3); p2: DCG 4 against ideal 4 + 4/log2(3)
    p1 = (2 + 4 / 1.5849625) / (4 + 2 / 1.5849625)
    p2 = 4 / (4 + 4 / 1.5849625)
    assert scores["photo"]["ndcg@10"] == pytest.approx((p1 + p2) / 2, rel=1e-5)
    text_only = score_by_kind(judged, {qids["shoes"]: {"a": 1.0}})
    assert set(text_only) == {"text"}  # a system that answered no photo query has no photo row


def test_a_run_that_answers_no_query_scores_zero():
    from shoplens.rerank.metrics import METRICS, score_run

    judged = judgments()
    qids = query_ids(judged)
    for run in ({}, {qid: {} for qid in qids.values()}):
        assert score_run(judged, run) == {metric: 0.0 for metric in METRICS}


def test_fractional_grades_are_linear_gains_in_ndcg_and_relevant_from_one():
    """NDCG@10 by hand with the grades as gains: 2.67 at #1 and 1.33 at #2 against the ideal 3, 2.67, 1.33;
    0.5 is not relevant for precision."""
    import math

    from shoplens.rerank.metrics import score_run

    judged = Judgments({"drill": {"a": 2.67, "b": 1.33, "c": 3, "d": 0.5}})
    run = {query_ids(judged)["drill"]: {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}}
    discount = [1 / math.log2(i + 2) for i in range(4)]
    dcg = sum(g * d for g, d in zip((2.67, 1.33, 3, 0.5), discount))
    ideal = sum(g * d for g, d in zip((3, 2.67, 1.33, 0.5), discount))
    scores = score_run(judged, run)
    assert scores["ndcg@10"] == pytest.approx(dcg / ideal, abs=1e-9)
    assert scores["precision@10"] == pytest.approx(3 / 10)
    assert scores["mrr@10"] == pytest.approx(1.0)
