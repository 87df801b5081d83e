"""Writing an index: full builds and incremental changes, each one atomic commit.

Every write goes through `IndexWriter.commit_changes`: it works out which
rows are new, changed, unchanged or deleted, encodes only content it has never
seen (the embedding cache is keyed by content hash and model), writes every
store of the new version and commits them together.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from shoplens.common.errors import CatalogError, ConfigError, ImageError, IndexCorruptError, ModelMismatchError
from shoplens.indexers.catalog import Product, Reject, read_catalog
from shoplens.indexers.encoders import DEFAULT_MODEL, create_encoder, ensure_export, resolve_runtime, weights_identity
from shoplens.indexers.encoders.base import Encoder, EncoderInfo, text_digest
from shoplens.indexers.encoders.cache import EmbeddingCache
from shoplens.indexers.images import file_digest, not_found_reason
from shoplens.indexers.index import COMPONENTS, DEFAULT_KEEP_VERSIONS, IndexDirectory, Transaction, crash_point
from shoplens.indexers.lexical import lexical_store_class
from shoplens.indexers.lexical.base import NEW_INDEX_IDF, lexical_document
from shoplens.indexers.products import RowMeta, load_products, products_table, write_products
from shoplens.indexers.progress import NoProgress, Progress
from shoplens.indexers.rejects import record_rejects
from shoplens.indexers.spelling import write_vocabulary
from shoplens.indexers.vector import vector_store_class


@dataclass
class WriteOptions:
    """How an index is built; recorded in the manifest so later writes reuse it."""

    model: str = DEFAULT_MODEL
    pretrained: str | None = None
    device: str = "auto"
    lexical_backend: str = "tantivy"
    lexical_config: dict[str, Any] = field(default_factory=dict)
    vector_backend: str = "faiss"
    vector_config: dict[str, Any] = field(default_factory=dict)  # kind, image_weight, hnsw_m, ...
    keep_versions: int = DEFAULT_KEEP_VERSIONS
    text_batch_size: int = 256
    image_batch_size: int = 64
    encoder_runtime: str = "auto"  # what serves queries: onnx (exported at index time) or torch


@dataclass
class ImageProblem:
    id: str
    path: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "image": self.path, "reason": self.reason}


@dataclass
class CommitReport:
    """What one write did."""

    version: int | None  # None when nothing changed and no version was committed
    kind: str
    products: int  # live products after the commit
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    texts_encoded: int = 0
    images_encoded: int = 0
    embeddings_reused: int = 0
    image_problems: list[ImageProblem] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    rejects_path: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    compacted: Any = None  # a maintenance.CompactReport when the write was followed by compaction

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version, "kind": self.kind, "products": self.products, "added": self.added,
            "updated": self.updated, "unchanged": self.unchanged, "deleted": self.deleted,
            "texts_encoded": self.texts_encoded, "images_encoded": self.images_encoded,
            "embeddings_reused": self.embeddings_reused,
            "image_problems": [p.to_json() for p in self.image_problems],
            "rejects": [r.to_json() for r in self.rejects], "rejects_path": self.rejects_path,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "compacted": self.compacted.to_dict() if self.compacted else None,
        }


CACHE_CHUNK = 2048
MAX_KEEP_VERSIONS = 1000


def embedding_text(product: Product) -> str:
    """The text a product's text embedding is computed from (what the heads were trained on)."""
    return product.title


NATIVE_TEXT_CHARS = 600  # MiniLM reads 256 tokens at most; key fields come first
NATIVE_ATTRIBUTE_CHARS = 40  # longer attribute values are prose, not key facts
NATIVE_ATTRIBUTES = 12


