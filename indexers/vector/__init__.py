"""Vector stores: a base class and a factory keyed by backend name."""

from __future__ import annotations

from shoplens.common.errors import ConfigError
from shoplens.indexers.vector.base import VectorStore

VECTOR_BACKENDS = ("faiss", "elasticsearch", "opensearch")


def vector_store_class(name: str = "faiss") -> type[VectorStore]:
    """The store class for a backend name; raises ConfigError listing the valid names."""
    if name == "faiss":
        from shoplens.indexers.vector.faiss_store import FaissStore

        return FaissStore
    if name == "elasticsearch":
        from shoplens.indexers.vector.elasticsearch_store import ElasticsearchVectorStore

        return ElasticsearchVectorStore
    if name == "opensearch":
        from shoplens.indexers.vector.opensearch_store import OpenSearchVectorStore

        return OpenSearchVectorStore
    raise ConfigError(f"unknown vector backend {name!r}; use one of {', '.join(VECTOR_BACKENDS)}")
