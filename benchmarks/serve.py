"""`shoplens bench serve`: the HTTP service under load, on loopback.

`shoplens serve` runs as a subprocess over a copy of the index; an async httpx
load generator sends searches from 1, 2, 4 and 8 concurrent clients (bounded
by a request count and a time limit per level), first idle, then while
another process commits N-product price updates every few seconds. The same
queries through an in-process `SearchEngine` in the same run give the HTTP
overhead, also measured per request as client latency minus the engine's own
`took_ms`.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from shoplens.benchmarks.common import Report, percentiles
from shoplens.common.errors import ConfigError
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.indexers.index import IndexDirectory

CLIENTS = (1, 2, 4, 8)


def run(index: Path, work: Path, requests: int = 200, seconds: float = 60.0, count: int = 1000,
        interval: float = 3.0, queries: int = 200, device: str = "auto", command: str = "",
        clients: tuple[int, ...] = CLIENTS, warm_queries: tuple[int, ...] = (0,)) -> Report:
    """The report; with several `warm_queries` settings (e.g. 0 and 3) the server runs once per setting,
    one after the other on the same copy, queries and update batches, and the tables say which is which."""
    IndexDirectory(index).require()
    work.mkdir(parents=True, exist_ok=True)
    copy = work / "index"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(index, copy)
    texts, records = _queries(copy, queries, device)
    report = Report("HTTP service under load (loopback)", f"{index} ({len(records):,} products), {len(texts)} derived "
                    f"queries, k=10, reranker {'on' if _has_ranker(copy) else 'absent'}", command)
    in_process = _in_process(copy, texts, min(requests, len(texts)), device)
    runs = {}
    for warm in warm_queries:
        server, url = _start_server(copy, device, work, warm)
        try:
            idle = {n: asyncio.run(_load(url, texts, n, requests, seconds)) for n in clients}
            busy, commits = _under_updates(url, copy, records, texts, clients, requests, seconds, count, interval,
                                           work, device)
        finally:
            server.terminate()
            server.wait(timeout=30)
        runs[warm] = (idle, busy, commits)
    _tables(report, in_process, runs, count, interval)
    report.extra["raw"] = {warm: {"idle": {n: _summary(r) for n, r in idle.items()},
                                  "busy": {n: _summary(r) for n, r in busy.items()}}
                           for warm, (idle, busy, _) in runs.items()}
    return report


def _has_ranker(index: Path) -> bool:
    return bool(IndexDirectory(index).manifest().get("ranker"))


def _queries(index: Path, count: int, device: str) -> tuple[list[str], list[dict[str, Any]]]:
    from shoplens.benchmarks.devdata import Catalog, generate_queries
    from shoplens.indexers.catalog import Product
    from shoplens.indexers.snapshot import Snapshot

    snapshot = Snapshot.open(IndexDirectory(index), device="cpu")
    records = snapshot.products.records(snapshot.products.live_docnos())
    texts = [q.text for q, _ in generate_queries(Catalog([Product.from_record(r) for r in records]), count, seed=23)]
    return texts, records


def _in_process(index: Path, texts: list[str], requests: int, device: str) -> dict[str, Any]:
    """The same searches through `SearchEngine.search`, called from a worker thread as the server calls it.

    (On this 2-core machine, under load, PyTorch's query encoding called from the main thread with its
    default two intra-op threads was measured 10-20x slower than from a worker thread; the server runs
    searches on worker threads, so the comparison does too.)
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(_in_process_loop, index, texts, requests, device).result()


def _in_process_loop(index: Path, texts: list[str], requests: int, device: str) -> dict[str, Any]:
    engine = SearchEngine(index, device=device)
    for text in texts[:10]:
        engine.search(SearchRequest(text=text))
    latencies = []
    started = time.perf_counter()
    for text in texts[:requests]:
        t0 = time.perf_counter()
        engine.search(SearchRequest(text=text))
        latencies.append((time.perf_counter() - t0) * 1000)
    wall = time.perf_counter() - started
    engine.close()
    return {"latencies": latencies, "wall": wall}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(index: Path, device: str, work: Path, warm: int = 0) -> tuple[subprocess.Popen, str]:
    """`shoplens serve` as a subprocess; returns once /ready says the index is open and warm."""
    import httpx

    port = _free_port()
    log = open(work / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "shoplens", "serve", "--index", str(index), "--port", str(port),
                               "--device", device, "--follow-seconds", "0.2", "--warm-queries", str(warm)], stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 900
    while time.time() < deadline:
        if server.poll() is not None:
            raise ConfigError(f"`shoplens serve` exited with code {server.returncode}; see {work / 'server.log'}")
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise ConfigError(f"`shoplens serve` was not ready within 15 minutes; see {work / 'server.log'}")


async def _load(url: str, texts: list[str], clients: int, requests: int, seconds: float) -> dict[str, Any]:
    """`clients` concurrent loops over the queries until `requests` are answered or `seconds` pass."""
    import httpx

    results: list[tuple[float, float, int, int]] = []  # (client ms, engine took_ms, status, version)
    issued = iter(range(10 ** 9))
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        for text in texts[:3]:  # warm the connection pool
            await client.post("/search", json={"q": text, "k": 10})

        async def worker() -> None:
            while time.perf_counter() < deadline:
                number = next(issued)
                if number >= requests:
                    return
                t0 = time.perf_counter()
                reply = await client.post("/search", json={"q": texts[number % len(texts)], "k": 10})
                elapsed = (time.perf_counter() - t0) * 1000
                body = reply.json() if reply.status_code == 200 else {}
                results.append((elapsed, body.get("took_ms", float("nan")), reply.status_code, body.get("version", -1)))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
    return {"results": results, "wall": wall}


