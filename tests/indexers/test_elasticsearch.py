"""ShopLens end to end on the Elasticsearch backend, against a real cluster (`make es-up`).

Skipped, saying why, when SHOPLENS_ES_URL is not set. Catalogs are small (60 products) to keep CI fast.
"""

import json
import os
import uuid

import numpy as np
import pytest
from typer.testing import CliRunner

from shoplens.common.errors import ShopLensError
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.lexical.elasticsearch_store import ElasticsearchStore, _client
from shoplens.indexers.maintenance import check_index, compact, rollback
from shoplens.indexers.snapshot import Snapshot
from shoplens.indexers.updates import apply_delta, delete_products
from shoplens.indexers.writer import WriteOptions, build_index
from tests.helpers import sample_products, write_catalog

pytestmark = [pytest.mark.usefixtures("drop_test_indices"),  # tests/indexers/conftest.py
              pytest.mark.skipif(not os.environ.get("SHOPLENS_ES_URL"),
                                 reason="SHOPLENS_ES_URL is not set: no Elasticsearch cluster (run `make es-up`)")]

ROWS = sample_products(60)
QUERIES = ["casual shirt", "black shoes for men", "watch", "blue jeans", "women handbag", "sports t-shirt"]


def es_options(**config):
    prefix = f"shoplens-test-{uuid.uuid4().hex[:6]}"
    return WriteOptions(device="cpu", lexical_backend="elasticsearch",
                        lexical_config={"index_prefix": prefix, "replicas": 1, **config})


