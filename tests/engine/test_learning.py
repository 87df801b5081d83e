"""Training on text, photo and text + photo judgments derived from the sample: the guard decides per query kind,
evaluation reports each kind (with the exact product's hit rate for photos), and a photo search keeps the product
in the photo first. Real stores, the real model, derived judgments and simulated behaviour (benchmarks/devdata.py)."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from shoplens.cli import app
from shoplens.engine.evaluation import evaluate
from shoplens.engine.learning import kind_covered
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.indexers.index import IndexDirectory
from shoplens.rerank.judgments import load_judgments, split_by_kind
from tests.helpers import SAMPLE, trained_copy, fast_ranker

FAST = fast_ranker()


@pytest.fixture(scope="module")
def mixed(sample_index, tmp_path_factory):
    return trained_copy(sample_index, tmp_path_factory.mktemp("mixed"), FAST,
                        queries=120, photo_queries=100, text_photo_queries=60, sessions=1500, seed=4)


def test_the_guard_decides_each_query_kind_and_the_model_records_it(mixed):
    index, _, report = mixed
    held = report.holdout
    assert set(held["kinds"]) == {"text", "photo", "text+photo"}
    assert all(held["kinds"][kind]["queries"] > 0 for kind in held["kinds"])
    for kind, figures in held["kinds"].items():
        assert (kind in held["covered"]) == kind_covered(kind, figures)
    assert report.committed, held
    meta = json.loads((IndexDirectory(index).version_path(report.version) / "ranker" / "meta.json").read_text())
    assert meta["query_kinds_trained"] == ["text", "photo", "text+photo"]
    assert meta["query_kinds"] == held["covered"] and meta["queries_by_kind"]["photo"] > 0
    engine = SearchEngine(index, device="cpu")
    assert engine.ranker(engine.snapshot).query_kinds == held["covered"]


def test_photo_queries_are_no_worse_with_the_reranker(mixed, encoder):
    index, dev, _ = mixed
    engine = SearchEngine(index, device="cpu", encoder=encoder)
    evaluation = evaluate(engine, load_judgments(dev / "judgments.test.jsonl"))
    assert set(evaluation.by_kind) == {"text", "photo", "text+photo"}
    photo = evaluation.by_kind["photo"]
    assert set(photo) == {"dense", "hybrid", "hybrid+rerank"}  # BM25 and the text-native space read no photo
    assert photo["hybrid+rerank"]["hit@1"] >= photo["hybrid"]["hit@1"]
    assert photo["hybrid+rerank"]["hit@10"] >= photo["hybrid"]["hit@10"] > 0.5
    assert "hit@1" in evaluation.by_kind["text+photo"]["bm25"] and "hit@1" not in evaluation.by_kind["text"]["bm25"]
    kinds = {kind: len(part) for kind, part in split_by_kind(load_judgments(dev / "judgments.test.jsonl")).items()}
    assert evaluation.queries_by_kind == kinds and evaluation.sources == ["derived"]
    response = engine.search(SearchRequest(image=str(SAMPLE.parent / "images" / "10183.jpg"), k=5))
    assert response.results[0].id == "10183"  # the product in the photo, reranked or not
    both = evaluation.by_kind["text+photo"]  # derived: words and a product's own photo; it leads, reranked or not
    assert both["hybrid+rerank"]["hit@1"] >= both["hybrid"]["hit@1"] >= 0.9 > both["bm25"]["hit@1"]
    meta = json.loads((IndexDirectory(index).version_path(engine.snapshot.version) / "manifest.json").read_text())
    assert meta["fusion"]["photo"]["adaptive"] is False  # train-ranker learned a photo plan and recorded it


def test_training_logs_the_stated_intent_serving_reads(sample_index, encoder):
    """Training logs the intent features from the same parsed intent serving hands the reranker (the price phrase
    is taken out of the retrieval text, and the ceiling still reaches the price features)."""
    from shoplens.engine.learning import features_for, gather
    from shoplens.rerank.features import COLUMN, FEATURE_GROUPS
    from shoplens.rerank.judgments import Judgments
    from shoplens.rerank.model import Ranker

    engine = SearchEngine(sample_index, device="cpu", encoder=encoder)
    samples = gather(engine, Judgments({"white snekers under 2000": {"1571": 3}}), depth=50)
    assert samples[0].candidates.text == "white sneakers" and samples[0].candidates.intent.price_max == 2000
    logged = features_for(samples, engine.fusion_plan(engine.snapshot), 50, use_behaviour=False).features
    request = engine.spell_checked(SearchRequest(text="white snekers under 2000", k=50, candidates=50))
    snapshot, candidates, _ = engine.retrieve(request, for_rerank=True)
    served = Ranker(None, {"use_behaviour": False}, snapshot).features(snapshot, candidates.text, candidates.take(
        np.arange(min(50, len(candidates)))), use_behaviour=False)
    columns = [COLUMN[name] for name in FEATURE_GROUPS["intent"] + ["query_price_limit_ok"]]
    assert np.array_equal(logged[:, columns], served[:, columns], equal_nan=True)
    assert (logged[:, COLUMN["intent_stated"]] == 2).all()  # colour white, price at most 2000
    assert np.nanmax(logged[:, COLUMN["query_price_limit_ok"]]) == 1.0


def test_eval_prints_each_kind_and_where_the_judgments_came_from(mixed):
    index, dev, _ = mixed
    result = CliRunner().invoke(app, ["eval", str(dev / "judgments.test.jsonl"), "--index", str(index)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "judgments: derived" in result.stdout
    for title in ("text queries:", "photo queries:", "text+photo queries:", "hit@1", "hit@10"):
        assert title in result.stdout
    assert "bm25, text-native: n/a" in result.stdout
    data = json.loads(CliRunner().invoke(app, ["eval", str(dev / "judgments.test.jsonl"), "--index", str(index),
                                               "--json"]).stdout)
    assert set(data["by_kind"]["photo"]["hybrid"]) == {"ndcg@10", "mrr@10", "precision@10", "recall@100",
                                                      "hit@1", "hit@10"}
