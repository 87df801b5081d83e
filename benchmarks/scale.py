"""`shoplens bench scale`: how build time, memory, size and query latency grow with the catalog.

Catalogs of 10k, 100k and 1M products are SYNTHETIC, derived reproducibly
from a real indexed catalog: each synthetic product copies a real product's
brand, category, attributes and image, gets a new id, a title with a variant
word and style number, and a jittered price. Its text embedding is the real
product's plus small noise (renormalized) and its image embedding is the real
one: they are put in the new index's embedding cache first, so the build
encodes nothing. Encoding throughput is measured by `shoplens bench index`;
this benchmark measures everything after it.

Each size runs in its own process so that its peak memory is its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from shoplens.benchmarks.common import Report

VARIANTS = ("Classic", "Essential", "Urban", "Slim", "Relaxed", "Premium", "Everyday", "Signature", "Studio", "Active")


def make_catalog(source_index: Path, size: int, work: Path, seed: int = 0, noise: float = 0.05) -> Path:
    """Write a synthetic catalog of `size` products and pre-fill the new index's embedding cache."""
    from shoplens.indexers.encoders.base import bytes_digest, text_digest
    from shoplens.indexers.encoders.cache import EmbeddingCache
    from shoplens.indexers.index import IndexDirectory
    from shoplens.indexers.snapshot import Snapshot

    snapshot = Snapshot.open(IndexDirectory(source_index), device="cpu")
    live = snapshot.products.live_docnos()
    records = snapshot.products.records(live)
    vectors = snapshot.vectors.vectors(live)
    model = snapshot.manifest["model"]
    namespace = f"{model['name']}|{model['weights_id']}"
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(records), size)
    image_digests: dict[int, str | None] = {}
    work.mkdir(parents=True, exist_ok=True)
    catalog = work / f"synthetic-{size}.jsonl"
    index_dir = work / f"index-{size}"
    if index_dir.exists():
        shutil.rmtree(index_dir)
    cache = EmbeddingCache(IndexDirectory(index_dir).cache_dir / "embeddings.sqlite")
    text_batch, image_batch = [], []
    with open(catalog, "w", encoding="utf-8") as handle:
        for i, base in enumerate(picks.tolist()):
            record = records[base]
            title = f"{record['title']} {VARIANTS[i % len(VARIANTS)]} Style {i:07d}"
            price = None if record.get("price") is None else round(record["price"] * float(rng.uniform(0.8, 1.2)), 2)
            row = {"id": f"syn-{i}", "title": title, "brand": record.get("brand"), "category": record.get("category"),
                   "price": price, "image": record.get("image"), **record.get("attributes", {})}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            text = vectors["text"][base] + rng.standard_normal(vectors["text"].shape[1]).astype(np.float32) * noise
            text_batch.append((text_digest(title), text / np.linalg.norm(text)))
            if base not in image_digests:
                path = record.get("image")
                image_digests[base] = bytes_digest(Path(path).read_bytes()) if path and Path(path).is_file() else None
                if image_digests[base] and vectors["has_image"][base]:
                    image_batch.append((image_digests[base], vectors["image"][base]))
            if len(text_batch) >= 20000:
                cache.put_many(namespace + "|text", text_batch)
                cache.put_many(namespace + "|image", image_batch)
                text_batch, image_batch = [], []
    cache.put_many(namespace + "|text", text_batch)
    cache.put_many(namespace + "|image", image_batch)
    cache.close()
    return catalog


def measure_build(catalog: Path, index_dir: Path, queries: int, device: str = "cpu") -> dict[str, Any]:
    """Build one size and derive its test queries (run in a child process of its own)."""
    import resource

    from shoplens.benchmarks.devdata import Catalog, generate_queries
    from shoplens.indexers.catalog import read_catalog
    from shoplens.indexers.storage import directory_size
    from shoplens.indexers.writer import WriteOptions, build_index

    started = time.perf_counter()
    report = build_index(catalog, index_dir, WriteOptions(device=device))
    build = time.perf_counter() - started
    peak_build = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    products = read_catalog(catalog).products
    texts = [q.text for q, _ in generate_queries(Catalog(products[:50000]), queries, seed=13, max_relevant=10 ** 9)]
    return {"products": report.products, "build_s": build, "encode_s": report.seconds.get("encode"),
            "stages_s": {k: round(v, 2) for k, v in report.seconds.items()},
            "texts_encoded": report.texts_encoded, "images_encoded": report.images_encoded,
            "size_mb": directory_size(index_dir) / 2 ** 20, "peak_rss_build_mb": peak_build, "queries": texts}


