"""Lexical (BM25) stores: a base class and a factory keyed by backend name."""

from __future__ import annotations

from shoplens.common.errors import ConfigError
from shoplens.indexers.lexical.base import LexicalStore

LEXICAL_BACKENDS = ("tantivy", "elasticsearch", "opensearch")


def lexical_store_class(name: str = "tantivy") -> type[LexicalStore]:
    """The store class for a backend name; raises ConfigError listing the valid names."""
    if name == "tantivy":
        from shoplens.indexers.lexical.tantivy_store import TantivyStore

        return TantivyStore
    if name == "elasticsearch":
        from shoplens.indexers.lexical.elasticsearch_store import ElasticsearchStore

        return ElasticsearchStore
    if name == "opensearch":
        from shoplens.indexers.lexical.opensearch_store import OpenSearchStore

        return OpenSearchStore
    raise ConfigError(f"unknown lexical backend {name!r}; use one of {', '.join(LEXICAL_BACKENDS)}")
