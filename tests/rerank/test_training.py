"""Training, serving, explaining and evaluating the reranker on the sample with derived judgments and
simulated behaviour (benchmarks/devdata.py), end to end with the real stores and model."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from shoplens.cli import app
from shoplens.common.errors import RankerError
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.indexers.index import IndexDirectory
from shoplens.engine.evaluation import evaluate
from shoplens.engine.learning import train_ranker
from shoplens.rerank.metrics import write_trec_runs
from shoplens.rerank.features import FEATURE_NAMES
from shoplens.rerank.judgments import load_judgments
from shoplens.rerank.training import RankerConfig, first_round_within
from tests.helpers import SAMPLE, copy_index, trained_copy, fast_ranker

FAST = fast_ranker()


@pytest.fixture(scope="module")
def trained(sample_index, tmp_path_factory):
    # text queries only: the reranker these tests check was trained on text (tests/engine/test_learning.py mixes kinds)
    return trained_copy(sample_index, tmp_path_factory.mktemp("trained"), FAST,
                        queries=160, sessions=3000, seed=3, photo_queries=0, text_photo_queries=0)


def test_training_commits_a_model_with_its_metadata(trained):
    index, _, report = trained
    manifest = IndexDirectory(index).manifest()
    assert manifest["kind"] == "ranker" and manifest["version"] == report.version == 3
    meta = json.loads((IndexDirectory(index).version_path(3) / "ranker" / "meta.json").read_text())
    assert meta["feature_names"] == FEATURE_NAMES and meta["objective"] == "rank:ndcg"
    assert meta["params"]["gain"] == FAST.gain == "linear"
    assert meta["queries"]["train"] > 50 and meta["validation"]["ndcg@10"] > 0
    assert meta["behaviour_seen"]["events"] > 0 and meta["device"] == "cpu"
    assert manifest["ranker"]["validation"]["ndcg@10"] == meta["validation"]["ndcg@10"]
    import xgboost  # the served model ends at the early-stopping round: later trees only cost time
    booster = xgboost.Booster(model_file=str(IndexDirectory(index).version_path(3) / "ranker" / "model.json"))
    assert booster.num_boosted_rounds() == meta["best_iteration"] + 1
    # the round kept is the first within the stop tolerance of the best one, never after it
    validation = meta["validation"]
    assert meta["best_iteration"] <= validation["best_round"]
    assert validation["ndcg@10"] >= validation["ndcg@10_best_round"] - FAST.stop_tolerance
    # the fusion plan the model was trained under is what serving fuses with
    from shoplens.engine.fusion import FusionPlan

    engine = SearchEngine(index, device="cpu")
    try:
        assert engine.fusion_plan(engine.snapshot) == FusionPlan.from_dict(meta["fusion"])
    finally:
        engine.close()


def test_searches_rerank_and_explain(trained, encoder):
    index, _, _ = trained
    engine = SearchEngine(index, device="cpu", encoder=encoder)
    # intent off: its boost reorders after the reranker; this test is about the reranker's own order
    response = engine.search(SearchRequest(text="black casual shoes for men", k=5, explain=True, intent=False))
    assert response.reranked and response.stages_ms["rerank"] > 0
    top = response.results[0]
    assert top.signals["rerank"] == top.score
    contributions = top.explain["rerank_contributions"]
    assert set(contributions["features"]) == set(FEATURE_NAMES)
    total = sum(item["contribution"] for item in contributions["features"].values()) + contributions["bias"]
    assert total == pytest.approx(top.score, abs=1e-3)  # SHAP contributions add up to the score
    scores = [r.score for r in response.results]
    assert scores == sorted(scores, reverse=True)
    # the fused rank shown is the rank before reranking, the one the fused_rank feature saw
    for result in response.results:
        feature = result.explain["rerank_contributions"]["features"]["fused_rank"]["value"]
        assert result.explain["fused_rank"] == feature
    plain_order = engine.search(SearchRequest(text="black casual shoes for men", k=50, rerank=False, intent=False))
    fused_position = {r.id: r.rank for r in plain_order.results}
    assert all(fused_position.get(r.id, r.explain["fused_rank"]) == r.explain["fused_rank"] for r in response.results)
    plain = engine.search(SearchRequest(text="black casual shoes for men", k=5, rerank=False))
    assert not plain.reranked and plain.results[0].signals["rerank"] is None


def test_reranking_beats_every_retriever_on_test_queries(trained, encoder):
    index, dev, _ = trained
    engine = SearchEngine(index, device="cpu", encoder=encoder)
    evaluation = evaluate(engine, load_judgments(dev / "judgments.test.jsonl"))
    ndcg = {system: values["ndcg@10"] for system, values in evaluation.metrics.items()}
    assert set(ndcg) == {"bm25", "dense", "text-native", "hybrid", "hybrid+rerank"}
    assert ndcg["hybrid+rerank"] > max(ndcg["bm25"], ndcg["dense"], ndcg["text-native"], ndcg["hybrid"])
    paths = write_trec_runs(evaluation, dev / "runs")
    first = paths[0].read_text().splitlines()[0].split()
    assert len(first) == 6 and first[1] == "Q0" and first[3] == "1"


def test_eval_and_train_ranker_commands(trained, tmp_path):
    index, dev, _ = trained
    runner = CliRunner()
    result = runner.invoke(app, ["eval", str(dev / "judgments.test.jsonl"), "--index", str(index), "--json",
                                 "--run-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["metrics"]["hybrid+rerank"]) == {"ndcg@10", "mrr@10", "precision@10", "recall@100"}
    assert len(data["run_files"]) == 5
    result = runner.invoke(app, ["train-ranker", "--index", str(index), "--json"])
    assert result.exit_code == 2 and "one of them" in result.stderr


def test_learning_from_events_alone_and_continuing(trained, tmp_path):
    index, dev, _ = trained
    copy = copy_index(index, tmp_path / "copy")
    result = CliRunner().invoke(app, ["train-ranker", "--from-events", str(dev / "events.simulated.jsonl"),
                                      "--index", str(copy), "--trees", "60", "--depth", "100", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["source"] == "events:events.simulated.jsonl" and report["queries_train"] > 10
    meta = json.loads((IndexDirectory(copy).version_path(report["version"]) / "ranker" / "meta.json").read_text())
    examination = meta["position_bias"]["examination"]
    assert examination[0] == 1.0 and examination[4] < examination[0]
    refreshed = train_ranker(copy, load_judgments(dev / "judgments.validation.jsonl"),
                             RankerConfig(n_estimators=20, early_stopping_rounds=5, depth=100),
                             continue_training=True, force=True)  # the history is checked here, the guard below
    assert refreshed.continued_from == meta["trained_at"]
    refreshed_meta = json.loads((IndexDirectory(copy).version_path(refreshed.version) / "ranker" / "meta.json").read_text())
    assert [h["source"] for h in refreshed_meta["history"]] == ["events:events.simulated.jsonl", "judgments"]
    assert refreshed_meta["history"][1]["rounds"] > refreshed_meta["history"][0]["rounds"]


@pytest.mark.parametrize("change, message", [
    (lambda names: [*names[:-1], "a_feature_no_shoplens_computes"], "feature set v"),
    (lambda names: names[:-1], "names other features than its meta.json"),  # meta.json and model.json disagree
])
def test_a_model_for_other_features_refuses_to_load(trained, tmp_path, encoder, change, message):
    index, _, _ = trained
    copy = copy_index(index, tmp_path / "copy")
    meta_path = IndexDirectory(copy).version_path(3) / "ranker" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["feature_names"] = change(meta["feature_names"])
    meta_path.write_text(json.dumps(meta))
    engine = SearchEngine(copy, device="cpu", encoder=encoder)
    with pytest.raises(RankerError, match=f"{message}.*retrain it with `shoplens train-ranker`"):
        engine.search(SearchRequest(text="shirt"))
    assert engine.search(SearchRequest(text="shirt", rerank=False)).results  # --no-rerank still works


def test_without_behaviour_the_model_still_ranks(trained, encoder, tmp_path):
    """A new shop (no events at all): the behaviour-trained model must not fall apart."""
    index, dev, _ = trained
    copy = copy_index(index, tmp_path / "nobehaviour")
    from shoplens.indexers.maintenance import rollback

    rollback(copy, 1)  # version 1: no behaviour, no model
    manifest_model = IndexDirectory(index).version_path(3) / "ranker"
    from shoplens.indexers.writer import replace_component
    import shutil

    replace_component(copy, "ranker", "ranker", lambda target, parent: shutil.copytree(manifest_model, target,
                                                                                        dirs_exist_ok=True),
                      {"ranker": IndexDirectory(index).manifest(3)["ranker"]})
    engine = SearchEngine(copy, device="cpu", encoder=encoder)
    assert engine.snapshot.manifest.get("behaviour") is None
    evaluation = evaluate(engine, load_judgments(dev / "judgments.test.jsonl"), systems=["hybrid", "hybrid+rerank"])
    assert evaluation.metrics["hybrid+rerank"]["ndcg@10"] >= evaluation.metrics["hybrid"]["ndcg@10"]
    assert np.isfinite(evaluation.metrics["hybrid+rerank"]["ndcg@10"])


def test_the_guard_refuses_a_worse_model_and_force_overrides_it(trained):
    index, dev, _ = trained
    copy = copy_index(index, index.parent / "guarded")
    live_version = IndexDirectory(copy).current_version()
    # one stump: next to nothing learned, so on held-out queries it trails the live model
    weak = RankerConfig(n_estimators=1, max_depth=1, early_stopping_rounds=1, depth=100)
    report = train_ranker(copy, load_judgments(dev / "judgments.train.jsonl"), weak, learn_fusion=False)
    assert report.holdout["current_system"] == "live model"
    assert report.holdout["new"] < report.holdout["current"] - report.holdout["margin"]
    assert report.version is None and not report.committed
    assert IndexDirectory(copy).current_version() == live_version  # nothing committed
    forced = train_ranker(copy, load_judgments(dev / "judgments.train.jsonl"), weak, learn_fusion=False, force=True)
    assert forced.committed and forced.forced and forced.version == live_version + 1


def test_a_text_trained_reranker_leaves_photo_queries_in_fused_order(trained, encoder):
    index, _, _ = trained
    engine = SearchEngine(index, device="cpu", encoder=encoder)
    assert engine.ranker(engine.snapshot).query_kinds == ["text"]
    photo = SAMPLE.parent / "images" / "10183.jpg"
    response = engine.search(SearchRequest(image=str(photo), k=10, explain=True))
    fused = engine.search(SearchRequest(image=str(photo), k=10, rerank=False))
    assert not response.reranked and any("reranker not applied" in note and "not photo" in note for note in response.notes)
    assert [r.id for r in response.results] == [r.id for r in fused.results]
    assert response.results[0].id == "10183"  # the product in the photo
    assert all(r.signals["rerank"] is None for r in response.results)
    text = engine.search(SearchRequest(text="black casual shoes for men", k=5))
    assert text.reranked  # text queries still are


def test_fractional_grades_train_and_whole_grades_train_as_before():
    """Averaged raters' grades (1.33, 2.67) are labels too: a model learns the feature that orders them; for
    whole grades the gains given as labels train exactly XGBoost's exponential-gain model."""
    import xgboost

    from shoplens.rerank.training import TrainingData, fit, gains

    rng = np.random.default_rng(0)
    features = rng.random((1200, len(FEATURE_NAMES))).astype(np.float32)
    groups = np.repeat(np.arange(120), 10)
    fractional = np.round(features[:, 0] * 3, 2)  # grades 0.00 .. 3.00 follow the first feature
    data = TrainingData(features, fractional, groups, [f"q{i}" for i in range(120)])
    train, validation = data.subset(set(range(90))), data.subset(set(range(90, 120)))
    config = RankerConfig(n_estimators=30, early_stopping_rounds=10, device="cpu", use_behaviour=False)
    booster, metrics, _, _ = fit(train, validation, config)
    scores = booster.inplace_predict(validation.features)
    assert np.corrcoef(scores, validation.labels)[0, 1] > 0.9
    assert metrics["ndcg@10"] > 0.9

    whole = np.floor(fractional)
    plain = xgboost.XGBRanker(objective="rank:ndcg", n_estimators=5, random_state=0, tree_method="hist")
    as_gains = xgboost.XGBRanker(objective="rank:ndcg", n_estimators=5, random_state=0, tree_method="hist",
                                 ndcg_exp_gain=False)
    plain.fit(features, whole, qid=groups)
    as_gains.fit(features, gains(whole, "exponential"), qid=groups)
    np.testing.assert_array_equal(plain.predict(features), as_gains.predict(features))


