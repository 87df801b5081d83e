"""Loading a reranker: a model of an older feature set reads its own columns; one this ShopLens cannot compute
is refused with a line that says what to do."""

import json

import numpy as np
import pytest
import xgboost

from shoplens.common.errors import RankerError
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.rerank import model
from shoplens.rerank.features import COLUMN, FEATURE_GROUPS, FEATURE_NAMES, FEATURE_VERSION
from shoplens.rerank.model import FIRST_COMPATIBLE_VERSION, Ranker, check_meta
from tests.helpers import copy_index

QUERIES = ("red dress for women", "men running shoes under 2000", "blue jeans", "black watch", "kids bag")


@pytest.fixture(scope="module")
def engine(sample_index, tmp_path_factory, encoder):
    engine = SearchEngine(copy_index(sample_index, tmp_path_factory.mktemp("model") / "index"), encoder=encoder)
    yield engine
    engine.close()


def served_features(engine) -> list[np.ndarray]:
    """The feature matrix this ShopLens computes for each query's candidates (every column)."""
    source = Ranker(None, {"use_behaviour": False}, engine.snapshot)
    matrices = []
    for text in QUERIES:
        candidates = engine.retrieve(SearchRequest(text=text, k=10), {}, for_rerank=True)[1]
        matrices.append(source.features(engine.snapshot, text, candidates))
    return matrices


def save_model(directory, names, matrices, version):
    """A model trained on `names` only (as a ShopLens of feature set `version` would have saved it)."""
    columns = [COLUMN[name] for name in names]
    rows = np.concatenate([m[:, columns] for m in matrices])
    labels = np.concatenate([(np.arange(len(m)) < 3).astype(int) for m in matrices])
    data = xgboost.DMatrix(rows, label=labels, feature_names=list(names), missing=np.nan)
    data.set_group([len(m) for m in matrices])
    booster = xgboost.train({"objective": "rank:ndcg", "max_depth": 3, "eta": 0.3, "nthread": 1}, data, 12)
    directory.mkdir(parents=True)
    booster.save_model(str(directory / "model.json"))
    meta = {"feature_names": list(names), "feature_version": version, "use_behaviour": False}
    (directory / "meta.json").write_text(json.dumps(meta))
    return booster


def test_a_model_of_an_older_feature_set_scores_from_its_own_columns(engine, tmp_path):
    older = [name for name in FEATURE_NAMES if name not in FEATURE_GROUPS["consensus"]]
    matrices = served_features(engine)
    booster = save_model(tmp_path / "ranker", older, matrices, FIRST_COMPATIBLE_VERSION)
    model._PREDICTORS.clear()
    ranker = Ranker.load(tmp_path / "ranker", engine.snapshot)
    assert ranker.feature_names == older
    columns = [COLUMN[name] for name in older]
    for matrix in matrices:
        expected = booster.inplace_predict(matrix[:, columns], validate_features=False)
        np.testing.assert_allclose(ranker.score(matrix), expected, rtol=0, atol=1e-5)
    explained = ranker.contributions(matrices[0][:2])
    assert set(explained[0]["features"]) == set(older)  # explanations name the model's own features


def test_the_current_feature_set_reads_every_column(engine, tmp_path):
    matrices = served_features(engine)
    booster = save_model(tmp_path / "ranker", FEATURE_NAMES, matrices, FEATURE_VERSION)
    model._PREDICTORS.clear()
    ranker = Ranker.load(tmp_path / "ranker", engine.snapshot)
    np.testing.assert_allclose(ranker.score(matrices[1]),
                               booster.inplace_predict(matrices[1], validate_features=False), rtol=0, atol=1e-5)
    assert "prf_text_top5" in ranker.contributions(matrices[1][:1])[0]["features"]


@pytest.mark.parametrize("meta, why", [
    ({"feature_names": FEATURE_NAMES, "feature_version": FIRST_COMPATIBLE_VERSION - 1}, "older meaning"),
    ({"feature_names": FEATURE_NAMES, "feature_version": FEATURE_VERSION + 1}, "a newer ShopLens"),
    ({"feature_names": [*FEATURE_NAMES[:5], "made_up"], "feature_version": FEATURE_VERSION}, "an unknown name"),
    ({"feature_names": [], "feature_version": FEATURE_VERSION}, "no names"),
    ({"feature_version": FEATURE_VERSION}, "names missing"),
    ({"feature_names": "bm25", "feature_version": "4"}, "wrong types"),
])
def test_a_feature_set_this_shoplens_cannot_compute_is_refused(tmp_path, meta, why):
    with pytest.raises(RankerError, match="retrain it with `shoplens train-ranker` or search with --no-rerank"):
        check_meta(meta, tmp_path)
