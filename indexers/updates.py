"""Incremental changes to an index: upserts from a delta file, deletes, compaction.

Each call is one commit through `IndexWriter`: only new content is encoded,
a price or stock change touches no encoder, and the new version becomes
current only when every store has been written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from shoplens.common.errors import CatalogError
from shoplens.indexers.catalog import Reject, read_catalog, write_rejects
from shoplens.indexers.index import IndexDirectory, pause_point
from shoplens.indexers.products import ProductTable, load_products
from shoplens.indexers.progress import Progress
from shoplens.indexers.writer import CommitReport, IndexWriter, WriteOptions


def options_of(index: IndexDirectory, device: str = "auto") -> WriteOptions:
    """Write options that reproduce how the index was built (model, weights, retention)."""
    manifest = index.manifest()
    model = manifest["model"]
    return WriteOptions(model=model["name"], pretrained=model.get("pretrained"), device=device,
                        keep_versions=manifest.get("keep_versions", 10))


def stored_records(products: ProductTable):
    """A lookup id -> stored record of live products (parsed on demand)."""

    def lookup(product_id: str) -> dict[str, Any] | None:
        docno = products.docno_by_id.get(product_id)
        if docno is None:
            return None
        return json.loads(products.column_values("record", np.array([docno]))[0])

    return lookup


def rejects_path_for(index: IndexDirectory) -> Path:
    return Path(str(index.path).rstrip("/") + ".rejects.jsonl")


def apply_delta(index_path: str | Path, delta: str | Path, field_map: dict[str, list[str]] | None = None,
                strict: bool = False, device: str = "auto", progress: Progress | None = None) -> CommitReport:
    """Upsert the products of a delta file (new ones added, changed ones replaced, patches merged).

    The writer lock is taken before the current version is read: patches merge onto the
    version they commit on top of, so no concurrent writer's change can be lost. `field_map` is a
    parsed map (`catalog.parse_field_map`), as for `build_index`.
    """
    index = IndexDirectory(index_path)
    index.require()
    with index.lock():
        products = load_products(index.version_path(index.current_version()) / "products")
        result = read_catalog(delta, field_map, existing=stored_records(products))
        pause_point("base-read")
        return _commit(index, result.products, [], "update", result.rejects, strict, Path(delta).name, device,
                       progress, {"delta": str(delta), "rows_read": result.rows_read})


def delete_products(index_path: str | Path, ids: Iterable[str], strict: bool = False, source: str = "ids",
                    device: str = "auto") -> CommitReport:
    """Delete products by id; ids the index does not hold are reported (and fail the run in strict mode)."""
    index = IndexDirectory(index_path)
    index.require()
    wanted = [str(i).strip() for i in ids if str(i).strip()]
    with index.lock():
        products = load_products(index.version_path(index.current_version()) / "products")
        pause_point("base-read")
        rejects = [Reject(line, "unknown product id", id=pid) for line, pid in enumerate(wanted, start=1)
                   if pid not in products.docno_by_id]
        known = [pid for pid in dict.fromkeys(wanted) if pid in products.docno_by_id]
        return _commit(index, [], known, "delete", rejects, strict, source, device, None, {"requested": len(wanted)})


def read_ids(path: str | Path) -> list[str]:
    """Ids to delete: one per line, or JSONL objects with an `id`. A line that is not UTF-8 text, or
    an object without a usable id, is a CatalogError naming the line (nothing is deleted)."""
    path = Path(path)
    if not path.exists():
        raise CatalogError(f"ids file {path} does not exist; check the path")
    if not path.is_file():
        raise CatalogError(f"{path} is not a regular file; pass a text file of ids")
    ids = []
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
            except UnicodeDecodeError:
                raise CatalogError(f"{path.name} line {number} is not UTF-8 text; give one id a line") from None
            if not line:
                continue
            if "\0" in line or len(line) > 512:
                raise CatalogError(f"{path.name} line {number} is not an id (binary data or over 512 characters)")
            ids.append(_id_from_json(line, path, number) if line.startswith("{") else line)
    return ids


def _id_from_json(line: str, path: Path, number: int) -> str:
    try:
        value = json.loads(line)["id"]
    except (ValueError, KeyError, TypeError, RecursionError):
        raise CatalogError(f"{path.name} line {number}: cannot read an id from {line[:80]!r}") from None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
        raise CatalogError(f"{path.name} line {number}: the id must be text or a number")
    return str(int(value) if isinstance(value, float) and value.is_integer() else value)


def _commit(index: IndexDirectory, upserts, deletes, kind: str, rejects: list[Reject], strict: bool, source: str,
            device: str, progress: Progress | None, summary: dict[str, Any]) -> CommitReport:
    rejects_path = rejects_path_for(index)
    if rejects:
        write_rejects(rejects_path, rejects)
    if strict and rejects:
        raise CatalogError(f"{len(rejects)} bad row(s) in {source} (first: {rejects[0].describe()}); "
                           f"index left unchanged; see {rejects_path}")
    if not upserts and not deletes:
        raise CatalogError(f"{source} changes nothing ({len(rejects)} row(s) rejected); index left unchanged")
    from shoplens.indexers.maintenance import auto_compact

    writer = IndexWriter(index, options_of(index, device), progress)
    report = writer.commit_changes(upserts, deletes, kind=kind, summary={**summary, "rejected": len(rejects)})
    report.rejects = rejects
    report.rejects_path = str(rejects_path) if rejects else None
    report.compacted = auto_compact(index)
    return report
