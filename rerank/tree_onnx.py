"""An XGBoost tree ensemble as an ONNX graph, so serving predicts with ONNX Runtime instead of xgboost.

The one-shot CLI then does not import xgboost (which imports scikit-learn, SciPy and pandas: seconds),
and prediction releases the GIL like the query encoder does. Each split of XGBoost's JSON model becomes
a `BRANCH_LT` node of `TreeEnsembleRegressor` (x < threshold goes left, a missing value goes the way
XGBoost's `default_left` says) and each leaf a target weight; the scores equal XGBoost's up to float32
summation order (about 1e-7). Models this cannot express (dart boosters, categorical splits, several
targets) return None and keep XGBoost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shoplens.indexers.storage import atomic_write_bytes

INPUT = "features"


def onnx_bytes(model: dict[str, Any]) -> bytes | None:
    """The serialized ONNX model of an XGBoost JSON model (None when the ensemble cannot be expressed)."""
    learner = model["learner"]
    booster = learner["gradient_booster"]
    params = learner["learner_model_param"]
    if booster.get("name") != "gbtree" or int(params.get("num_target", 1)) > 1 or int(params.get("num_class", 0)):
        return None
    trees = booster["model"]["trees"]
    if any(any(tree.get("split_type") or []) for tree in trees):
        return None
    from onnx import TensorProto, helper

    base = float(str(params["base_score"]).strip("[]"))
    node = helper.make_node("TreeEnsembleRegressor", [INPUT], ["score"], domain="ai.onnx.ml", n_targets=1,
                            aggregate_function="SUM", post_transform="NONE", base_values=[base],
                            **tree_attributes(trees))
    features = int(params["num_feature"])
    graph = helper.make_graph([node], "ranker", [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, [None, features])],
                              [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])])
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    onnx_model.ir_version = 8  # readable by every onnxruntime this project accepts
    return onnx_model.SerializeToString()


def tree_attributes(trees: list[dict[str, Any]]) -> dict[str, list]:
    """TreeEnsembleRegressor's node and target attributes for XGBoost's trees (JSON format)."""
    names = ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
             "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
             "target_treeids", "target_nodeids", "target_ids", "target_weights")
    out: dict[str, list] = {name: [] for name in names}
    for tree_id, tree in enumerate(trees):
        left, right = tree["left_children"], tree["right_children"]
        for node, (low, high) in enumerate(zip(left, right)):
            leaf = low == -1
            value = float(tree["split_conditions"][node])
            out["nodes_treeids"].append(tree_id)
            out["nodes_nodeids"].append(node)
            out["nodes_featureids"].append(0 if leaf else int(tree["split_indices"][node]))
            out["nodes_values"].append(0.0 if leaf else value)
            out["nodes_modes"].append("LEAF" if leaf else "BRANCH_LT")
            out["nodes_truenodeids"].append(0 if leaf else low)
            out["nodes_falsenodeids"].append(0 if leaf else high)
            out["nodes_missing_value_tracks_true"].append(0 if leaf else int(tree["default_left"][node]))
            if leaf:  # XGBoost keeps a leaf's value in split_conditions
                for name, item in (("target_treeids", tree_id), ("target_nodeids", node), ("target_ids", 0),
                                   ("target_weights", value)):
                    out[name].append(item)
    return out


def keep(target: Path, data: bytes) -> str | bytes:
    """Write a converted model to `target` (a cache) and return its path; its bytes when the cache cannot
    be written (a read-only index: each process then converts again)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
    except OSError:
        return data
    return str(target)
