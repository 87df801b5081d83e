"""HNSW vectors on an OpenSearch cluster (`--lexical opensearch --vectors opensearch`, the k-NN plugin's Lucene
engine), against a real 3-node cluster (`make os-up`); skipped, saying why, without SHOPLENS_OS_URL (the option
checks run without one). Approximate search is held to recall, not equality: top 10 against exact FAISS on the
1,500-product sample."""

import json
import os
import shutil
import uuid

import numpy as np
import pytest
from typer.testing import CliRunner

from shoplens.cli import app
from shoplens.common.errors import ShopLensError
from shoplens.engine.filters import filter_mask, parse_filters, pushdown_filters
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.lexical.cluster import OPENSEARCH
from shoplens.indexers.maintenance import check_index, compact, rollback
from shoplens.indexers.snapshot import Snapshot
from shoplens.indexers.updates import apply_delta, delete_products
from shoplens.indexers.vector.opensearch_store import OpenSearchVectorStore
from shoplens.indexers.writer import WriteOptions, build_index
from tests.helpers import SAMPLE, sample_products, write_catalog

pytestmark = pytest.mark.usefixtures("drop_test_indices")  # tests/indexers/conftest.py

needs_cluster = pytest.mark.skipif(not os.environ.get("SHOPLENS_OS_URL"),
                                   reason="SHOPLENS_OS_URL is not set: no OpenSearch cluster (run `make os-up`)")
ROWS = sample_products(60)
QUERIES = ["casual shirt", "black shoes for men", "watch", "blue jeans", "women handbag", "sports t-shirt",
           "red dress", "leather wallet", "kurta for women", "running shoes", "sunglasses", "perfume",
           "backpack", "track pants", "flip flops", "white sneakers", "formal trousers", "earrings",
           "cotton socks", "denim jacket"]
FILTERS = [["gender=Men"], ["price<=1000"], ["price>1500", "gender=Women"], ["usage=Casual"]]


def os_options(**config):
    return WriteOptions(device="cpu", lexical_backend="opensearch", vector_backend="opensearch",
                        lexical_config={"index_prefix": f"shoplens-test-{uuid.uuid4().hex[:6]}", "replicas": 1,
                                        **config})


def build_with_cache(catalog, path, options, encoder, cache_from):
    """Build `path` reusing the embeddings `cache_from` (an index) already computed: nothing is encoded twice."""
    (path / "cache").mkdir(parents=True)
    shutil.copy(cache_from / "cache" / "embeddings.sqlite", path / "cache" / "embeddings.sqlite")
    return build_index(catalog, path, options, encoder=encoder)


def ids(engine, **request):
    return [r.id for r in engine.search(SearchRequest(**request)).results]


def recall(got, want):
    return len(set(got.tolist()) & set(want.tolist())) / max(1, len(want))


@pytest.fixture(scope="module")
def small(tmp_path_factory, encoder):
    """60 products with exact FAISS and tantivy, and with text and HNSW vectors on OpenSearch (2 shards)."""
    tmp_path = tmp_path_factory.mktemp("osvectors")
    catalog = write_catalog(tmp_path / "small.jsonl", ROWS)
    faiss, opensearch = tmp_path / "faiss", tmp_path / "os"
    build_index(catalog, faiss, WriteOptions(device="cpu", vector_config={"kind": "flat"}), encoder=encoder)
    build_with_cache(catalog, opensearch, os_options(shards=2), encoder, faiss)
    return faiss, opensearch, catalog


@pytest.mark.parametrize("args, message", [
    (["--vectors", "opensearch"], "add --lexical opensearch"),
    (["--lexical", "elasticsearch", "--vectors", "elasticsearch", "--vector-index", "hnsw"],
     "--vectors elasticsearch runs exact kNN only"),
    (["--lexical", "opensearch", "--vectors", "opensearch", "--vector-index", "flat"],
     "--vectors opensearch runs HNSW only"),
    (["--lexical", "opensearch", "--vectors", "opensearch", "--vector-index", "ivfpq"],
     "use --vector-index hnsw or auto"),
])
def test_combinations_a_cluster_cannot_run_fail_before_any_work(tmp_path, small_catalog, args, message):
    result = CliRunner().invoke(app, ["index", str(small_catalog), "--index", str(tmp_path / "ix"), *args])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "ix").exists()


