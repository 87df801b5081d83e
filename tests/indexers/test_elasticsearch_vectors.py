"""Vectors on the Elasticsearch cluster (`--vectors elasticsearch`) and the Elasticsearch store's per-field
BM25, against a real cluster (`make es-up`); skipped, saying why, without SHOPLENS_ES_URL (the option
checks run without one). Catalogs are small (60 products) and embeddings are encoded once (a shared
embedding cache) to keep CI fast."""

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
from shoplens.indexers.lexical.elasticsearch_store import _client
from shoplens.indexers.maintenance import check_index, compact, rollback
from shoplens.indexers.snapshot import Snapshot
from shoplens.indexers.updates import apply_delta, delete_products
from shoplens.indexers.vector.elasticsearch_store import ElasticsearchVectorStore
from shoplens.indexers.writer import WriteOptions, build_index
from tests.helpers import sample_products, write_catalog

pytestmark = pytest.mark.usefixtures("drop_test_indices")  # tests/indexers/conftest.py

needs_cluster = pytest.mark.skipif(not os.environ.get("SHOPLENS_ES_URL"),
                                   reason="SHOPLENS_ES_URL is not set: no Elasticsearch cluster (run `make es-up`)")
ROWS = sample_products(60)
QUERIES = ["casual shirt", "black shoes for men", "watch", "blue jeans", "women handbag", "sports t-shirt"]
FILTERS = [["brand=Nike"], ["price<=1000"], ["price>1500", "gender=Men"], ["brand!=Puma"], ["usage=Casual"]]
FIELDS = ("title", "brand", "category", "description", "attrs")


def es_vector_options(**config):
    return WriteOptions(device="cpu", lexical_backend="elasticsearch", vector_backend="elasticsearch",
                        lexical_config={"index_prefix": f"shoplens-test-{uuid.uuid4().hex[:6]}", "replicas": 1,
                                        **config})


def build_with_cache(catalog, path, options, encoder, cache_from):
    """Build `path` reusing the embeddings `cache_from` (an index) already computed: nothing is encoded twice."""
    (path / "cache").mkdir(parents=True)
    shutil.copy(cache_from / "cache" / "embeddings.sqlite", path / "cache" / "embeddings.sqlite")
    return build_index(catalog, path, options, encoder=encoder)


def assert_same_ranking(got, want, tie=1e-5):
    """The same scores in the same order, and the same row at every rank whose score no other row ties."""
    np.testing.assert_allclose(got[1], want[1], atol=tie)
    for rank, score in enumerate(want[1]):
        if (np.abs(want[1] - score) <= tie).sum() == 1:
            assert got[0][rank] == want[0][rank], (rank, got[0].tolist(), want[0].tolist())


def ids(engine, **request):
    return [r.id for r in engine.search(SearchRequest(**request)).results]


@pytest.fixture(scope="module")
def pair(tmp_path_factory, encoder):
    """The same 60 products with exact FAISS and tantivy, and with vectors and text on Elasticsearch (2 shards)."""
    tmp_path = tmp_path_factory.mktemp("vectors")
    catalog = write_catalog(tmp_path / "small.jsonl", ROWS)
    faiss, es = tmp_path / "faiss", tmp_path / "es"
    build_index(catalog, faiss, WriteOptions(device="cpu", vector_config={"kind": "flat"}), encoder=encoder)
    build_with_cache(catalog, es, es_vector_options(shards=2), encoder, faiss)
    return faiss, es, catalog


@pytest.mark.parametrize("args, message", [
    (["--vectors", "elasticsearch"], "add --lexical elasticsearch"),
    (["--vectors", "milvus"], "unknown vector backend 'milvus'; use one of faiss, elasticsearch, opensearch"),
])
def test_bad_vector_backend_options_fail_before_any_work(tmp_path, small_catalog, args, message):
    result = CliRunner().invoke(app, ["index", str(small_catalog), "--index", str(tmp_path / "ix"), *args])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "ix").exists()