def native_text(product: Product) -> str:
    """The text of a product's text-native embedding: title, brand, category path and key attributes.

    Key attributes are short textual values (colour, material, size, usage,
    ...), the facts shoppers type; long values and descriptions are prose the
    BM25 side reads better.
    """
    parts = [product.title, product.brand, " ".join(product.category)]
    facts = []
    for value in product.attributes.values():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, str) and 0 < len(item) <= NATIVE_ATTRIBUTE_CHARS and item not in facts:
                facts.append(item)
    parts.append(" ".join(facts[:NATIVE_ATTRIBUTES]))
    return ". ".join(part for part in parts if part)[:NATIVE_TEXT_CHARS]


def image_digest(path: str | None) -> tuple[str | None, str | None]:
    """(content hash, problem) of a product image; reading bytes is cheap, decoding happens at encode time."""
    if not path:
        return None, None
    try:
        return file_digest(path), None
    except FileNotFoundError:
        return None, not_found_reason(path)
    except ImageError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"cannot read image: {exc.strerror or exc}"


@dataclass
class _Change:
    """What a write changes against its parent version: rows that die, products that get a new row."""

    report: "CommitReport"
    live: np.ndarray
    base_rows: int
    deleted_docnos: list[int]
    new_products: list[Product]
    metas: list[RowMeta]
    problems: list[ImageProblem]


