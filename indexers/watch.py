"""`shoplens watch INBOX`: keep applying delta, delete and event files as they land.

Files are recognized by name:

    *.events.jsonl[.gz]                 behaviour events
    *.delete.txt, *.deletes.txt,
    *.delete.jsonl                      ids to delete (one a line, or {"id": ...})
    *.jsonl, *.jsonl.gz, *.csv, *.parquet   product upserts (patches for known ids)

A file is read once it has not changed for `settle_seconds` (writers should
still write under another name and rename; names starting with "." or ending
in .tmp/.part are ignored). Changes wait in queues and each queue is flushed
as one commit when its time window has passed since its first change, or at
once when it holds `max_batch_rows` rows. Price and availability changes (and
deletes) have their own, shorter window, so they go live before description
edits. Files whose changes are all committed move to `processed/`; a file
that cannot be read moves to `failed/` with a `.error` note beside it.

Events belong to the reranker's behaviour aggregates, which this layer does
not know: the watcher folds them through the `fold_events` it is given
(`engine.operations.create_watcher` passes `rerank.folding.apply_events`).
Without one, events files fail with a note saying so.
"""

from __future__ import annotations

import errno
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from shoplens.common.errors import ConfigError, ShopLensError
from shoplens.indexers.catalog import CANONICAL_FIELDS, iter_raw_rows, is_broken, relative_image_path
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.products import load_products
from shoplens.indexers.updates import apply_rows, delete_products, read_id_lines

PRIORITY_PATTERN = re.compile(r"price|stock|avail|inventory|quantity|qty|discount|sizes", re.IGNORECASE)
EVENT_SUFFIXES = (".events.jsonl", ".events.jsonl.gz")
DELETE_SUFFIXES = (".delete.txt", ".deletes.txt", ".delete.jsonl", ".deletes.jsonl")
DELTA_SUFFIXES = (".jsonl", ".jsonl.gz", ".ndjson", ".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet")

# Folds events files into an index as one commit; returns a report with `version`, `folded` and `rejects`.
FoldEvents = Callable[[Path, list[Path]], Any]


def _mtime(path: Path) -> float | None:
    """A file's modification time; None for what cannot be stat-ed: a dangling link, a link loop, a file
    another process moved away meanwhile (skipped: never a crash of the watcher)."""
    try:
        return path.stat().st_mtime
    except OSError:
        return None


