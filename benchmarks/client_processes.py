"""Concurrent clients as separate processes, each with its own engine on the index, as `shoplens serve
--workers N` runs one engine per worker process: the throughput of N clients without one interpreter's
lock between them (`bench latency --client-processes`)."""

from __future__ import annotations

import multiprocessing
import queue
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from shoplens.benchmarks.common import percentiles
from shoplens.common.errors import ConfigError
from shoplens.engine.query import SearchRequest

OPEN_TIMEOUT_S = 900.0  # opening and warming an engine on a large index (the rows analyzed for the reranker)
WARMUP_QUERIES = 10  # searches each process answers before the clock starts (as the threads' shared engine has)


def replay_processes(index: Path, requests: list[SearchRequest], clients: int, k: int = 10, device: str = "auto",
                     threads: int = 1, runtime: str | None = None, warm_rows: bool = False) -> dict[str, Any]:
    """`clients` processes, each opening its own engine (no query cache) and replaying its share of the
    queries once every process is open and warm; throughput over the wall time from that moment."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing of this one's threads is copied
    barrier, results = context.Barrier(clients + 1), context.Queue()
    parts = [[replace(r, k=k) for r in requests[i::clients]] for i in range(clients)]
    processes = [context.Process(target=_client, daemon=True,
                                 args=(str(index), part, device, threads, runtime, warm_rows, barrier, results))
                 for part in parts]
    for process in processes:
        process.start()
    try:
        barrier.wait(timeout=OPEN_TIMEOUT_S)
        started = time.perf_counter()
        latencies: list[float] = []
        for _ in processes:
            latencies.extend(_result(results))
        wall = time.perf_counter() - started
    except (threading.BrokenBarrierError, queue.Empty):
        raise ConfigError(f"a client process did not open the index or answer: {_first_error(results)}") from None
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    return {"clients": clients, "n": len(latencies), "qps": len(latencies) / wall if wall else 0.0,
            "total": percentiles(latencies)}


def _first_error(results) -> str:
    try:
        got = results.get(timeout=5)
    except queue.Empty:
        return "no reply (run `shoplens bench latency` without --client-processes to see why)"
    return got if isinstance(got, str) else "another process failed"


def _result(results) -> list[float]:
    got = results.get(timeout=OPEN_TIMEOUT_S)
    if isinstance(got, str):
        raise ConfigError(f"a client process failed: {got}")
    return got


def _client(index: str, part: list[SearchRequest], device: str, threads: int, runtime: str | None,
            warm_rows: bool, barrier, results) -> None:
    """One client process: open an engine, warm it, wait for the others, replay, report the latencies."""
    from shoplens.engine.search import SearchEngine

    try:
        engine = SearchEngine(index, device=device, search_threads=threads, encoder_runtime=runtime,
                              query_cache_size=0)
        if warm_rows:
            engine.warm_rows(lexical=True)
        for request in part[:WARMUP_QUERIES]:
            engine.search(request)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        barrier.abort()
        results.put(f"{type(exc).__name__}: {exc}")
        return
    barrier.wait(timeout=OPEN_TIMEOUT_S)
    latencies = []
    for request in part:
        t0 = time.perf_counter()
        engine.search(request)
        latencies.append((time.perf_counter() - t0) * 1000)
    engine.close()
    results.put(latencies)
