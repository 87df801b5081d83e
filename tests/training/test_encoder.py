"""Training the default model's heads on a small slice of the sample: it runs end to end, saves a heads file
the encoder factory loads, and the split is stable."""

import json

import numpy as np
import pytest
from safetensors import safe_open

from shoplens.common.errors import CatalogError, ConfigError
from shoplens.indexers.encoders import create_encoder
from shoplens.training.encoder import TrainConfig, split_products, train_encoder
from tests.helpers import sample_products, write_catalog

SMALL = TrainConfig(holdout=20, validation=20, max_train=120, epochs=2, batch_size=32, embed_dim=32)


def test_heads_train_save_and_load(tmp_path):
    catalog = write_catalog(tmp_path / "c.jsonl", sample_products(160))
    out = tmp_path / "heads" / "mine.safetensors"
    stages = []
    report = train_encoder(catalog, out, SMALL, device="cpu", cache_dir=tmp_path / "cache",
                           progress=lambda stage, done, total: stages.append(stage))
    assert report.pairs_heldout == 20 and report.pairs_validation == 20 and report.pairs_train == 120
    assert 1 <= report.best_epoch <= 2 and len(report.validation_history) == 2
    assert set(report.metrics) == {"recall@10", "type_precision@10", "type_colour_precision@10"}
    assert 0.0 <= report.metrics["recall@10"] <= 1.0 and "training" in stages
    with safe_open(str(out), "pt") as handle:
        metadata = handle.metadata()
    assert json.loads(metadata["heads"])["embed_dim"] == 32 and metadata["best_epoch"] == str(report.best_epoch)
    assert json.loads(metadata["trained_on"])["pairs"] == 120
    encoder = create_encoder(pretrained=str(out), device="cpu", reuse=False)
    vectors = encoder.encode_texts(["blue shirt"])
    assert vectors.shape == (1, 32) and np.isclose(np.linalg.norm(vectors[0]), 1.0, atol=1e-5)


def test_the_split_is_stable_and_too_small_catalogs_fail(tmp_path):
    catalog = write_catalog(tmp_path / "c.jsonl", sample_products(160))
    products, ordered, sizes, skipped = split_products(catalog, SMALL)
    assert sizes == (20, 20) and len(ordered) == 160 and skipped == 160 - len(products)
    assert [p.id for p in split_products(catalog, SMALL)[1]] == [p.id for p in ordered]
    with pytest.raises(CatalogError, match="too few to train on"):
        split_products(catalog, TrainConfig(holdout=100, validation=100))
    with pytest.raises(ConfigError, match="use mlp or linear"):
        train_encoder(catalog, tmp_path / "x.safetensors", TrainConfig(head="transformer"), device="cpu")


def _without_images(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "image"} for row in rows]


def test_a_catalog_without_images_trains_the_text_head_on_its_own_fields(tmp_path):
    catalog = write_catalog(tmp_path / "text.jsonl", _without_images(sample_products(160)))
    out = tmp_path / "text-heads.safetensors"
    report = train_encoder(catalog, out, SMALL, device="cpu", cache_dir=tmp_path / "cache")
    assert report.pairs == "text-only" and report.pairs_heldout == 20 and report.pairs_train == 120
    assert set(report.metrics_before) == set(report.metrics) == {"recall@10", "type_precision@10",
                                                                   "type_colour_precision@10"}
    with safe_open(str(out), "pt") as handle:
        metadata = handle.metadata()
        image_head = {k: handle.get_tensor(k) for k in handle.keys() if k.startswith("visual.")}
    assert json.loads(metadata["trained_on"])["pair_kind"].startswith("text-only")
    shipped = create_encoder(device="cpu", reuse=False)
    adapted = create_encoder(pretrained=str(out), device="cpu", reuse=False)
    assert adapted.encode_texts(["blue shirt"]).shape == shipped.encode_texts(["blue shirt"]).shape
    assert not np.allclose(adapted.encode_texts(["blue shirt"]), shipped.encode_texts(["blue shirt"]))
    from shoplens.indexers.encoders.default_model import SHIPPED_HEADS, read_heads

    tensors, _ = read_heads(SHIPPED_HEADS)
    assert image_head and all(np.allclose(image_head[k].numpy(), tensors[k].numpy()) for k in image_head)


def test_text_only_training_refuses_a_catalog_without_images_or_enough_text(tmp_path):
    rows = [{"id": str(i), "title": f"item {i}"} for i in range(300)]  # titles only: no facts to pair them with
    catalog = write_catalog(tmp_path / "bare.jsonl", rows)
    with pytest.raises(CatalogError, match="no product images and only 0 products") as caught:
        train_encoder(catalog, tmp_path / "x.safetensors", SMALL, device="cpu")
    assert "\n" not in str(caught.value)
    forced = write_catalog(tmp_path / "some.jsonl", sample_products(160))
    report = train_encoder(forced, tmp_path / "y.safetensors", TrainConfig(**{**SMALL.__dict__, "text_only": True}),
                           device="cpu", cache_dir=tmp_path / "cache")
    assert report.pairs == "text-only"