class IndexWriter:
    """Writes versions of one index. Holds the encoder lazily: a write that needs no encoding never loads it."""

    def __init__(self, index: IndexDirectory | str | Path, options: WriteOptions | None = None,
                 progress: Progress | None = None, encoder: Encoder | None = None):
        self.index = index if isinstance(index, IndexDirectory) else IndexDirectory(index)
        self.options = options or WriteOptions()
        self.progress = progress or NoProgress()
        self._encoder = encoder

    # -- encoder and cache -------------------------------------------------------

    def encoder(self) -> Encoder:
        if self._encoder is None:
            self._encoder = create_encoder(self.options.model, self.options.pretrained, self.options.device)
        return self._encoder

    def _model_identity(self, parent_manifest: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        """The cache namespace and manifest entry of this write's model, loading it only when the index has no record."""
        if parent_manifest is not None and self._same_model_as(parent_manifest["model"]):
            model = parent_manifest["model"]
            return f"{model['name']}|{model['weights_id']}", model
        info = self.encoder().info
        return f"{info.name}|{info.weights_id}", info.to_dict()

    def _same_model_as(self, recorded: dict[str, Any]) -> bool:
        """Whether the options name the model an index was built with (weights compared by content)."""
        _, weights_id = weights_identity(self.options.model, self.options.pretrained)
        return recorded["name"] == self.options.model and recorded["weights_id"] == weights_id

    # -- the one write path -------------------------------------------------------

    def commit_changes(self, upserts: list[Product], delete_ids: list[str], kind: str, rebuild: bool = False,
                       summary: dict[str, Any] | None = None) -> CommitReport:
        """Apply upserts and deletes as one new version (or build from scratch when rebuild)."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        with self.index.lock(create=rebuild):
            parent_version = self.index.current_version() if self.index.exists() else None
            txn = self.index.begin(kind)
            try:
                report = self._write(txn, upserts, delete_ids, kind, rebuild or parent_version is None, timings, summary)
                if report.version is None:
                    txn.abort()
                timings["total"] = time.perf_counter() - started
                report.seconds = timings
                return report
            except FileNotFoundError as exc:
                txn.abort()
                self._missing_parent_file(exc, parent_version)
                raise
            except BaseException:
                txn.abort()
                raise

    def _missing_parent_file(self, exc: FileNotFoundError, parent_version: int | None) -> None:
        """A file of the version a write builds on is gone (a damaged index): one line, not a traceback."""
        if parent_version is None or not exc.filename:
            return
        parent = self.index.version_path(parent_version)
        if Path(exc.filename).is_relative_to(parent):
            raise IndexCorruptError(f"version {parent_version} of {self.index.path} is damaged: "
                                    f"{Path(exc.filename).relative_to(parent)} is missing; nothing was written; run "
                                    "`shoplens check`, or `shoplens rollback` to a good version") from None

    def _write(self, txn: Transaction, upserts, delete_ids, kind, rebuild, timings, summary) -> CommitReport:
        parent_manifest = txn.parent_manifest
        if not rebuild and parent_manifest is not None and not self._same_model_as(parent_manifest["model"]):
            recorded = parent_manifest["model"]
            raise ModelMismatchError(
                f"the index was built with {recorded['name']} ({recorded.get('pretrained')}); "
                f"updates must use the same model, or rebuild with `shoplens index`"
            )
        namespace, model_info = self._model_identity(parent_manifest)
        cache = EmbeddingCache(self.index.cache_dir / "embeddings.sqlite")
        try:
            return self._write_with_cache(txn, upserts, delete_ids, kind, rebuild, timings, summary, cache,
                                          namespace, model_info)
        finally:
            cache.close()

    def _write_with_cache(self, txn, upserts, delete_ids, kind, rebuild, timings, summary, cache, namespace, model_info):
        """One commit: diff against the parent, write every store, then the manifest."""
        step = time.perf_counter()
        change = self._diff(txn, upserts, delete_ids, kind, rebuild)
        timings["diff"] = time.perf_counter() - step
        report, live = change.report, change.live
        if not rebuild and not change.new_products and not change.deleted_docnos:  # nothing changed: no version
            report.version, report.products = None, int(live.sum())
            return report
        stores = self._write_stores(txn, change, rebuild, timings, cache, namespace, model_info)
        step = time.perf_counter()
        report.version = txn.commit(self._manifest(txn, change, stores, model_info, summary),
                                    keep=self.options.keep_versions)
        timings["commit"] = time.perf_counter() - step
        report.products = int(change.live.sum())
        return report

    def _diff(self, txn, upserts, delete_ids, kind, rebuild) -> "_Change":
        """Which rows die and which products need a new row (with their content hashes)."""
        parent_products = None
        if txn.parent is not None:
            parent_products = load_products(txn.parent_dir("products"))
        base_rows = 0 if rebuild or parent_products is None else parent_products.num_rows
        live = np.zeros(0, bool) if rebuild or parent_products is None else parent_products.live.copy()
        report = CommitReport(version=txn.version, kind=kind, products=0)

        # which rows die, which products need a row
        deleted_docnos: list[int] = []
        new_products: list[Product] = []
        previous: dict[str, tuple[str, str | None, float | None]] = {}
        if parent_products is not None:
            if not rebuild:
                for product_id in delete_ids:
                    docno = parent_products.docno_by_id.get(product_id)
                    if docno is not None and live[docno]:
                        live[docno] = False
                        deleted_docnos.append(docno)
                        report.deleted += 1
            ids = [p.id for p in upserts if p.id in parent_products.docno_by_id]
            rows = np.array([parent_products.docno_by_id[i] for i in ids], dtype=np.int64)
            columns = [parent_products.column_values(name, rows) for name in ("record", "image_hash", "first_seen")]
            previous = {i: values for i, *values in zip(ids, *columns)}

        metas: list[RowMeta] = []
        problems: list[ImageProblem] = []
        for product in upserts:
            digest_text = text_digest(embedding_text(product))
            digest_image, problem = image_digest(product.image)
            if problem:
                problems.append(ImageProblem(product.id, product.image or "", problem))
            first_seen = None
            if product.id in previous:
                old_record, old_image_hash, first_seen = previous[product.id]
                same = old_record == json.dumps(product.to_record(), ensure_ascii=False) and old_image_hash == digest_image
                if rebuild:  # every product gets a row in a rebuild; the report still says what changed
                    report.unchanged += same
                    report.updated += not same
                elif same:
                    report.unchanged += 1
                    continue
                else:
                    docno = parent_products.docno_by_id[product.id]
                    live[docno] = False
                    deleted_docnos.append(docno)
                    report.updated += 1
            else:
                report.added += 1
            new_products.append(product)
            metas.append(RowMeta(text_hash=digest_text, image_hash=digest_image, first_seen=first_seen))
        if rebuild and parent_products is not None:
            new_ids = {p.id for p in new_products}
            report.deleted = sum(1 for i in parent_products.docno_by_id if i not in new_ids)
        return _Change(report, live, base_rows, deleted_docnos, new_products, metas, problems)

    def _write_stores(self, txn, change: "_Change", rebuild: bool, timings, cache, namespace, model_info) -> dict:
        """Embeddings (cache first, the encoder only for content never seen), then every store's new segment."""
        report, new_products, metas = change.report, change.new_products, change.metas
        step = time.perf_counter()
        text_vectors, image_vectors, has_image = self._embeddings(new_products, metas, cache, namespace, report,
                                                                  change.problems)
        timings["encode"] = time.perf_counter() - step
        dim = int(model_info["dim"])
        if text_vectors.shape[0] == 0:
            text_vectors = np.zeros((0, dim), np.float32)
            image_vectors = np.zeros((0, dim), np.float32)
        for meta, ok in zip(metas, has_image):
            if not ok:
                meta.image_hash = None
        report.image_problems = change.problems

        segment = f"{txn.version:06d}"
        change.live = np.concatenate([change.live, np.ones(len(new_products), bool)])
        parent_for_stores = None if rebuild else txn.parent

        step = time.perf_counter()
        table = products_table(new_products, metas, change.base_rows) if new_products else None
        write_products(txn.component_dir("products"), None if rebuild else txn.parent_dir("products"),
                       table, change.live, f"seg-{segment}.parquet")
        timings["products"] = time.perf_counter() - step
        crash_point("products-written")

        step = time.perf_counter()
        backends = self._backends(txn.parent_manifest, rebuild)
        vector_cls = vector_store_class(backends["vector"]["backend"])
        vector_state = vector_cls.write(txn.component_dir("vectors"),
                                        None if parent_for_stores is None else txn.parent_dir("vectors"),
                                        text_vectors, image_vectors, has_image, segment, backends["vector"])
        timings["vectors"] = time.perf_counter() - step
        crash_point("vectors-written")

        step = time.perf_counter()
        textvec_state, native = self._write_text_native(txn, new_products, cache, namespace, backends, rebuild,
                                                        parent_for_stores, segment, report)
        timings["textvec"] = time.perf_counter() - step
        carried = document_vectors(vector_cls, [(vector_state, text_vectors, image_vectors, has_image),
                                                (textvec_state, native, None, None)])
        lexical_cls = self._write_lexical(txn, change, backends, parent_for_stores, timings, carried)
        write_vocabulary(txn.component_dir("spelling"), None if parent_for_stores is None else txn.parent_dir("spelling"),
                         new_products)
        return {"backends": backends, "vector_cls": vector_cls, "vector_state": vector_state,
                "textvec_state": textvec_state, "lexical_cls": lexical_cls}

    def _write_lexical(self, txn, change: "_Change", backends, parent_for_stores, timings, carried=None):
        """The lexical store's new documents; `carried`, per new row, the vectors its document holds too."""
        step = time.perf_counter()
        lexical_cls = lexical_store_class(backends["lexical"]["backend"])
        adds = [(change.base_rows + i, lexical_document(p)) for i, p in enumerate(change.new_products)]
        for (_, fields), vectors in zip(adds, carried or ()):
            fields["vectors"] = vectors
        advance = self.progress.stage("lexical index", len(adds))
        lexical_cls.write(txn.component_dir("lexical"),
                          None if parent_for_stores is None else txn.parent_dir("lexical"),
                          adds, change.deleted_docnos, backends["lexical"])
        advance(len(adds))
        timings["lexical"] = time.perf_counter() - step
        crash_point("lexical-written")
        return lexical_cls

    def _manifest(self, txn, change: "_Change", stores: dict, model_info, summary) -> dict[str, Any]:
        """The new version's manifest; behaviour is carried over, the reranker only when the model is the same."""
        report, live, backends = change.report, change.live, stores["backends"]
        vector_cls, lexical_cls = stores["vector_cls"], stores["lexical_cls"]
        parent_model = (txn.parent_manifest or {}).get("model") or {}
        same_model = parent_model.get("weights_id") == model_info["weights_id"]
        txn.carry_over("behaviour")
        if same_model:  # a reranker learned another model's similarities: it does not survive a model change
            txn.carry_over("ranker")
        textvec_state = stores["textvec_state"]
        return {
            "model": model_info,
            "backends": {
                "vector": vector_cls.summarize(stores["vector_state"]),
                **({"textvec": vector_cls.summarize(textvec_state)} if textvec_state else {}),
                "lexical": lexical_cls.manifest_config({**backends["lexical"], "backend": lexical_cls.name}),
                "encoder": self._encoder_backend(backends, model_info),
            },
            "counts": {"products": int(live.sum()), "rows": int(len(live)),
                       "with_image": int((vector_cls.image_flags(txn.component_dir("vectors")) & live).sum())},
            "change": {"added": report.added, "updated": report.updated, "unchanged": report.unchanged,
                       "deleted": report.deleted, "texts_encoded": report.texts_encoded,
                       "images_encoded": report.images_encoded, **(summary or {})},
            "keep_versions": self.options.keep_versions,
            "ranker": (txn.parent_manifest or {}).get("ranker") if same_model else None,
            "behaviour": (txn.parent_manifest or {}).get("behaviour"),
        }

    def _text_native_enabled(self, backends: dict[str, Any], rebuild: bool) -> bool:
        """An index keeps the text-native store it was built with; a build adds one when the model has a text tower."""
        if "textvec" in backends:
            return True
        if not rebuild or not self.options.vector_config.get("text_native", True):
            return False
        return self.encoder().native_dim is not None

    def _write_text_native(self, txn: Transaction, products: list[Product], cache: EmbeddingCache, namespace: str,
                           backends: dict[str, Any], rebuild: bool, parent_for_stores, segment: str,
                           report: CommitReport) -> tuple[dict[str, Any] | None, np.ndarray | None]:
        """The third store: each product's text-native embedding, same rows, versions and deletes as `vectors`.
        Returns its state and the new rows' embeddings (None, None for a model without a text tower)."""
        if not self._text_native_enabled(backends, rebuild):
            return None, None
        native_ns = namespace + "|native"
        texts = [native_text(p) for p in products]
        digests = [text_digest(t) for t in texts]
        cached = cache.get_many(native_ns, digests)
        todo = list({d: i for i, d in reversed(list(enumerate(digests))) if d not in cached}.values())
        if todo:
            advance = self.progress.stage("encoding product texts (text-native)", len(todo))
            for start in range(0, len(todo), CACHE_CHUNK):
                part = todo[start:start + CACHE_CHUNK]
                _, vectors = self.encoder().encode_texts_native([texts[i] for i in part],
                                                                batch_size=self.options.text_batch_size,
                                                                progress=advance)
                fresh = {digests[i]: v for i, v in zip(part, vectors)}
                cache.put_many(native_ns, fresh.items())
                cached.update(fresh)
            # not added to report.texts_encoded, which counts the joint-space texts a change re-encodes
        dim = len(next(iter(cached.values()))) if cached else int(backends.get("textvec", {}).get("dim") or
                                                                     self.encoder().native_dim)
        native = np.stack([cached[d] for d in digests]).astype(np.float32) if products else np.zeros((0, dim), np.float32)
        config = {**backends["vector"], **backends.get("textvec", {}), "image_weight": 0.0, "channel": "native"}
        vector_cls = vector_store_class(config["backend"])
        parent_dir = None if parent_for_stores is None else txn.parent_dir("textvec")
        state = vector_cls.write(txn.component_dir("textvec"), parent_dir, native, np.zeros_like(native),
                                 np.zeros(len(native), bool), segment, config)
        return state, native

    def _encoder_backend(self, backends: dict[str, dict[str, Any]], model_info: dict[str, Any]) -> dict[str, Any]:
        """The query encoder's runtime; for onnx (and onnx-int8), the export is made now (once per model identity)."""
        runtime = resolve_runtime(backends.get("encoder", {}).get("runtime"), model_info["name"])
        if not runtime.startswith("onnx"):
            return {"runtime": runtime}
        directory = ensure_export(self.index.path, model_info, self.encoder)
        return {"runtime": runtime, "export": str(directory.relative_to(self.index.path))}

    def _backends(self, parent_manifest: dict[str, Any] | None, rebuild: bool) -> dict[str, dict[str, Any]]:
        """Backends and their settings: the parent's for incremental writes, the options' for builds."""
        if parent_manifest is not None and not rebuild:
            return {name: dict(cfg) for name, cfg in parent_manifest["backends"].items()}
        vector = {"backend": self.options.vector_backend, **self.options.vector_config}
        lexical = {"backend": self.options.lexical_backend, "idf": NEW_INDEX_IDF, **self.options.lexical_config}
        if vector["backend"] in CLUSTER_BACKENDS and lexical["backend"] != vector["backend"]:
            raise ConfigError(f"vectors on {vector['backend']} live in the lexical store's documents; "
                              f"use lexical_backend={vector['backend']!r} (--lexical {vector['backend']})")
        return {"vector": vector, "lexical": lexical, "encoder": {"runtime": self.options.encoder_runtime}}

    def _embeddings(self, products: list[Product], metas: list[RowMeta], cache: EmbeddingCache, namespace: str,
                    report: CommitReport, problems: list[ImageProblem]):
        n = len(products)
        text_ns, image_ns = namespace + "|text", namespace + "|image"
        text_cached = cache.get_many(text_ns, [m.text_hash for m in metas])
        image_cached = cache.get_many(image_ns, [m.image_hash for m in metas if m.image_hash])
        text_todo = [i for i, m in enumerate(metas) if m.text_hash not in text_cached]
        image_todo = [i for i, m in enumerate(metas) if m.image_hash and m.image_hash not in image_cached]
        report.embeddings_reused = (n - len(text_todo)) + sum(1 for m in metas if m.image_hash) - len(image_todo)

        chunk = CACHE_CHUNK  # encode in chunks, each written to the cache: a killed build resumes where it stopped
        if text_todo:
            unique: dict[str, int] = {}
            for i in text_todo:
                unique.setdefault(metas[i].text_hash, i)
            order = list(unique.values())
            advance = self.progress.stage("encoding texts", len(order))
            for start in range(0, len(order), chunk):
                part = order[start:start + chunk]
                vectors = self.encoder().encode_texts([embedding_text(products[i]) for i in part],
                                                      batch_size=self.options.text_batch_size, progress=advance)
                fresh = {metas[i].text_hash: v for i, v in zip(part, vectors)}
                cache.put_many(text_ns, fresh.items())
                text_cached.update(fresh)
            report.texts_encoded = len(order)
        failed: set[int] = set()
        if image_todo:
            unique = {}
            for i in image_todo:
                unique.setdefault(metas[i].image_hash, i)
            order = list(unique.values())
            advance = self.progress.stage("encoding images", len(order))
            reasons: dict[str, str] = {}
            for start in range(0, len(order), chunk):
                part = order[start:start + chunk]
                vectors, failures = self.encoder().encode_images([products[i].image for i in part],
                                                                 batch_size=self.options.image_batch_size,
                                                                 progress=advance)
                bad = {metas[part[f.index]].image_hash: f.reason for f in failures}
                reasons.update(bad)
                fresh = {metas[i].image_hash: v for i, v in zip(part, vectors) if metas[i].image_hash not in bad}
                cache.put_many(image_ns, fresh.items())
                image_cached.update(fresh)
                report.images_encoded += len(fresh)
            for i in image_todo:
                if metas[i].image_hash in reasons:
                    failed.add(i)
                    problems.append(ImageProblem(products[i].id, products[i].image or "", reasons[metas[i].image_hash]))
        if n == 0:
            return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32), np.zeros(0, bool)
        dim = len(next(iter(text_cached.values())))
        text = np.stack([text_cached[m.text_hash] for m in metas]).astype(np.float32)
        image = np.zeros((n, dim), np.float32)
        has_image = np.zeros(n, bool)
        for i, m in enumerate(metas):
            if m.image_hash and i not in failed and m.image_hash in image_cached:
                image[i] = image_cached[m.image_hash]
                has_image[i] = True
        return text, image, has_image


