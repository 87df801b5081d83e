"""Index a whole catalog and search it: encoding and indexing throughput, size on disk, query latency.

`shoplens bench index` (default data: the full Myntra catalog from ../shared).
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path
from typing import Any

from shoplens.benchmarks.common import Report
from shoplens.benchmarks.latency import replay
from shoplens.benchmarks.devdata import Catalog, generate_queries
from shoplens.indexers.catalog import parse_field_map, read_catalog
from shoplens.indexers.storage import directory_size
from shoplens.indexers.writer import WriteOptions, build_index

def latency_rows(engine, requests: list, label: str) -> tuple[list[list[Any]], dict[str, Any]]:
    """Replay requests one at a time: table rows (end to end, then each stage) and the raw summary."""
    result = replay(engine, requests, warmup=5)
    rows = [[f"{label}: end to end", result["n"], *result["total"].values()]]
    rows += [[f"{label}: {stage}", result["n"], *values.values()] for stage, values in result["stages"].items()]
    return rows, result


def run(catalog: Path, work_dir: Path, field_map: list[str], queries: int = 1000, image_queries: int = 200,
        threads: int = 1, device: str = "auto", vector_kind: str = "auto", data_label: str = "",
        progress=None, keep_index: bool = True, command: str = "") -> Report:
    import torch

    from shoplens.engine.query import SearchRequest
    from shoplens.engine.search import SearchEngine

    index_dir = work_dir / "index"
    if index_dir.exists():
        shutil.rmtree(index_dir)  # a cold build: no embedding cache
    parsed_map = parse_field_map(field_map)
    started = time.perf_counter()
    commit = build_index(catalog, index_dir, WriteOptions(device=device, vector_config={"kind": vector_kind}),
                         parsed_map, progress=progress)
    wall = time.perf_counter() - started
    products = commit.products
    encode_s = commit.seconds["encode"]
    store_s = sum(commit.seconds[k] for k in ("products", "vectors", "lexical", "commit"))
    size = directory_size(index_dir)

    report = Report(
        title="Index and search a catalog",
        data=data_label or str(catalog),
        command=command,
    )
    report.table("indexing", ["stage", "seconds", "products/s"], [
        ["encode texts + images (cold cache)", encode_s, products / encode_s if encode_s else None],
        ["write stores (products, FAISS, tantivy) + commit", store_s, products / store_s if store_s else None],
        ["whole build (read, validate, encode, write)", wall, products / wall],
    ])
    report.table("index", ["what", "value"], [
        ["products", products], ["texts encoded", commit.texts_encoded], ["images encoded", commit.images_encoded],
        ["vector index", _vector_kind(index_dir)], ["size on disk (MB)", size / 2 ** 20],
        ["bytes per product", size / max(products, 1)],
    ])

    torch.set_num_threads(threads)
    engine = SearchEngine(index_dir, device=device, search_threads=threads, query_cache_size=0)
    result = read_catalog(catalog, parsed_map)
    generated = generate_queries(Catalog(result.products), queries, seed=5)
    text_requests = [SearchRequest(text=q.text, k=10) for q, _ in generated]
    rng = random.Random(9)
    with_images = [p for p in result.products if p.image]
    image_requests = [SearchRequest(image=p.image, k=10) for p in rng.sample(with_images, min(image_queries, len(with_images)))]
    rows, text_summary = latency_rows(engine, text_requests, "text")
    image_rows, image_summary = latency_rows(engine, image_requests, "image") if image_requests else ([], {})
    report.table(f"search latency, one query at a time, {threads} thread(s), ms",
                 ["queries", "n", "p50", "p95", "p99"], rows + image_rows)
    report.notes.append(f"text queries are derived from the catalog's attributes ({len(text_requests)}, "
                        "see benchmarks/devdata.py); image queries are product photos from the catalog")
    report.extra["summary"] = {"products": products, "build_s": wall, "encode_products_per_s": products / encode_s if encode_s else None,
                               "store_products_per_s": products / store_s, "size_bytes": size,
                               "latency_text_ms": text_summary, "latency_image_ms": image_summary}
    engine.close()
    if not keep_index:
        shutil.rmtree(index_dir)
    return report


def _vector_kind(index_dir: Path) -> str:
    from shoplens.indexers.index import IndexDirectory

    backend = IndexDirectory(index_dir).manifest()["backends"]["vector"]
    return backend["kind"]

