"""Query encoding with ONNX Runtime: the default model's exported graphs, no torch at all.

The export (see `onnx_export`) lives in the index directory next to the
embedding cache and carries the model identity it was made from; this encoder
offers the same interface as `OpenClipEncoder`, so the engine does not care
which one serves. Tokenization uses the fast tokenizer (`tokenizers`) directly
and image preprocessing is PIL plus numpy, reproducing open_clip's transform
(keep the ratio on the longest side, bicubic, pad to a white square, normalize).

A session runs one operator thread by default: one query is small, and
concurrent clients each get a core.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from shoplens.common.errors import ModelLoadError
from shoplens.indexers.encoders.base import Encoder, EncoderInfo


def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:  # a declared dependency, but an index may be served where it is missing
        raise ModelLoadError("the ONNX encoder runtime needs onnxruntime: pip install onnxruntime, "
                             "or use --encoder-runtime torch") from exc
    return onnxruntime


def onnx_available() -> bool:
    """Whether onnxruntime can be imported here (without importing it when it cannot)."""
    from importlib.util import find_spec

    return find_spec("onnxruntime") is not None


class OnnxEncoder(Encoder):
    """The default model's text and image paths on ONNX Runtime (fp32, CPU); with `int8` the text graph's
    matrix multiplications use int8 weights (dynamic quantization, made once next to the fp32 graph)."""

    def __init__(self, directory: Path, threads: int = 1, int8: bool = False):
        self.directory = Path(directory)
        self.runtime = "onnx-int8" if int8 else "onnx"
        meta_path = self.directory / "meta.json"
        if not meta_path.is_file():
            raise ModelLoadError(f"no ONNX export in {self.directory}; rebuild it with `shoplens index` "
                                 "or use --encoder-runtime torch")
        self.meta = json.loads(meta_path.read_text())
        model = self.meta["model"]
        self.info = EncoderInfo(name=model["name"], pretrained=model.get("pretrained"),
                                weights_id=model["weights_id"], dim=int(model["dim"]))
        self.tower_dim = int(self.meta["tower_dim"])
        self.device = "cpu"
        self.threads = threads
        self._pad_id = int(self.meta["pad_id"])
        self._tokenizer = self._load_tokenizer()
        self._sessions: dict[str, object] = {}
        self._session_lock = threading.Lock()
        self._text_session = self._session(self._text_graph(int8))  # the image graph loads on the first photo

    # -- loading ---------------------------------------------------------------------

    def _load_tokenizer(self):
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=int(self.meta["context_length"]))
        tokenizer.no_padding()
        return tokenizer

    def _text_graph(self, int8: bool) -> str:
        if not int8:
            return "text"
        from shoplens.indexers.encoders.onnx_export import INT8_TEXT, quantize_text

        quantize_text(self.directory)
        return INT8_TEXT

    def _session(self, name: str):
        session = self._sessions.get(name)
        if session is not None:
            return session
        with self._session_lock:
            if name not in self._sessions:
                ort = _onnxruntime()
                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                options.log_severity_level = 3
                path = self.directory / f"{name}.onnx"
                try:
                    self._sessions[name] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                except Exception as exc:  # onnxruntime raises its own error types for damaged files
                    raise ModelLoadError(f"cannot load {path}: {str(exc).splitlines()[0]}; delete {self.directory} "
                                         "and search again to re-export, or use --encoder-runtime torch") from exc
        return self._sessions[name]

    # -- text --------------------------------------------------------------------------

    def token_ids(self, texts: Sequence[str]) -> np.ndarray:
        """(n, longest) int64 token ids, padded with the pad id (the graph masks it out)."""
        texts = [text if text.strip() else "." for text in texts]
        if len(texts) == 1:
            return np.asarray([self._tokenizer.encode(texts[0]).ids], dtype=np.int64)
        encodings = self._tokenizer.encode_batch(texts)
        longest = max(len(e.ids) for e in encodings)
        ids = np.full((len(texts), longest), self._pad_id, dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, :len(encoding.ids)] = encoding.ids
        return ids

    @property
    def native_dim(self) -> int | None:
        return int(self.tower_dim)

    def encode_texts_native(self, texts: Sequence[str], batch_size: int = 256,
                            progress=None) -> tuple[np.ndarray, np.ndarray]:
        """Joint embeddings (n, dim), L2-normalized, and the text tower's own sentence embeddings
        (n, tower_dim: MiniLM mean pooling, before the projection head, L2-normalized), from one pass."""
        joint = np.zeros((len(texts), self.info.dim), np.float32)
        tower = np.zeros((len(texts), self.tower_dim), np.float32)
        session = self._text_session
        for start in range(0, len(texts), batch_size):
            batch = texts[start:start + batch_size]
            pooled, embedding = session.run(None, {"input_ids": self.token_ids(batch)})
            joint[start:start + len(batch)] = embedding
            tower[start:start + len(batch)] = pooled
            if progress:
                progress(len(batch))
        norms = np.linalg.norm(tower, axis=1, keepdims=True)
        return joint, tower / np.where(norms > 0, norms, 1.0)

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256, progress=None) -> np.ndarray:
        if len(texts) == 1:  # the query path: no batching bookkeeping
            return self._text_session.run(["embedding"], {"input_ids": self.token_ids(texts)})[0]
        return self.encode_texts_native(texts, batch_size, progress)[0]

    # -- images ------------------------------------------------------------------------

    def preprocess(self, image) -> np.ndarray:
        """open_clip's eval transform for this model, as a (3, S, S) float32 array."""
        return preprocess_image(image, self.meta["preprocess"])

    def encode_image_objects(self, images) -> np.ndarray:
        if not len(images):
            return np.zeros((0, self.info.dim), np.float32)
        batch = np.stack([self.preprocess(image) for image in images])
        return self._session("image").run(None, {"pixels": batch})[0].astype(np.float32)


def preprocess_image(image, config: dict) -> np.ndarray:
    """Resize keeping the ratio so the longest side fits, pad to a square with the fill colour,
    center-crop to size, scale to [0, 1] and normalize: open_clip's `resize_mode="longest"` transform."""
    from PIL import Image

    size = int(config["image_size"])
    image = image.convert("RGB") if image.mode != "RGB" else image
    width, height = image.size
    ratio = max(height / size, width / size)
    new_height, new_width = round(height / ratio), round(width / ratio)
    resample = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}.get(config.get("interpolation", "bicubic"),
                                                                         Image.BICUBIC)
    image = image.resize((new_width, new_height), resample)
    if new_width < size or new_height < size:
        fill = int(config.get("fill_color", 0))
        canvas = Image.new("RGB", (max(size, new_width), max(size, new_height)), (fill, fill, fill))
        canvas.paste(image, ((size - new_width) // 2 if size > new_width else 0,
                             (size - new_height) // 2 if size > new_height else 0))
        image = canvas
    width, height = image.size
    if (width, height) != (size, size):
        top, left = int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
        image = image.crop((left, top, left + size, top + size))
    pixels = np.asarray(image, dtype=np.float32) / 255.0
    mean = np.asarray(config.get("mean", (0.0, 0.0, 0.0)), dtype=np.float32)
    std = np.asarray(config.get("std", (1.0, 1.0, 1.0)), dtype=np.float32)
    return np.ascontiguousarray(((pixels - mean) / std).transpose(2, 0, 1))
