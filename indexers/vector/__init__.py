"""Vector stores: a base class and a factory keyed by backend name."""

from __future__ import annotations

from shoplens.common.errors import ConfigError
from shoplens.indexers.vector.base import VectorStore

VECTOR_BACKENDS = ("faiss",)


def vector_store_class(name: str = "faiss") -> type[VectorStore]:
    """The store class for a backend name; raises ConfigError listing the valid names."""
    if name == "faiss":
        from shoplens.indexers.vector.faiss_store import FaissStore

        return FaissStore
    raise ConfigError(f"unknown vector backend {name!r}; use one of {', '.join(VECTOR_BACKENDS)}")
