"""`shoplens bench latency`: replay queries against an index; per-stage and end-to-end percentiles,
one client at a time and with concurrent clients."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from shoplens.benchmarks.common import Report, percentiles
from shoplens.benchmarks.lexical_twin import describe_stores, store_labels
from shoplens.common.errors import ConfigError, QueryError
from shoplens.engine.batch import query_lines
from shoplens.engine.query import SearchRequest
from shoplens.engine.query_cache import DEFAULT_CAPACITY

STAGES = ("encode", "lexical", "vector", "fuse", "rerank")
SEARCHED = ", BM25 by search"  # the name suffix of the engine whose candidates' BM25 is searched for
ONNX_TREES = ", trees on onnx"  # the name suffix of the engine whose reranker predicts with ONNX Runtime


def read_queries(path: str | Path, base_dir: Path | None = None) -> list[SearchRequest]:
    """One text query a line, or JSONL objects with "text" and/or "image" (paths relative to the file)."""
    path = Path(path)
    base_dir = base_dir or path.parent
    requests = []
    for number, line, is_object in query_lines(path, QueryError, "save the file as UTF-8"):
        if is_object:
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise QueryError(f"{path.name} line {number}: invalid JSON ({exc.msg}); write one query per line, "
                                 'as plain text or {"text": ..., "image": ...}') from None
            image = row.get("image")
            if image and not Path(image).is_absolute():
                image = str(base_dir / image)
            text = row.get("text") or row.get("query")
            if not text and not image:
                continue
            requests.append(SearchRequest(text=text, image=image))
        else:
            requests.append(SearchRequest(text=line))
    if not requests:
        raise QueryError(f"{path.name} holds no queries")
    return requests


def kind_of(request: SearchRequest) -> str:
    if request.text and request.image is not None:
        return "text+image"
    return "image" if request.image is not None else "text"


def replay(engine, requests: list[SearchRequest], k: int = 10, warmup: int = 10) -> dict[str, Any]:
    """Queries one after another: latencies by stage and end to end, and throughput."""
    return replay_interleaved({"engine": engine}, requests, k, warmup)["engine"]


def replay_interleaved(engines: dict[str, Any], requests: list[SearchRequest], k: int = 10,
                       warmup: int = 10) -> dict[str, dict[str, Any]]:
    """Each query on every engine in turn (the order alternating query by query), so that engines
    compared in one run see the same machine noise. Per engine: latencies by stage and end to end."""
    names = list(engines)
    for request in requests[:warmup]:
        for name in names:
            engines[name].search(replace(request, k=k))
    totals = {name: [] for name in names}
    cpu = {name: [] for name in names}
    stages = {name: {stage: [] for stage in STAGES} for name in names}
    for number, request in enumerate(requests):
        for name in (names if number % 2 == 0 else names[::-1]):
            c0, t0 = time.process_time(), time.perf_counter()
            response = engines[name].search(replace(request, k=k))
            totals[name].append((time.perf_counter() - t0) * 1000)
            cpu[name].append((time.process_time() - c0) * 1000)
            for stage in STAGES:
                if response.stages_ms.get(stage) is not None:
                    stages[name][stage].append(response.stages_ms[stage])
    return {name: {"n": len(totals[name]), "qps": 1000 * len(totals[name]) / max(sum(totals[name]), 1e-9),
                   "total": percentiles(totals[name]), "cpu_ms": percentiles(cpu[name]),
                   "stages": {stage: percentiles(v) for stage, v in stages[name].items() if v}} for name in names}


def replay_concurrent(engine, requests: list[SearchRequest], clients: int, k: int = 10) -> dict[str, Any]:
    """`clients` threads sharing one engine, each replaying its share of the queries."""
    latencies: list[float] = []
    lock = threading.Lock()

    def client(part: list[SearchRequest]) -> None:
        for request in part:
            t0 = time.perf_counter()
            engine.search(replace(request, k=k))
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                latencies.append(elapsed)

    parts = [requests[i::clients] for i in range(clients)]
    threads = [threading.Thread(target=client, args=(part,)) for part in parts]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"clients": clients, "n": len(latencies), "qps": len(latencies) / wall if wall else 0.0,
            "total": percentiles(latencies)}


def run(index: Path, queries: Path, k: int = 10, clients: list[int] | None = None, threads: int = 1,
        device: str = "auto", rerank: bool = True, command: str = "", data: str = "",
        lexical: str | None = None, compare: bool = False, runtime: str | None = None,
        cache_size: int = DEFAULT_CAPACITY, warm_rows: bool = False, compare_bm25: bool = False,
        compare_trees: bool = False, vectors: str | None = None, client_processes: bool = False,
        vector_index: str | None = None) -> Report:
    """Latency on the index; with `lexical` (e.g. "elasticsearch") also on a copy whose lexical store (and
    with `vectors`, its vector stores) lives on that backend, in the same run, same queries (tables and
    summaries named by the stores each ran on)."""
    options = {"compare": compare, "runtime": runtime, "cache_size": cache_size, "warm_rows": warm_rows,
               "compare_bm25": compare_bm25, "compare_trees": compare_trees, "client_processes": client_processes}
    if vector_index and not vectors:
        raise ConfigError("--vector-index needs --vectors (and --lexical): it is the compared copy's vector index")
    if not lexical:
        if vectors:
            raise ConfigError("--vectors needs --lexical: it names where the compared copy keeps its vectors")
        return _run(index, queries, k, clients, threads, device, rerank, command, data, **options)
    from shoplens.benchmarks.lexical_twin import compared_twin, describe_twin

    with compared_twin(index, lexical, vectors, vector_index) as (twin, stores, figures):
        report = _run(index, queries, k, clients, threads, device, rerank, command, data, **options)
        other = _run(twin, queries, k, clients, threads, device, rerank, command, data, **options)
    report.tables = [(f"{stores[0]}: {name}", columns, rows) for name, columns, rows in report.tables] + \
                    [(f"{stores[1]}: {name}", columns, rows) for name, columns, rows in other.tables]
    report.extra = {"summary": {stores[0]: report.extra["summary"], stores[1]: other.extra["summary"]},
                    "lexical_indexing": figures}
    report.notes.append(describe_twin(figures))
    return report


def _report_and_stage_names(manifest: dict, index: Path, queries: Path, data: str,
                            command: str) -> tuple[Report, dict[str, str]]:
    """The report, its data line naming the index's stores, and each stage's row name ("lexical on OpenSearch")."""
    labels = store_labels(manifest)
    stage_names = {stage: f"{stage} on {labels[stage]}" if stage in labels else stage for stage in STAGES}
    report = Report(title="Search latency", data=data or f"index {index} ({manifest['counts']['products']:,} products, "
                    f"{describe_stores(manifest)}, reranker: {'yes' if manifest.get('ranker') else 'no'}); "
                    f"queries {queries}", command=command)
    return report, stage_names


def _run(index: Path, queries: Path, k: int = 10, clients: list[int] | None = None, threads: int = 1,
         device: str = "auto", rerank: bool = True, command: str = "", data: str = "", compare: bool = False,
         runtime: str | None = None, cache_size: int = DEFAULT_CAPACITY, warm_rows: bool = False,
         compare_bm25: bool = False, compare_trees: bool = False, client_processes: bool = False) -> Report:
    """One client per query kind (stages, end to end), the query cache's hit rate and effect,
    concurrent clients; with `compare` the other encoder runtime, with `compare_bm25` an engine that scores
    candidates' BM25 by searching, with `compare_trees` one whose reranker predicts with ONNX Runtime instead
    of the compiled trees, on the same queries in the same run."""
    requests = read_queries(queries)
    if not rerank:
        requests = [replace(r, rerank=False) for r in requests]
    engines = _open_engines(index, device, threads, runtime, compare, compare_bm25, compare_trees)
    engine = next(iter(engines.values()))
    if warm_rows:  # as `shoplens serve` does in the background after it opens a version
        for name, item in engines.items():
            item.warm_rows(lexical=not name.endswith(SEARCHED))
    report, stage_names = _report_and_stage_names(engine.snapshot.manifest, index, queries, data, command)
    groups: dict[str, list[SearchRequest]] = {}
    for request in requests:
        groups.setdefault(kind_of(request), []).append(request)
    summary: dict[str, Any] = {"runtimes": list(engines)}
    rows, ratio_rows = [], []
    for kind, group in groups.items():
        results = replay_interleaved(engines, group, k)
        for name, result in results.items():
            summary[f"{kind} ({name})"] = result
            rows.append([f"{kind}: end to end ({name})", result["n"], *result["total"].values(), result["qps"]])
            rows.append([f"{kind}: CPU time of the process ({name})", result["n"], *result["cpu_ms"].values(), None])
            for stage, values in result["stages"].items():
                rows.append([f"{kind}: {stage_names[stage]} ({name})", result["n"], *values.values(), None])
        for other in list(engines)[1:]:
            ratio_rows.extend(_ratios(kind, results, [list(engines)[0], other]))
    report.table(f"one client, {threads} thread(s), no query cache, ms", ["queries", "n", "p50", "p95", "p99",
                                                                          "queries/s"], rows)
    if ratio_rows:
        report.table(f"each other engine / {list(engines)[0]} (same queries, same run, interleaved)",
                     ["queries", "p50 ratio", "p95 ratio", "p99 ratio"], ratio_rows)
    if compare:
        pair = {name: engines[name] for name in list(engines)[:2]}
        report.table(f"dense retrieval, {list(engines)[1]} against {list(engines)[0]}: top-10 overlap",
                     ["queries", "n", "mean overlap@10", "min overlap@10"], _overlap_rows(pair, groups, summary))
    report.table("query-embedding cache (LRU, all queries in file order, cache empty at the start), ms",
                 ["setting", "n", "p50", "p95", "p99", "queries/s", "hit rate"], _cache_rows(engine, requests, k,
                                                                                           cache_size, summary))
    concurrent_rows = []
    for count in clients or [1, 2, 4]:
        result = replay_concurrent(engine, requests, count, k)
        summary[f"clients_{count}"] = result
        concurrent_rows.append([count, result["n"], *result["total"].values(), result["qps"]])
    report.table(f"concurrent clients sharing one engine ({engine.encoder_runtime}; all queries, no query cache), ms",
                 ["clients", "n", "p50", "p95", "p99", "queries/s"], concurrent_rows)
    if client_processes:
        _process_rows(report, index, requests, clients or [1, 2, 4], k, device, threads, runtime, warm_rows, summary)
    report.extra["summary"] = summary
    report.notes.extend(_predictor_notes(engines))
    for item in engines.values():
        item.close()
    return report


def _open_engines(index: Path, device: str, threads: int, runtime: str | None, compare: bool,
                  compare_bm25: bool = False, compare_trees: bool = False) -> dict[str, Any]:
    """The engine of the requested runtime; with `compare` one of the other runtime (onnx for onnx-int8,
    torch for onnx, onnx for torch), with `compare_bm25` one of the same runtime whose lexical store keeps
    scoring candidates by searching (named "... BM25 by search"). No query cache."""
    from shoplens.engine.search import SearchEngine

    def open_engine(name: str):
        return SearchEngine(index, device=device, search_threads=threads, encoder_runtime=name, query_cache_size=0)

    engine = open_engine(runtime)
    engines = {engine.encoder_runtime: engine}
    if compare:
        other = {"onnx": "torch", "onnx-int8": "onnx"}.get(engine.encoder_runtime, "onnx")
        engines[other] = open_engine(other)
    if compare_bm25:
        engines[f"{engine.encoder_runtime}{SEARCHED}"] = open_engine(engine.encoder_runtime)
    if compare_trees:
        other = engines[f"{engine.encoder_runtime}{ONNX_TREES}"] = open_engine(engine.encoder_runtime)
        ranker = other.ranker(other.snapshot)
        if ranker is not None:
            ranker.predict_with_onnx()
    if "torch" in engines:
        import torch

        torch.set_num_threads(threads)
    return engines


def _process_rows(report: Report, index: Path, requests: list[SearchRequest], counts: list[int], k: int,
                  device: str, threads: int, runtime: str | None, warm_rows: bool, summary: dict[str, Any]) -> None:
    """The concurrent clients again, each a process with its own engine (as `serve --workers N`)."""
    from shoplens.benchmarks.client_processes import replay_processes

    rows = []
    for count in counts:
        result = replay_processes(index, requests, count, k, device, threads, runtime, warm_rows)
        summary[f"client_processes_{count}"] = result
        rows.append([count, result["n"], *result["total"].values(), result["qps"]])
    report.table("concurrent clients, one engine process each (as `serve --workers N`; all queries, no query "
                 "cache), ms", ["clients", "n", "p50", "p95", "p99", "queries/s"], rows)


def _predictor_notes(engines: dict[str, Any]) -> list[str]:
    """What each engine's reranker predicted with (compiled trees, ONNX Runtime or XGBoost, and why)."""
    notes = []
    for name, engine in engines.items():
        ranker = engine.ranker(engine.snapshot)
        if ranker is not None:
            notes.append(f"{name}: reranker trees predicted with {ranker.predictor_note}")
    return notes