def measure_serving(index_dir: Path, texts: list[str], device: str = "cpu") -> dict[str, Any]:
    """Open the index in a fresh process (model loaded, stores open) and replay the queries."""
    import psutil
    import torch

    from shoplens.benchmarks.latency import replay
    from shoplens.engine.query import SearchRequest
    from shoplens.engine.search import SearchEngine

    torch.set_num_threads(1)
    started = time.perf_counter()
    engine = SearchEngine(index_dir, device=device, search_threads=1, query_cache_size=0)
    opened = time.perf_counter() - started
    result = replay(engine, [SearchRequest(text=t) for t in texts], warmup=10)
    return {"open_s": opened, "rss_serving_mb": psutil.Process().memory_info().rss / 2 ** 20,
            "vector_kind": engine.snapshot.manifest["backends"]["vector"]["kind"], "latency": result}


def _child(*args: str) -> dict[str, Any]:
    process = subprocess.run([sys.executable, "-m", "shoplens.benchmarks.scale", *args], capture_output=True, text=True,
                             env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
    if process.returncode != 0:
        raise RuntimeError(f"scale run `{' '.join(args)}` failed: {process.stderr[-2000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def run(source_index: Path, sizes: list[int], work: Path, queries: int = 200, plot: Path | None = None,
        keep: bool = False, command: str = "") -> Report:
    report = Report(title="Cost by catalog size",
                    data=f"synthetic catalogs derived from the products of {source_index} (see benchmarks/scale.py)",
                    command=command)
    rows, latency_rows, results = [], [], {}
    for size in sizes:
        catalog = make_catalog(source_index, size, work)
        index_dir = work / f"index-{size}"
        result = _child("build", str(catalog), str(index_dir), str(queries))
        queries_file = work / f"queries-{size}.json"
        queries_file.write_text(json.dumps(result.pop("queries")))
        result.update(_child("serve", str(index_dir), str(queries_file)))
        queries_file.unlink()
        results[size] = result
        latency = result["latency"]
        rows.append([f"{size:,}", result["vector_kind"], result["build_s"], result["products"] / result["build_s"],
                     result["size_mb"], result["peak_rss_build_mb"], result["open_s"], result["rss_serving_mb"]])
        latency_rows.append([f"{size:,}", latency["n"], *latency["total"].values(),
                             *(latency["stages"].get(s, {}).get("p50") for s in ("encode", "lexical", "vector", "fuse"))])
        if not keep:
            shutil.rmtree(index_dir, ignore_errors=True)
            catalog.unlink(missing_ok=True)
    report.table("build (encoding excluded: embeddings come pre-computed)",
                 ["products", "vectors", "build s", "products/s", "size MB", "peak RSS build MB", "open s",
                  "RSS serving MB"], rows)
    report.notes.append("open s and RSS serving: a fresh process opening the index (model loaded, stores open) "
                        "and then answering the queries")
    report.table("text query latency, one query at a time, 1 thread, ms",
                 ["products", "n", "p50", "p95", "p99", "encode p50", "lexical p50", "vector p50", "fuse p50"],
                 latency_rows)
    if plot is not None:
        plot_scale(results, plot)
        report.notes.append(f"plot: {plot}")
    report.extra["results"] = results
    return report


def plot_scale(results: dict[int, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted(results)
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    series = [("build seconds", [results[s]["build_s"] for s in sizes]),
              ("peak memory while building (MB)", [results[s]["peak_rss_build_mb"] for s in sizes]),
              ("query latency p50 / p99 (ms)", None)]
    for axis, (title, values) in zip(axes, series):
        if values is None:
            axis.plot(sizes, [results[s]["latency"]["total"]["p50"] for s in sizes], marker="o", label="p50")
            axis.plot(sizes, [results[s]["latency"]["total"]["p99"] for s in sizes], marker="o", label="p99")
            axis.legend()
        else:
            axis.plot(sizes, values, marker="o")
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("products")
        axis.set_title(title)
        axis.grid(True, alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


if __name__ == "__main__":  # one phase of one size, in its own process (see _child)
    if sys.argv[1] == "build":  # build CATALOG INDEX QUERIES
        outcome = measure_build(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]))
    else:  # serve INDEX QUERIES_JSON
        outcome = measure_serving(Path(sys.argv[2]), json.loads(Path(sys.argv[3]).read_text()))
    print(json.dumps(outcome, default=float))
