"""`shoplens bench updates`: incremental updates against rebuilding, event folding, searching during writes.

Runs on a copy of an index. For 1,000 changed products of each kind (price
only, title, image) it times `update` until an already-open engine returns the
change, against rebuilding the index from the same catalog (cold: encoding
everything again, and warm: every embedding from the cache). Then it folds an
events file, and measures search latency while another process commits
batches of price changes (as `shoplens update` or `watch` would beside a
running shell or service).
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from shoplens.benchmarks.common import Report, percentiles
from shoplens.benchmarks.devdata import Catalog, generate_queries
from shoplens.common.errors import ConfigError
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.indexers.catalog import Product, parse_field_map
from shoplens.indexers.encoders import create_encoder
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.updates import apply_delta
from shoplens.indexers.writer import WriteOptions, build_index
from shoplens.rerank.folding import apply_events


def cold_build_seconds(report_path: Path) -> float:
    """The whole-build seconds of a saved `shoplens bench index` report."""
    try:
        report = json.loads(Path(report_path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the index benchmark report {report_path}: {exc}; "
                          "save one with `shoplens bench index --save FILE`") from exc
    seconds = (report.get("summary") or {}).get("build_s")
    for table in report.get("tables", []):
        for row in table.get("rows", []):
            if seconds is None and row and str(row[0]).startswith("whole build"):
                seconds = row[1]
    if not isinstance(seconds, (int, float)):
        raise ConfigError(f"{report_path} is not a `shoplens bench index` report (no whole-build time in it)")
    return float(seconds)


def _changed_rows(records: list[dict[str, Any]], kind: str, work: Path, count: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    if kind == "image":  # only products with a photo on disk can get a new one (a text-only product has none)
        records = [r for r in records if r.get("image") and Path(r["image"]).is_file()]
        (work / "images").mkdir(parents=True, exist_ok=True)
    picks = rng.choice(len(records), size=min(count, len(records)), replace=False)
    rows = []
    for i in picks.tolist():
        record = records[i]
        if kind == "price":
            rows.append({"id": record["id"], "price": round((record.get("price") or 100) * 0.9, 2)})
        elif kind == "title":
            rows.append({"id": record["id"], "title": f"{record['title']} New Season {seed}"})
        else:  # a new photo: the old one mirrored, so its bytes (and embedding) are new
            from PIL import Image, ImageOps

            target = (work / "images" / f"{record['id']}-{seed}.jpg").resolve()
            with Image.open(record["image"]) as image:
                ImageOps.mirror(image.convert("RGB")).save(target, quality=90)
            rows.append({"id": record["id"], "image": str(target)})
    return rows


def _write_delta(rows: list[dict[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run(index: Path, work: Path, count: int = 1000, events: Path | None = None, rebuild_catalog: Path | None = None,
        field_map: list[str] | None = None, cold_rebuild_s: float | None = None, device: str = "auto",
        command: str = "", searches: int = 300) -> Report:
    copy, engine = _open_copy(index, work, device)
    records = engine.snapshot.products.records(engine.snapshot.products.live_docnos())
    report = Report(title="Incremental updates", data=f"a copy of {index} ({len(records):,} products)", command=command)
    try:
        timings = _update_to_searchable(report, engine, copy, records, work, count, device)
        if rebuild_catalog is not None:
            _against_rebuilding(report, timings, index, rebuild_catalog, work, parse_field_map(field_map or []),
                                cold_rebuild_s, device)
        if events is not None:
            result = apply_events(copy, events, force=True)
            report.table("folding behaviour events", ["file", "events", "seconds", "events/s"],
                         [[events.name, result.folded, result.seconds, result.events_per_second]])
        _latency_during_writes(report, engine, copy, records, work, count, device, searches)
    finally:
        engine.close()
    report.extra["timings"] = timings
    return report


def _open_copy(index: Path, work: Path, device: str) -> tuple[Path, SearchEngine]:
    """A private copy of the index and an engine open on it, its encoder loaded as in a running service."""
    copy = work / "index"
    if copy.exists():
        shutil.rmtree(copy)
    work.mkdir(parents=True, exist_ok=True)
    shutil.copytree(index, copy)
    model = IndexDirectory(copy).manifest()["model"]
    create_encoder(model["name"], model.get("pretrained"), device)  # loaded once, as in a running service
    return copy, SearchEngine(copy, device=device)


def _update_to_searchable(report: Report, engine: SearchEngine, copy: Path, records: list[dict[str, Any]],
                          work: Path, count: int, device: str) -> dict[str, float]:
    """Seconds from `update` to the open engine returning the change, per kind of change."""
    rows = []
    timings: dict[str, float] = {}
    for seed, kind in enumerate(("price", "title", "image"), start=1):
        changed = _changed_rows(records, kind, work, count, seed)
        if not changed:  # no product has a photo: nothing to time for new photos
            continue
        delta = _write_delta(changed, work / f"delta-{kind}.jsonl")
        probe = changed[0]
        started = time.perf_counter()
        commit = apply_delta(copy, delta, device=device)
        committed = time.perf_counter()
        engine.refresh()
        follow = time.perf_counter() - committed
        response = engine.search(SearchRequest(text="x", k=1, filters=[f"id={probe['id']}"], rerank=False))
        searchable = time.perf_counter() - started
        record = engine.snapshot.products.records([engine.snapshot.products.docno_by_id[probe["id"]]])[0]
        if not response.results or any(record.get(k) != v for k, v in probe.items() if k != "id"):
            raise RuntimeError(f"the {kind} change of {probe['id']} is not visible after the update")
        timings[kind] = searchable
        rows.append([f"{len(changed):,} {kind} changes", searchable, commit.texts_encoded, commit.images_encoded,
                     commit.seconds.get("encode", 0.0), commit.seconds.get("total", 0.0), follow])
    report.table("update to searchable (in-process, encoder already loaded), seconds",
                 ["change", "update -> searchable s", "texts encoded", "images encoded", "encode s", "commit s",
                  "open engine follows s"], rows)
    return timings


def _against_rebuilding(report: Report, timings: dict[str, float], index: Path, catalog: Path, work: Path,
                        field_map: dict[str, list[str]], cold_rebuild_s: float | None, device: str) -> None:
    """Each update's time against a warm rebuild (every embedding cached) and a cold one (measured elsewhere)."""
    warm_dir = work / "rebuild-warm"
    if warm_dir.exists():
        shutil.rmtree(warm_dir)
    shutil.copytree(IndexDirectory(index).cache_dir, IndexDirectory(warm_dir).cache_dir)
    started = time.perf_counter()
    build_index(catalog, warm_dir, WriteOptions(device=device), field_map)
    warm = time.perf_counter() - started
    shutil.rmtree(warm_dir, ignore_errors=True)
    comparison = []
    for kind, seconds in timings.items():
        line = [f"{kind} update", seconds, warm, warm / seconds]
        line += [cold_rebuild_s, cold_rebuild_s / seconds] if cold_rebuild_s else [None, None]
        comparison.append(line)
    report.table("against rebuilding the whole index from the catalog",
                 ["update", "update s", "warm rebuild s", "warm / update", "cold rebuild s", "cold / update"],
                 comparison)
    report.notes.append("warm rebuild: every embedding from the cache (no encoding); cold rebuild: "
                        "the encode-everything build time measured by `shoplens bench index`")


