"""`bench quality` / `bench latency` name the stores each row ran on, and compare the index with a twin whose
text (`--lexical`) and vectors (`--vectors`) live on a cluster: on the 1,500-product sample against the real
clusters of `make es-up` / `make os-up` (each skipped, saying why, without its URL)."""

import json
import os

import pytest
from typer.testing import CliRunner

from shoplens.cli import app
from tests.helpers import REPO
from tests.indexers.clusters import CLUSTERS, require_cluster

JUDGMENTS = REPO / "benchmarks" / "shopper_judgments.jsonl"  # hand-written queries judged on the sample
KIND = {"elasticsearch": "exact", "opensearch": "hnsw"}


def bench(*args):
    result = CliRunner().invoke(app, ["bench", *[str(a) for a in args], "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def systems(report):
    return {row[0]: row for row in report["tables"][0]["rows"]}


def queries_file(tmp_path):
    path = tmp_path / "q.txt"
    path.write_text("blue shirt\nblack running shoes\nwatch for men\nwomen handbag\nkurta\n")
    return path


def test_rows_name_the_stores_of_the_index(sample_index, tmp_path):
    rows = systems(bench("quality", "--index", sample_index, "--judgments", JUDGMENTS, "--no-peers", "--limit", 3))
    assert {"ShopLens BM25 (tantivy, field boosts)", "ShopLens dense, joint image-text space (FAISS flat)",
            "ShopLens dense, text-native space (FAISS flat)"} <= set(rows)
    report = bench("latency", "--index", sample_index, "--queries", queries_file(tmp_path), "--clients", 1,
                   "--no-rerank")
    assert "tantivy + FAISS flat" in report["data"]
    labels = {row[0] for row in report["tables"][0]["rows"]}
    assert {"text: lexical on tantivy (onnx)", "text: vector on FAISS flat (onnx)"} <= labels


@pytest.mark.parametrize("args, message", [
    (["--vectors", "opensearch"], "--vectors needs --lexical"),
    (["--lexical", "tantivy", "--vectors", "opensearch"], "add --lexical opensearch"),
    (["--lexical", "solr"], "unknown lexical backend 'solr'"),
    (["--vector-index", "ivf"], "--vector-index needs --vectors"),
    (["--lexical", "opensearch", "--vectors", "opensearch", "--vector-index", "ivf"], "--vectors opensearch runs HNSW only"),
])
def test_a_twin_the_backends_cannot_make_is_one_error_line(sample_index, args, message):
    result = CliRunner().invoke(app, ["bench", "quality", "--index", str(sample_index), "--judgments", str(JUDGMENTS),
                                      "--no-peers", *args])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("backend", list(CLUSTERS))
def test_quality_and_latency_against_a_twin_with_text_and_vectors_on_the_cluster(backend, sample_index, tmp_path):
    cluster = require_cluster(backend)
    client = cluster.client(os.environ[cluster.env])
    before = set(client.indices.get(index="shoplens-*"))
    label, store = cluster.label, f"{cluster.label} + {cluster.label} {KIND[backend]}"
    report = bench("quality", "--index", sample_index, "--judgments", JUDGMENTS, "--no-peers", "--limit", 12,
                   "--lexical", backend, "--vectors", backend)
    rows = systems(report)
    embedded, twin = "(on tantivy + FAISS flat)", f"(on {store})"
    bm25 = (rows[f"ShopLens BM25 (tantivy, field boosts) {embedded}"], rows[f"ShopLens BM25 ({label}, field boosts) {twin}"])
    dense = (rows[f"ShopLens dense, joint image-text space (FAISS flat) {embedded}"],
             rows[f"ShopLens dense, joint image-text space ({label} {KIND[backend]}) {twin}"])
    native = rows[f"ShopLens dense, text-native space ({label} {KIND[backend]}) {twin}"]
    assert abs(bm25[0][1] - bm25[1][1]) <= 0.01  # NDCG@10: same analysis, global statistics
    assert abs(dense[0][1] - dense[1][1]) <= 0.02 and native[1] > 0  # exact kNN, or HNSW of recall ~1
    assert report["lexical_indexing"]["documents"] == 1500 and report["lexical_indexing"]["vectors"] == backend
    report = bench("latency", "--index", sample_index, "--queries", queries_file(tmp_path), "--clients", 1,
                   "--no-rerank", "--lexical", backend, "--vectors", backend)
    assert set(report["summary"]) == {"tantivy + FAISS flat", store}
    twin_rows = {row[0] for name, rows in ((t["name"], t["rows"]) for t in report["tables"])
                 if name.startswith(store) for row in rows}
    assert f"text: vector on {label} {KIND[backend]} (onnx)" in twin_rows
    assert set(client.indices.get(index="shoplens-*")) == before  # the twin's index was deleted with it



@pytest.mark.parametrize("backend", list(CLUSTERS))
def test_the_twin_weighs_terms_as_the_index_does(backend, sample_index):
    """The copy on a cluster records the index's IDF setting (shared for a new index), so both sides of a
    comparison score BM25 the same way."""
    from shoplens.benchmarks.lexical_twin import compared_twin
    from shoplens.indexers.index import IndexDirectory
    from shoplens.indexers.snapshot import Snapshot

    require_cluster(backend)
    recorded = IndexDirectory(sample_index).manifest()["backends"]["lexical"]["idf"]
    with compared_twin(sample_index, backend) as (twin, _, _):
        assert IndexDirectory(twin).manifest()["backends"]["lexical"]["idf"] == recorded == "shared"
        assert Snapshot.open(IndexDirectory(twin), device="cpu").lexical.shared_idf


def test_latency_against_a_twin_whose_vectors_are_ivf_lists_on_elasticsearch(sample_index, tmp_path):
    """`--vector-index ivf` gives the copy's vector stores IVF lists on the cluster (38 for the sample)."""
    require_cluster("elasticsearch")
    store = "Elasticsearch + Elasticsearch ivf"
    report = bench("latency", "--index", sample_index, "--queries", queries_file(tmp_path), "--clients", 1,
                   "--no-rerank", "--lexical", "elasticsearch", "--vectors", "elasticsearch", "--vector-index", "ivf")
    assert set(report["summary"]) == {"tantivy + FAISS flat", store}
    twin_rows = {row[0] for t in report["tables"] if t["name"].startswith(store) for row in t["rows"]}
    assert "text: vector on Elasticsearch ivf (onnx)" in twin_rows
