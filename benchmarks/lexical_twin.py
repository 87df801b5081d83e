"""A copy of an index whose lexical store (and, with `vectors`, its vector stores) lives on other backends,
e.g. an Elasticsearch or OpenSearch cluster, so `bench quality` / `bench latency --lexical opensearch
--vectors opensearch` compare both on the same products, embeddings, reranker, queries and judgments in one run.
Nothing is encoded: the vector stores are rewritten from the raw embeddings the index keeps."""

from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from shoplens.indexers.catalog import Product
from shoplens.indexers.index import COMPONENTS, IndexDirectory
from shoplens.indexers.lexical import lexical_store_class
from shoplens.indexers.lexical.base import lexical_document
from shoplens.indexers.products import load_products
from shoplens.indexers.vector import vector_store_class
from shoplens.indexers.writer import VERSION_KEYS, WriteOptions, check_options, document_vectors

VECTOR_COMPONENTS = {"vector": "vectors", "textvec": "textvec"}  # manifest key -> the store's folder
NAMES = {"tantivy": "tantivy", "faiss": "FAISS", "elasticsearch": "Elasticsearch", "opensearch": "OpenSearch"}


def lexical_twin(index: Path, backend: str, config: dict[str, Any] | None = None,
                 vectors: str | None = None, kind: str | None = None) -> tuple[Path, dict[str, Any]]:
    """Copy `index` to a temporary folder and commit a version whose lexical store is rebuilt on `backend`;
    the vector stores move to `vectors` (default: where the index keeps them; on a cluster they are rewritten
    into the new lexical documents, so `vectors` on a cluster needs `backend` the same cluster; `kind`, their
    --vector-index there, e.g. ivf on Elasticsearch).

    Returns the copy's path and indexing figures (documents, seconds, documents/s). The caller
    removes the copy with `remove_twin(path)` (which also deletes its index on the cluster).
    """
    source = IndexDirectory(index)
    source.require()
    backends = source.manifest()["backends"]
    vectors = vectors or backends["vector"]["backend"]
    check_options(WriteOptions(lexical_backend=backend, vector_backend=vectors, lexical_config=dict(config or {}),
                               vector_config={"kind": kind or "auto"}))
    target = Path(tempfile.mkdtemp(prefix="shoplens-twin-")) / "index"
    shutil.copytree(source.path, target, symlinks=True)
    twin = IndexDirectory(target)
    with twin.lock():
        txn = twin.begin("twin")
        try:
            seconds, documents, manifest = _write_twin(txn, backend, dict(config or {}), vectors, kind)
            txn.commit(manifest, keep=manifest.get("keep_versions", 10))
        except BaseException:
            txn.abort()
            shutil.rmtree(target.parent, ignore_errors=True)
            raise
    figures = {"documents": documents, "seconds": seconds, "documents_per_s": documents / max(seconds, 1e-9),
               "lexical": backend, "vectors": vectors}
    return target, figures


def _write_twin(txn, backend: str, config: dict[str, Any], vectors: str, kind: str | None = None):
    """The twin's stores in `txn`: (seconds of the lexical write, documents written, manifest)."""
    backends = txn.parent_manifest["backends"]
    products = load_products(txn.parent_dir("products"))
    live = products.live_docnos()
    adds = [(int(d), lexical_document(Product.from_record(r)))
            for d, r in zip(live.tolist(), products.records(live.tolist()))]
    moved = {}
    if vectors != backends["vector"]["backend"] or vectors in ("elasticsearch", "opensearch"):
        moved, stores = _write_vectors(txn, backends, vectors, live, kind)
        for (_, fields), carried in zip(adds, document_vectors(vector_store_class(vectors), stores)):
            fields["vectors"] = carried
    lexical_cls = lexical_store_class(backend)
    idf = backends["lexical"].get("idf")  # the copy weighs terms as the index does (an older index: per field)
    lexical_config = {"backend": backend, **({"idf": idf} if idf else {}), **config}
    started = time.perf_counter()
    lexical_cls.write(txn.component_dir("lexical"), None, adds, [], lexical_config)
    seconds = time.perf_counter() - started
    for component in COMPONENTS:
        if component != "lexical" and not (component in VECTOR_COMPONENTS.values() and moved):
            txn.carry_over(component)
    manifest = {k: v for k, v in txn.parent_manifest.items() if k not in VERSION_KEYS}
    manifest["backends"] = {**backends, **moved, "lexical": lexical_cls.manifest_config(lexical_config)}
    manifest["change"] = {"lexical_backend": backend, "vector_backend": vectors}
    return seconds, len(adds), manifest


