"""Helpers shared by tests: the bundled sample catalog and small catalog files."""

from __future__ import annotations

import json
import os
import shutil
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
            if absolute_images and row.get("image") and not os.path.isabs(row["image"]):
                row["image"] = str(SAMPLE.parent / row["image"])
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def copy_index(source: Path, target: Path) -> Path:
    """A private, writable copy of an index (hard links are not kept: a real copy)."""
    shutil.copytree(source, target)
    return target
