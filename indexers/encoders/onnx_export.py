"""Export the default model's query paths to ONNX, once per model identity, into the index directory.

Two graphs, both fp32:

- `text.onnx`: token ids (1 x L, or B x L padded with the pad id) -> the MiniLM
  tower's mean-pooled sentence embedding (B x 384, before the projection head)
  and the projected, L2-normalized joint embedding (B x dim). The attention mask
  is computed inside the graph from the pad id, exactly as open_clip does.
- `image.onnx`: a preprocessed image batch (B x 3 x S x S) -> the normalized
  joint embedding (B x dim).

Next to them: the fast tokenizer's `tokenizer.json` and `meta.json` with the
model identity (name, weights id, dimension) the graphs were exported from. An
index refuses an export whose identity differs from its manifest's model.

This module needs torch; serving never imports it (see `onnx_encoder`).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from pathlib import Path

from shoplens.common.errors import ModelLoadError
from shoplens.indexers.encoders.default_model import DEFAULT_MODEL, minilm_path
from shoplens.indexers.storage import fsync_dir

EXPORT_FORMAT = 1
OPSET = 17
INT8_TEXT = "text-int8"  # the text graph with int8 weights (`quantize_text`), beside text.onnx


def export_dir_name(weights_id: str) -> str:
    """Directory name of an export: derived from the weights identity, safe as a file name."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in weights_id)
    return f"onnx-{DEFAULT_MODEL}-{safe}"


def can_export(model_name: str) -> bool:
    """Only the default model (a Hugging Face text tower with a fast tokenizer) is exported."""
    return model_name == DEFAULT_MODEL


def export_encoder(encoder, directory: Path) -> Path:
    """Write the ONNX export of a loaded default-model `OpenClipEncoder` to `directory` atomically.

    Built in a temporary sibling directory and renamed into place, so a reader
    never sees a half-written export; an existing export is left as it is.
    """
    if not can_export(encoder.info.name):
        raise ModelLoadError(f"ONNX export supports {DEFAULT_MODEL} only, not {encoder.info.name}; "
                             "use --encoder-runtime torch")
    if (directory / "meta.json").is_file():
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / f"{directory.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        tower_dim = _export_text(encoder, staging / "text.onnx")
        _export_image(encoder, staging / "image.onnx")
        shutil.copyfile(minilm_path() / "tokenizer.json", staging / "tokenizer.json")
        meta = {
            "format": EXPORT_FORMAT,
            "model": encoder.info.to_dict(),
            "tower_dim": tower_dim,
            "context_length": encoder.tokenizer.context_length,
            "pad_id": int(encoder.model.text.config.pad_token_id),
            "image_size": int(encoder.preprocess_config["image_size"]),
            "preprocess": encoder.preprocess_config,
            "opset": OPSET,
        }
        (staging / "meta.json").write_text(json.dumps(meta, indent=2))
        fsync_dir(staging)
        try:
            staging.rename(directory)
        except OSError:  # another process exported the same identity first
            if not (directory / "meta.json").is_file():
                raise
        fsync_dir(directory.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def quantize_text(directory: Path) -> Path:
    """`text-int8.onnx` beside an export's `text.onnx`: ONNX Runtime's dynamic quantization of the
    transformer's matrix multiplications (int8 weights per output channel, activations quantized per
    call), made once and renamed into place. Needs onnxruntime only (no torch)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = Path(directory) / f"{INT8_TEXT}.onnx"
    if target.is_file():
        return target
    staging = target.with_name(f"{INT8_TEXT}.tmp-{os.getpid()}.onnx")
    logging.disable(logging.WARNING)  # its advice to pre-process the graph, printed on every call
    try:
        quantize_dynamic(str(Path(directory) / "text.onnx"), str(staging), op_types_to_quantize=["MatMul"],
                         per_channel=True, weight_type=QuantType.QInt8)
        staging.rename(target)
    finally:
        logging.disable(logging.NOTSET)
        staging.unlink(missing_ok=True)
    return target


def _export_text(encoder, path: Path) -> int:
    import torch

    class TextGraph(torch.nn.Module):
        def __init__(self, text):
            super().__init__()
            self.text = text

        def forward(self, input_ids):
            mask = (input_ids != self.text.config.pad_token_id).long()
            out = self.text.transformer(input_ids=input_ids, attention_mask=mask)
            pooled = self.text.pooler(out, mask)
            joint = torch.nn.functional.normalize(self.text.proj(pooled), dim=-1)
            return pooled, joint

    graph = TextGraph(copy.deepcopy(encoder.model.text).float().cpu()).eval()
    example = encoder.tokenizer.tokenizer(["red cotton dress", "a shirt"], padding="longest",
                                          return_tensors="pt").input_ids
    with torch.inference_mode():
        pooled, _ = graph(example)
    _onnx_export(graph, (example,), path, ["input_ids"], ["tower", "embedding"],
                 {"input_ids": {0: "batch", 1: "tokens"}, "tower": {0: "batch"}, "embedding": {0: "batch"}})
    return int(pooled.shape[1])


def _export_image(encoder, path: Path) -> None:
    import torch

    class ImageGraph(torch.nn.Module):
        def __init__(self, visual):
            super().__init__()
            self.visual = visual

        def forward(self, pixels):
            return torch.nn.functional.normalize(self.visual(pixels), dim=-1)

    graph = ImageGraph(copy.deepcopy(encoder.model.visual).float().cpu()).eval()
    size = int(encoder.preprocess_config["image_size"])
    example = torch.zeros(1, 3, size, size)
    _onnx_export(graph, (example,), path, ["pixels"], ["embedding"],
                 {"pixels": {0: "batch"}, "embedding": {0: "batch"}})


def _onnx_export(module, args, path: Path, inputs, outputs, dynamic_axes) -> None:
    import warnings

    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic_axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)
