"""Versions, rollback, compaction and consistency checks of an index."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pyarrow as pa

from shoplens.common.errors import ConfigError, IndexCorruptError
from shoplens.indexers.catalog import Product
from shoplens.indexers.encoders.base import text_digest
from shoplens.indexers.images import file_digest
from shoplens.indexers.encoders.cache import EmbeddingCache
from shoplens.indexers.index import COMPONENTS, IndexDirectory
from shoplens.indexers.lexical import lexical_store_class
from shoplens.indexers.lexical.base import lexical_document
from shoplens.indexers.products import load_products, write_products
from shoplens.indexers.snapshot import Snapshot
from shoplens.indexers.storage import link_tree
from shoplens.indexers.vector import vector_store_class
from shoplens.indexers.writer import VERSION_KEYS, document_vectors, embedding_text

# a check of a component another layer writes into a version; it adds what it finds to the report
ComponentCheck = Callable[[Snapshot, "CheckReport"], None]
DEFAULT_COMPACT_SHARE = 0.3  # compact automatically when dead rows exceed this share of all rows


def list_versions(index_path: str | Path) -> list[dict[str, Any]]:
    """Committed versions still on disk, newest first, with what each one changed."""
    index = IndexDirectory(index_path)
    current = index.current_version()
    rows = []
    for number in reversed(index.committed_versions()):
        try:  # one damaged old version must not hide the others
            manifest = index.manifest(number)
            rows.append({"version": number, "current": number == current, "kind": str(manifest["kind"]),
                         "created_at": str(manifest["created_at"]), "parent": manifest.get("parent"),
                         "products": int(manifest["counts"]["products"]), "change": dict(manifest.get("change") or {}),
                         "description": describe_version(manifest)})
        except (IndexCorruptError, KeyError, TypeError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, IndexCorruptError) else f"manifest lacks {exc}"
            rows.append({"version": number, "current": number == current, "kind": "unreadable", "created_at": "",
                         "parent": None, "products": None, "change": {}, "error": reason})
    return rows


def describe_version(manifest: dict[str, Any]) -> str:
    """What a version did, in words: index / update N / delete N / events N / ranker trained / rollback / ..."""
    kind, change = manifest["kind"], manifest.get("change") or {}

    def count(key: str) -> int:
        return int(change.get(key) or 0)

    if kind == "build":
        catalog = Path(change["catalog"]).name if change.get("catalog") else "a catalog"
        return f"index {catalog}: {manifest['counts']['products']:,} products"
    if kind in ("update", "delete"):
        parts = [f"{count(k):,} {word}" for k, word in (("added", "added"), ("updated", "changed"),
                                                        ("deleted", "deleted")) if count(k)]
        source = Path(str(change.get("delta") or "")).name or ", ".join(change.get("files") or [])
        head = f"update {count('added') + count('updated'):,} products" if kind == "update" else f"delete {count('deleted'):,}"
        return head + (f" from {source}" if source else "") + f" ({', '.join(parts) or 'no change'})"
    if kind == "events":
        files = ", ".join(change.get("files") or [])
        return f"events {count('events'):,}" + (f" from {files}" if files else "")
    if kind == "ranker":
        source = str((manifest.get("ranker") or {}).get("source") or "")
        origin, _, name = source.partition(":")
        what = {"judgments": "judgments", "events": "events"}.get(origin, origin or "unknown data")
        return f"ranker trained from {what}" + (f" in {name}" if name else "")
    if kind == "rollback":
        to, source = change.get("rolled_back_to"), change.get("rolled_back_from")
        undone = f"{to + 1}" if source == to + 1 else f"{to + 1}-{source}"
        return f"rollback to {to} (undoes version{'s' if source != to + 1 else ''} {undone})"
    if kind == "compact":
        return f"compaction: {count('rows_before'):,} rows -> {count('rows_after'):,}"
    if kind == "settings":
        return f"keep {change.get('keep_versions')} versions"
    return kind


def rollback(index_path: str | Path, version: int, component_checks: Sequence[ComponentCheck] = ()) -> int:
    """Make an earlier version current again, as a new version (history stays linear).

    The target must pass `check_index` (with `component_checks`, see there) first."""
    index = IndexDirectory(index_path)
    with index.lock():
        current = index.current_version()
        if version == current:
            raise ConfigError(f"version {version} is already the current version")
        if version not in index.committed_versions():
            kept = ", ".join(str(v) for v in index.committed_versions())
            raise ConfigError(f"version {version} is not kept in {index.path} (kept: {kept}); see `shoplens versions`")
        target = check_index(index.path, version=version, component_checks=component_checks)
        if not target.ok:
            raise IndexCorruptError(f"version {version} fails its consistency check ({target.problems[0]}); "
                                    "nothing restored; pick another version from `shoplens versions`")
        source = index.version_path(version)
        txn = index.begin("rollback", damaged_parent=True)  # the way out of a current version that is gone
        try:
            for component in COMPONENTS:
                if (source / component).exists():
                    link_tree(source / component, txn.tmp / component)
            manifest = {k: v for k, v in index.manifest(version).items() if k not in VERSION_KEYS}
            manifest["change"] = {"rolled_back_to": version, "rolled_back_from": current}
            return txn.commit(manifest, keep=manifest.get("keep_versions", 10))
        except BaseException:
            txn.abort()
            raise


def set_retention(index_path: str | Path, keep: int) -> int:
    """Keep the last `keep` versions from now on (recorded in a new version, which also prunes)."""
    if not 1 <= keep <= 1000:
        raise ConfigError(f"--keep must be from 1 to 1000, got {keep}")
    index = IndexDirectory(index_path)
    with index.lock():
        txn = index.begin("settings")
        try:
            for component in COMPONENTS:
                txn.carry_over(component)
            manifest = {k: v for k, v in txn.parent_manifest.items() if k not in VERSION_KEYS}
            manifest["keep_versions"] = keep
            manifest["change"] = {"keep_versions": keep}
            return txn.commit(manifest, keep=keep)
        except BaseException:
            txn.abort()
            raise


@dataclass
class CompactReport:
    version: int | None
    rows_before: int
    rows_after: int
    bytes_before: int = 0
    bytes_after: int = 0

    def to_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def dead_share(index: IndexDirectory) -> float:
    counts = index.manifest()["counts"]
    return 1.0 - counts["products"] / counts["rows"] if counts["rows"] else 0.0


def auto_compact(index_path: str | Path | IndexDirectory, share: float = DEFAULT_COMPACT_SHARE,
                 min_rows: int = 1000) -> CompactReport | None:
    """Compact when dead rows exceed `share` of a store of at least `min_rows` rows (under the caller's
    lock when given the caller's IndexDirectory)."""
    index = index_path if isinstance(index_path, IndexDirectory) else IndexDirectory(index_path)
    with index.lock():
        counts = index.manifest()["counts"]
        if counts["rows"] >= min_rows and dead_share(index) > share:
            return compact(index)
    return None


def compact(index_path: str | Path | IndexDirectory, force: bool = True) -> CompactReport:
    """Rewrite every store from the live rows only (no encoding: stored vectors are reused)."""
    from shoplens.indexers.storage import directory_size

    index = index_path if isinstance(index_path, IndexDirectory) else IndexDirectory(index_path)
    with index.lock():
        manifest = index.manifest()
        rows_before = manifest["counts"]["rows"]
        if not force and manifest["counts"]["products"] == rows_before:
            return CompactReport(None, rows_before, rows_before)
        parent = index.version_path(index.current_version())
        bytes_before = directory_size(parent)
        txn = index.begin("compact")
        try:
            products = load_products(parent / "products")
            live = products.live_docnos()
            table = products.table.take(live)
            table = table.set_column(table.column_names.index("docno"), "docno",
                                     pa.array(np.arange(len(live), dtype=np.int64)))
            segment = f"{txn.version:06d}"
            write_products(txn.component_dir("products"), None, table, np.ones(len(live), bool),
                           f"seg-{segment}.parquet")
            backends = manifest["backends"]
            vector_cls = vector_store_class(backends["vector"]["backend"])
            text, image, has_image = vector_cls.read_rows(parent / "vectors")
            vector_state = vector_cls.write(txn.component_dir("vectors"), None, text[live], image[live], has_image[live],
                                            segment, dict(backends["vector"]))
            textvec_summary, stores = {}, [(vector_state, text[live], image[live], has_image[live])]
            if "textvec" in backends and (parent / "textvec").is_dir():
                native, native_image, native_has = vector_cls.read_rows(parent / "textvec")
                textvec_state = vector_cls.write(txn.component_dir("textvec"), None, native[live], native_image[live],
                                                 native_has[live], segment, dict(backends["textvec"]))
                textvec_summary = {"textvec": vector_cls.summarize(textvec_state)}
                stores.append((textvec_state, native[live], native_image[live], native_has[live]))
            lexical_cls = lexical_store_class(backends["lexical"]["backend"])
            records = [json.loads(r) for r in table.column("record").to_pylist()]
            adds = [(i, lexical_document(Product.from_record(r))) for i, r in enumerate(records)]
            for (_, fields), vectors in zip(adds, document_vectors(vector_cls, stores)):
                fields["vectors"] = vectors
            lexical_cls.write(txn.component_dir("lexical"), None, adds, [], dict(backends["lexical"]))
            for component in ("spelling", "behaviour", "ranker"):
                txn.carry_over(component)
            new_manifest = {k: v for k, v in manifest.items() if k not in VERSION_KEYS}
            new_manifest["backends"] = {**backends, "vector": vector_cls.summarize(vector_state), **textvec_summary}
            new_manifest["counts"] = {**manifest["counts"], "rows": int(len(live))}
            new_manifest["change"] = {"rows_before": rows_before, "rows_after": int(len(live))}
            version = txn.commit(new_manifest, keep=manifest.get("keep_versions", 10))
        except BaseException:
            txn.abort()
            raise
    return CompactReport(version, rows_before, int(len(live)), bytes_before,
                         directory_size(index.version_path(version)))


@dataclass
class CheckReport:
    version: int
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "ok": self.ok, "problems": self.problems, "warnings": self.warnings,
                "facts": self.facts}


