"""Fold events files into an index: validated events become one new version of its behaviour aggregates.

The commit goes through the index writer's component hook
(`indexers.writer.replace_component`): only the `behaviour` component
changes, the stores are carried over. Rejected lines are appended to the
index's rejects file (`indexers.rejects`), each naming its events file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoplens.common.errors import EventsError
from shoplens.indexers.index import IndexDirectory, pause_point
from shoplens.indexers.products import load_products
from shoplens.indexers.rejects import record_rejects
from shoplens.indexers.writer import replace_component
from shoplens.rerank.behaviour import fold, summary
from shoplens.rerank.behaviour_store import load, save
from shoplens.rerank.events import EVENT_TYPES, EventBatch, EventReject, concat, read_events


@dataclass
class EventsReport:
    """What folding did: the new version (None when nothing was folded), counts, and the rejected lines."""

    version: int | None
    folded: int
    rejects: list[EventReject]
    by_type: dict[str, int]
    seconds: float
    events_per_second: float
    rejects_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "folded": self.folded, "by_type": self.by_type,
                "rejects": [r.to_json() for r in self.rejects], "rejects_path": self.rejects_path,
                "seconds": round(self.seconds, 3), "events_per_second": round(self.events_per_second, 1)}


def apply_events(index_path: str | Path, events_paths: str | Path | list, strict: bool = False,
                 force: bool = False) -> EventsReport:
    """Validate events files and fold them into the index's aggregates as one new version.

    A file already folded (same content) is refused, or skipped when several
    files come together (a watcher restarting after a crash).
    """
    started = time.perf_counter()
    paths = [Path(p) for p in (events_paths if isinstance(events_paths, list) else [events_paths])]
    index = IndexDirectory(index_path)
    index.require()
    with index.lock():  # before reading the known ids: the fold commits on the version they came from
        current = index.version_path(index.current_version())
        known = set(load_products(current / "products").docno_by_id)
        batches = [read_events(path, known_ids=known) for path in paths]
        pause_point("base-read")
        report = _fold_and_commit(index, paths, batches, strict, force, started)
    if report.version is None and not isinstance(events_paths, list):  # one file, as the CLI gives
        raise EventsError(_nothing_valid(paths[0], report))
    return report


def _nothing_valid(path: Path, report: EventsReport) -> str:
    if not report.rejects:
        return f"{path.name} has no events; nothing folded (one JSON event per line: {{ts, type, id, ...}})"
    return (f"{path.name} has no valid events ({len(report.rejects)} line(s) rejected, first: "
            f"{report.rejects[0].describe()}); nothing folded; see {report.rejects_path}")


def _fold_and_commit(index: IndexDirectory, paths: list[Path], batches: list[EventBatch], strict: bool, force: bool,
                     started: float) -> EventsReport:
    rejects = [r for b in batches for r in b.rejects]
    rejects_path = None
    for path, batch in zip(paths, batches):
        if batch.rejects:
            rejects_path = str(record_rejects(index.path, "events", path.name, batch.rejects))
    if strict and rejects:
        raise EventsError(f"{len(rejects)} bad event line(s) in {', '.join(p.name for p in paths)} "
                          f"(first: {rejects[0].describe()}); nothing folded; see {rejects_path}")
    result: dict[str, Any] = {}

    def write(target: Path, parent: Path | None) -> None:
        stats = load(parent)
        fresh = [b for b in batches if force or b.digest not in stats.state["files"]]
        if len(fresh) < len(batches) and len(batches) == 1:
            raise EventsError(f"{paths[0].name} was already folded into this index; pass --force to count it again")
        batch = concat(fresh) if fresh else None
        if batch is None or len(batch) == 0:
            raise _NothingToFold()
        stats = fold(stats, batch)
        stats.state["files"].extend(batch.digests)
        result["stats"], result["batch"] = stats, batch
        save(stats, target)

    try:
        version = replace_component(index, "behaviour", "events", write,
                                    lambda: {"behaviour": summary(result["stats"])},
                                    change={"events": sum(len(b) for b in batches), "rejected": len(rejects),
                                            "files": [p.name for p in paths]})
    except _NothingToFold:
        return EventsReport(None, 0, rejects, {name: 0 for name in EVENT_TYPES}, time.perf_counter() - started, 0.0,
                            rejects_path)
    batch = result["batch"]
    by_type = {name: int((batch.kind == i).sum()) for i, name in enumerate(EVENT_TYPES)}
    seconds = time.perf_counter() - started
    return EventsReport(version, len(batch), rejects, by_type, seconds, len(batch) / seconds, rejects_path)


class _NothingToFold(Exception):
    pass
