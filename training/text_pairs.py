"""Adapting the joint space's heads to a catalog without photos: contrastive pairs from a product's own fields.

A shop without images indexes every product by its title's text embedding
(the text tower through the text projection head), and queries go through
the same head. The shipped head was trained on Myntra's image-title pairs;
here it is adapted to the catalog's own language by pairing each product's
title with the rest of what the product says about itself (category path,
brand, short attribute values, the start of its description): a title
should land nearest its own product's facts. Only the text head and the
logit scale train, starting from the shipped heads; the image head is kept,
so the heads file still loads everywhere the default model does.

Evaluation is on held-out products, before and after: title-to-facts
Recall@10 and the share of the top 10 of the same type (and colour).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from shoplens.common.errors import CatalogError
from shoplens.indexers.catalog import Product, read_catalog
from shoplens.indexers.encoders import resolve_device
from shoplens.indexers.encoders.default_model import build_default_model
from shoplens.training.encoder import (HeadTrainer, Progress, tower_features, TrainConfig, TrainReport, attribute_values,
                                       detect_field, save_heads, split_key)

CONTEXT_CHARS = 400  # the tower reads a short text; key facts come first
ATTRIBUTE_CHARS = 40  # longer attribute values are prose


def facts_text(product: Product) -> str:
    """A product's own facts other than its title: category path, brand, short attribute values, description."""
    facts = []
    for value in product.attributes.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (str, int, float)) and 0 < len(str(item)) <= ATTRIBUTE_CHARS and str(item) not in facts:
                facts.append(str(item))
    parts = [" > ".join(product.category), product.brand or "", " ".join(facts), product.description or ""]
    return ". ".join(part.strip() for part in parts if part and part.strip())[:CONTEXT_CHARS]


def text_products(catalog: str | Path, config: TrainConfig, field_map: dict[str, list[str]] | None = None):
    """Products with a title and facts, ordered held out, validation, training by a hash of the id
    (stable across runs); returns (ordered products, (held out, validation) sizes)."""
    products = [p for p in read_catalog(catalog, field_map).products if p.title and facts_text(p)]
    needed = config.holdout + config.validation + 100
    if len(products) < needed:
        raise CatalogError(
            f"{catalog} has no product images and only {len(products)} products with a title and a category, "
            f"attributes or description; training needs at least {needed} (add text, or lower --holdout/--validation)")
    products.sort(key=lambda p: split_key(p.id, config.seed))
    sizes = (config.holdout, config.validation)
    train = products[sum(sizes):]
    if config.max_train:
        train = train[:config.max_train]
    return products[:sum(sizes)] + train, sizes


class TextHeadTrainer(HeadTrainer):
    """HeadTrainer on (title, facts) pairs: both sides go through the text head, the only head that trains."""

    def __init__(self, model, title_feats: np.ndarray, facts_feats: np.ndarray, types: list, colours: list,
                 config: TrainConfig, device: str):
        super().__init__(model, title_feats, facts_feats, types, colours, config, device)
        self.heads = [model.text.proj]
        self.other = model.text.proj


def train_text_heads(catalog: str | Path, out: str | Path, config: TrainConfig,
                     field_map: dict[str, list[str]] | None = None, device: str = "auto",
                     cache_dir: str | Path | None = None, progress: Progress | None = None) -> TrainReport:
    """Adapt the shipped heads' text head on the catalog's (title, facts) pairs; save a heads file to `out`."""
    import torch

    device = resolve_device(device)
    torch.manual_seed(config.seed)
    ordered, sizes = text_products(catalog, config, field_map)
    model, model_cfg, metadata = build_default_model()
    model.eval().to(device)
    started = time.time()
    with tower_features(model, model_cfg, device, cache_dir) as towers:
        titles = towers.texts([p.title for p in ordered], progress)
        facts = towers.texts([facts_text(p) for p in ordered], progress)
    seconds_features = time.time() - started
    heldout, validation = list(range(sizes[0])), list(range(sizes[0], sum(sizes)))
    train = list(range(sum(sizes), len(ordered)))
    type_field = config.type_field or detect_field(ordered, "type")
    colour_field = config.colour_field or detect_field(ordered, "colour")
    started = time.time()
    trainer = TextHeadTrainer(model, titles, facts, attribute_values(ordered, type_field),
                              attribute_values(ordered, colour_field), config, device)
    before = trainer.evaluate(heldout)
    best_epoch, history = trainer.fit(train, validation, progress)
    after = trainer.evaluate(heldout)
    trained_on = {"catalog": Path(catalog).name, "pairs": len(train), "pair_kind": "text-only: title <-> facts",
                  "type_field": type_field, "colour_field": colour_field}
    save_heads(Path(out), model, {**json_heads(metadata), "image_size": model_cfg["vision_cfg"]["image_size"]},
               trained_on, after, best_epoch)
    return TrainReport(
        pairs_train=len(train), pairs_validation=len(validation), pairs_heldout=len(heldout), best_epoch=best_epoch,
        metrics={k: round(v, 4) for k, v in after.items()},
        validation_history=[{k: round(v, 4) if isinstance(v, float) else v for k, v in h.items()} for h in history],
        seconds_features=round(seconds_features, 1), seconds_training=round(time.time() - started, 1),
        output=str(out), pairs="text-only", metrics_before={k: round(v, 4) for k, v in before.items()})


def json_heads(metadata: dict[str, str]) -> dict:
    """The shipped heads' shape (embed_dim, head kinds) from their file's metadata."""
    import json

    return {k: v for k, v in json.loads(metadata.get("heads", "{}")).items() if k != "image_size"}