def build_index(catalog: str | Path, index_path: str | Path, options: WriteOptions | None = None,
                field_map: dict[str, list[str]] | None = None, strict: bool = False,
                progress: Progress | None = None, encoder: Encoder | None = None) -> CommitReport:
    """Index a whole catalog as a new version (a fresh build, or a rebuild replacing the current version).

    Bad rows are skipped and appended to `<index>.rejects.jsonl` next to the index
    (`indexers.rejects`); with `strict`, any bad row fails the run and the index is untouched.
    """
    index = IndexDirectory(index_path)
    index.check_buildable()  # before the catalog is read, or a rejects file written beside the index
    progress = progress or NoProgress()
    result = read_catalog(catalog, field_map)
    rejects_path = record_rejects(index.path, "catalog", result.path.name, result.rejects)
    if strict and result.rejects:
        first = result.rejects[0]
        raise CatalogError(
            f"{len(result.rejects)} bad row(s) in {result.path.name} (first: {first.describe()}); "
            f"index left unchanged; see {rejects_path}"
        )
    if not result.rows_read:  # no rejects file was written: there is nothing in it to see
        raise CatalogError(f"{result.path.name} holds no product rows (empty, blank lines or a header only); "
                           "give a catalog with one product a row")
    if not result.products:
        raise CatalogError(f"{result.path.name} has no valid products ({len(result.rejects)} rejected); see {rejects_path}")
    writer = IndexWriter(index, options, progress, encoder)
    report = writer.commit_changes(result.products, [], kind="build", rebuild=True,
                                   summary={"catalog": str(Path(catalog).resolve()), "rows_read": result.rows_read,
                                            "rejected": len(result.rejects)})
    report.rejects = result.rejects
    report.rejects_path = str(rejects_path) if result.rejects else None
    return report


