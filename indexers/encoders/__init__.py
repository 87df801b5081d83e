"""Encoders: a base class and a factory. Every encoder is an open_clip model.

Callers outside this package use what is here (`create_encoder`,
`weights_identity`, `open_image`, `resolve_device`), never a backend module directly.
"""

from __future__ import annotations

from shoplens.indexers.encoders.base import Encoder, EncoderInfo
from shoplens.indexers.encoders.default_model import DEFAULT_MODEL, DEFAULT_PRETRAINED
from shoplens.indexers.encoders.openclip_encoder import OpenClipEncoder, open_image, resolve_device
from shoplens.indexers.encoders.openclip_encoder import weights_identity as _openclip_weights_identity

_LOADED: dict[tuple[str, str | None, str], Encoder] = {}


def create_encoder(model: str = DEFAULT_MODEL, pretrained: str | None = None, device: str = "auto",
                   reuse: bool = True) -> Encoder:
    """An encoder for an open_clip model name and weights (tag or path).

    Models are loaded once per process and reused (a shell, tests, benchmarks).
    """
    key = (model, pretrained if pretrained != DEFAULT_PRETRAINED else None, resolve_device(device))
    if reuse and key in _LOADED:
        return _LOADED[key]
    encoder = OpenClipEncoder(model, pretrained, device)
    if reuse:
        _LOADED[key] = encoder
    return encoder


def weights_identity(model: str, pretrained: str | None) -> tuple[str | None, str]:
    """(pretrained label, weights id) of a model's weights without loading them: what a manifest records,
    so a changed heads or checkpoint file is noticed even under the same name."""
    return _openclip_weights_identity(model, pretrained)


__all__ = ["Encoder", "EncoderInfo", "create_encoder", "weights_identity", "open_image", "resolve_device",
           "DEFAULT_MODEL", "DEFAULT_PRETRAINED"]
