"""Encoders: a base class and a factory. Every encoder is an open_clip model."""

from __future__ import annotations

from shoplens.indexers.encoders.base import Encoder, EncoderInfo
from shoplens.indexers.encoders.default_model import DEFAULT_MODEL, DEFAULT_PRETRAINED

_LOADED: dict[tuple[str, str | None, str], Encoder] = {}


def create_encoder(model: str = DEFAULT_MODEL, pretrained: str | None = None, device: str = "auto",
                   reuse: bool = True) -> Encoder:
    """An encoder for an open_clip model name and weights (tag or path).

    Models are loaded once per process and reused (a shell, tests, benchmarks).
    """
    from shoplens.indexers.encoders.openclip_encoder import OpenClipEncoder, resolve_device

    key = (model, pretrained if pretrained != DEFAULT_PRETRAINED else None, resolve_device(device))
    if reuse and key in _LOADED:
        return _LOADED[key]
    encoder = OpenClipEncoder(model, pretrained, device)
    if reuse:
        _LOADED[key] = encoder
    return encoder


__all__ = ["Encoder", "EncoderInfo", "create_encoder", "DEFAULT_MODEL", "DEFAULT_PRETRAINED"]