CLUSTER_BACKENDS = ("elasticsearch", "opensearch")  # vector backends kept in the lexical store's documents
VERSION_KEYS = ("format", "version", "parent", "kind", "created_at", "software", "change")


def replace_component(index_path: str | Path | IndexDirectory, name: str, kind: str,
                      write: Callable[[Path, Path | None], Any],
                      manifest_updates: dict[str, Any] | Callable[[], dict[str, Any]],
                      change: dict[str, Any] | None = None,
                      expect: Callable[[dict[str, Any]], None] | None = None) -> int:
    """Commit a new version in which only component `name` changes; the others are carried over (hard links).

    `write(target, parent)` writes the component, reading the parent version's
    copy (under the writer lock, so concurrent writers cannot interleave).
    `manifest_updates` may be a function called after `write`. `expect(parent_manifest)`,
    called under the lock before anything is written, may refuse the commit (a writer that
    prepared its component from an older version checks here that its base still holds).
    """
    index = index_path if isinstance(index_path, IndexDirectory) else IndexDirectory(index_path)
    with index.lock():
        index.require()
        txn = index.begin(kind)
        try:
            if expect is not None:
                expect(txn.parent_manifest)
            for component in COMPONENTS:
                if component != name:
                    txn.carry_over(component)
            write(txn.component_dir(name), txn.parent_dir(name))
            manifest = {k: v for k, v in txn.parent_manifest.items() if k not in VERSION_KEYS}
            manifest.update(manifest_updates() if callable(manifest_updates) else manifest_updates)
            manifest["change"] = change or {"component": name}
            return txn.commit(manifest, keep=manifest.get("keep_versions", DEFAULT_KEEP_VERSIONS))
        except BaseException:
            txn.abort()
            raise