def _latency_during_writes(report: Report, engine: SearchEngine, copy: Path, records: list[dict[str, Any]],
                           work: Path, count: int, device: str, searches: int) -> None:
    """Search latency idle, then while another process commits batches of price changes."""
    texts = [q.text for q, _ in generate_queries(Catalog([Product.from_record(r) for r in records]), searches, seed=17)]
    requests = [SearchRequest(text=t, rerank=False) for t in texts]
    for request in requests[:10]:
        engine.search(request)
    idle, _ = _timed_searches(engine, requests)
    deltas = [_write_delta(_changed_rows(records, "price", work, count, 100 + batch), work / f"delta-busy-{batch}.jsonl")
              for batch in range(20)]
    context = multiprocessing.get_context("spawn")
    stop, commits = context.Event(), context.Value("i", 0)
    writer = context.Process(target=_commit_loop, args=(str(copy), [str(d) for d in deltas], device, stop, commits))
    writer.start()
    try:
        while commits.value == 0 and writer.is_alive():  # the writer's first commit: its imports are done
            time.sleep(0.05)
        busy, versions = _timed_searches(engine, requests + requests)
    finally:
        stop.set()
        writer.join()
    if writer.exitcode:
        raise RuntimeError(f"the writer process failed (exit code {writer.exitcode})")
    report.table("search latency while another process commits updates (ms, one client)",
                 ["condition", "searches", "p50", "p95", "p99", "versions seen"],
                 [["idle", len(idle), *percentiles(idle).values(), 1],
                  [f"during {commits.value} commits of {count:,} price changes", len(busy),
                   *percentiles(busy).values(), len(versions)]])


def _timed_searches(engine: SearchEngine, requests: list[SearchRequest]) -> tuple[list[float], set[int]]:
    """Milliseconds of each search, one after another, and the index versions they answered from."""
    times, versions = [], set()
    for request in requests:
        t0 = time.perf_counter()
        versions.add(engine.search(request).version)
        times.append((time.perf_counter() - t0) * 1000)
    return times, versions


def _commit_loop(index: str, deltas: list[str], device: str, stop, commits) -> None:
    """The writer process: apply the delta files in turn, one commit each, until told to stop.

    Each turn moves the prices by another cent, so no commit repeats an earlier one.
    """
    turn = 0
    while not stop.is_set():
        template = Path(deltas[turn % len(deltas)])
        rows = [json.loads(line) for line in template.read_text().splitlines()]
        for row in rows:
            row["price"] = round(row["price"] + 0.01 * (turn + 1), 2)
        apply_delta(Path(index), _write_delta(rows, template.with_name("delta-busy-now.jsonl")), device=device)
        turn += 1
        with commits.get_lock():
            commits.value += 1
