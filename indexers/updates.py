"""Incremental changes to an index: upserts (from a delta file, or rows parsed elsewhere), deletes.

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
from shoplens.common.jsontext import loads_line
from shoplens.common.textfile import text_lines
from shoplens.indexers.catalog import RawRow, Reject, validate_rows
from shoplens.indexers.index import IndexDirectory, pause_point
from shoplens.indexers.products import ProductTable, load_products
from shoplens.indexers.progress import Progress
from shoplens.indexers.rejects import record_rejects
from shoplens.indexers.rows import iter_raw_rows
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


def apply_delta(index_path: str | Path, delta: str | Path, field_map: dict[str, list[str]] | None = None,
                strict: bool = False, device: str = "auto", progress: Progress | None = None) -> CommitReport:
    """Upsert the products of a delta file (new ones added, changed ones replaced, patches merged).

    `field_map` is a parsed map (`catalog.parse_field_map`), as for `build_index`.
    """
    delta = Path(delta)
    return apply_rows(index_path, iter_raw_rows(delta, field_map), delta.name, delta.parent.resolve(), field_map,
                      strict, device, progress, summary={"delta": str(delta)})


def apply_rows(index_path: str | Path, rows: Iterable[RawRow], source: str, base_dir: str | Path,
               field_map: dict[str, list[str]] | None = None, strict: bool = False, device: str = "auto",
               progress: Progress | None = None, summary: dict[str, Any] | None = None) -> CommitReport:
    """Upsert raw rows, `(line, row, raw[, source file])` as `rows.iter_raw_rows` yields them, as one commit.

    `apply_delta` gives a file's rows; `watch` gives the rows it batched from several files (each
    naming its file, so a reject says where it came from). `source` names the rows in messages,
    relative image paths are read from `base_dir`, `summary` is recorded in the version's change.
    The writer lock is taken before the current version is read: patches merge onto the version
    they commit on top of, so no concurrent writer's change can be lost.
    """
    index = IndexDirectory(index_path)
    index.require()
    with index.lock():
        products = load_products(index.version_path(index.current_version()) / "products")
        result = validate_rows(rows, source, Path(base_dir), field_map, existing=stored_records(products))
        pause_point("base-read")
        return _commit(index, result.products, [], "update", result.rejects, strict, source, device,
                       progress, {**(summary or {}), "rows_read": result.rows_read})


def delete_products(index_path: str | Path, ids: Iterable[str], strict: bool = False, source: str = "ids",
                    device: str = "auto", origins: dict[str, tuple[str, int]] | None = None) -> CommitReport:
    """Delete products by id; ids the index does not hold are reported (and fail the run in strict mode).

    `origins` (id -> file name and line, as `watch` batches them) says where each unknown id came from."""
    index = IndexDirectory(index_path)
    index.require()
    wanted = [str(i).strip() for i in ids if str(i).strip()]
    with index.lock():
        products = load_products(index.version_path(index.current_version()) / "products")
        pause_point("base-read")
        rejects = [_unknown_id(pid, line, origins) for line, pid in enumerate(wanted, start=1)
                   if pid not in products.docno_by_id]
        known = [pid for pid in dict.fromkeys(wanted) if pid in products.docno_by_id]
        return _commit(index, [], known, "delete", rejects, strict, source, device, None, {"requested": len(wanted)})


def _unknown_id(product_id: str, position: int, origins: dict[str, tuple[str, int]] | None) -> Reject:
    if origins and product_id in origins:
        name, line = origins[product_id]
        return Reject(line, "unknown product id", id=product_id, source=name)
    return Reject(position, "unknown product id", id=product_id)


def read_ids(path: str | Path) -> list[str]:
    """Ids to delete: one per line, or JSONL objects with an `id`. A line that is not UTF-8 text, or
    an object without a usable id, is a CatalogError naming the line (nothing is deleted); so is a file that
    holds no id at all (it "changed nothing (0 row(s) rejected)", as if its ids had been looked for)."""
    ids = [product_id for _, product_id in read_id_lines(path)]
    if not ids:
        raise CatalogError(f"{Path(path).name} holds no ids (empty, or only blank and # comment lines); nothing "
                           "was deleted; write one product id a line")
    return ids


def read_id_lines(path: str | Path) -> list[tuple[int, str]]:
    """(line number, id) of every id in an ids file, as `read_ids` reads them; blank lines and comments (a line
    that is "#" or opens with "# ") hold none."""
    path = Path(path)
    if not path.exists():
        raise CatalogError(f"ids file {path} does not exist; check the path")
    if not path.is_file():
        raise CatalogError(f"{path} is not a regular file; pass a text file of ids")
    ids = []
    for number, raw in text_lines(path, CatalogError, "give one id a line"):
        line = raw.strip()
        if not line or line == "#" or line.startswith("# "):  # blank, or a comment ("#123" stays an id)
            continue
        if "\0" in line or len(line) > 512:
            raise CatalogError(f"{path.name} line {number} is not an id (binary data or over 512 characters)")
        ids.append((number, _id_from_json(line, path, number) if line.startswith("{") else line))
    return ids


def _id_from_json(line: str, path: Path, number: int) -> str:
    try:
        value = loads_line(line)["id"]
    except (ValueError, KeyError, TypeError):
        raise CatalogError(f"{path.name} line {number}: cannot read an id from {line[:80]!r}") from None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
        raise CatalogError(f"{path.name} line {number}: the id must be text or a number")
    return str(int(value) if isinstance(value, float) and value.is_integer() else value)


def _commit(index: IndexDirectory, upserts, deletes, kind: str, rejects: list[Reject], strict: bool, source: str,
            device: str, progress: Progress | None, summary: dict[str, Any]) -> CommitReport:
    rejects_path = record_rejects(index.path, kind, source, rejects)
    if strict and rejects:
        raise CatalogError(f"{len(rejects)} bad row(s) in {source} (first: {rejects[0].describe()}); "
                           f"index left unchanged; see {rejects_path}")
    if not upserts and not deletes:
        where = f"; the rejected rows are in {rejects_path}" if rejects else ""
        raise CatalogError(f"{source} changes nothing ({len(rejects)} row(s) rejected); index left unchanged{where}")
    from shoplens.indexers.maintenance import auto_compact

    writer = IndexWriter(index, options_of(index, device), progress)
    report = writer.commit_changes(upserts, deletes, kind=kind, summary={**summary, "rejected": len(rejects)})
    report.rejects = rejects
    report.rejects_path = str(rejects_path) if rejects else None
    report.compacted = auto_compact(index)
    return report