def document_vectors(vector_cls, stores: list[tuple[dict[str, Any] | None, Any, Any, Any]]) -> list[dict[str, Any]]:
    """Per new row, the vectors its lexical document carries (`VectorStore.lexical_fields`): [] for stores
    that keep their own files. `stores`: (state, text, image, has_image) of the joint and text-native
    stores; a None state is skipped, None image rows are zeros."""
    columns: dict[str, np.ndarray] = {}
    for state, text, image, has_image in stores:
        if state is None or text is None:
            continue
        image = np.zeros_like(text) if image is None else image
        has_image = np.zeros(len(text), bool) if has_image is None else has_image
        columns.update(vector_cls.lexical_fields(state, text, image, has_image))
    if not columns:
        return []
    rows = len(next(iter(columns.values())))
    return [{name: matrix[row] for name, matrix in columns.items()} for row in range(rows)]


def check_options(options: WriteOptions) -> None:
    """Fail fast on option values a build would only trip over after encoding."""
    from shoplens.indexers.lexical import LEXICAL_BACKENDS
    from shoplens.indexers.vector import VECTOR_BACKENDS
    from shoplens.indexers.vector.faiss_store import INDEX_KINDS

    if options.lexical_backend not in LEXICAL_BACKENDS:
        raise ConfigError(f"unknown lexical backend {options.lexical_backend!r}; use one of {', '.join(LEXICAL_BACKENDS)}")
    if options.vector_backend not in VECTOR_BACKENDS:
        raise ConfigError(f"unknown vector backend {options.vector_backend!r}; use one of {', '.join(VECTOR_BACKENDS)}")
    backend = options.vector_backend
    if backend in CLUSTER_BACKENDS and options.lexical_backend != backend:
        raise ConfigError(f"--vectors {backend} keeps the vectors in the lexical store's {backend} documents; "
                          f"add --lexical {backend}")
    kind = options.vector_config.get("kind", "auto")
    if kind not in INDEX_KINDS:
        raise ConfigError(f"unknown vector index kind {kind!r}; use one of {', '.join(INDEX_KINDS)}")
    if backend in CLUSTER_BACKENDS:  # a cluster runs one kind: exact or IVF (Elasticsearch 7), HNSW (8+, OpenSearch)
        from shoplens.indexers.vector import vector_store_class
        from shoplens.indexers.vector.elasticsearch_store import check_kind

        store = vector_store_class(backend)
        check_kind(store, kind, store.server_kind(options.lexical_config) if kind not in ("auto", store.kind) else None)
    weight = options.vector_config.get("image_weight")
    if weight is not None and not 0.0 <= float(weight) <= 1.0:  # NaN fails this too
        raise ConfigError(f"--image-weight must be between 0 and 1, got {weight}")
    if not 1 <= options.keep_versions <= MAX_KEEP_VERSIONS:
        raise ConfigError(f"--keep-versions must be from 1 to {MAX_KEEP_VERSIONS}, got {options.keep_versions}")
    lexical_store_class(options.lexical_backend).check_backend(options.lexical_config)
    resolve_runtime(options.encoder_runtime, options.model)


__all__ = ["IndexWriter", "WriteOptions", "CommitReport", "build_index", "embedding_text", "EncoderInfo"]