def test_the_first_round_within_the_tolerance_of_the_best_is_kept():
    history = [0.50, 0.60, 0.699, 0.70, 0.65, 0.71, 0.70]
    assert first_round_within(history, 5, 0.0) == 5  # no tolerance: the best round itself
    assert first_round_within(history, 5, 0.012) == 2  # 0.699 is within 0.012 of 0.71
    assert first_round_within(history, 5, 0.01) == 3
    assert first_round_within(history, 5, 1.0) == 0
    assert first_round_within(history, 3, 0.0) == 3  # never past the best round


def test_a_stop_tolerance_serves_an_earlier_round_within_it():
    """`fit` on synthetic queries (one informative column): with a tolerance the booster served ends at the first
    round within it of the best validation round, and says both."""
    from shoplens.rerank.training import TrainingData, fit

    rng = np.random.default_rng(0)

    def data(queries: int) -> TrainingData:
        groups = np.repeat(np.arange(queries), 20)
        labels = rng.integers(0, 4, size=len(groups)).astype(np.float64)
        features = rng.normal(size=(len(groups), len(FEATURE_NAMES))).astype(np.float32)
        features[:, 0] = labels + rng.normal(scale=1.5, size=len(groups))
        return TrainingData(features, labels, groups, [str(q) for q in range(queries)])

    train, validation = data(60), data(20)
    config = RankerConfig(n_estimators=60, early_stopping_rounds=60, depth=20, stop_tolerance=0.05, device="cpu")
    booster, metrics, kept, _ = fit(train, validation, config)
    assert booster.num_boosted_rounds() == kept + 1
    assert kept < metrics["best_round"]  # this curve rises by more than the tolerance after its first rounds
    assert metrics["ndcg@10_best_round"] - 0.05 <= metrics["ndcg@10"] <= metrics["ndcg@10_best_round"]
    exact, exact_metrics, best, _ = fit(train, validation, RankerConfig(**{**config.__dict__, "stop_tolerance": 0.0}))
    assert best == exact_metrics["best_round"] == metrics["best_round"] and exact.num_boosted_rounds() == best + 1