MAX_DEEP = 10_000


def _does_not_open(version: int, exc: Exception) -> str:
    """The problem of a version that cannot be opened; this is the check its error points to, so it says what
    gets out of it (it said "run `shoplens check`" again)."""
    reason = str(exc).split("; run `shoplens check`")[0]
    return (f"version {version} does not open: {reason}; restore a kept version with `shoplens rollback VERSION` "
            "(see `shoplens versions`)")


def check_index(index_path: str | Path, deep: int = 0, version: int | None = None, seed: int = 0,
                component_checks: Sequence[ComponentCheck] = ()) -> CheckReport:
    """Verify that every store of a version holds the same products, and that embeddings match content.

    `deep` re-encodes that many random products and compares with the stored vectors.
    `component_checks` check the components other layers write into a version (the reranker's
    behaviour aggregates and model); each adds what it finds to the report.
    """
    if not 0 <= deep <= MAX_DEEP:  # each re-encodes a product (its photo too): 10,000 is about an hour on a CPU
        raise ConfigError(f"--deep must be from 0 to {MAX_DEEP:,} (products to re-encode), got {deep}")
    index = IndexDirectory(index_path)
    if version is not None and version not in index.committed_versions():
        kept = ", ".join(str(v) for v in index.committed_versions())
        raise ConfigError(f"version {version} is not kept in {index.path} (kept: {kept}); see `shoplens versions`")
    version = index.current_version() if version is None else version
    report = CheckReport(version)
    try:
        manifest = index.manifest(version)
        snapshot = Snapshot.open(index, version, device="cpu")
    except (IndexCorruptError, OSError, ValueError, KeyError, RuntimeError) as exc:
        report.problems.append(_does_not_open(version, exc))
        return report
    products, vectors, lexical = snapshot.products, snapshot.vectors, snapshot.lexical
    live = products.live_docnos()
    report.facts = {"products": int(len(live)), "rows": products.num_rows, "vector_rows": vectors.num_rows,
                    "lexical_documents": lexical.num_docs()}
    counts = manifest["counts"]
    if counts["products"] != len(live):
        report.problems.append(f"manifest says {counts['products']} products, the product store has {len(live)} live")
    if counts["rows"] != products.num_rows:
        report.problems.append(f"manifest says {counts['rows']} rows, the product store has {products.num_rows}")
    if vectors.num_rows != products.num_rows:
        report.problems.append(f"vector store has {vectors.num_rows} rows, product store {products.num_rows}")
    ids = products.table.column("id").to_pylist()
    if len({ids[d] for d in live}) != len(live):
        report.problems.append("a product id is live in more than one row")
    held = lexical.all_docnos()
    if lexical.physical_deletes:
        if not np.array_equal(np.sort(held), live):
            missing = np.setdiff1d(live, held)
            extra = np.setdiff1d(held, live)
            report.problems.append(f"lexical store differs from the product store: {len(missing)} live product(s) "
                                   f"missing, {len(extra)} dead or unknown row(s) present")
    elif len(np.setdiff1d(live, held)):
        report.problems.append(f"lexical store lacks {len(np.setdiff1d(live, held))} live product(s)")
    report.problems.extend(p for store in (vectors, snapshot.text_native) if store for p in store.check_documents(live))

    records = products.records(live)
    text_hashes = products.column_values("text_hash", live)
    mismatched = [r["id"] for r, h in zip(records, text_hashes) if text_digest(embedding_text(Product.from_record(r))) != h]
    if mismatched:
        report.problems.append(f"{len(mismatched)} product(s) whose text no longer matches its content hash "
                               f"(first: {mismatched[0]})")
    _check_embeddings_against_cache(index, manifest, products, vectors, live, report)
    _check_image_files(products, live, records, report)
    if deep:
        _check_by_reencoding(manifest, vectors, live, records, deep, seed, report)
    for check_component in component_checks:
        check_component(snapshot, report)
    return report


