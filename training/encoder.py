"""Train the default model's projection heads contrastively on catalog image-title pairs.

This is training, kept apart from the library it trains (as open_clip keeps
`open_clip_train` apart from `open_clip`): it imports `indexers`, nothing in
the library imports it.

The towers stay frozen, so their outputs (EfficientNet-Lite0 pooled features,
MiniLM mean-pooled features) are computed once and cached by content hash;
training then only runs the two small heads and is quick even on a CPU.

Evaluation is on held-out products (chosen by a hash of their id, so the split
is stable across runs and machines): text-to-image Recall@10 (the exact
product's image among the top 10 for its title) and attribute precision@10
(share of the top 10 images whose product has the query product's type, and
type and colour).
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from shoplens.common.errors import CatalogError, ConfigError
from shoplens.indexers.catalog import Product, read_catalog
from shoplens.indexers.encoders import open_image, resolve_device
from shoplens.indexers.encoders.base import text_digest
from shoplens.indexers.encoders.cache import EmbeddingCache
from shoplens.indexers.encoders.default_model import DEFAULT_MODEL, build_default_model, head_state_dict
from shoplens.indexers.images import file_digest

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class TrainConfig:
    holdout: int = 1000
    validation: int = 1000
    epochs: int = 40
    patience: int = 6
    batch_size: int = 512
    learning_rate: float = 1e-3
    weight_decay: float = 0.05
    max_logit_scale: float = 20.0  # a cap on the softmax temperature: 100 (CLIP) over-separates products of one type
    embed_dim: int = 256
    head: str = "mlp"  # mlp or linear
    max_train: int | None = None  # cap on training pairs (to reproduce small trials)
    seed: int = 0
    type_field: str | None = None
    colour_field: str | None = None
    text_only: bool = False  # pairs from a product's own fields (title <-> category, attributes, description)

    def check(self) -> None:
        """Option values in range, before any work: a negative --holdout sliced the held-out products from the
        end and trained on them; --epochs 0 or --validation 0 left nothing to pick the best epoch from."""
        if self.head not in ("mlp", "linear"):
            raise ConfigError(f"unknown head type {self.head!r}; use mlp or linear")
        for name, value, low, high in (("--holdout", self.holdout, 1, 10_000_000), ("--validation", self.validation, 1,
                                       10_000_000), ("--epochs", self.epochs, 1, 10_000), ("--embed-dim", self.embed_dim,
                                       2, 4096), ("--max-train", 1 if self.max_train is None else self.max_train, 1,
                                       100_000_000)):
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"{name} must be a whole number from {low:,} to {high:,}, got {value}")


@dataclass
class TrainReport:
    pairs_train: int
    pairs_validation: int
    pairs_heldout: int
    best_epoch: int
    metrics: dict[str, float]
    validation_history: list[dict[str, float]] = field(default_factory=list)
    skipped_without_image: int = 0
    image_failures: int = 0
    seconds_features: float = 0.0
    seconds_training: float = 0.0
    output: str = ""
    pairs: str = "image-title"  # or "text-only" (title <-> the product's other fields)
    metrics_before: dict[str, float] = field(default_factory=dict)  # held out, with the heads training started from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_key(product_id: str, seed: int) -> str:
    return hashlib.sha1(f"{seed}:{product_id}".encode()).hexdigest()


def detect_field(products: list[Product], wanted: str) -> str | None:
    """Best guess at the attribute holding a product's type or colour."""
    keys = {key for p in products[:2000] for key in p.attributes}
    if wanted == "type":
        for name in ("article_type", "articleType", "product_type", "type", "sub_category"):
            if name in keys:
                return name
        return "category" if any(p.category for p in products[:2000]) else None
    for name in ("base_colour", "baseColour", "colour", "color", "base_color"):
        if name in keys:
            return name
    return None


def attribute_values(products: list[Product], name: str | None) -> list[str | None]:
    if name is None:
        return [None] * len(products)
    if name == "category":
        return [p.category[-1].lower() if p.category else None for p in products]
    return [str(p.attributes[name]).lower() if name in p.attributes else None for p in products]


@contextmanager
def tower_features(model, config: dict[str, Any], device: str, cache_dir: str | Path | None):
    """TowerFeatures over a cache file in `cache_dir` (none: in memory), closed on the way out."""
    cache = EmbeddingCache(Path(cache_dir) / "tower-features.sqlite" if cache_dir else None)
    try:
        yield TowerFeatures(model, config, device, cache)
    finally:
        cache.close()