def _ratios(kind: str, results: dict[str, dict[str, Any]], names: list[str]) -> list[list[Any]]:
    """Rows of the second engine's percentiles over the first's: end to end and per stage."""
    first, second = results[names[0]], results[names[1]]
    rows = [[f"{kind}: end to end ({names[1]})", *[second["total"][p] / first["total"][p] for p in first["total"]]],
            [f"{kind}: CPU time ({names[1]})", *[second["cpu_ms"][p] / first["cpu_ms"][p] if first["cpu_ms"][p]
                                                 else None for p in first["cpu_ms"]]]]
    for stage, values in first["stages"].items():
        if stage in second["stages"]:
            rows.append([f"{kind}: {stage} ({names[1]})", *[second["stages"][stage][p] / values[p] if values[p]
                                                            else None for p in values]])
    return rows


def _overlap_rows(engines: dict[str, Any], groups: dict[str, list[SearchRequest]],
                  summary: dict[str, Any]) -> list[list[Any]]:
    """Per query kind, the share of the first engine's dense top 10 that the second engine also returns."""
    first, second = list(engines.values())
    rows = []
    for kind, group in groups.items():
        shares = []
        for request in group:
            dense = replace(request, mode="dense", k=10, rerank=False)
            ids = [{r.id for r in engine.search(dense).results} for engine in (first, second)]
            shares.append(len(ids[0] & ids[1]) / max(len(ids[0]), 1))
        summary[f"{kind} dense overlap@10"] = {"mean": sum(shares) / len(shares), "min": min(shares)}
        rows.append([kind, len(shares), sum(shares) / len(shares), min(shares)])
    return rows


def _cache_rows(engine, requests: list[SearchRequest], k: int, capacity: int, summary: dict[str, Any]) -> list[list]:
    """Every query with and without the cache, alternating on one engine; the cache starts empty."""
    from shoplens.engine.query_cache import QueryCache

    cache = QueryCache(capacity)
    off = QueryCache(0)
    timings: dict[str, list[float]] = {"without cache": [], "with cache": []}
    for number, request in enumerate(requests):
        order = ("without cache", "with cache") if number % 2 == 0 else ("with cache", "without cache")
        for setting in order:
            engine.query_cache = cache if setting == "with cache" else off
            t0 = time.perf_counter()
            engine.search(replace(request, k=k))
            timings[setting].append((time.perf_counter() - t0) * 1000)
    engine.query_cache = off
    stats = cache.stats()
    summary["cache"] = {**stats, **{name: percentiles(values) for name, values in timings.items()}}
    return [[name, len(values), *percentiles(values).values(), 1000 * len(values) / max(sum(values), 1e-9),
             stats["hit_rate"] if name == "with cache" else None] for name, values in timings.items()]