@needs_cluster
def test_dense_search_on_the_cluster_equals_exact_faiss(pair, encoder):
    faiss, es = (Snapshot.open(IndexDirectory(p), device="cpu") for p in pair[:2])
    assert isinstance(es.vectors, ElasticsearchVectorStore) and isinstance(es.text_native, ElasticsearchVectorStore)
    assert es.manifest["backends"]["vector"]["backend"] == "elasticsearch"
    joint, native = encoder.encode_texts_native(QUERIES)
    for row in range(len(QUERIES)):
        for store, expected, query in ((es.vectors, faiss.vectors, joint[row]),
                                       (es.text_native, faiss.text_native, native[row])):
            assert_same_ranking(store.search(query, 10), expected.search(query, 10))
        for filters in FILTERS:  # the filters run inside Elasticsearch; FAISS gets the engine's mask
            pushdown = pushdown_filters(es.products, parse_filters(filters))
            mask = filter_mask(faiss.products, parse_filters(filters))
            assert_same_ranking(es.vectors.search(joint[row], 60, filters=pushdown),
                                faiss.vectors.search(joint[row], 60, mask))


@needs_cluster
def test_dense_and_hybrid_results_equal_the_embedded_backends(pair, encoder):
    faiss, es = (SearchEngine(p, device="cpu", encoder=encoder) for p in pair[:2])
    for text in QUERIES:
        for mode in ("dense", "native"):
            assert ids(es, text=text, k=10, mode=mode) == ids(faiss, text=text, k=10, mode=mode), (text, mode)
        assert ids(es, text=text, k=10, mode="dense", filters=["price<=1500"]) == \
            ids(faiss, text=text, k=10, mode="dense", filters=["price<=1500"])
        assert len(set(ids(es, text=text, k=10)) & set(ids(faiss, text=text, k=10))) >= 8  # BM25 ties aside
    assert check_index(pair[1]).ok


@needs_cluster
def test_field_scores_equal_tantivys(pair):
    """Per-field and whole-query BM25 of the candidates, on tantivy's scale: equal within 3 % (Lucene and
    tantivy keep document lengths in one lossy byte with different tables)."""
    tantivy, es = (Snapshot.open(IndexDirectory(p), device="cpu").lexical for p in pair[:2])
    docnos = np.array([5, 3, 59, 0, 17, 42, 3, 28])
    compared = 0
    for text in QUERIES + ["Puma running shoes", "women's watch analog"]:
        want, got = tantivy.field_scores(text, docnos, FIELDS), es.field_scores(text, docnos, FIELDS)
        for field in FIELDS:
            np.testing.assert_allclose(got[field], want[field], rtol=0.03, atol=1e-6, err_msg=f"{text} {field}")
            compared += int((want[field] > 0).sum())
        np.testing.assert_allclose(es.scores_of(text, docnos), tantivy.scores_of(text, docnos), rtol=0.03)
    assert compared > 10
    assert es.field_scores("", docnos, FIELDS)["title"].tolist() == [0.0] * len(docnos)


@needs_cluster
def test_updates_deletes_rollback_prune_compaction_and_check(tmp_path, pair, encoder):
    path = tmp_path / "index"
    build_with_cache(pair[2], path, es_vector_options(), encoder, pair[0])
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
    found = ids(engine, text=changed["title"], k=60, mode="native")
    assert found.count(changed["id"]) == 1  # its new row only: the superseded one never comes back
    assert check_index(path).ok

    assert rollback(path, 1) == 4
    assert "new-1" not in ids(engine, text="quokka plush toy", k=60, mode="dense")
    assert victim["id"] in ids(engine, text=victim["title"], k=60, mode="dense")
    assert check_index(path).ok
    apply_delta(path, _delta(tmp_path, [{"id": "new-2", "title": "Quokka print cushion"}], "d2.jsonl"))
    assert ids(engine, text="quokka cushion", k=1, mode="dense") == ["new-2"]
    assert "new-1" not in ids(engine, text="quokka plush toy", k=60, mode="dense")
    assert check_index(path).ok
    for version in (1, 2, 3, 4, 5):  # every kept version still sees exactly its own rows
        old = Snapshot.open(IndexDirectory(path), version, device="cpu")
        rows = old.vectors.search(np.ones(old.vectors.dim, np.float32), 100)[0]
        assert sorted(rows.tolist()) == np.flatnonzero(old.products.live).tolist(), version
    compact(path)
    IndexDirectory(path).prune(1)
    assert ids(engine, text="quokka cushion", k=1, mode="dense") == ["new-2"]
    assert check_index(path).ok