def _check_embeddings_against_cache(index, manifest, products, vectors, live, report) -> None:
    model = manifest["model"]
    namespace = f"{model['name']}|{model['weights_id']}"
    path = index.cache_dir / "embeddings.sqlite"
    if not path.exists():
        report.warnings.append("no embedding cache: stored embeddings cannot be compared with content hashes")
        return
    cache = EmbeddingCache(path)
    try:
        stored = vectors.vectors(live)
        for kind, column, flags in (("text", "text_hash", None), ("image", "image_hash", stored["has_image"])):
            hashes = products.column_values(column, live)
            cached = cache.get_many(f"{namespace}|{kind}", [h for h in hashes if h])
            differ = unknown = 0
            for row, digest in enumerate(hashes):
                if not digest or (flags is not None and not flags[row]):
                    continue
                if digest not in cached:
                    unknown += 1
                elif not np.allclose(cached[digest], stored[kind][row], atol=1e-5):
                    differ += 1
            if differ:
                report.problems.append(f"{differ} stored {kind} embedding(s) differ from the embedding of their content hash")
            if unknown:
                report.warnings.append(f"{unknown} {kind} embedding(s) have no cache entry to compare with")
        report.facts["embeddings_checked"] = int(len(live))
    finally:
        cache.close()


def _check_image_files(products, live, records, report) -> None:
    hashes = products.column_values("image_hash", live)
    changed = missing = 0
    for record, digest in zip(records, hashes):
        if not digest or not record.get("image"):
            continue
        try:
            if file_digest(record["image"]) != digest:
                changed += 1
        except (OSError, ValueError):  # ImageError: no longer a regular file, or over the size limit
            missing += 1
    if changed:
        report.warnings.append(f"{changed} image file(s) changed on disk since indexing; `shoplens update` re-encodes them")
    if missing:
        report.warnings.append(f"{missing} image file(s) are gone from disk (their stored embeddings stay valid)")


def _check_by_reencoding(manifest, vectors, live, records, sample, seed, report) -> None:
    from shoplens.indexers.encoders import create_encoder

    model = manifest["model"]
    encoder = create_encoder(model["name"], model.get("pretrained"), "cpu")
    rows = random.Random(seed).sample(range(len(live)), min(sample, len(live)))
    stored = vectors.vectors(live[rows])
    texts = encoder.encode_texts([embedding_text(Product.from_record(records[r])) for r in rows])
    similarity = np.sum(texts * stored["text"], axis=1)
    bad = int((similarity < 0.999).sum())
    images_checked = 0
    for i, r in enumerate(rows):
        if stored["has_image"][i] and records[r].get("image") and Path(records[r]["image"]).is_file():
            vector, failures = encoder.encode_images([records[r]["image"]])
            images_checked += 1
            if not failures and float(vector[0] @ stored["image"][i]) < 0.999:
                bad += 1
    report.facts["reencoded"] = {"texts": len(rows), "images": images_checked}
    if bad:
        report.problems.append(f"{bad} of {len(rows)} re-encoded product(s) do not match their stored embeddings")