def _write_vectors(txn, backends: dict[str, Any], vectors: str, live, kind: str | None = None):
    """Rewrite the joint and text-native stores on `vectors` from the parent's raw embeddings (every row, so
    docnos stay); returns their manifest summaries and, per store, (state, text, image, has_image) of the
    live rows for the lexical documents."""
    source_cls, target_cls = vector_store_class(backends["vector"]["backend"]), vector_store_class(vectors)
    summaries, stores = {}, []
    segment = f"{txn.version:06d}"
    for key, folder in VECTOR_COMPONENTS.items():
        if key not in backends or txn.parent_dir(folder) is None:
            continue
        text, image, has_image = source_cls.read_rows(txn.parent_dir(folder))
        config = {"image_weight": backends[key]["image_weight"], "channel": "joint" if key == "vector" else "native",
                  **({"kind": kind} if kind else {})}
        state = target_cls.write(txn.component_dir(folder), None, text, image, has_image, segment, config)
        summaries[key] = target_cls.summarize(state)
        stores.append((state, text[live], image[live], has_image[live]))
    return summaries, stores


@contextmanager
def compared_twin(index: Path, lexical: str, vectors: str | None = None, kind: str | None = None):
    """A twin of `index` (`lexical_twin`) for the length of a comparison, removed after it: yields the twin's
    path, the stores of the index and of the twin ("tantivy + FAISS hnsw", ...) and the twin's figures."""
    twin, figures = lexical_twin(index, lexical, vectors=vectors, kind=kind)
    try:
        stores = [describe_stores(IndexDirectory(path).manifest()) for path in (index, twin)]
        stores[1] += " (copy)" if stores[1] == stores[0] else ""
        yield twin, stores, figures
    finally:
        remove_twin(twin)


def remove_twin(twin: Path) -> None:
    """Delete a twin made by `lexical_twin`: its folder and what its stores hold on a server."""
    copy = IndexDirectory(twin)
    if copy.exists():
        copy.release_external([copy.version_path(n) for n in copy.committed_versions()], [])
    shutil.rmtree(twin.parent, ignore_errors=True)


def store_labels(manifest: dict[str, Any]) -> dict[str, str]:
    """What each retriever of an index runs on, for report rows: lexical ("tantivy", "OpenSearch"), the joint
    and text-native vector stores ("FAISS hnsw", "Elasticsearch exact", "OpenSearch hnsw")."""
    backends = manifest["backends"]

    def vector_label(key: str) -> str:
        store = backends.get(key) or backends["vector"]
        name = NAMES.get(store["backend"], store["backend"])
        return f"{name} {store['kind']}" if store.get("kind") else name

    lexical = backends["lexical"]["backend"]
    return {"lexical": NAMES.get(lexical, lexical), "vector": vector_label("vector"), "native": vector_label("textvec")}


def describe_stores(manifest: dict[str, Any]) -> str:
    """One line naming an index's stores: "tantivy + FAISS hnsw", "OpenSearch + OpenSearch hnsw"."""
    labels = store_labels(manifest)
    return f"{labels['lexical']} + {labels['vector']}"


def describe_twin(figures: dict[str, Any]) -> str:
    what = "documents with their vectors" if figures["vectors"] in ("elasticsearch", "opensearch") else "documents"
    return (f"twin on {figures['lexical']} (vectors: {figures['vectors']}): {figures['documents']:,} {what} "
            f"indexed in {figures['seconds']:.1f} s ({figures['documents_per_s']:,.0f} documents/s, bulk + one "
            "refresh)")


__all__ = ["lexical_twin", "compared_twin", "remove_twin", "describe_twin", "describe_stores", "store_labels"]