def _under_updates(url, index, records, texts, clients, requests, seconds, count, interval, work, device):
    rng = np.random.default_rng(7)
    context = multiprocessing.get_context("spawn")
    stop, commits = context.Event(), context.Value("i", 0)
    ids = [r["id"] for r in records]
    prices = {r["id"]: r.get("price") or 100.0 for r in records}
    deltas = []
    for batch in range(5):
        picks = rng.choice(len(ids), size=min(count, len(ids)), replace=False)
        path = work / f"serve-delta-{batch}.jsonl"
        path.write_text("".join(json.dumps({"id": ids[i], "price": prices[ids[i]]}) + "\n" for i in picks.tolist()))
        deltas.append(str(path))
    writer = context.Process(target=_commit_every, args=(str(index), deltas, interval, device, stop, commits))
    writer.start()
    try:
        while commits.value == 0 and writer.is_alive():  # its imports and first commit are done
            time.sleep(0.1)
        busy = {n: asyncio.run(_load(url, texts, n, requests, seconds)) for n in clients}
    finally:
        stop.set()
        writer.join()
    return busy, commits.value


def _commit_every(index: str, deltas: list[str], interval: float, device: str, stop, commits) -> None:
    """The writer process: one commit of a price-change batch every `interval` seconds until stopped."""
    from shoplens.indexers.updates import apply_delta

    turn = 0
    while not stop.is_set():
        started = time.time()
        template = Path(deltas[turn % len(deltas)])
        rows = [json.loads(line) for line in template.read_text().splitlines()]
        for row in rows:  # a new cent each turn, so no commit repeats an earlier one
            row["price"] = round(float(row["price"]) + 0.01 * (turn + 1), 2)
        current = template.with_name("serve-delta-now.jsonl")
        current.write_text("".join(json.dumps(row) + "\n" for row in rows))
        apply_delta(Path(index), current, device=device)
        turn += 1
        with commits.get_lock():
            commits.value += 1
        stop.wait(max(0.0, interval - (time.time() - started)))


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    ok = [r for r in run["results"] if r[2] == 200]
    latencies = [r[0] for r in ok]
    overhead = [r[0] - r[1] for r in ok]
    return {"requests": len(run["results"]), "errors": len(run["results"]) - len(ok),
            "per_second": len(ok) / run["wall"] if run["wall"] else float("nan"), **percentiles(latencies),
            "overhead_p50": float(np.median(overhead)) if overhead else float("nan"),
            "versions": len({r[3] for r in ok}), "first_on_version_p50": _first_on_version(ok)}


def _first_on_version(ok: list[tuple[float, float, int, int]]) -> float:
    """Median latency of the first answer from each newly seen version (NaN when the version never changed)."""
    seen, firsts = set(), []
    for elapsed, _, _, version in ok:
        if version not in seen:
            if seen:
                firsts.append(elapsed)
            seen.add(version)
    return float(np.median(firsts)) if firsts else float("nan")


def _tables(report: Report, in_process, runs, count: int, interval: float) -> None:
    local = percentiles(in_process["latencies"])
    first_idle = next(iter(runs.values()))[0]
    http1 = _summary(first_idle[min(first_idle)])
    report.table("in-process engine against HTTP, one client (ms)",
                 ["path", "searches", "searches/s", "p50", "p95", "p99", "HTTP overhead p50"],
                 [["in-process SearchEngine.search (worker thread)", len(in_process["latencies"]),
                   len(in_process["latencies"]) / in_process["wall"], *local.values(), None],
                  ["POST /search on loopback", http1["requests"], http1["per_second"], http1["p50"], http1["p95"],
                   http1["p99"], http1["overhead_p50"]]])
    rows = []
    for warm, (idle, busy, _) in runs.items():
        for clients in idle:
            quiet, loaded = _summary(idle[clients]), _summary(busy[clients])
            rows.append([clients, "idle", quiet["requests"], quiet["errors"], quiet["per_second"], quiet["p50"],
                         quiet["p95"], quiet["p99"], quiet["versions"], None, None, warm])
            rows.append([clients, "updating", loaded["requests"], loaded["errors"], loaded["per_second"],
                         loaded["p50"], loaded["p95"], loaded["p99"], loaded["versions"],
                         loaded["first_on_version_p50"], loaded["p99"] / quiet["p99"], warm])
    report.table(f"POST /search by concurrent clients, idle and while another process commits {count:,}-product "
                 f"price updates every {interval:g} s (ms)",
                 ["clients", "condition", "requests", "errors", "searches/s", "p50", "p95", "p99", "versions seen",
                  "first answer of a new version p50", "p99 / idle p99", "warm queries"], rows)
    commits = ", ".join(f"{run[2]} (warm queries {warm})" for warm, run in runs.items())
    report.notes.append(f"commits that landed during the 'updating' runs: {commits}; the server follows them in a "
                        "background thread (open, warm, answer the latest `--warm-queries` text queries, swap), so "
                        "no request opens a version")
    report.notes.append("HTTP overhead p50: the median of (client-observed latency - the engine's took_ms) per request")