class TowerFeatures:
    """Frozen tower outputs of the default model, cached by content hash."""

    def __init__(self, model, config: dict[str, Any], device: str, cache: EmbeddingCache):
        import open_clip

        self.model = model
        self.device = device
        self.cache = cache
        pre = config["preprocess_cfg"]
        self.preprocess = open_clip.image_transform(
            config["vision_cfg"]["image_size"], is_train=False, mean=tuple(pre["mean"]), std=tuple(pre["std"]),
            interpolation=pre["interpolation"], resize_mode=pre["resize_mode"], fill_color=pre["fill_color"],
        )
        self.tokenizer = open_clip.tokenizer.HFTokenizer(config["text_cfg"]["hf_tokenizer_name"],
                                                         context_length=config["text_cfg"]["context_length"])
        self.namespace = f"towers:{DEFAULT_MODEL}:{config['vision_cfg']['image_size']}"

    def texts(self, titles: list[str], progress: Progress | None = None) -> np.ndarray:
        import torch

        digests = [text_digest(t) for t in titles]
        found = self.cache.get_many(self.namespace + ":text", digests)
        todo = [i for i, d in enumerate(digests) if d not in found]
        for start in range(0, len(todo), 256):
            batch = todo[start:start + 256]
            tokens = self.tokenizer([titles[i] for i in batch]).to(self.device)
            with torch.inference_mode():
                mask = (tokens != self.model.text.config.pad_token_id).long()
                out = self.model.text.transformer(input_ids=tokens, attention_mask=mask)
                pooled = self.model.text.pooler(out, mask).float().cpu().numpy()
            self.cache.put_many(self.namespace + ":text", [(digests[i], v) for i, v in zip(batch, pooled)])
            found.update({digests[i]: v for i, v in zip(batch, pooled)})
            if progress:
                progress("text features", min(start + 256, len(todo)), len(todo))
        return np.stack([found[d] for d in digests]).astype(np.float32)

    def images(self, paths: list[str], progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Features and an ok-mask (False where the image could not be read)."""
        import torch

        digests: list[str | None] = []
        for path in paths:
            try:
                digests.append(file_digest(path))
            except (OSError, ValueError):  # ImageError: not a regular file, or over the size limit
                digests.append(None)
        found = self.cache.get_many(self.namespace + ":image", [d for d in digests if d])
        todo = [i for i, d in enumerate(digests) if d and d not in found]
        bad: set[int] = {i for i, d in enumerate(digests) if d is None}
        batch_size = 64
        for start in range(0, len(todo), batch_size):
            batch, tensors = [], []
            for i in todo[start:start + batch_size]:
                try:
                    tensors.append(self.preprocess(open_image(paths[i])))
                    batch.append(i)
                except (OSError, ValueError, SyntaxError):
                    bad.add(i)
            if tensors:
                x = torch.stack(tensors).to(self.device)
                if self.device == "cpu":
                    x = x.contiguous(memory_format=torch.channels_last)
                with torch.inference_mode():
                    feats = self.model.visual.trunk(x).float().cpu().numpy()
                self.cache.put_many(self.namespace + ":image", [(digests[i], v) for i, v in zip(batch, feats)])
                found.update({digests[i]: v for i, v in zip(batch, feats)})
            if progress:
                progress("image features", min(start + batch_size, len(todo)), len(todo))
        ok = np.array([i not in bad for i in range(len(paths))])
        dim = next(iter(found.values())).shape[0] if found else 1280
        feats = np.stack([found[d] if ok[i] else np.zeros(dim, np.float32) for i, d in enumerate(digests)])
        return feats.astype(np.float32), ok


def retrieval_metrics(text_emb: np.ndarray, image_emb: np.ndarray, types: list, colours: list, k: int = 10) -> dict[str, float]:
    """Text-to-image Recall@k (exact product) and attribute precision@k among the given products."""
    scores = text_emb @ image_emb.T
    top = np.argsort(-scores, axis=1)[:, :k]
    n = len(text_emb)
    recall = float(np.mean([i in top[i] for i in range(n)]))
    types_arr = np.array([t if t is not None else f"\0{i}" for i, t in enumerate(types)], dtype=object)
    colours_arr = np.array([c if c is not None else f"\0{i}" for i, c in enumerate(colours)], dtype=object)
    same_type = types_arr[top] == types_arr[:, None]
    same_colour = colours_arr[top] == colours_arr[:, None]
    return {
        f"recall@{k}": recall,
        f"type_precision@{k}": float(same_type.mean()),
        f"type_colour_precision@{k}": float((same_type & same_colour).mean()),
    }


def train_encoder(catalog: str | Path, out: str | Path, config: TrainConfig | None = None,
                  field_map: dict[str, list[str]] | None = None, device: str = "auto",
                  cache_dir: str | Path | None = None, progress: Progress | None = None) -> TrainReport:
    """Train heads on a catalog, evaluate on held-out products, save a heads file to `out`."""
    import torch

    config = config or TrainConfig()
    config.check()
    if config.text_only or not has_images(catalog, field_map):
        from shoplens.training.text_pairs import train_text_heads

        return train_text_heads(catalog, out, config, field_map, device, cache_dir, progress)
    device = resolve_device(device)
    torch.manual_seed(config.seed)
    products, everything, sizes, skipped = split_products(catalog, config, field_map)

    heads_meta = {"embed_dim": config.embed_dim, "image_proj": config.head, "text_proj": config.head}
    model, model_cfg, _ = build_default_model(load_heads=False, head_overrides=heads_meta)
    model.eval().to(device)
    started = time.time()
    with tower_features(model, model_cfg, device, cache_dir) as towers:
        text_feats = towers.texts([p.title for p in everything], progress)
        image_feats, ok = towers.images([p.image for p in everything], progress)
    seconds_features = time.time() - started
    keep = np.flatnonzero(ok)
    index_of = {"heldout": [i for i in keep if i < sizes[0]],
                "validation": [i for i in keep if sizes[0] <= i < sizes[0] + sizes[1]],
                "train": [i for i in keep if i >= sizes[0] + sizes[1]]}
    type_field = config.type_field or detect_field(products, "type")
    colour_field = config.colour_field or detect_field(products, "colour")

    started = time.time()
    trainer = HeadTrainer(model, text_feats, image_feats, attribute_values(everything, type_field),
                          attribute_values(everything, colour_field), config, device)
    best_epoch, history = trainer.fit(index_of["train"], index_of["validation"], progress)
    heldout_metrics = trainer.evaluate(index_of["heldout"])
    seconds_training = time.time() - started

    trained_on = {"catalog": Path(catalog).name, "pairs": len(index_of["train"]), "type_field": type_field,
                  "colour_field": colour_field}
    save_heads(Path(out), model, {**heads_meta, "image_size": model_cfg["vision_cfg"]["image_size"]}, trained_on,
               heldout_metrics, best_epoch)
    return TrainReport(
        pairs_train=len(index_of["train"]), pairs_validation=len(index_of["validation"]),
        pairs_heldout=len(index_of["heldout"]), best_epoch=best_epoch,
        metrics={k: round(v, 4) for k, v in heldout_metrics.items()},
        validation_history=[{k: round(v, 4) if isinstance(v, float) else v for k, v in h.items()} for h in history],
        skipped_without_image=skipped, image_failures=int((~ok).sum()),
        seconds_features=round(seconds_features, 1), seconds_training=round(seconds_training, 1), output=str(out),
    )


def has_images(catalog: str | Path, field_map: dict[str, list[str]] | None = None) -> bool:
    """Whether any product of the catalog names an image (a catalog without any trains on text-only pairs)."""
    return any(p.image for p in read_catalog(catalog, field_map).products)


def split_products(catalog: str | Path, config: TrainConfig, field_map: dict[str, list[str]] | None = None):
    """The catalog's products with images, and them ordered held out, validation, training (by a hash of the
    id, so the split is stable); returns (products, ordered, (held out, validation) sizes, skipped without image)."""
    result = read_catalog(catalog, field_map)
    products = [p for p in result.products if p.image]
    if len(products) < config.holdout + config.validation + 100:
        raise CatalogError(
            f"{len(products)} products with images are too few to train on with {config.holdout} held out; "
            "use a larger catalog or a smaller --holdout"
        )
    products.sort(key=lambda p: split_key(p.id, config.seed))
    heldout = products[:config.holdout]
    validation = products[config.holdout:config.holdout + config.validation]
    train = products[config.holdout + config.validation:]
    if config.max_train:
        train = train[:config.max_train]
    return products, heldout + validation + train, (len(heldout), len(validation)), \
        len(result.products) - len(products)


class HeadTrainer:
    """The default model's two projection heads and logit scale, trained with open_clip's CLIP loss on
    cached tower features (the towers stay frozen), early-stopped on validation retrieval."""

    def __init__(self, model, text_feats: np.ndarray, image_feats: np.ndarray, types: list, colours: list,
                 config: TrainConfig, device: str):
        import torch

        self.torch = torch
        self.model, self.config, self.device = model, config, device
        self.types, self.colours = types, colours
        self.heads = [model.visual.head, model.text.proj]
        self.other = model.visual.head  # the head of the second side of a pair (a text head for text-only pairs)
        self.text = torch.from_numpy(text_feats).to(device)
        self.image = torch.from_numpy(image_feats).to(device)

    def embed(self, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """Normalized (text, image) embeddings of the given products through the current heads."""
        import torch.nn.functional as F

        with self.torch.no_grad():
            for module in self.heads:
                module.eval()
            idx = self.torch.tensor(indices, device=self.device)
            t = F.normalize(self.model.text.proj(self.text[idx]), dim=-1).cpu().numpy()
            v = F.normalize(self.other(self.image[idx]), dim=-1).cpu().numpy()
            for module in self.heads:
                module.train()
        return t, v

    def evaluate(self, indices: list[int]) -> dict[str, float]:
        t, v = self.embed(indices)
        return retrieval_metrics(t, v, [self.types[i] for i in indices], [self.colours[i] for i in indices])

    def fit(self, train: list[int], validation: list[int], progress: Progress | None = None):
        """Train until validation stops improving; the best epoch's heads are loaded back.

        Returns (best epoch, validation metrics per epoch)."""
        from open_clip.loss import ClipLoss

        config, torch = self.config, self.torch
        params = [p for module in self.heads for p in module.parameters()] + [self.model.logit_scale]
        for module in self.heads:
            module.train()
        optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
        train_idx = torch.tensor(train, device=self.device)
        steps = max(1, len(train_idx) // config.batch_size)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.learning_rate,
                                                        total_steps=steps * config.epochs, pct_start=0.1)
        loss_fn = ClipLoss()
        best, best_epoch, best_state, history, stale = -1.0, 0, None, [], 0
        for epoch in range(1, config.epochs + 1):
            loss = self._epoch(train_idx, steps, optimizer, scheduler, loss_fn)
            metrics = self.evaluate(validation)
            metrics.update(epoch=epoch, loss=loss)
            history.append(metrics)
            if progress:
                progress("training", epoch, config.epochs)
            score = metrics["recall@10"] + metrics["type_precision@10"]
            if score > best:
                best, best_epoch, stale = score, epoch, 0
                best_state = {k: v.clone() for k, v in head_state_dict(self.model).items()}
            else:
                stale += 1
                if stale >= config.patience:
                    break
        self.model.load_state_dict(best_state, strict=False)
        return best_epoch, history

    def _epoch(self, train_idx, steps: int, optimizer, scheduler, loss_fn) -> float:
        """One pass over the training pairs in a random order; the last batch's loss."""
        import torch.nn.functional as F

        size = self.config.batch_size
        order = train_idx[self.torch.randperm(len(train_idx), device=self.device)]
        for step in range(steps):
            batch = order[step * size:(step + 1) * size]
            image_emb = F.normalize(self.other(self.image[batch]), dim=-1)
            text_emb = F.normalize(self.model.text.proj(self.text[batch]), dim=-1)
            loss = loss_fn(image_emb, text_emb, self.model.logit_scale.exp().clamp(max=self.config.max_logit_scale))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        return float(loss.item())


def save_heads(out: Path, model, heads: dict[str, Any], trained_on: dict[str, Any], heldout_metrics: dict[str, float],
               best_epoch: int) -> None:
    """The trained heads as a safetensors file whose metadata says how they were made (written atomically)."""
    from safetensors.torch import save_file

    out.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "model": DEFAULT_MODEL,
        "heads": json.dumps(heads),
        "trained_on": json.dumps(trained_on),
        "heldout_metrics": json.dumps(heldout_metrics),
        "best_epoch": str(best_epoch),
    }
    tmp = out.with_name(out.name + ".tmp")
    try:
        save_file(head_state_dict(model), str(tmp), metadata=metadata)
        tmp.replace(out)
    except OSError as exc:  # `train-encoder` checked --out before training; a full disk can still fail here
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {out} ({exc.strerror or exc}); give a path in a writable folder") from None
