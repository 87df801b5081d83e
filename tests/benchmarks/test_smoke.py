"""Seconds-long runs of every benchmark command, so that they keep working. Nothing here asserts a timing."""

import json

import pytest
from typer.testing import CliRunner

from shoplens.cli import app
from tests.helpers import SAMPLE, sample_products, write_catalog

runner = CliRunner()


def bench(*args):
    result = runner.invoke(app, ["bench", *[str(a) for a in args], "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["machine"]["cores"] >= 1 and "faiss-cpu" in report["libraries"]
    return report


@pytest.fixture(scope="module")
def dev(sample_index, tmp_path_factory, encoder):
    """400 sample products indexed (embeddings from the sample index's cache), with derived data and a small reranker."""
    import shutil

    from shoplens.benchmarks import devdata
    from shoplens.engine.learning import train_ranker
    from shoplens.indexers.index import IndexDirectory
    from shoplens.indexers.writer import WriteOptions, build_index
    from shoplens.rerank.folding import apply_events
    from shoplens.rerank.judgments import load_judgments
    from shoplens.rerank.training import RankerConfig

    directory = tmp_path_factory.mktemp("bench")
    catalog = write_catalog(directory / "c.jsonl", sample_products(400))
    index = directory / "index"
    shutil.copytree(IndexDirectory(sample_index).cache_dir, IndexDirectory(index).cache_dir)
    build_index(catalog, index, WriteOptions(device="cpu"), encoder=encoder)
    out = directory / "dev"
    devdata.build(catalog, index, out, queries=60, sessions=300, seed=2)
    apply_events(index, out / "events.simulated.jsonl")
    train_ranker(index, load_judgments(out / "judgments.train.jsonl"),
                 RankerConfig(n_estimators=20, early_stopping_rounds=5, depth=50))
    return index, out


def test_bench_index(tmp_path):
    catalog = write_catalog(tmp_path / "c.jsonl", sample_products(25))
    report = bench("index", "--catalog", catalog, "--work-dir", tmp_path / "w", "--queries", 5, "--image-queries", 2)
    names = [t["name"] for t in report["tables"]]
    assert names[:2] == ["indexing", "index"] and report["summary"]["products"] == 25


def test_bench_devdata_and_quality(dev, tmp_path):
    index, out = dev
    result = runner.invoke(app, ["bench", "devdata", "--index", str(index), "--catalog", str(index.parent / "c.jsonl"), "--out",
                                 str(tmp_path / "d"), "--queries", "20", "--sessions", "50", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["queries"]["test"] >= 1
    assert "DERIVED" in (tmp_path / "d" / "README.md").read_text()
    report = bench("quality", "--judgments", out / "judgments.test.jsonl", "--index", index, "--limit", 4)
    systems = [row[0] for row in report["tables"][0]["rows"]]
    assert "ShopLens hybrid + rerank" in systems and any(s.startswith("bm25s") for s in systems)
    assert {"ShopLens BM25 (tantivy, field boosts)", "ShopLens BM25 (tantivy, field boosts) with the intent boost"} \
        <= set(systems)  # the retriever alone (as eval runs it) and with the search's intent boost
    assert any(s.startswith("rank_bm25") for s in systems) and any(s.startswith("txtai") for s in systems)


def test_bench_latency(dev, tmp_path):
    index, _ = dev
    queries = tmp_path / "q.jsonl"
    image = SAMPLE.parent / sample_products(1)[0]["image"]
    queries.write_text('blue shirt\n{"text": "watch"}\n' + json.dumps({"image": str(image)}) + "\n"
                       + json.dumps({"text": "shoes", "image": str(image)}) + "\n")
    report = bench("latency", "--queries", queries, "--index", index, "--clients", "1,2", "--compare", "--warm-rows",
                   "--compare-bm25")
    tables = {t["name"].split(" (")[0].split(",")[0]: t["rows"] for t in report["tables"]}
    rows = report["tables"][0]["rows"]
    assert {row[0] for row in rows} >= {f"{kind}: end to end ({runtime})" for kind in ("text", "image", "text+image")
                                        for runtime in ("onnx", "torch", "onnx, BM25 by search")}
    assert {row[0] for row in tables["each other engine / onnx"]} >= {
        "text: end to end (torch)", "text: encode (torch)", "text: rerank (onnx, BM25 by search)"}
    cache = {row[0]: row for row in tables["query-embedding cache"]}
    assert cache["with cache"][-1] == 0.2  # 5 lookups; the photo is seen twice
    assert [row[0] for row in report["tables"][-1]["rows"]] == [1, 2]


def test_bench_recall(sample_index, tmp_path):
    report = bench("recall", "--index", sample_index, "--synthetic", 2000, "--queries", 20, "--plot", tmp_path / "r.png")
    assert (tmp_path / "r.png").stat().st_size > 0
    families = {row[0] for row in report["tables"][0]["rows"]}
    assert {"faiss hnsw", "faiss ivf", "faiss ivfpq", "faiss flat (exact)"} <= families
    exact = next(row for row in report["tables"][0]["rows"] if row[0] == "faiss flat (exact)")
    assert exact[3] == 1.0  # exact search finds the exact top 10
    assert {row[0] for row in report["tables"][1]["rows"]} == {"faiss hnsw", "hnswlib"}
    assert [row[0] for row in report["tables"][2]["rows"]] == ["recall@10 >= 0.9", "recall@10 >= 0.95",
                                                               "recall@10 >= 0.99"]


def test_bench_scale(sample_index, tmp_path):
    report = bench("scale", "--index", sample_index, "--sizes", "300,600", "--work-dir", tmp_path / "s", "--queries", 5,
                   "--plot", tmp_path / "s.png")
    rows = report["tables"][0]["rows"]
    assert [row[0] for row in rows] == ["300", "600"]
    assert all(r["texts_encoded"] == 0 and r["images_encoded"] == 0 for r in report["results"].values())


def test_bench_updates(dev, tmp_path):
    index, out = dev
    report = bench("updates", "--index", index, "--count", 5, "--events", out / "events.simulated.jsonl",
                   "--catalog", index.parent / "c.jsonl", "--work-dir", tmp_path / "u", "--cold-rebuild-seconds", 100,
                   "--searches", 20)
    kinds = [row[0] for row in report["tables"][0]["rows"]]
    assert kinds == ["5 price changes", "5 title changes", "5 image changes"]
    price, title, image = report["tables"][0]["rows"]
    assert price[2:4] == [0, 0] and title[2:4] == [5, 0] and image[2:4] == [0, 5]  # only what changed is encoded


def test_bench_startup(sample_index):
    report = bench("startup", "--index", sample_index, "--runs", 1, "--query", "blue jeans")
    wall, stages = report["tables"]
    assert wall["rows"][0][0] == "shoplens search 'blue jeans' -k 10" and wall["rows"][0][1] == 1
    assert [row[0] for row in stages["rows"]] == ["import", "open", "warm", "search"]
    assert all(row[1] > 0 for row in stages["rows"]) and len(report["startup"]["wall_s"]) == 1
