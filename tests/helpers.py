"""Helpers shared by tests: the bundled sample catalog and small catalog files."""

from __future__ import annotations

import json
import os
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "data" / "myntra-sample" / "products.jsonl"


def sample_products(limit: int | None = None) -> list[dict]:
    rows = [json.loads(line) for line in SAMPLE.read_text().splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def write_catalog(path: Path, rows: list[dict], absolute_images: bool = True) -> Path:
    """Write rows as JSONL; image paths made absolute so the file can live anywhere."""
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            row = dict(row)
            if absolute_images and row.get("image") and not os.path.isabs(row["image"]) and "://" not in row["image"]:
                row["image"] = str(SAMPLE.parent / row["image"])
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def write_events(path: Path, events: list) -> Path:
    """An events file: dicts as JSON lines, strings as they are (broken lines)."""
    path.write_text("\n".join(e if isinstance(e, str) else json.dumps(e) for e in events) + "\n")
    return path


def copy_index(source: Path, target: Path) -> Path:
    """A private, writable copy of an index (hard links are not kept: a real copy)."""
    shutil.copytree(source, target)
    return target


def set_modes(root: Path, writable: bool) -> None:
    """Every folder under root readable and enterable, every file readable; writable or not."""
    for path in [root, *root.rglob("*")]:
        mode = (0o755 if path.is_dir() else 0o644) if writable else (0o555 if path.is_dir() else 0o444)
        path.chmod(mode)


NOBODY = 65534


@contextmanager
def as_a_user_who_cannot_write():
    """Run the block as a user that file modes bind: the test's own user, or `nobody` when the tests run as
    root (root writes whatever the modes say). Only the effective user changes; the saved root id switches
    back. Modules the block needs must be imported before (root's Python may be private to root)."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(NOBODY)
    try:
        yield
    finally:
        os.seteuid(0)


class Hang(Exception):
    """Raised by `bounded` when a call runs past its time limit."""


@contextmanager
def bounded(seconds: float = 20.0):
    """Fail a call that takes longer than `seconds` (a hang), on the main thread, by SIGALRM."""

    def expire(signum, frame):
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def fast_ranker():
    """A reranker configuration small enough for tests (150 rounds at most, early stopping after 20)."""
    from shoplens.rerank.training import RankerConfig

    return RankerConfig(n_estimators=150, early_stopping_rounds=20, depth=100)


def trained_copy(sample_index: Path, directory: Path, config, **devdata_options):
    """A copy of the sample index with derived devdata, its simulated events folded and a reranker trained
    on the train split (validation for early stopping): (index, devdata folder, training report)."""
    from shoplens.benchmarks import devdata
    from shoplens.engine.learning import train_ranker
    from shoplens.rerank.folding import apply_events
    from shoplens.rerank.judgments import load_judgments

    index = copy_index(sample_index, directory / "index")
    dev = directory / "dev"
    devdata.build(SAMPLE, index, dev, **devdata_options)
    apply_events(index, dev / "events.simulated.jsonl")
    report = train_ranker(index, load_judgments(dev / "judgments.train.jsonl"), config,
                          validation=load_judgments(dev / "judgments.validation.jsonl"))
    return index, dev, report