def delta(tmp_path, rows, name="delta.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def pair(tmp_path_factory, encoder):
    """The same 60 products indexed twice: tantivy and Elasticsearch. Read-only."""
    tmp_path = tmp_path_factory.mktemp("pair")
    small_catalog = write_catalog(tmp_path / "small.jsonl", ROWS)
    tantivy, es = tmp_path / "tantivy", tmp_path / "es"
    build_index(small_catalog, tantivy, WriteOptions(device="cpu"), encoder=encoder)
    build_index(small_catalog, es, es_options(shards=2), encoder=encoder)
    return tantivy, es


def ids(engine, **request):
    return [r.id for r in engine.search(SearchRequest(**request)).results]


FILTERS = [["brand=Nike"], ["price<=1000"], ["price>1500", "gender=Men"], ["brand!=Puma"],
           ["category=Shoes|Watches"], ["gender=women", "price>=500"], ["year<2013"], ["usage=Casual", "brand!=Nike"]]


def test_filters_run_inside_elasticsearch_and_match_tantivy(pair, encoder):
    tantivy, es = (SearchEngine(p, device="cpu", encoder=encoder) for p in pair)
    assert es.snapshot.lexical.describe()["shards"] == 2
    compared = 0
    for text in QUERIES:
        for filters in [None, *FILTERS]:
            # all matches (k = catalog size): the sets must be equal; the order where scores are not tied
            expected = ids(tantivy, text=text, k=60, mode="lexical", filters=filters)
            got = ids(es, text=text, k=60, mode="lexical", filters=filters)
            assert set(got) == set(expected), (text, filters)
            compared += bool(expected)
    assert compared > 20


def test_hybrid_search_matches_tantivy_on_the_top_results(pair, encoder):
    tantivy, es = (SearchEngine(p, device="cpu", encoder=encoder) for p in pair)
    for text in QUERIES:
        expected = ids(tantivy, text=text, k=10)
        got = ids(es, text=text, k=10)
        assert len(set(got) & set(expected)) >= 8, text  # equal BM25 ranks up to ties; fusion of the same lists
        filtered = es.search(SearchRequest(text=text, k=10, filters=["price<=1500"]))
        assert all(r.price <= 1500 for r in filtered.results)


def test_a_search_asks_for_exactly_k_hits_of_its_version(pair, encoder):
    es = SearchEngine(pair[1], device="cpu", encoder=encoder)
    store = es.snapshot.lexical
    docnos, scores = store.search("shirt", 3)
    assert len(docnos) == 3 and np.all(np.diff(scores) <= 1e-6)
    assert store.num_docs() == 60 and store.all_docnos().tolist() == list(range(60))


def test_updates_deletes_rollback_compaction_and_check(tmp_path, small_catalog, encoder):
    path = tmp_path / "index"
    build_index(small_catalog, path, es_options(), encoder=encoder)
    engine = SearchEngine(path, device="cpu", encoder=encoder)
    target, victim = ROWS[7]["id"], ROWS[8]["id"]
    apply_delta(path, delta(tmp_path, [{"id": target, "price": 7.0}, {"id": "new-1", "title": "Zebra striped scarf"}]))
    delete_products(path, [victim])
    assert ids(engine, text="x", k=5, filters=["price<=7"]) == [target]
    assert ids(engine, text="zebra scarf", k=3, mode="lexical") == ["new-1"]
    assert victim not in ids(engine, text=ROWS[8]["title"], k=60, mode="lexical")
    assert check_index(path).ok

    assert rollback(path, 1) == 4  # version 1's view again: the new product and the price change are gone
    assert ids(engine, text="zebra scarf", k=3, mode="lexical") == []
    assert victim in ids(engine, text=ROWS[8]["title"], k=60, mode="lexical")
    assert check_index(path).ok
    # an update on top of the rollback starts from version 1's view (abandoned generations repaired)
    apply_delta(path, delta(tmp_path, [{"id": "new-2", "title": "Zebra print cushion"}], "d2.jsonl"))
    assert ids(engine, text="zebra", k=5, mode="lexical") == ["new-2"]
    assert victim in ids(engine, text=ROWS[8]["title"], k=60, mode="lexical")
    assert target not in ids(engine, text="x", k=60, filters=["price<=7"])
    assert check_index(path).ok
    for version in (1, 2, 3):  # every kept version still sees exactly its own rows
        snapshot = Snapshot.open(IndexDirectory(path), version, device="cpu")
        assert snapshot.lexical.all_docnos().tolist() == np.flatnonzero(snapshot.products.live).tolist()
    compact(path)
    assert ids(engine, text="zebra", k=5, mode="lexical") == ["new-2"]
    assert check_index(path).ok


def test_a_failed_update_commits_nothing(tmp_path, small_catalog, encoder, monkeypatch):
    path = tmp_path / "index"
    build_index(small_catalog, path, es_options(), encoder=encoder)
    from shoplens.indexers.lexical import elasticsearch_store

    calls = []

    def failing_send(client, chunk):  # the cluster refuses the second bulk request of the update
        calls.append(len(chunk))
        if len(calls) == 2:
            raise elasticsearch_store.ElasticsearchUnavailableError("cluster lost during the update")
        return original(client, chunk)

    original = elasticsearch_store._send
    monkeypatch.setattr(elasticsearch_store, "_send", failing_send)
    monkeypatch.setattr(elasticsearch_store, "BULK_CHUNK", 1)
    rows = [{"id": f"fail-{i}", "title": f"Quokka plush toy {i}"} for i in range(3)]
    with pytest.raises(ShopLensError, match="cluster lost"):
        apply_delta(path, delta(tmp_path, rows))
    monkeypatch.undo()
    assert IndexDirectory(path).current_version() == 1
    engine = SearchEngine(path, device="cpu", encoder=encoder)
    assert ids(engine, text="quokka", k=5, mode="lexical") == []  # the half-written generation is invisible
    apply_delta(path, delta(tmp_path, [{"id": "ok-1", "title": "Quokka cushion"}], "d2.jsonl"))
    assert ids(engine, text="quokka", k=5, mode="lexical") == ["ok-1"]
    assert check_index(path).ok


def test_an_outage_during_search_is_one_clear_error(pair, encoder, monkeypatch):
    engine = SearchEngine(pair[1], device="cpu", encoder=encoder)
    store = engine.snapshot.lexical
    assert isinstance(store, ElasticsearchStore)
    store.client = _client("http://127.0.0.1:9", check=False)  # the cluster goes away under a running engine
    with pytest.raises(ShopLensError, match="Elasticsearch at .* failed .*_cluster/health"):
        engine.search(SearchRequest(text="shirt", k=5))
    from shoplens.cli import app

    monkeypatch.setenv("SHOPLENS_ES_URL", "http://127.0.0.1:9")
    result = CliRunner().invoke(app, ["search", "shirt", "--index", str(pair[1])])
    assert result.exit_code != 0
    assert "cannot reach Elasticsearch at http://127.0.0.1:9" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_reranking_on_the_elasticsearch_backend(tmp_path, small_catalog, encoder):
    from shoplens.benchmarks import devdata
    from shoplens.engine.learning import train_ranker
    from shoplens.rerank.judgments import load_judgments
    from shoplens.rerank.training import RankerConfig

    path = tmp_path / "index"
    build_index(small_catalog, path, es_options(), encoder=encoder)
    dev = tmp_path / "dev"
    devdata.build(small_catalog, path, dev, queries=60, sessions=300, seed=5)
    train_ranker(path, load_judgments(dev / "judgments.train.jsonl"),
                 RankerConfig(n_estimators=30, early_stopping_rounds=10, depth=50),
                 validation=load_judgments(dev / "judgments.validation.jsonl"))
    engine = SearchEngine(path, device="cpu", encoder=encoder)
    response = engine.search(SearchRequest(text="black casual shoes for men", k=5, explain=True))
    assert response.reranked and len(response.results) == 5
    assert any(not np.isnan(r.signals.get("bm25", np.nan)) for r in response.results)
    assert check_index(path).ok
