"""What every vector store offers the engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np


class VectorStore(ABC):
    """Product embeddings addressed by docno, searchable by inner product.

    A store holds, per row, a text embedding, an image embedding (absent for
    products without a usable image) and their fused product vector, which is
    what nearest-neighbour search runs on. Rows are append-only; `allowed`
    masks restrict a search to live, filter-passing rows.
    """

    name: str = "base"
    # True when a version's search sees only its live rows by itself (no live mask needed)
    physical_deletes: bool = False
    remote: bool = False  # searched over the network (a cluster): a search waits on a round trip, not the CPU

    @classmethod
    @abstractmethod
    def write(
        cls,
        target: Path,
        parent: Path | None,
        text: np.ndarray,
        image: np.ndarray,
        has_image: np.ndarray,
        segment_name: str,
        config: dict[str, Any],
    ) -> dict[str, Any]:
        """Write a version of the store: the parent's rows plus the new ones."""

    @classmethod
    def lexical_fields(cls, state: dict[str, Any], text: np.ndarray, image: np.ndarray,
                       has_image: np.ndarray) -> dict[str, np.ndarray]:
        """Per field, the vectors of the given new rows that the lexical store's documents must carry
        (a store kept on a search server with the text); {} for a store that keeps its own files."""
        return {}

    @classmethod
    @abstractmethod
    def read_rows(cls, directory: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every row's stored (text, image, has_image), without building an index (compaction)."""

    @classmethod
    def image_flags(cls, directory: Path) -> np.ndarray:
        """Which stored rows have an image embedding, per row (a backend may read just these)."""
        return cls.read_rows(directory)[2]

    @classmethod
    def set_search_threads(cls, threads: int) -> None:
        """How many threads one search may use, process-wide (a backend without such a setting ignores it)."""

    @classmethod
    @abstractmethod
    def open(cls, directory: Path, device: str = "auto", previous: "VectorStore | None" = None) -> "VectorStore":
        """Open a version for searching; `previous`, an open earlier version, may lend unchanged parts."""

    state: dict[str, Any]  # the version's state.json: rows, dim and the backend's own settings

    @property
    def num_rows(self) -> int:
        return int(self.state["rows"])

    @property
    def dim(self) -> int:
        return int(self.state["dim"])

    @abstractmethod
    def search(self, query: np.ndarray, limit: int, allowed: np.ndarray | None = None,
               filters: list | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top `limit` rows by inner product with `query` among allowed rows: (docnos, scores).

        `filters` (FieldFilters), when given, are what `allowed` was computed from: a store on a server
        applies them there instead of the mask; the others use the mask."""

    @abstractmethod
    def vectors(self, docnos: np.ndarray, parts: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Stored `text`, `image`, `fused` vectors and `has_image` flags for the given rows (only those named
        in `parts`, when given; a store may return more)."""

    @classmethod
    @abstractmethod
    def summarize(cls, state: dict[str, Any]) -> dict[str, Any]:
        """The settings a written state records, for the manifest."""

    def check_documents(self, live: np.ndarray) -> list[str]:
        """Problems between what the store holds outside the index directory and the folder (none here)."""
        return []

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Kind, parameters and device, for `shoplens info` and the manifest."""


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """L2-normalize each row; all-zero rows stay zero."""
    matrix = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def fuse_vectors(text: np.ndarray, image: np.ndarray, has_image: np.ndarray, image_weight: float) -> np.ndarray:
    """A product's vector: the normalized weighted sum of its text and image embeddings.

    Products without an image are represented by their text embedding alone.
    """
    weight = np.where(has_image, image_weight, 0.0).astype(np.float32)[:, None]
    return normalize_rows((1.0 - weight) * text + weight * image)


MIN_LIST_ROWS = 39  # rows per IVF list at least (FAISS's k-means asks for 39 training points a centroid)


def ivf_lists(rows: int) -> int:
    """IVF lists for a store built on `rows` rows: about 4 sqrt(rows), at most rows / MIN_LIST_ROWS, at least 1."""
    return int(max(1, min(rows // MIN_LIST_ROWS, int(4 * np.sqrt(max(rows, 1))))))


def top_k(scores: np.ndarray, candidates: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The `limit` best (candidate, score) pairs, best first."""
    if len(scores) == 0 or limit <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    if len(scores) > limit:
        part = np.argpartition(-scores, limit - 1)[:limit]
    else:
        part = np.arange(len(scores))
    order = part[np.argsort(-scores[part], kind="stable")]
    return candidates[order].astype(np.int64), scores[order].astype(np.float32)


def similarities(stored: dict[str, np.ndarray], text: np.ndarray | None,
                 image: np.ndarray | None) -> dict[str, np.ndarray]:
    """A query text's and photo's inner products with rows' stored text and image vectors (`VectorStore.vectors`;
    NaN where a row has no photo): the reranker's similarity features, named as it names them."""
    sims, has_image = {}, stored["has_image"]
    if text is not None:
        sims["sim_text_text"] = stored["text"] @ text
        sims["sim_text_image"] = np.where(has_image, stored["image"] @ text, np.nan)
    if image is not None:
        sims["sim_image_image"] = np.where(has_image, stored["image"] @ image, np.nan)
        sims["sim_image_text"] = stored["text"] @ image
    return sims
