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
        clients: tuple[int, ...] = CLIENTS, warm_queries: tuple[int, ...] = (0,), before: str | None = None,
        writer_nice: tuple[int, ...] = (0,)) -> Report:
    """The report. The server runs once per setting, one after the other on the same copy, queries and
    update batches: per `warm_queries` value (e.g. 0 and 3) and writer niceness (e.g. 0 and 10, as
    `update --nice` / `watch` set it), and with `before` (another checkout's Python, e.g. main's venv)
    first under that interpreter too, so old and new code are compared in one run."""
    IndexDirectory(index).require()
    work.mkdir(parents=True, exist_ok=True)
    copy = work / "index"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(index, copy)
    texts, records = _queries(copy, queries, device)
    report = Report("HTTP service under load (loopback)", f"{index} ({len(records):,} products), {len(texts)} derived "
                    f"queries, k=10, reranker {'on' if _has_ranker(copy) else 'absent'}", command)
    in_process = _in_process(copy, texts, min(requests, len(texts)), device)
    pythons = [("before, ", before)] if before else []
    pythons += [("now, " if before else "", sys.executable)]
    settings = [(f"{name}warm {w}" + (f", writer nice {n}" if len(writer_nice) > 1 else ""), python, w, n)
                for name, python in pythons for w in warm_queries for n in writer_nice]
    runs = {}
    for label, python, warm, nice in settings:
        server, url = _start_server(copy, device, work, warm, python)
        try:
            idle = {n: _measured(server, _load(url, texts, n, requests, seconds)) for n in clients}
            busy, writer = _under_updates(server, url, copy, records, texts, clients, requests, seconds, count,
                                          interval, work, device, nice)
        finally:
            server.terminate()
            server.wait(timeout=30)
        runs[label] = (idle, busy, writer)
    _tables(report, in_process, runs, count, interval)
    report.extra["raw"] = {label: {"idle": {n: _summary(r) for n, r in idle.items()},
                                   "busy": {n: _summary(r) for n, r in busy.items()}, "writer": writer}
                           for label, (idle, busy, writer) in runs.items()}
    return report


def _measured(server: subprocess.Popen, load) -> dict[str, Any]:
    """Run one load level (a coroutine), noting the server process's CPU seconds it took."""
    cpu = _cpu_seconds(server.pid)
    result = asyncio.run(load)
    result["server_cpu"] = _cpu_seconds(server.pid) - cpu
    return result


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc; NaN elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


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


