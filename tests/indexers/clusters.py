"""Helpers of the tests that run on a search cluster (`make es-up`, `make os-up`): which backends there are,
how to skip without one, the write options of an index on a cluster, and indexes built without encoding twice."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from shoplens.engine.query import SearchRequest
from shoplens.indexers.lexical.cluster import ELASTICSEARCH, OPENSEARCH, Cluster
from shoplens.indexers.writer import WriteOptions, build_index
from tests.helpers import write_catalog

CLUSTERS: dict[str, Cluster] = {"elasticsearch": ELASTICSEARCH, "opensearch": OPENSEARCH}


def elasticsearch_major() -> int:
    """The major version of the Elasticsearch server SHOPLENS_ES_URL names: 7 (`make es-up`), 8 (`make es8-up`,
    dense_vector HNSW), 0 without one."""
    url = os.environ.get(ELASTICSEARCH.env)
    if not url:
        return 0
    from shoplens.indexers.lexical.elasticsearch_store import server_major

    return server_major(ELASTICSEARCH.client(url))


def require_cluster(backend: str) -> Cluster:
    """The backend's cluster; skips the test, saying why, when its URL variable is not set."""
    cluster = CLUSTERS[backend]
    if not os.environ.get(cluster.env):
        pytest.skip(f"{cluster.env} is not set: no {cluster.label} cluster (run `make {backend[0]}s-up`)")
    return cluster


def cluster_options(backend: str, **config) -> WriteOptions:
    """Text and vectors on `backend` (1 replica unless `replicas` says otherwise), in a test index of its own."""
    return WriteOptions(device="cpu", lexical_backend=backend, vector_backend=backend,
                        lexical_config={"index_prefix": f"shoplens-test-{uuid.uuid4().hex[:6]}", "replicas": 1,
                                        **config})


def build_with_cache(catalog, path: Path, options: WriteOptions, encoder, cache_from: Path):
    """Build `path` reusing the embeddings `cache_from` (an index) already computed: nothing is encoded twice."""
    (path / "cache").mkdir(parents=True)
    shutil.copy(cache_from / "cache" / "embeddings.sqlite", path / "cache" / "embeddings.sqlite")
    return build_index(catalog, path, options, encoder=encoder)


def build_pair(folder: Path, rows: list[dict], backend: str, encoder) -> tuple[Path, Path, Path]:
    """The same rows with exact FAISS and tantivy, and with text and vectors on `backend` (2 shards):
    (embedded index, cluster index, catalog)."""
    catalog = write_catalog(folder / "small.jsonl", rows)
    embedded, cluster = folder / "faiss", folder / backend
    build_index(catalog, embedded, WriteOptions(device="cpu", vector_config={"kind": "flat"}), encoder=encoder)
    build_with_cache(catalog, cluster, cluster_options(backend, shards=2), encoder, embedded)
    return embedded, cluster, catalog


def ids(engine, **request) -> list[str]:
    return [r.id for r in engine.search(SearchRequest(**request)).results]


def write_delta(folder: Path, rows: list[dict], name: str = "delta.jsonl") -> Path:
    path = folder / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