@needs_cluster
def test_hnsw_recall_at_10_against_exact_faiss_on_the_sample(tmp_path, sample_index, encoder):
    """The 1,500-product sample (FAISS exact below 20,000 rows) against the same vectors in HNSW graphs."""
    path = tmp_path / "os"
    build_with_cache(SAMPLE, path, os_options(shards=2), encoder, sample_index)
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


@needs_cluster
def test_updates_deletes_rollback_prune_compaction_and_check(tmp_path, small, encoder):
    path = tmp_path / "index"
    build_with_cache(small[2], path, os_options(), encoder, small[0])
    engine = SearchEngine(path, device="cpu", encoder=encoder)
    changed, victim = ROWS[7], ROWS[8]
    apply_delta(path, _delta(tmp_path, [{"id": changed["id"], "title": "Zebra striped silk scarf"},
                                        {"id": "new-1", "title": "Quokka plush toy"}]))
    delete_products(path, [victim["id"]])
    snapshot = engine.snapshot
    every = np.arange(snapshot.vectors.num_rows)
    everything = snapshot.vectors.search(snapshot.vectors.vectors(every)["fused"][8], 70)[0]
    assert sorted(everything.tolist()) == np.flatnonzero(snapshot.products.live).tolist()  # no dead row, ever
    assert ids(engine, text=victim["title"], k=60, mode="dense").count(victim["id"]) == 0
    assert ids(engine, text="quokka plush toy", k=1, mode="dense") == ["new-1"]
    assert ids(engine, text=changed["title"], k=60, mode="native").count(changed["id"]) == 1
    assert check_index(path).ok

    assert rollback(path, 1) == 4
    assert "new-1" not in ids(engine, text="quokka plush toy", k=60, mode="dense")
    assert victim["id"] in ids(engine, text=victim["title"], k=60, mode="dense")
    apply_delta(path, _delta(tmp_path, [{"id": "new-2", "title": "Quokka print cushion"}], "d2.jsonl"))
    assert ids(engine, text="quokka cushion", k=1, mode="dense") == ["new-2"]
    assert "new-1" not in ids(engine, text="quokka plush toy", k=60, mode="dense")
    for version in (1, 2, 3, 4, 5):  # every kept version still sees exactly its own rows
        old = Snapshot.open(IndexDirectory(path), version, device="cpu")
        rows = old.vectors.search(np.ones(old.vectors.dim, np.float32), 100)[0]
        assert sorted(rows.tolist()) == np.flatnonzero(old.products.live).tolist(), version
    compact(path)
    IndexDirectory(path).prune(1)
    assert ids(engine, text="quokka cushion", k=1, mode="dense") == ["new-2"]
    assert check_index(path).ok


@needs_cluster
def test_check_finds_a_document_whose_vector_differs(tmp_path, small, encoder):
    path = tmp_path / "index"
    build_with_cache(small[2], path, os_options(replicas=0), encoder, small[0])
    store = Snapshot.open(IndexDirectory(path), device="cpu").vectors
    client, name = store.documents.client, store.documents.index_name
    other = [0.0] * (store.dim - 1) + [1.0]
    client.update_by_query(index=name, body={"query": {"term": {"docno": 0}},
                                             "script": {"source": "ctx._source.vec = params.v",
                                                        "params": {"v": other}}}, params={"refresh": "true"})
    report = check_index(path)
    assert not report.ok and any("OpenSearch `vec` vector differs" in problem for problem in report.problems)


@needs_cluster
def test_an_outage_is_one_error_line(small, encoder):
    engine = SearchEngine(small[1], device="cpu", encoder=encoder)
    engine.snapshot.vectors.documents.client = OPENSEARCH.client("http://127.0.0.1:9")
    with pytest.raises(ShopLensError, match="OpenSearch at .* failed .*_cluster/health"):
        engine.search(SearchRequest(text="shirt", k=5, mode="dense"))
    result = CliRunner().invoke(app, ["search", "shirt", "--index", str(small[1]), "--mode", "dense"],
                                env={"SHOPLENS_OS_URL": "http://127.0.0.1:9"})
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and "OpenSearch" in result.output


def _delta(tmp_path, rows, name="delta.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