@needs_cluster
def test_check_finds_a_document_whose_vector_differs(tmp_path, pair, encoder):
    path = tmp_path / "index"
    build_with_cache(pair[2], path, es_vector_options(replicas=0), encoder, pair[0])
    store = Snapshot.open(IndexDirectory(path), device="cpu").vectors
    client, name = store.documents.client, store.documents.index_name
    client.update_by_query(index=name, body={"query": {"term": {"docno": 0}},
                                             "script": {"source": "ctx._source.vec = params.v",
                                                        "params": {"v": "AAAAAA=="}}}, refresh=True)
    report = check_index(path)
    assert not report.ok and any("`vec` vector differs" in problem for problem in report.problems)


@needs_cluster
def test_an_outage_during_a_dense_search_is_one_clear_error(pair, encoder):
    engine = SearchEngine(pair[1], device="cpu", encoder=encoder)
    engine.snapshot.vectors.documents.client = _client("http://127.0.0.1:9", check=False)
    with pytest.raises(ShopLensError, match="Elasticsearch at .* failed .*_cluster/health"):
        engine.search(SearchRequest(text="shirt", k=5, mode="dense"))


@needs_cluster
def test_hybrid_and_rerank_end_to_end_with_vectors_on_the_cluster(tmp_path, pair, encoder):
    from shoplens.benchmarks import devdata
    from shoplens.engine.learning import train_ranker
    from shoplens.rerank.judgments import load_judgments
    from shoplens.rerank.training import RankerConfig

    path = tmp_path / "index"
    (path / "cache").mkdir(parents=True)
    shutil.copy(pair[0] / "cache" / "embeddings.sqlite", path / "cache" / "embeddings.sqlite")
    result = CliRunner().invoke(app, ["index", str(pair[2]), "--index", str(path), "--device", "cpu", "--json",
                                      "--lexical", "elasticsearch", "--vectors", "elasticsearch", "--es-replicas", "0"],
                                env={"SHOPLENS_ES_URL": os.environ["SHOPLENS_ES_URL"]})
    assert result.exit_code == 0, result.output
    name = json.loads((IndexDirectory(path).version_path(1) / "lexical" / "state.json").read_text())["index"]
    try:
        info = json.loads(CliRunner().invoke(app, ["info", "--index", str(path), "--json"]).output)
        assert info["vector"]["backend"] == "elasticsearch"
        dev = tmp_path / "dev"
        devdata.build(pair[2], path, dev, queries=60, sessions=300, seed=5)
        train_ranker(path, load_judgments(dev / "judgments.train.jsonl"),
                     RankerConfig(n_estimators=30, early_stopping_rounds=10, depth=50),
                     validation=load_judgments(dev / "judgments.validation.jsonl"))
        response = SearchEngine(path, device="cpu").search(
            SearchRequest(text="black casual shoes for men", k=5, explain=True))
        assert response.reranked and len(response.results) == 5
        features = [r.explain["rerank_contributions"]["features"] for r in response.results]
        assert any((f["bm25_title"]["value"] or 0) > 0 for f in features)  # per-field BM25 from Elasticsearch
        assert all(f["dense"]["value"] is not None for f in features)
        assert check_index(path).ok
    finally:
        _client(os.environ["SHOPLENS_ES_URL"]).indices.delete(index=name, ignore_unavailable=True)


def _delta(tmp_path, rows, name="delta.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
