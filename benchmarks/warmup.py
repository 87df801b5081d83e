"""`shoplens bench warmup`: what warming a fresh engine with the shop's frequent queries buys its first
queries, on the embedded stores or on a cluster.

Two fresh copies of the index (with `lexical`: two twins on the cluster, so each has its own Lucene
index that no query has met) and an engine on each. One engine first answers the warm-up queries
(`engine/warmup.py`, as `shoplens serve --warm-up N` does before `/ready`); then both answer the same
queries, each query on both engines in turn (the order alternating), twice: the first pass is what the
first shoppers after a start meet, the second the steady state. The query-embedding cache is off in
both engines, so the warm-up's gain is the stores' (and the reranker's), not cached query vectors.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from shoplens.benchmarks.common import Report
from shoplens.benchmarks.latency import kind_of, read_queries
from shoplens.benchmarks.lexical_twin import compared_twin, describe_stores, describe_twin
from shoplens.common.errors import ConfigError
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.engine.warmup import frequent_queries, read_query_file, warm_up
from shoplens.indexers.index import IndexDirectory
from shoplens.rerank.events import normalize_query

ENGINES = ("cold", "warmed")
POINTS = (50, 95, 99, 100)


def run(index: Path, queries: Path, warm_up_count: int = 100, warm_up_file: Path | None = None,
        lexical: str | None = None, vectors: str | None = None, k: int = 10, device: str = "auto",
        command: str = "", progress=None) -> Report:
    requests = read_queries(queries)
    with _copies(index, lexical, vectors) as (paths, figures):
        engines = {name: SearchEngine(path, device=device, query_cache_size=0) for name, path in zip(ENGINES, paths)}
        try:
            texts = read_query_file(warm_up_file, warm_up_count) if warm_up_file else \
                frequent_queries(engines["warmed"].snapshot, warm_up_count)
            if not texts:
                raise ConfigError(f"index {index} has no behaviour to take frequent queries from; fold events "
                                  "(`shoplens events`) or give --warm-up-file")
            warmed = warm_up(engines["warmed"], texts, k=k, progress=progress,
                             source=str(warm_up_file) if warm_up_file else "the index's frequent queries")
            passes = [_one_pass(engines, requests, k) for _ in range(2)]
            stores = describe_stores(engines["cold"].snapshot.manifest)
        finally:
            for engine in engines.values():
                engine.close()
    report = Report(title="Warm-up before serving", command=command,
                    data=f"index {index} ({stores}); queries {queries}; warm-up: {warmed.queries} queries from "
                         f"{warmed.source}")
    overlap = _overlap(requests, texts)
    _tables(report, requests, passes)
    report.notes.append(f"{overlap} of the {sum(1 for r in requests if r.text)} query texts were among the warm-up's")
    report.notes.append(f"warm-up: {warmed.queries} queries ({warmed.failed} failed) in {warmed.seconds:.1f} s on the "
                        "warmed engine, before the passes; the query-embedding cache is off in both engines")
    if figures:
        report.notes.append(describe_twin(figures[0]) + " (each of the two copies)")
    report.extra = {"warm_up": warmed.to_dict(), "overlap": overlap}
    return report


@contextlib.contextmanager
def _copies(index: Path, lexical: str | None, vectors: str | None):
    """Two copies no query has met: twins on `lexical`'s cluster, or the embedded index itself twice (the
    operating system's page cache is then shared by both engines)."""
    IndexDirectory(index).require()
    if not lexical:
        yield [index, index], []
        return
    with compared_twin(index, lexical, vectors) as (first, _, one), compared_twin(index, lexical, vectors) as (second, _, two):
        yield [first, second], [one, two]


def _one_pass(engines: dict[str, SearchEngine], requests: list[SearchRequest], k: int) -> dict[str, dict[str, list]]:
    """Each query on both engines (order alternating): latencies in ms by engine and query kind."""
    times: dict[str, dict[str, list]] = {name: {} for name in engines}
    for number, request in enumerate(requests):
        for name in (ENGINES if number % 2 == 0 else ENGINES[::-1]):
            started = time.perf_counter()
            engines[name].search(replace(request, k=k))
            times[name].setdefault(kind_of(request), []).append((time.perf_counter() - started) * 1000)
    return times


def _tables(report: Report, requests: list[SearchRequest], passes: list[dict]) -> None:
    rows = []
    for kind in dict.fromkeys(kind_of(r) for r in requests):
        for number, times in enumerate(passes, 1):
            for name in ENGINES:
                values = np.asarray(times[name][kind])
                rows.append([kind, number, name, len(values), *(float(np.percentile(values, p)) for p in POINTS)])
    report.table("end to end, ms (one client; pass 1 = the first time each engine meets each query)",
                 ["queries", "pass", "engine", "n", "p50", "p95", "p99", "max"], rows)
    first = passes[0]
    ratio_rows = [[kind, *(float(np.percentile(first["cold"][kind], p) / max(np.percentile(first["warmed"][kind], p), 1e-9))
                           for p in POINTS)] for kind in dict.fromkeys(kind_of(r) for r in requests)]
    report.table("pass 1, cold / warmed", ["queries", "p50 ratio", "p95 ratio", "p99 ratio", "max ratio"], ratio_rows)


def _overlap(requests: list[SearchRequest], texts: list[str]) -> int:
    warm = {normalize_query(text) for text in texts}
    return sum(1 for request in requests if request.text and normalize_query(request.text) in warm)
