"""The reranker's trees on ONNX Runtime score as XGBoost does."""

import numpy as np
import pytest
import xgboost

from shoplens.common.errors import RankerError
from shoplens.rerank.features import FEATURE_NAMES
from shoplens.rerank.model import onnx_predictor
from shoplens.rerank.tree_onnx import INPUT, onnx_bytes


def trained_model(tmp_path, names=FEATURE_NAMES, rounds=40, objective="rank:ndcg"):
    rng = np.random.default_rng(7)
    features = rng.normal(size=(600, len(names))).astype(np.float32)
    features[rng.random(features.shape) < 0.3] = np.nan  # missing values take XGBoost's default direction
    labels = (np.nan_to_num(features[:, 0]) + np.nan_to_num(features[:, 3]) > 0.5).astype(int) + (features[:, 5] > 1)
    data = xgboost.DMatrix(features, label=labels, feature_names=list(names))
    data.set_group([20] * 30)
    booster = xgboost.train({"objective": objective, "max_depth": 5, "eta": 0.3, "nthread": 1}, data, rounds)
    path = tmp_path / "model.json"
    booster.save_model(str(path))
    return booster, path, rng


def test_onnx_trees_score_as_xgboost(tmp_path):
    booster, path, rng = trained_model(tmp_path)
    session = onnx_predictor(path, tmp_path / "cache", ("identity", 1))
    rows = rng.normal(size=(300, len(FEATURE_NAMES))).astype(np.float32) * 2
    rows[rng.random(rows.shape) < 0.4] = np.nan
    expected = booster.inplace_predict(rows, validate_features=False)
    got = session.run(None, {INPUT: rows})[0][:, 0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert np.ptp(expected) > 0.5  # the trees do split these rows
    assert len(list((tmp_path / "cache").glob("ranker-*.onnx"))) == 1  # converted once, then read from the cache
    again = onnx_predictor(path, tmp_path / "cache", ("identity", 1))
    np.testing.assert_array_equal(again.run(None, {INPUT: rows})[0][:, 0], got)


def test_unwritable_cache_converts_in_memory(tmp_path):
    booster, path, _ = trained_model(tmp_path, rounds=5)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")  # the cache directory cannot be created under a file (as for a read-only index)
    session = onnx_predictor(path, blocker / "cache", ("identity", 2))
    rows = np.zeros((3, len(FEATURE_NAMES)), dtype=np.float32)
    np.testing.assert_allclose(session.run(None, {INPUT: rows})[0][:, 0],
                               booster.inplace_predict(rows, validate_features=False), atol=1e-5)


def test_other_feature_names_are_refused(tmp_path):
    _, path, _ = trained_model(tmp_path, names=[f"f{i}" for i in range(len(FEATURE_NAMES))], rounds=3)
    with pytest.raises(RankerError, match="names other features"):
        onnx_predictor(path, tmp_path / "cache", ("identity", 3))


def test_dart_keeps_xgboost():
    model = {"learner": {"gradient_booster": {"name": "dart"}, "learner_model_param": {"num_target": "1"}}}
    assert onnx_bytes(model) is None
