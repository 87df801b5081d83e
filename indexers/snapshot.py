"""One committed version of an index, opened for reading: every store at the same version."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoplens.common.errors import IndexCorruptError, ShopLensError
from shoplens.indexers.index import FORMAT_VERSION, IndexDirectory
from shoplens.indexers.lexical import lexical_store_class
from shoplens.indexers.lexical.base import LexicalStore
from shoplens.indexers.products import ProductTable, load_products
from shoplens.indexers.vector import vector_store_class
from shoplens.indexers.vector.base import VectorStore


@dataclass
class Snapshot:
    """A consistent read view. Searches hold one; a newer version is a new Snapshot."""

    index: IndexDirectory
    version: int
    manifest: dict[str, Any]
    products: ProductTable
    vectors: VectorStore
    lexical: LexicalStore
    path: Path
    text_native: VectorStore | None = None  # text-native embeddings (absent for models without a text tower)

    @classmethod
    def open(cls, index: IndexDirectory, version: int | None = None, device: str = "auto",
             lexical_config: dict[str, Any] | None = None, previous: "Snapshot | None" = None) -> "Snapshot":
        """Open a committed version (the current one by default).

        `previous`, an open earlier version of the same index, lends the parts
        that did not change (immutable segments, the base vector index, vector
        rows and keyword codes), so following a small update reads only what
        the update wrote.
        """
        version = index.current_version() if version is None else version
        path = index.version_path(version)
        if not path.is_dir():
            raise IndexCorruptError(f"version {version} of {index.path} is missing; run `shoplens check`")
        manifest = index.manifest(version)
        if manifest.get("format") != FORMAT_VERSION:
            raise IndexCorruptError(
                f"{index.path} was written in index format {manifest.get('format')}, this ShopLens reads "
                f"{FORMAT_VERSION}; rebuild it with `shoplens index`"
            )
        try:
            return cls._open_stores(index, version, path, manifest, device, lexical_config, previous)
        except ShopLensError:  # a store's own one-line error, e.g. tantivy's folder not writable (lexical/)
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a store's files deleted, truncated or garbled
            raise IndexCorruptError(f"version {version} of {index.path} cannot be opened ({type(exc).__name__}: "
                                    f"{' '.join(str(exc).split())[:200]}); run `shoplens check`, or `shoplens "
                                    "rollback` to a good version") from None

    @classmethod
    def _open_stores(cls, index: IndexDirectory, version: int, path: Path, manifest: dict[str, Any], device: str,
                     lexical_config: dict[str, Any] | None, previous: "Snapshot | None") -> "Snapshot":
        backends = manifest["backends"]
        if previous is not None and (previous.index.path != index.path
                                     or previous.manifest["backends"]["vector"]["backend"] != backends["vector"]["backend"]
                                     or previous.manifest["model"] != manifest["model"]):
            previous = None
        products = load_products(path / "products", previous.products if previous else None)
        vector_cls = vector_store_class(backends["vector"]["backend"])
        vectors = vector_cls.open(path / "vectors", device=device, previous=previous.vectors if previous else None)
        recorded = {"idf": backends["lexical"].get("idf", "field")}  # how this version's scores weigh terms
        lexical = lexical_store_class(backends["lexical"]["backend"]).open(path / "lexical",
                                                                           {**recorded, **(lexical_config or {})})
        if vectors.num_rows != products.num_rows:
            raise IndexCorruptError(
                f"version {version}: vector store has {vectors.num_rows} rows, product store {products.num_rows}; "
                "run `shoplens check`"
            )
        text_native = None
        if "textvec" in backends:
            text_native = vector_cls.open(path / "textvec", device=device,
                                          previous=previous.text_native if previous else None)
            if text_native.num_rows != products.num_rows:
                raise IndexCorruptError(
                    f"version {version}: text-native store has {text_native.num_rows} rows, product store "
                    f"{products.num_rows}; run `shoplens check`"
                )
        return cls(index, version, manifest, products, vectors, lexical, path, text_native)
