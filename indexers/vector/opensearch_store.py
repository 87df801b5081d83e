"""Product vectors on an OpenSearch cluster: HNSW (the k-NN plugin's Lucene engine), filtered inside the graph.

The Elasticsearch vector store (`elasticsearch_store.py`) with one change: the documents' vectors are
`knn_vector` fields (`indexers/lexical/opensearch_store.py` maps them) and a search is one `knn` query
whose `filter` holds the version's `live` range and the user's filters. The Lucene engine applies that
filter while it walks the graph (and searches exactly when the filter leaves few documents), so a search
asks for exactly k hits of the version and never gets a dead row. Approximate: recall against exact
search depends on `ef_search` (recorded in the store, 100 by default; `hnsw_ef_search` in the vector
config); the tests require recall@10 >= 0.95 against exact FAISS on the 1,500-product sample.

Scores: the plugin returns (1 + cosine) / 2 for cosine similarity; the store turns that back into the
inner product of the unit vectors, times the query's length, as the other stores return.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from shoplens.indexers.lexical.opensearch_store import OpenSearchStore
from shoplens.indexers.vector.elasticsearch_store import ElasticsearchVectorStore

EF_SEARCH = 100


class OpenSearchVectorStore(ElasticsearchVectorStore):
    """Fused product vectors in OpenSearch `knn_vector` fields, searched by HNSW with filters."""

    name = "opensearch"
    kind = "hnsw"
    lexical_class = OpenSearchStore
    zero_queries = False  # cosine has no direction for a zero query: no hits

    @classmethod
    def search_params(cls, config: dict[str, Any]) -> dict[str, Any]:
        return {"engine": "lucene", "space_type": "cosinesimil",
                "ef_search": int(config.get("hnsw_ef_search") or EF_SEARCH)}

    def vector_query(self, unit: np.ndarray, limit: int, filters: list[dict[str, Any]]) -> dict[str, Any]:
        ef_search = max(int(limit), int(self.state["params"].get("ef_search", EF_SEARCH)))
        return {"knn": {self.field: {"vector": unit.tolist(), "k": int(limit),
                                     "method_parameters": {"ef_search": ef_search},
                                     "filter": {"bool": {"filter": filters}}}}}

    @staticmethod
    def inner_product(score: float) -> float:
        return 2.0 * score - 1.0
