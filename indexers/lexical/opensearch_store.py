"""BM25 (and optionally HNSW vectors) on an OpenSearch 2 cluster with the k-NN plugin.

The Elasticsearch store's code (`elasticsearch_store.py`: documents, `live` generation ranges, filters,
bulk retries, one refresh per commit, outages as one error line) run against OpenSearch through
`opensearch-py` (`cluster.py`). What differs:

- the server is `SHOPLENS_OS_URL` (`make os-up` starts a local one: `deploy/opensearch`);
- the index is created with `index.knn: true`, and a document's vectors (`vec`, `nvec`, written when
  `--vectors opensearch`) are `knn_vector` fields: HNSW graphs built by the k-NN plugin's Lucene engine
  (cosine similarity, m 16, ef_construction 128; the plugin's faiss / nmslib engines need native libraries
  Maven Central does not ship). A field is mapped on the first write that carries it, with that
  vector's dimension. An all-zero vector is left out (cosine has no direction for it).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from shoplens.indexers.lexical.cluster import OPENSEARCH, Cluster
from shoplens.indexers.lexical.elasticsearch_store import INDEX_MAPPINGS, INDEX_SETTINGS, VECTOR_FIELDS, \
    ElasticsearchStore, map_vector_fields

HNSW = {"name": "hnsw", "engine": "lucene", "space_type": "cosinesimil",
        "parameters": {"m": 16, "ef_construction": 128}}


class OpenSearchStore(ElasticsearchStore):
    """The Elasticsearch store on OpenSearch; vectors as HNSW `knn_vector` fields."""

    name = "opensearch"
    cluster: Cluster = OPENSEARCH

    @classmethod
    def index_settings(cls) -> dict[str, Any]:
        return {**INDEX_SETTINGS, "knn": True}

    @classmethod
    def index_mappings(cls) -> dict[str, Any]:
        properties = {name: value for name, value in INDEX_MAPPINGS["properties"].items()
                      if name not in VECTOR_FIELDS}  # mapped with their dimension on the first write
        return {**INDEX_MAPPINGS, "properties": properties}

    @classmethod
    def prepare_adds(cls, client, index: str, adds: Iterable[tuple[int, dict[str, Any]]]):
        """Map the vector fields the first document carries, if the index lacks them."""
        return map_vector_fields(client, index, adds,
                                 lambda dimension: {"type": "knn_vector", "dimension": dimension, "method": HNSW})

    @staticmethod
    def encode_vector(vector: np.ndarray) -> Any:
        vector = np.asarray(vector, dtype=np.float32)
        return vector.tolist() if np.any(vector) else None

    @staticmethod
    def decode_vector(value: Any) -> np.ndarray:
        return np.asarray(value or [], dtype=np.float32)