@dataclass
class WatchConfig:
    window_seconds: float = 10.0  # normal changes commit at most this long after the first one arrived
    priority_window_seconds: float = 1.0  # price / availability changes and deletes
    max_batch_rows: int = 5000  # a queue this full commits at once
    poll_seconds: float = 0.5
    settle_seconds: float = 0.5
    field_map: dict[str, list[str]] = field(default_factory=dict)  # parsed, as `catalog.parse_field_map` makes it

    def validate(self) -> None:
        """Windows and polling are finite, non-negative seconds (at most a day); a batch holds 1+ rows."""
        for name, value in (("--window", self.window_seconds), ("--priority-window", self.priority_window_seconds),
                            ("--poll", self.poll_seconds), ("settle", self.settle_seconds)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or not 0 <= value <= 86400:
                raise ConfigError(f"{name} must be a number of seconds from 0 to 86400, got {value}")
        if isinstance(self.max_batch_rows, bool) or not isinstance(self.max_batch_rows, int) \
                or not 1 <= self.max_batch_rows <= 10_000_000:
            raise ConfigError(f"--max-rows must be a whole number from 1 to 10,000,000, got {self.max_batch_rows}")


@dataclass
class _Queue:
    name: str
    window: float
    rows: dict[str, Any] = field(default_factory=dict)  # id -> merged raw row, or a broken row (upserts)
    origins: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # id -> (file name, line, raw text)
    ids: dict[str, None] = field(default_factory=dict)  # deletes
    files: list[Path] = field(default_factory=list)  # events files
    first_at: float | None = None
    sources: set[Path] = field(default_factory=set)

    def size(self) -> int:
        return len(self.rows) + len(self.ids) + len(self.files)

    def clear(self) -> None:
        self.rows, self.origins, self.ids, self.files, self.first_at, self.sources = {}, {}, {}, [], None, set()


def classify(name: str) -> str | None:
    lowered = name.lower()
    if lowered.startswith(".") or lowered.endswith((".tmp", ".part", ".rejects.jsonl", ".error")):
        return None
    if lowered.endswith(EVENT_SUFFIXES):
        return "events"
    if lowered.endswith(DELETE_SUFFIXES):
        return "deletes"
    if lowered.endswith(DELTA_SUFFIXES):
        return "upserts"
    return None


def _check_apart(inbox: Path, index: Path) -> None:
    """The inbox must be neither the index's folder, nor inside it, nor hold it: the watcher moves what lands in
    its inbox into processed/ and failed/, and an index's own files are never deltas."""
    inbox, index = inbox.resolve(), index.resolve()
    if inbox == index or index in inbox.parents or inbox in index.parents:
        where = "is the index's folder" if inbox == index else \
            ("is inside the index" if index in inbox.parents else "holds the index")
        raise ShopLensError(f"inbox {inbox} {where} ({index}); give a folder of its own, outside the index, "
                            "e.g. shop.inbox beside it")


def _make_folders(inbox: Path) -> None:
    """processed/ and failed/ in the inbox, which the watcher must be able to write: it moves every file it
    has read into one of them (an inbox this user cannot write ended the watcher in a PermissionError
    traceback, or, with the folders already there, after a batch was committed, its files left to be read
    again)."""
    try:
        for folder in (inbox, inbox / "processed", inbox / "failed"):
            folder.mkdir(exist_ok=True)
            if not os.access(folder, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
                raise PermissionError(errno.EACCES, "Permission denied", str(folder))
    except OSError as exc:
        raise ConfigError(f"cannot write in the inbox folder {exc.filename or inbox} ({exc.strerror or exc}); the "
                          "watcher moves each file it reads into processed/ or failed/ there: make the inbox "
                          "writable for this user, or pass another") from None


class Watcher:
    """Polls an inbox and turns what lands there into batched commits."""

    def __init__(self, index_path: str | Path, inbox: str | Path, config: WatchConfig | None = None,
                 on_commit: Callable[[dict[str, Any]], None] | None = None, clock: Callable[[], float] = time.monotonic,
                 fold_events: FoldEvents | None = None):
        (config or WatchConfig()).validate()
        self.index = IndexDirectory(index_path)
        self.index.require()
        self.inbox = Path(inbox)
        if not self.inbox.is_dir():
            raise ShopLensError(f"inbox {self.inbox} is not a directory; create it or pass another one")
        _check_apart(self.inbox, self.index.path)
        self.config = config or WatchConfig()
        self.field_map = self.config.field_map
        self.on_commit = on_commit or (lambda report: None)
        self.fold_events = fold_events
        self.clock = clock
        self.queues = {
            "priority": _Queue("priority", self.config.priority_window_seconds),
            "normal": _Queue("normal", self.config.window_seconds),
            "deletes": _Queue("deletes", self.config.priority_window_seconds),
            "events": _Queue("events", self.config.window_seconds),
        }
        self.pending_files: dict[Path, int] = {}  # file -> queues still holding its changes
        self.seen: dict[Path, tuple[float, int]] = {}
        self.commits: list[dict[str, Any]] = []
        _make_folders(self.inbox)

    # -- discovering files --------------------------------------------------------------

    def ready_files(self) -> list[Path]:
        """Files that have not changed for settle_seconds and were not picked up yet."""
        ready = []
        now = time.time()
        stamps = {path: _mtime(path) for path in self.inbox.iterdir()}
        for path in sorted((p for p, t in stamps.items() if t is not None), key=lambda p: (stamps[p], p.name)):
            if not path.is_file() or path in self.pending_files or classify(path.name) is None:
                continue
            if now - stamps[path] >= self.config.settle_seconds:
                ready.append(path)
        return ready

    def ingest(self, path: Path) -> None:
        kind = classify(path.name)
        try:
            if kind == "events" and self.fold_events is None:
                self._fail(path, "this watcher folds no behaviour events; run `shoplens watch` to fold them")
            elif kind == "events":
                self._enqueue(self.queues["events"], path, files=[path])
            elif kind == "deletes":
                self._ingest_deletes(path)
            else:
                self._ingest_upserts(path)
        except ShopLensError as exc:
            self._fail(path, str(exc))

    def _ingest_upserts(self, path: Path) -> None:
        products = load_products(self.index.version_path(self.index.current_version()) / "products")
        priority, normal, broken = {}, {}, {}
        image_key = self.field_map.get("image", ["image"])[0]
        id_keys = self.field_map.get("id", ["id"])
        for line, row, raw in iter_raw_rows(path, self.field_map):
            if is_broken(row):
                broken[f"\0{path}:{line}"] = (row, (path.name, line, raw))  # rejected with its line at commit
                continue
            row = dict(row)
            image = row.get(image_key)
            if relative_image_path(image):  # against this file's folder; validation reports the rest as it is
                row[image_key] = str((path.parent / image.strip()).resolve())
            product_id = next((str(row[k]).strip() for k in id_keys if row.get(k) is not None), None)
            if product_id is None:
                normal[f"\0{path}:{line}"] = (row, (path.name, line, ""))  # let validation report it
                continue
            named = self._canonical_names(row) - {"id"}
            is_priority = product_id in products.docno_by_id and named and all(
                name == "price" or (name not in CANONICAL_FIELDS and PRIORITY_PATTERN.search(name)) for name in named)
            target = priority if is_priority else normal
            target[product_id] = ({**target.get(product_id, ({}, None))[0], **row}, (path.name, line, ""))
        if not priority and not normal:
            first = next(iter(broken.values()), None)
            self._fail(path, "no usable rows" + (f" (line {first[1][1]}: {is_broken(first[0])})" if first else ""))
            return
        if priority:
            self._enqueue(self.queues["priority"], path, rows=priority)
        if normal or broken:
            self._enqueue(self.queues["normal"], path, rows={**normal, **broken})

    def _ingest_deletes(self, path: Path) -> None:
        """A deletes file's ids join the deletes queue. One that holds none (empty, or only blank and comment
        lines: an export on a day nothing was withdrawn) is done with at once, said in one line: it had sat in
        the inbox unmoved and unmentioned, or moved with a batch it took no part in."""
        ids = read_id_lines(path)
        if ids:
            self._enqueue(self.queues["deletes"], path, ids=ids)
            return
        self._move(path, "processed")
        record = {"queue": "deletes", "file": path.name, "version": None,
                  "note": "holds no ids (empty, or only blank and # comment lines); nothing to delete"}
        self.commits.append(record)
        self.on_commit(record)

    def _canonical_names(self, row: dict[str, Any]) -> set[str]:
        names = set()
        mapped_sources = {source for sources in self.field_map.values() for source in sources}
        for canonical, sources in self.field_map.items():
            if any(source in row for source in sources):
                names.add(canonical)
        names |= {key for key in row if key not in mapped_sources}
        return names

    def _enqueue(self, queue: _Queue, path: Path, rows=None, ids=None, files=None) -> None:
        for key, (row, origin) in (rows or {}).items():
            queue.rows[key] = {**queue.rows.get(key, {}), **row} if isinstance(row, dict) else row
            queue.origins[key] = origin  # (file name, line, raw text): the last file to change the row
        for line, pid in ids or []:
            queue.ids[pid] = None
            queue.origins[pid] = (path.name, line, "")
        queue.files.extend(files or [])
        if queue.first_at is None:
            queue.first_at = self.clock()
        queue.sources.add(path)
        self.pending_files[path] = self.pending_files.get(path, 0) + 1

    # -- committing ---------------------------------------------------------------------

    def due(self, force: bool = False) -> list[_Queue]:
        now = self.clock()
        order = ("deletes", "priority", "normal", "events")  # availability first
        return [self.queues[name] for name in order if self.queues[name].size() and (
            force or now - self.queues[name].first_at >= self.queues[name].window
            or self.queues[name].size() >= self.config.max_batch_rows)]

    def flush(self, queue: _Queue) -> dict[str, Any]:
        started = self.clock()
        record: dict[str, Any] = {"queue": queue.name, "files": sorted(p.name for p in queue.sources),
                                  "waited_s": round(started - queue.first_at, 3)}
        try:
            if queue.name == "events":
                report = self.fold_events(self.index.path, list(queue.files))
                record.update(version=report.version, events=report.folded, rejected=len(report.rejects))
            elif queue.name == "deletes":
                report = delete_products(self.index.path, list(queue.ids), source=", ".join(record["files"]),
                                         origins={pid: queue.origins[pid][:2] for pid in queue.ids})
                record.update(version=report.version, deleted=report.deleted, rejected=len(report.rejects))
            else:
                report = self._apply_upserts(queue, record["files"])
                record.update(version=report.version, added=report.added, updated=report.updated,
                              unchanged=report.unchanged, rejected=len(report.rejects))
            if getattr(report, "rejects", None):
                record["rejects_path"] = str(report.rejects_path)
        except ShopLensError as exc:
            record.update(version=None, error=str(exc))
        record["seconds"] = round(self.clock() - started, 3)
        for path in queue.sources:
            self.pending_files[path] -= 1
            if self.pending_files[path] == 0:
                del self.pending_files[path]
                self._move(path, "processed")
        queue.clear()
        self.commits.append(record)
        self.on_commit(record)
        return record

    def _apply_upserts(self, queue: _Queue, files: list[str]):
        """One commit of the queue's rows, each naming the file and line it came from (no file in between)."""
        rows = [(queue.origins[key][1], row, queue.origins[key][2], queue.origins[key][0])
                for key, row in queue.rows.items()]
        return apply_rows(self.index.path, rows, ", ".join(files), self.inbox, field_map=self.field_map,
                          summary={"files": files})

    def _move(self, path: Path, folder: str) -> None:
        if path.exists():
            shutil.move(str(path), str(self.inbox / folder / path.name))

    def _fail(self, path: Path, reason: str) -> None:
        self._move(path, "failed")
        (self.inbox / "failed" / (path.name + ".error")).write_text(reason + "\n")
        record = {"queue": "failed", "file": path.name, "error": reason, "version": None}
        self.commits.append(record)
        self.on_commit(record)

    def step(self, force: bool = False) -> list[dict[str, Any]]:
        """Pick up ready files and commit every due queue once; returns what happened (commits, failures)."""
        start = len(self.commits)
        for path in self.ready_files():
            self.ingest(path)
        for queue in self.due(force):
            self.flush(queue)
        return self.commits[start:]

    def run(self, once: bool = False, stop: Callable[[], bool] | None = None) -> list[dict[str, Any]]:
        """Loop until stopped (Ctrl-C), or with `once` process what is there and return."""
        if once:
            deadline = time.time() + self.config.settle_seconds
            while time.time() < deadline:
                time.sleep(min(0.1, self.config.poll_seconds))
            self.step(force=True)
            return self.commits
        while not (stop and stop()):
            self.step()
            time.sleep(self.config.poll_seconds)
        self.step(force=True)
        return self.commits
