"""The real encoders: the offline default model, and any open_clip model from a local checkpoint."""

import numpy as np
import pytest

from shoplens.common.errors import ConfigError, ModelLoadError
from shoplens.indexers.encoders import DEFAULT_MODEL, create_encoder
from shoplens.indexers.encoders.cache import EmbeddingCache
from shoplens.indexers.encoders.default_model import SHIPPED_HEADS, read_heads
from shoplens.indexers.encoders.openclip_encoder import resolve_device, weights_identity
from tests.helpers import SAMPLE, sample_products


def test_default_model_is_built_offline_from_the_wheels(encoder):
    assert encoder.info.name == DEFAULT_MODEL
    assert encoder.info.dim == 256
    assert encoder.info.weights_id == weights_identity(DEFAULT_MODEL, None)[1]
    assert encoder.device == "cpu"
    tensors, metadata = read_heads(SHIPPED_HEADS)
    assert all(key.startswith(("visual.head.", "text.proj.", "logit_scale")) for key in tensors)


def test_embeddings_are_normalized_and_deterministic(encoder):
    texts = ["navy blue casual shirt for men", "red dress", ""]
    first = encoder.encode_texts(texts)
    second = encoder.encode_texts(texts)
    assert first.shape == (3, 256) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-6)


def test_titles_find_their_own_images(encoder):
    """The trained joint space: among 64 real products, a title's own image ranks near the top."""
    rows = sample_products(64)
    images, failures = encoder.encode_images([str(SAMPLE.parent / r["image"]) for r in rows])
    assert failures == []
    texts = encoder.encode_texts([r["title"] for r in rows])
    ranks = [(np.argsort(-(images @ t)) == i).nonzero()[0][0] for i, t in enumerate(texts)]
    recall_at_5 = np.mean(np.array(ranks) < 5)
    assert recall_at_5 >= 0.5, f"text-to-image recall@5 among 64 products is only {recall_at_5:.2f}"


def test_unreadable_and_missing_images_are_reported(encoder, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    good = str(SAMPLE.parent / sample_products(1)[0]["image"])
    vectors, failures = encoder.encode_images([good, str(broken), str(tmp_path / "missing.jpg")])
    assert [(f.index, f.reason.split(":")[0]) for f in failures] == [(1, "unreadable image"), (2, "image file not found")]
    assert np.linalg.norm(vectors[0]) == pytest.approx(1.0, rel=1e-5)
    assert not vectors[1].any() and not vectors[2].any()


def test_any_open_clip_model_from_a_local_checkpoint(tmp_path):
    """A real open_clip architecture (ViT-S-32), weights from a local checkpoint file."""
    import open_clip
    import torch

    model = open_clip.create_model("ViT-S-32", pretrained=None)
    checkpoint = tmp_path / "vit-s-32.pt"
    torch.save({"state_dict": model.state_dict()}, checkpoint)
    encoder = create_encoder("ViT-S-32", str(checkpoint), device="cpu", reuse=False)
    assert encoder.info.name == "ViT-S-32"
    assert encoder.info.weights_id.startswith("file:")
    vectors = encoder.encode_texts(["a shirt"])
    image_vectors, _ = encoder.encode_images([str(SAMPLE.parent / sample_products(1)[0]["image"])])
    assert vectors.shape[1] == image_vectors.shape[1] == encoder.info.dim


def test_bad_model_names_and_weights_are_clear_errors(tmp_path):
    with pytest.raises(ModelLoadError, match="unknown open_clip model"):
        create_encoder("NoSuchModel-42", device="cpu", reuse=False)
    with pytest.raises(ModelLoadError, match="heads file"):
        create_encoder(DEFAULT_MODEL, str(tmp_path / "missing.safetensors"), device="cpu", reuse=False)
    with pytest.raises(ConfigError, match="no GPU"):
        resolve_device("cuda")


def test_embedding_cache_roundtrip(tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    vector = np.arange(4, dtype=np.float32)
    cache.put_many("m|text", [("abc", vector)])
    assert cache.get_many("m|image", ["abc"]) == {}
    found = cache.get_many("m|text", ["abc", "zzz"])
    np.testing.assert_array_equal(found["abc"], vector)
    assert (cache.hits, cache.misses) == (1, 2)
    cache.close()
    reopened = EmbeddingCache(tmp_path / "c.sqlite")
    assert list(reopened.get_many("m|text", ["abc"])) == ["abc"]
