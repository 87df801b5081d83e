"""Encoders: a base class and a factory. Every encoder is an open_clip model.

Callers outside this package use what is here (`create_encoder`, `open_query_encoder`,
`weights_identity`, `open_image`, `resolve_device`), never a backend module directly.

Two runtimes serve the same interface: `torch` (open_clip itself; indexing,
training, any model) and `onnx` (the default model's query paths exported to
ONNX and run by ONNX Runtime, without importing torch). An index records the
runtime its queries use; the export is made at index time, or once on first
use, and kept in the index directory under its model identity.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from shoplens.common.errors import ConfigError, ModelMismatchError
from shoplens.indexers.encoders.base import Encoder, EncoderInfo
from shoplens.indexers.encoders.default_model import DEFAULT_MODEL, DEFAULT_PRETRAINED
from shoplens.indexers.encoders.openclip_encoder import OpenClipEncoder, open_image, resolve_device
from shoplens.indexers.encoders.openclip_encoder import weights_identity as _openclip_weights_identity

ENCODER_RUNTIMES = ("onnx", "onnx-int8", "torch")  # onnx-int8: the text graph with int8 weights (an option)
_LOADED: dict[tuple, Encoder] = {}
_EXPORTED: dict[str, Path] = {}  # weights id -> an export this process made or used (linked into other indexes)


def create_encoder(model: str = DEFAULT_MODEL, pretrained: str | None = None, device: str = "auto",
                   reuse: bool = True) -> Encoder:
    """A torch encoder for an open_clip model name and weights (tag or path).

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


def resolve_runtime(requested: str | None, model_name: str) -> str:
    """"auto" (or nothing recorded) is onnx for a model that can be exported where onnxruntime is
    installed, torch otherwise; "onnx" for a model that cannot be exported is an error."""
    from shoplens.indexers.encoders.onnx_encoder import onnx_available
    from shoplens.indexers.encoders.onnx_export import can_export

    if requested in (None, "", "auto"):
        return "onnx" if can_export(model_name) and onnx_available() else "torch"
    if requested not in ENCODER_RUNTIMES:
        raise ConfigError(f"unknown encoder runtime {requested!r}; use auto, onnx, onnx-int8 or torch")
    if requested.startswith("onnx") and not can_export(model_name):
        raise ConfigError(f"--encoder-runtime {requested} supports {DEFAULT_MODEL} only, not {model_name}; "
                          "use --encoder-runtime torch")
    return requested


def export_path(index_path: str | Path, weights_id: str) -> Path:
    """Where an index keeps the ONNX export of the model with this weights identity."""
    from shoplens.indexers.encoders.onnx_export import export_dir_name

    return Path(index_path) / "encoders" / export_dir_name(weights_id)


def ensure_export(index_path: str | Path, recorded: dict[str, Any], torch_encoder: Callable[[], Encoder]) -> Path:
    """The ONNX export of the index's model, exported now (from `torch_encoder()`) if it is missing."""
    from shoplens.indexers.encoders.onnx_export import export_encoder

    directory = export_path(index_path, recorded["weights_id"])
    if (directory / "meta.json").is_file():
        return directory
    earlier = _EXPORTED.get(recorded["weights_id"])
    if earlier is not None and (earlier / "meta.json").is_file() and _link_export(earlier, directory):
        return directory
    encoder = torch_encoder()
    if not encoder.info.same_model(recorded):
        raise ModelMismatchError(f"cannot export {encoder.info.name} ({encoder.info.weights_id}) for an index "
                                 f"built with {recorded['name']} ({recorded['weights_id']})")
    export_encoder(encoder, directory)
    _EXPORTED[recorded["weights_id"]] = directory
    return directory


def _link_export(source: Path, directory: Path) -> bool:
    """Reuse an export this process made for another index (hard links, or copies across file systems)."""
    import shutil

    from shoplens.indexers.storage import link_or_copy

    staging = directory.parent / f"{directory.name}.tmp-link-{os.getpid()}"
    try:
        staging.mkdir(parents=True)
        for item in source.iterdir():
            link_or_copy(item, staging / item.name)
        staging.rename(directory)
        return True
    except OSError:
        return (directory / "meta.json").is_file()
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def open_query_encoder(index_path: str | Path, recorded: dict[str, Any], runtime: str, device: str = "auto",
                       threads: int = 1) -> Encoder:
    """The encoder that serves an index's queries with `runtime`, checked against the index's model."""
    if runtime == "torch":
        encoder = create_encoder(recorded["name"], recorded.get("pretrained"), device)
    else:
        from shoplens.indexers.encoders.onnx_encoder import OnnxEncoder

        directory = ensure_export(index_path, recorded,
                                  lambda: create_encoder(recorded["name"], recorded.get("pretrained"), "cpu"))
        key = (runtime, str(directory.resolve()), threads)
        if key not in _LOADED:
            _LOADED[key] = OnnxEncoder(directory, threads=threads, int8=runtime == "onnx-int8")
        encoder = _LOADED[key]
    if not encoder.info.same_model(recorded):
        raise ModelMismatchError(
            f"the {runtime} encoder ({encoder.info.name}, {encoder.info.weights_id}) is not the model this index "
            f"was built with ({recorded['name']}, {recorded['weights_id']}); rebuild the index with `shoplens index`"
        )
    return encoder


__all__ = ["Encoder", "EncoderInfo", "create_encoder", "open_query_encoder", "resolve_runtime", "ensure_export",
           "export_path", "weights_identity", "open_image", "resolve_device", "ENCODER_RUNTIMES", "DEFAULT_MODEL",
           "DEFAULT_PRETRAINED"]
