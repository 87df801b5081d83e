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
from shoplens.common.errors import QueryError
from shoplens.engine.query import SearchRequest

STAGES = ("encode", "lexical", "vector", "fuse", "rerank")


def read_queries(path: str | Path, base_dir: Path | None = None) -> list[SearchRequest]:
    """One text query a line, or JSONL objects with "text" and/or "image" (paths relative to the file)."""
    path = Path(path)
    if not path.is_file():
        raise QueryError(f"queries file {path} does not exist")
    base_dir = base_dir or path.parent
    requests = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
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
    for request in requests[:warmup]:
        engine.search(replace(request, k=k))
    totals, stages = [], {name: [] for name in STAGES}
    started = time.perf_counter()
    for request in requests:
        t0 = time.perf_counter()
        response = engine.search(replace(request, k=k))
        totals.append((time.perf_counter() - t0) * 1000)
        for name in STAGES:
            if response.stages_ms.get(name) is not None:
                stages[name].append(response.stages_ms[name])
    wall = time.perf_counter() - started
    return {"n": len(totals), "qps": len(totals) / wall if wall else 0.0, "total": percentiles(totals),
            "stages": {name: percentiles(values) for name, values in stages.items() if values}}


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
        lexical: str | None = None) -> Report:
    """Latency on the index; with `lexical` (e.g. "elasticsearch") also on a copy whose lexical store
    lives on that backend, in the same run, same queries (tables prefixed by backend)."""
    if not lexical:
        return _run(index, queries, k, clients, threads, device, rerank, command, data)
    import shutil

    from shoplens.benchmarks.lexical_twin import describe_twin, lexical_twin
    from shoplens.indexers.index import IndexDirectory

    backend = IndexDirectory(index).manifest()["backends"]["lexical"]["backend"]
    twin, figures = lexical_twin(index, lexical)
    try:
        report = _run(index, queries, k, clients, threads, device, rerank, command, data)
        other = _run(twin, queries, k, clients, threads, device, rerank, command, data)
    finally:
        shutil.rmtree(twin.parent, ignore_errors=True)
    report.tables = [(f"lexical on {backend}: {name}", columns, rows) for name, columns, rows in report.tables] + \
                    [(f"lexical on {lexical}: {name}", columns, rows) for name, columns, rows in other.tables]
    report.extra = {"summary": {backend: report.extra["summary"], lexical: other.extra["summary"]},
                    "lexical_indexing": figures}
    report.notes.append(describe_twin(lexical, figures))
    return report


def _run(index: Path, queries: Path, k: int = 10, clients: list[int] | None = None, threads: int = 1,
         device: str = "auto", rerank: bool = True, command: str = "", data: str = "") -> Report:
    import torch

    from shoplens.engine.search import SearchEngine

    torch.set_num_threads(threads)
    requests = read_queries(queries)
    if not rerank:
        requests = [replace(r, rerank=False) for r in requests]
    engine = SearchEngine(index, device=device, search_threads=threads)
    manifest = engine.snapshot.manifest
    report = Report(title="Search latency", data=data or f"index {index} ({manifest['counts']['products']:,} products, "
                    f"{manifest['backends']['vector']['kind']} vectors, reranker: {'yes' if manifest.get('ranker') else 'no'}); "
                    f"queries {queries}", command=command)
    groups: dict[str, list[SearchRequest]] = {}
    for request in requests:
        groups.setdefault(kind_of(request), []).append(request)
    rows, summary = [], {}
    for kind, group in groups.items():
        result = replay(engine, group, k)
        summary[kind] = result
        rows.append([f"{kind}: end to end", result["n"], *result["total"].values(), result["qps"]])
        for stage, values in result["stages"].items():
            rows.append([f"{kind}: {stage}", result["n"], *values.values(), None])
    report.table(f"one client, {threads} thread(s), ms", ["queries", "n", "p50", "p95", "p99", "queries/s"], rows)
    concurrent_rows = []
    for count in clients or [1, 2, 4]:
        result = replay_concurrent(engine, requests, count, k)
        summary[f"clients_{count}"] = result
        concurrent_rows.append([count, result["n"], *result["total"].values(), result["qps"]])
    report.table("concurrent clients sharing one engine (all queries), ms",
                 ["clients", "n", "p50", "p95", "p99", "queries/s"], concurrent_rows)
    report.extra["summary"] = summary
    engine.close()
    return report
