"""Encoders built with open_clip: the offline default model, or any open_clip model and weights."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from shoplens.common.errors import ConfigError, ModelLoadError
from shoplens.indexers import images
from shoplens.indexers.encoders.base import Encoder, EncoderInfo, file_identity
from shoplens.indexers.encoders.default_model import DEFAULT_MODEL, DEFAULT_PRETRAINED, SHIPPED_HEADS, build_default_model


def resolve_device(device: str = "auto") -> str:
    """"auto" picks CUDA when torch sees a GPU, else CPU; "cuda" without a GPU is an error."""
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no GPU; use --device auto or cpu")
    return device


def open_image(path: str | Path):
    """Open an image fully (decoding it) as RGB within the limits of `indexers.images`; raises OSError/ValueError."""
    return images.open_image(path)


def weights_identity(model_name: str, pretrained: str | None) -> tuple[str | None, str]:
    """(pretrained label, weights id) for a model and weights, without loading the model.

    Index writes compare this with the manifest, so a changed heads or
    checkpoint file is noticed even when its name is the same.
    """
    if model_name == DEFAULT_MODEL:
        if pretrained in (None, "", DEFAULT_PRETRAINED):
            return DEFAULT_PRETRAINED, f"heads:{file_identity(SHIPPED_HEADS)}" if SHIPPED_HEADS.is_file() else "heads:missing"
        path = Path(pretrained)
        if not path.is_file():
            raise ModelLoadError(
                f"--pretrained {pretrained} is neither {DEFAULT_PRETRAINED!r} nor a heads file from `shoplens train-encoder`"
            )
        return str(path.resolve()), f"heads:{file_identity(path)}"
    if pretrained and os.path.isfile(pretrained):
        return str(Path(pretrained).resolve()), f"file:{file_identity(Path(pretrained))}"
    return pretrained, f"tag:{pretrained or model_name}"


class OpenClipEncoder(Encoder):
    """Any open_clip model; `shoplens-lite0-minilm` is the offline default."""

    runtime = "torch"

    def __init__(self, model_name: str = DEFAULT_MODEL, pretrained: str | None = None, device: str = "auto"):
        import torch

        self.device = resolve_device(device)
        self._torch = torch
        if model_name == DEFAULT_MODEL:
            self._load_default(pretrained)
        else:
            self._load_open_clip(model_name, pretrained)
        self.model.eval()
        if self.device == "cuda":
            self.model = self.model.half().to("cuda")
            self._dtype = torch.float16
        else:
            self.model = self.model.to(memory_format=torch.channels_last)
            self._dtype = torch.float32
        dim = int(self.encode_texts(["probe"]).shape[1])
        self.info = EncoderInfo(name=model_name, pretrained=self._pretrained_label, weights_id=self._weights_id, dim=dim)

    def _load_default(self, pretrained: str | None) -> None:
        import open_clip

        self._pretrained_label, self._weights_id = weights_identity(DEFAULT_MODEL, pretrained)
        heads = SHIPPED_HEADS if self._pretrained_label == DEFAULT_PRETRAINED else Path(self._pretrained_label)
        self.model, config, metadata = build_default_model(heads)
        self.heads_metadata = metadata
        pre = config["preprocess_cfg"]
        self.preprocess_config = {"image_size": int(config["vision_cfg"]["image_size"]), **pre}
        self.preprocess = open_clip.image_transform(
            config["vision_cfg"]["image_size"], is_train=False, mean=tuple(pre["mean"]), std=tuple(pre["std"]),
            interpolation=pre["interpolation"], resize_mode=pre["resize_mode"], fill_color=pre["fill_color"],
        )
        self.tokenizer = open_clip.tokenizer.HFTokenizer(
            config["text_cfg"]["hf_tokenizer_name"], context_length=config["text_cfg"]["context_length"]
        )

    def _load_open_clip(self, model_name: str, pretrained: str | None) -> None:
        import open_clip

        if model_name not in open_clip.list_models() and not model_name.startswith(("hf-hub:", "local-dir:")):
            raise ModelLoadError(
                f"unknown open_clip model {model_name!r}; see `open_clip.list_models()` or use {DEFAULT_MODEL}"
            )
        try:
            self.model, _, self.preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained)
            self.tokenizer = open_clip.get_tokenizer(model_name)
        except Exception as exc:  # open_clip raises RuntimeError/OSError/ValueError for missing weights or network
            raise ModelLoadError(
                f"cannot load open_clip model {model_name} with weights {pretrained!r}: {str(exc).splitlines()[0]}; "
                "pass --pretrained PATH to a local checkpoint when there is no network"
            ) from exc
        self._pretrained_label, self._weights_id = weights_identity(model_name, pretrained)

    def _tokenize(self, texts: list[str]):
        """Token ids; Hugging Face text towers get dynamic padding (same result, far less work for short queries)."""
        from open_clip.tokenizer import HFTokenizer

        if isinstance(self.tokenizer, HFTokenizer):
            encoded = self.tokenizer.tokenizer(texts, padding="longest", truncation=True,
                                               max_length=self.tokenizer.context_length, return_tensors="pt")
            return encoded.input_ids
        return self.tokenizer(texts)

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256, progress=None) -> np.ndarray:
        outputs = []
        with self._torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = [text if text.strip() else "." for text in texts[start:start + batch_size]]
                tokens = self._tokenize(batch).to(self.device)
                features = self.model.encode_text(tokens, normalize=True)
                outputs.append(features.float().cpu().numpy())
                if progress:
                    progress(len(batch))
        if not outputs:
            return np.zeros((0, self.info.dim), np.float32)
        return np.concatenate(outputs).astype(np.float32)

    def _has_native_tower(self) -> bool:
        """A Hugging Face text tower (transformer, pooler, projection): its pooled output is a sentence embedding."""
        text = getattr(self.model, "text", None)
        return all(hasattr(text, name) for name in ("transformer", "pooler", "proj", "config"))

    @property
    def native_dim(self) -> int | None:
        if not self._has_native_tower():
            return None
        return int(self.model.text.config.hidden_size)

    def encode_texts_native(self, texts: Sequence[str], batch_size: int = 256, progress=None):
        """Joint and text-native embeddings from one pass through the text tower (see Encoder)."""
        if not self._has_native_tower():
            return self.encode_texts(texts, batch_size, progress), None
        functional = self._torch.nn.functional
        tower = self.model.text
        joint, native = [], []
        with self._torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                batch = [text if text.strip() else "." for text in texts[start:start + batch_size]]
                tokens = self._tokenize(batch).to(self.device)
                mask = (tokens != tower.config.pad_token_id).long()
                pooled = tower.pooler(tower.transformer(input_ids=tokens, attention_mask=mask), mask)
                joint.append(functional.normalize(tower.proj(pooled), dim=-1).float().cpu().numpy())
                native.append(functional.normalize(pooled, dim=-1).float().cpu().numpy())
                if progress:
                    progress(len(batch))
        if not joint:
            return np.zeros((0, self.info.dim), np.float32), np.zeros((0, self.native_dim), np.float32)
        return np.concatenate(joint).astype(np.float32), np.concatenate(native).astype(np.float32)

    def _image_batch(self, images):
        torch = self._torch
        batch = torch.stack([self.preprocess(image) for image in images]).to(self.device, dtype=self._dtype)
        if self.device == "cpu":
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def encode_image_objects(self, images) -> np.ndarray:
        with self._torch.inference_mode():
            features = self.model.encode_image(self._image_batch(images), normalize=True)
        return features.float().cpu().numpy().astype(np.float32)
