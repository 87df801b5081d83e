"""The Myntra catalog from ../shared, made ready to index: images extracted next to the catalog."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

from shoplens.common.errors import CatalogError

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "myntra"
FIELD_MAP = ["category=master_category,sub_category,article_type"]
ATTRIBUTION = ('Myntra "Fashion Product Images (Small)" by Param Aggarwal (Kaggle, MIT licence), '
               "44,441 real products; queries, judgments and behaviour on top of it are derived or simulated")


def prepare(work_dir: Path, shared: Path = SHARED) -> Path:
    """Extract the images (once) beside a link to the catalog; returns the catalog path to index."""
    source = shared / "products.jsonl.gz"
    if not source.is_file():
        raise CatalogError(f"the Myntra catalog is not at {shared}; pass --catalog with a catalog of your own")
    work_dir.mkdir(parents=True, exist_ok=True)
    catalog = work_dir / "products.jsonl.gz"
    if not catalog.exists():
        os.symlink(source.resolve(), catalog)
    marker = work_dir / "images" / ".complete"
    if not marker.exists():
        with tarfile.open(shared / "images.tar") as archive:
            archive.extractall(work_dir, filter="data")
        marker.touch()
    return catalog
