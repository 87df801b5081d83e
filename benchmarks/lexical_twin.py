"""A copy of an index whose lexical store lives on another backend (e.g. an Elasticsearch cluster), so
`bench quality` / `bench latency --lexical elasticsearch` compare both backends on the same products,
vectors, reranker, queries and judgments in one run."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from shoplens.common.errors import ConfigError
from shoplens.indexers.catalog import Product
from shoplens.indexers.index import COMPONENTS, IndexDirectory
from shoplens.indexers.lexical import LEXICAL_BACKENDS, lexical_store_class
from shoplens.indexers.lexical.base import lexical_document
from shoplens.indexers.products import load_products
from shoplens.indexers.writer import VERSION_KEYS


def lexical_twin(index: Path, backend: str, config: dict[str, Any] | None = None) -> tuple[Path, dict[str, Any]]:
    """Copy `index` to a temporary folder and commit a version whose lexical store is rebuilt on `backend`.

    Returns the copy's path and indexing figures (documents, seconds, documents/s). The caller
    removes the copy with `remove_twin(path)` (which also deletes its Elasticsearch index).
    """
    if backend not in LEXICAL_BACKENDS:
        raise ConfigError(f"unknown lexical backend {backend!r}; use one of {', '.join(LEXICAL_BACKENDS)}")
    lexical_cls = lexical_store_class(backend)
    lexical_cls.check_backend(config)
    source = IndexDirectory(index)
    source.require()
    target = Path(tempfile.mkdtemp(prefix="shoplens-twin-")) / "index"
    shutil.copytree(source.path, target, symlinks=True)
    twin = IndexDirectory(target)
    with twin.lock():
        txn = twin.begin("lexical")
        try:
            products = load_products(txn.parent_dir("products"))
            live = products.live_docnos()
            records = products.records(live.tolist())
            adds = [(int(d), lexical_document(Product.from_record(r))) for d, r in zip(live.tolist(), records)]
            lexical_config = {"backend": backend, **(config or {})}
            started = time.perf_counter()
            lexical_cls.write(txn.component_dir("lexical"), None, adds, [], lexical_config)
            seconds = time.perf_counter() - started
            for component in COMPONENTS:
                if component != "lexical":
                    txn.carry_over(component)
            manifest = {k: v for k, v in txn.parent_manifest.items() if k not in VERSION_KEYS}
            manifest["backends"] = {**manifest["backends"], "lexical": lexical_cls.manifest_config(lexical_config)}
            manifest["change"] = {"lexical_backend": backend}
            txn.commit(manifest, keep=manifest.get("keep_versions", 10))
        except BaseException:
            txn.abort()
            shutil.rmtree(target.parent, ignore_errors=True)
            raise
    figures = {"documents": len(adds), "seconds": seconds, "documents_per_s": len(adds) / max(seconds, 1e-9)}
    return target, figures


def remove_twin(twin: Path) -> None:
    """Delete a twin made by `lexical_twin`: its folder and what its stores hold on a server."""
    copy = IndexDirectory(twin)
    if copy.exists():
        copy.release_external([copy.version_path(n) for n in copy.committed_versions()], [])
    shutil.rmtree(twin.parent, ignore_errors=True)


def describe_twin(backend: str, figures: dict[str, Any]) -> str:
    return (f"{backend}: {figures['documents']:,} documents indexed in {figures['seconds']:.1f} s "
            f"({figures['documents_per_s']:,.0f} documents/s, bulk + one refresh)")


__all__ = ["lexical_twin", "remove_twin", "describe_twin", "json"]