def _start_server(index: Path, device: str, work: Path, warm: int = 0,
                  python: str | None = None) -> tuple[subprocess.Popen, str]:
    """`shoplens serve` as a subprocess (under `python`, this one by default); returns once /ready says the
    index is open and warm."""
    import httpx

    port = _free_port()
    log = open(work / "server.log", "w")
    server = subprocess.Popen([python or sys.executable, "-m", "shoplens", "serve", "--index", str(index), "--port", str(port),
                               "--device", device, "--follow-seconds", "0.2", "--warm-queries", str(warm)], stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 900
    while time.time() < deadline:
        if server.poll() is not None:
            raise ConfigError(f"`shoplens serve` exited with code {server.returncode}; see {work / 'server.log'}")
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                _settle(server, deadline)
                return server, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise ConfigError(f"`shoplens serve` was not ready within 15 minutes; see {work / 'server.log'}")


def _settle(server: subprocess.Popen, deadline: float) -> None:
    """Wait until the ready server's background work (rows analyzed ahead) is done: under 0.1 s of CPU
    over a second, so idle levels measure the steady state."""
    while time.time() < deadline:
        cpu = _cpu_seconds(server.pid)
        time.sleep(1.0)
        if not _cpu_seconds(server.pid) - cpu >= 0.1:  # NaN (no /proc) counts as settled
            return


async def _load(url: str, texts: list[str], clients: int, requests: int, seconds: float) -> dict[str, Any]:
    """`clients` concurrent loops over the queries until `requests` are answered or `seconds` pass."""
    import httpx

    results: list[dict[str, Any]] = []
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
                results.append(_observed(reply, elapsed))

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
    return {"results": results, "wall": wall}


def _observed(reply, elapsed: float) -> dict[str, Any]:
    """One answer: client ms, status, version, and the server's split of its time (NaN where not given):
    `queue` (waiting for a worker thread, from the Server-Timing header), `engine` (took_ms) and its stages."""
    body = reply.json() if reply.status_code == 200 else {}
    timing = {}
    for part in reply.headers.get("server-timing", "").split(","):
        name, _, duration = part.strip().partition(";dur=")
        timing[name] = float(duration) if duration else float("nan")
    stages = {name: float("nan") if value is None else value for name, value in (body.get("stages_ms") or {}).items()}
    return {"client": elapsed, "status": reply.status_code, "version": body.get("version", -1),
            "engine": body.get("took_ms", float("nan")), "queue": timing.get("queue", float("nan")), **stages}


def _under_updates(server, url, index, records, texts, clients, requests, seconds, count, interval, work, device,
                   nice: int = 0):
    """The load levels again while a writer process commits price batches; returns them and what the writer
    did meanwhile: commits, and its CPU seconds against the phase's wall seconds (its share of the cores)."""
    context = multiprocessing.get_context("spawn")
    stop, commits, cpu = context.Event(), context.Value("i", 0), context.Value("d", 0.0)
    niceness = context.Value("i", 0)
    deltas = _price_batches(records, count, work)
    writer = context.Process(target=_commit_every, args=(str(index), deltas, interval, device, stop, commits, cpu, nice, niceness))
    writer.start()
    try:
        while commits.value == 0 and writer.is_alive():  # its imports and first commit are done
            time.sleep(0.1)
        first_commits, first_cpu, started = commits.value, cpu.value, time.perf_counter()
        busy = {n: _measured(server, _load(url, texts, n, requests, seconds)) for n in clients}
        wall = time.perf_counter() - started
        done = {"commits": commits.value - first_commits, "cpu_s": cpu.value - first_cpu, "wall_s": wall,
                "niceness": niceness.value}
    finally:
        stop.set()
        writer.join()
    return busy, done


def _price_batches(records: list[dict[str, Any]], count: int, work: Path) -> list[str]:
    """Five files of `count` products' prices, the writer's templates."""
    rng = np.random.default_rng(7)
    ids = [r["id"] for r in records]
    prices = {r["id"]: r.get("price") or 100.0 for r in records}
    deltas = []
    for batch in range(5):
        picks = rng.choice(len(ids), size=min(count, len(ids)), replace=False)
        path = work / f"serve-delta-{batch}.jsonl"
        path.write_text("".join(json.dumps({"id": ids[i], "price": prices[ids[i]]}) + "\n" for i in picks.tolist()))
        deltas.append(str(path))
    return deltas


def _commit_every(index: str, deltas: list[str], interval: float, device: str, stop, commits, cpu,
                  nice: int = 0, niceness=None) -> None:
    """The writer process (at niceness +`nice`, as `update --nice`): one commit of a price-change batch every
    `interval` seconds until stopped (counting commits and its CPU seconds in the shared values)."""
    from shoplens.common.priority import lower_priority
    from shoplens.indexers.updates import apply_delta

    now = lower_priority(nice)
    if niceness is not None:
        niceness.value = now
    turn = 0
    while not stop.is_set():
        started, cpu_started = time.time(), time.process_time()
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
        with cpu.get_lock():
            cpu.value += time.process_time() - cpu_started
        stop.wait(max(0.0, interval - (time.time() - started)))


PARTS = ("outside", "queue", "engine", "encode", "lexical", "vector", "rerank")


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    """Counts, throughput, percentiles, the server's CPU per search, and the mean of each part of the
    server's time over the slowest 5% of answers (`outside`: the client's time outside the handler's
    queue and engine: HTTP, the event loop)."""
    ok = [r for r in run["results"] if r["status"] == 200]
    latencies = [r["client"] for r in ok]
    for r in ok:
        r["outside"] = r["client"] - r["engine"] - (0.0 if np.isnan(r["queue"]) else r["queue"])
    slowest = sorted(ok, key=lambda r: r["client"])[-max(1, len(ok) // 20):] if ok else []
    tail = {part: float(np.nanmean([r.get(part, np.nan) for r in slowest])) if slowest and
            not all(np.isnan(r.get(part, np.nan)) for r in slowest) else float("nan") for part in PARTS}
    return {"requests": len(run["results"]), "errors": len(run["results"]) - len(ok),
            "per_second": len(ok) / run["wall"] if run["wall"] else float("nan"), **percentiles(latencies),
            "overhead_p50": float(np.median([r["client"] - r["engine"] for r in ok])) if ok else float("nan"),
            "versions": len({r["version"] for r in ok}), "first_on_version_p50": _first_on_version(ok),
            "cpu_per_search_ms": 1000 * run.get("server_cpu", float("nan")) / max(1, len(ok)), "tail": tail}


def _first_on_version(ok: list[dict[str, Any]]) -> float:
    """Median latency of the first answer from each newly seen version (NaN when the version never changed)."""
    seen, firsts = set(), []
    for answer in ok:
        if answer["version"] not in seen:
            if seen:
                firsts.append(answer["client"])
            seen.add(answer["version"])
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
    rows, parts = [], []
    for label, (idle, busy, _) in runs.items():
        for clients in idle:
            quiet, loaded = _summary(idle[clients]), _summary(busy[clients])
            for condition, summary in (("idle", quiet), ("updating", loaded)):
                updating = condition == "updating"
                rows.append([clients, condition, label, summary["requests"], summary["errors"], summary["per_second"],
                             summary["p50"], summary["p95"], summary["p99"], summary["versions"],
                             summary["first_on_version_p50"] if updating else None,
                             summary["p99"] / quiet["p99"] if updating else None, summary["cpu_per_search_ms"]])
                parts.append([clients, condition, label, summary["p99"], *summary["tail"].values()])
    report.table(f"POST /search by concurrent clients, idle and while another process commits {count:,}-product "
                 f"price updates every {interval:g} s (ms)",
                 ["clients", "condition", "server", "requests", "errors", "searches/s", "p50", "p95", "p99",
                  "versions seen", "first answer of a new version p50", "p99 / idle p99",
                  "server CPU ms per search"], rows)
    report.table("where the slowest 5% of answers spent their time (mean ms of each part)",
                 ["clients", "condition", "server", "p99", *PARTS], parts)
    _writer_table(report, runs, count)
    report.notes.append("the server follows commits in a background thread (open, warm, answer the latest "
                        "`--warm-queries` text queries, swap), so no request opens a version")
    report.notes.append("HTTP overhead p50: the median of (client-observed latency - the engine's took_ms) per "
                        "request; parts: `outside` = client latency - queue - engine (HTTP, the event loop), `queue` "
                        "= waiting for a worker thread (the Server-Timing header; NaN from a server without it), "
                        "`engine` = took_ms, then its stages")


def _writer_table(report: Report, runs, count: int) -> None:
    rows = []
    for label, (_, _, writer) in runs.items():
        wall = writer["wall_s"] or float("nan")
        rows.append([label, writer["commits"], wall, writer["cpu_s"], writer["cpu_s"] / wall, writer.get("niceness")])
    report.table(f"the writer process during the 'updating' levels ({count:,}-product commits)",
                 ["server", "commits", "seconds", "writer CPU s", "writer cores busy", "writer niceness"], rows)
