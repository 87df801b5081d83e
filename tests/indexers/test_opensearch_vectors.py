"""What only the OpenSearch cluster store does: HNSW vectors (`--lexical opensearch --vectors opensearch`, the
k-NN plugin's Lucene engine), against a real 3-node cluster (`make os-up`); skipped, saying why, without
SHOPLENS_OS_URL. Approximate search is held to recall, not equality: top 10 against exact FAISS on the
1,500-product sample. What every cluster backend does alike (updates, rollback, `check`, outages, option
checks) is in test_cluster_vectors.py."""

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from shoplens.cli import app
from shoplens.engine.filters import filter_mask, parse_filters, pushdown_filters
from shoplens.engine.search import SearchEngine
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.maintenance import check_index
from shoplens.indexers.snapshot import Snapshot
from shoplens.indexers.vector.opensearch_store import OpenSearchVectorStore
from tests.helpers import SAMPLE, sample_products
from tests.indexers.clusters import build_pair, build_with_cache, cluster_options, ids, require_cluster

pytestmark = pytest.mark.usefixtures("drop_test_indices")  # tests/indexers/conftest.py

needs_cluster = pytest.mark.skipif(not os.environ.get("SHOPLENS_OS_URL"),
                                   reason="SHOPLENS_OS_URL is not set: no OpenSearch cluster (run `make os-up`)")
ROWS = sample_products(60)
QUERIES = ["casual shirt", "black shoes for men", "watch", "blue jeans", "women handbag", "sports t-shirt",
           "red dress", "leather wallet", "kurta for women", "running shoes", "sunglasses", "perfume",
           "backpack", "track pants", "flip flops", "white sneakers", "formal trousers", "earrings",
           "cotton socks", "denim jacket"]
FILTERS = [["gender=Men"], ["price<=1000"], ["price>1500", "gender=Women"], ["usage=Casual"]]


def recall(got, want):
    return len(set(got.tolist()) & set(want.tolist())) / max(1, len(want))


@pytest.fixture(scope="module")
def small(tmp_path_factory, encoder):
    """60 products with exact FAISS and tantivy, and with text and HNSW vectors on OpenSearch (2 shards)."""
    require_cluster("opensearch")
    return build_pair(tmp_path_factory.mktemp("osvectors"), ROWS, "opensearch", encoder)


@needs_cluster
def test_hnsw_recall_at_10_against_exact_faiss_on_the_sample(tmp_path, sample_index, encoder):
    """The 1,500-product sample (FAISS exact below 20,000 rows) against the same vectors in HNSW graphs."""
    path = tmp_path / "os"
    build_with_cache(SAMPLE, path, cluster_options("opensearch", shards=2), encoder, sample_index)
    exact, hnsw = (Snapshot.open(IndexDirectory(p), device="cpu") for p in (sample_index, path))
    assert exact.vectors.describe()["kind"] == "flat"
    assert isinstance(hnsw.vectors, OpenSearchVectorStore) and hnsw.vectors.describe()["kind"] == "hnsw"
    joint, native = encoder.encode_texts_native(QUERIES)
    recalls, filtered = [], []
    for row in range(len(QUERIES)):
        for store, expected, query in ((hnsw.vectors, exact.vectors, joint[row]),
                                       (hnsw.text_native, exact.text_native, native[row])):
            got, want = store.search(query, 10), expected.search(query, 10)
            assert len(got[0]) == 10
            recalls.append(recall(got[0], want[0]))
            # scores are inner products on FAISS's scale: a found row's score equals the exact one
            same = np.isin(got[0], want[0])
            np.testing.assert_allclose(got[1][same], _scores_of(want, got[0][same]), atol=1e-4)
        for filters in FILTERS:  # the filters run inside the graph walk; FAISS gets the engine's mask
            pushdown = pushdown_filters(hnsw.products, parse_filters(filters))
            mask = filter_mask(exact.products, parse_filters(filters))
            got = hnsw.vectors.search(joint[row], 10, filters=pushdown)
            assert mask[got[0]].all() and len(got[0]) == min(10, int(mask.sum()))
            filtered.append(recall(got[0], exact.vectors.search(joint[row], 10, mask)[0]))
    assert np.mean(recalls) >= 0.95, np.mean(recalls)
    assert np.mean(filtered) >= 0.95, np.mean(filtered)


def _scores_of(result, docnos):
    lookup = dict(zip(result[0].tolist(), result[1].tolist()))
    return np.array([lookup[int(d)] for d in docnos], dtype=np.float32)


@needs_cluster
def test_engine_dense_and_hybrid_search_on_opensearch(small, encoder):
    faiss, opensearch = (SearchEngine(p, device="cpu", encoder=encoder) for p in small[:2])
    overlap = []
    for text in QUERIES[:6]:
        for mode in ("dense", "native"):
            got, want = ids(opensearch, text=text, k=10, mode=mode), ids(faiss, text=text, k=10, mode=mode)
            overlap.append(len(set(got) & set(want)) / 10)
        got = ids(opensearch, text=text, k=10, mode="dense", filters=["price<=1500"])
        assert got and all(float(ROWS_BY_ID[i]["price"]) <= 1500 for i in got)
        assert len(set(ids(opensearch, text=text, k=10)) & set(ids(faiss, text=text, k=10))) >= 7
    assert np.mean(overlap) >= 0.95, overlap
    info = json.loads(CliRunner().invoke(app, ["info", "--index", str(small[1]), "--json"]).output)
    assert (info["vector"]["backend"], info["vector"]["kind"]) == ("opensearch", "hnsw")
    assert check_index(small[1]).ok


ROWS_BY_ID = {row["id"]: row for row in ROWS}
