"""The ONNX Runtime query encoder against the torch model it was exported from."""

import json
import shutil

import numpy as np
import pytest

from shoplens.common.errors import ConfigError, ModelMismatchError
from shoplens.indexers.encoders import export_path, open_query_encoder, resolve_runtime
from shoplens.indexers.encoders.onnx_encoder import OnnxEncoder
from shoplens.indexers.index import IndexDirectory
from tests.helpers import SAMPLE, sample_products

QUERIES = ["red dress", "navy blue casual shirt for men", "", "nike running shoes under 3000",
           "Women's   SPORTS bra!", "watch " * 80]


@pytest.fixture(scope="module")
def recorded(sample_index):
    return IndexDirectory(sample_index).manifest()["model"]


@pytest.fixture(scope="module")
def onnx_encoder(sample_index, recorded):
    return open_query_encoder(sample_index, recorded, "onnx")


def test_index_records_the_runtime_and_holds_the_export(sample_index, recorded):
    manifest = IndexDirectory(sample_index).manifest()
    assert manifest["backends"]["encoder"]["runtime"] == "onnx"
    directory = sample_index / manifest["backends"]["encoder"]["export"]
    assert directory == export_path(sample_index, recorded["weights_id"])
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["model"]["weights_id"] == recorded["weights_id"] and meta["tower_dim"] == 384


def test_text_embeddings_equal_torch(onnx_encoder, encoder):
    expected = encoder.encode_texts(QUERIES)
    batched = onnx_encoder.encode_texts(QUERIES)
    one_by_one = np.stack([onnx_encoder.encode_texts([q])[0] for q in QUERIES])
    assert batched.shape == (len(QUERIES), 256) and batched.dtype == np.float32
    assert np.min(np.sum(expected * batched, axis=1)) >= 0.9999
    assert np.min(np.sum(expected * one_by_one, axis=1)) >= 0.9999


def test_tower_embeddings_equal_torch(onnx_encoder, encoder):
    joint_torch, tower_torch = encoder.encode_texts_native(QUERIES[:4])
    joint, tower = onnx_encoder.encode_texts_native(QUERIES[:4])
    assert tower.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(tower, axis=1), 1.0, rtol=1e-5)
    assert np.min(np.sum(tower_torch * tower, axis=1)) >= 0.9999
    assert np.min(np.sum(joint_torch * joint, axis=1)) >= 0.9999


def test_image_embeddings_equal_torch(onnx_encoder, encoder):
    paths = [str(SAMPLE.parent / row["image"]) for row in sample_products(5)]
    expected, _ = encoder.encode_images(paths)
    got, failures = onnx_encoder.encode_images(paths + ["/nonexistent.jpg"])
    assert [f.index for f in failures] == [5] and not got[5].any()
    assert np.min(np.sum(expected * got[:5], axis=1)) >= 0.9999


def test_an_export_of_other_weights_is_refused(sample_index, recorded, tmp_path):
    index = tmp_path / "index"
    (index / "encoders").mkdir(parents=True)
    source = export_path(sample_index, recorded["weights_id"])
    target = export_path(index, recorded["weights_id"])
    shutil.copytree(source, target)
    meta = json.loads((target / "meta.json").read_text())
    meta["model"]["weights_id"] = "heads:0000000000000000"
    (target / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelMismatchError):
        open_query_encoder(index, recorded, "onnx")


def test_runtime_names(recorded):
    assert resolve_runtime(None, recorded["name"]) == "onnx"
    assert resolve_runtime("torch", recorded["name"]) == "torch"
    assert resolve_runtime("auto", "ViT-B-32") == "torch"
    with pytest.raises(ConfigError):
        resolve_runtime("tensorrt", recorded["name"])
    with pytest.raises(ConfigError):
        resolve_runtime("onnx", "ViT-B-32")
    assert resolve_runtime("onnx-int8", recorded["name"]) == "onnx-int8"
    with pytest.raises(ConfigError):
        resolve_runtime("onnx-int8", "ViT-B-32")


def test_session_runs_one_thread(onnx_encoder):
    assert isinstance(onnx_encoder, OnnxEncoder) and onnx_encoder.threads == 1


def test_int8_text_graph_is_close_to_torch_but_not_equal(sample_index, recorded, onnx_encoder, encoder, tmp_path):
    """onnx-int8 quantizes the text graph once beside the fp32 one; its embeddings are near torch's
    (not equal: on 1,000 derived queries cosine to fp32 was 0.989 on average, 0.93 at the lowest)."""
    directory = tmp_path / "export"
    shutil.copytree(export_path(sample_index, recorded["weights_id"]), directory)
    int8 = OnnxEncoder(directory, int8=True)
    assert int8.runtime == "onnx-int8" and (directory / "text-int8.onnx").is_file()
    texts = [q for q in QUERIES if q.strip()] + ["black leather wallet", "blue jeans", "women watches"]
    expected, fp32, got = encoder.encode_texts(texts), onnx_encoder.encode_texts(texts), int8.encode_texts(texts)
    cosine = np.sum(expected * got, axis=1)
    assert cosine.min() >= 0.85 and cosine.mean() >= 0.95
    assert np.abs(got - fp32).max() > 1e-3  # the weights really are int8
    assert OnnxEncoder(directory, int8=True).runtime == "onnx-int8"  # the quantized graph is reused
