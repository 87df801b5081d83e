"""What every encoder offers: texts and images into one joint, L2-normalized space."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from shoplens.indexers.images import not_found_reason, open_image

ProgressCallback = Callable[[int], None]  # called with the number of items just finished


@dataclass(frozen=True)
class EncoderInfo:
    """Identity of an encoder, recorded in the index manifest.

    An index can only be searched with the encoder it was built with:
    `name`, `weights_id` and `dim` must match.
    """

    name: str
    pretrained: str | None
    weights_id: str
    dim: int

    def to_dict(self) -> dict:
        return asdict(self)

    def same_model(self, other: "EncoderInfo | dict") -> bool:
        other = other if isinstance(other, dict) else other.to_dict()
        return (self.name, self.weights_id, self.dim) == (other.get("name"), other.get("weights_id"), other.get("dim"))


@dataclass
class ImageFailure:
    """An image that could not be used, and why."""

    index: int  # position in the batch given to encode_images
    path: str
    reason: str


class Encoder(ABC):
    """A joint image-text embedding model."""

    info: EncoderInfo
    device: str

    @abstractmethod
    def encode_texts(self, texts: Sequence[str], batch_size: int = 256,
                     progress: ProgressCallback | None = None) -> np.ndarray:
        """(n, dim) float32, L2-normalized."""

    def encode_texts_native(self, texts: Sequence[str], batch_size: int = 256,
                            progress: ProgressCallback | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """(joint, native) embeddings from one forward pass of the text tower.

        `native` is the text tower's own sentence embedding (before any
        projection into the joint space), L2-normalized, (n, native_dim); None
        for a model that has no such tower (the text-native channel is then absent).
        """
        return self.encode_texts(texts, batch_size, progress), None

    @property
    def native_dim(self) -> int | None:
        """Dimension of the text-native embedding, or None when the model has none."""
        return None

    def encode_images(self, paths: Sequence[str | Path], batch_size: int = 64,
                      progress: ProgressCallback | None = None) -> tuple[np.ndarray, list[ImageFailure]]:
        """(n, dim) float32, L2-normalized; rows of failed images are zero and listed in failures.

        Opens each batch's files within the limits of `indexers.images` and encodes the ones that
        open with `encode_image_objects`; a missing or unreadable file is a failure, not an error."""
        failures: list[ImageFailure] = []
        result = np.zeros((len(paths), self.info.dim), dtype=np.float32)
        for start in range(0, len(paths), batch_size):
            images, positions = [], []
            for offset, path in enumerate(paths[start:start + batch_size]):
                try:
                    images.append(open_image(path))
                    positions.append(start + offset)
                except FileNotFoundError:
                    failures.append(ImageFailure(start + offset, str(path), not_found_reason(str(path))))
                except (OSError, ValueError, SyntaxError) as exc:  # PIL's errors for truncated or non-image files
                    failures.append(ImageFailure(start + offset, str(path), f"unreadable image: {exc}"))
            if images:
                result[positions] = self.encode_image_objects(images)
            if progress:
                progress(min(batch_size, len(paths) - start))
        return result, failures

    @abstractmethod
    def encode_image_objects(self, images: Sequence) -> np.ndarray:
        """Encode already-opened PIL images (RGB): (n, dim) float32, L2-normalized."""


def text_digest(text: str) -> str:
    """Content hash of a text, independent of the model."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def bytes_digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def file_identity(path: Path) -> str:
    """A cheap, stable identity for a weights file: size plus hashes of its first and last MiB."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(1 << 20))
        if size > 2 << 20:
            handle.seek(-(1 << 20), 2)
            digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:16]
