"""Vectors on a search cluster, what every cluster backend must do alike (`--lexical elasticsearch --vectors
elasticsearch`, exact kNN by script; `--lexical opensearch --vectors opensearch`, HNSW): updates, deletes,
rollback, compaction and pruning never bring back a dead row, `check` finds a tampered vector, an outage is one
error line. Each backend runs against a real cluster (`make es-up`, `make os-up`) and is skipped, saying why,
without its URL; the option checks run without one. What only one backend does is in
test_elasticsearch_vectors.py and test_opensearch_vectors.py."""


import numpy as np
import pytest
from typer.testing import CliRunner

from shoplens.cli import app
from shoplens.common.errors import ShopLensError
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.lexical.elasticsearch_store import _request
from shoplens.indexers.maintenance import check_index, compact, rollback
from shoplens.indexers.snapshot import Snapshot
from shoplens.indexers.updates import apply_delta, delete_products
from tests.helpers import sample_products
from tests.indexers.clusters import CLUSTERS, build_pair, build_with_cache, cluster_options, elasticsearch_major, ids, \
    require_cluster, write_delta

pytestmark = pytest.mark.usefixtures("drop_test_indices")  # tests/indexers/conftest.py

ROWS = sample_products(60)
# a tampered `vec` as each backend stores it: big-endian float32 bytes in base64, or a knn_vector's list
# (a dense_vector's list on Elasticsearch 8+)
TAMPERED = {"elasticsearch": lambda dim: "AAAAAA==" if elasticsearch_major() < 8 else [0.0] * (dim - 1) + [1.0],
            "opensearch": lambda dim: [0.0] * (dim - 1) + [1.0]}


@pytest.fixture(scope="module", params=list(CLUSTERS))
def pair(request, tmp_path_factory, encoder):
    """60 products with exact FAISS and tantivy, and with text and vectors on the cluster (2 shards)."""
    require_cluster(request.param)
    return (request.param, *build_pair(tmp_path_factory.mktemp(request.param), ROWS, request.param, encoder))


@pytest.mark.parametrize("args, message", [
    (["--vectors", "elasticsearch"], "add --lexical elasticsearch"),
    (["--vectors", "opensearch"], "add --lexical opensearch"),
    (["--vectors", "milvus"], "unknown vector backend 'milvus'; use one of faiss, elasticsearch, opensearch"),
    (["--lexical", "elasticsearch", "--vectors", "elasticsearch", "--vector-index", "hnsw"],
     "--vectors elasticsearch runs exact kNN or IVF"),
    (["--lexical", "opensearch", "--vectors", "opensearch", "--vector-index", "flat"],
     "--vectors opensearch runs HNSW only"),
    (["--lexical", "opensearch", "--vectors", "opensearch", "--vector-index", "ivfpq"],
     "use --vector-index hnsw or auto"),
])
def test_combinations_a_cluster_cannot_run_fail_before_any_work(tmp_path, small_catalog, args, message):
    if "hnsw" in args and "elasticsearch" in args and elasticsearch_major() >= 8:
        pytest.skip("SHOPLENS_ES_URL is Elasticsearch 8+, which runs HNSW (test_elasticsearch_vectors.py)")
    result = CliRunner().invoke(app, ["index", str(small_catalog), "--index", str(tmp_path / "ix"), *args])
    assert result.exit_code != 0
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "ix").exists()


def test_updates_deletes_rollback_prune_compaction_and_check(tmp_path, pair, encoder):
    backend, embedded, _, catalog = pair
    path = tmp_path / "index"
    build_with_cache(catalog, path, cluster_options(backend), encoder, embedded)
    engine = SearchEngine(path, device="cpu", encoder=encoder)
    changed, victim = ROWS[7], ROWS[8]
    apply_delta(path, write_delta(tmp_path, [{"id": changed["id"], "title": "Zebra striped silk scarf"},
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
    apply_delta(path, write_delta(tmp_path, [{"id": "new-2", "title": "Quokka print cushion"}], "d2.jsonl"))
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


def test_check_finds_a_document_whose_vector_differs(tmp_path, pair, encoder):
    backend, embedded, _, catalog = pair
    path = tmp_path / "index"
    build_with_cache(catalog, path, cluster_options(backend, replicas=0), encoder, embedded)
    store = Snapshot.open(IndexDirectory(path), device="cpu").vectors
    client, name = store.documents.client, store.documents.index_name
    for hit in _request(client.search, client, {"query": {"term": {"docno": 0}}}, index=name)["hits"]["hits"]:
        # a partial update (no script: the local Elasticsearch 8 cluster has no painless or update_by_query)
        _request(client.update, client, {"doc": {"vec": TAMPERED[backend](store.dim)}}, index=name, id=hit["_id"],
                 refresh="true")
    report = check_index(path)
    label = CLUSTERS[backend].label
    assert not report.ok and any(f"{label} `vec` vector differs" in problem for problem in report.problems)


def test_an_outage_is_one_error_line(pair, encoder):
    backend, _, path, _ = pair
    cluster = CLUSTERS[backend]
    engine = SearchEngine(path, device="cpu", encoder=encoder)
    engine.snapshot.vectors.documents.client = cluster.client("http://127.0.0.1:9")
    with pytest.raises(ShopLensError, match=f"{cluster.label} at .* failed .*_cluster/health"):
        engine.search(SearchRequest(text="shirt", k=5, mode="dense"))
    result = CliRunner().invoke(app, ["search", "shirt", "--index", str(path), "--mode", "dense"],
                                env={cluster.env: "http://127.0.0.1:9"})
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1 and cluster.label in result.output
