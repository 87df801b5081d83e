"""A summary of what an index holds, for `shoplens info`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shoplens.indexers.lexical.base import idf_mode
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.storage import directory_size


def describe_index(path: str | Path) -> dict[str, Any]:
    """Model, dimensions, backends, counts, versions, sizes and reranker of the current version."""
    index = IndexDirectory(path)
    manifest = index.manifest()
    version_path = index.version_path(manifest["version"])
    sizes = {name: directory_size(version_path / name) for name in ("products", "vectors", "textvec", "lexical", "behaviour", "ranker")
             if (version_path / name).exists()}
    details: dict[str, Any] = {
        "version": manifest["version"],
        "built": manifest["created_at"],
        "kind": manifest["kind"],
        "model": manifest["model"],
        "dimensions": manifest["model"]["dim"],
        "vector": manifest["backends"]["vector"],
        "lexical": {**manifest["backends"]["lexical"], "idf": idf_mode(manifest["backends"]["lexical"])},
        "encoder": manifest["backends"].get("encoder") or {"runtime": "auto (not recorded: onnx where installed)"},
        "counts": manifest["counts"],
        "change": manifest.get("change", {}),
        "versions": index.committed_versions(),
        "size_bytes": {"total": directory_size(index.path), **sizes, **_shared_sizes(index, version_path)},
        "software": manifest.get("software", {}),
        "ranker": manifest.get("ranker") or "none (searches use hybrid fusion order)",
        "behaviour": manifest.get("behaviour") or "none",
    }
    return details


def _shared_sizes(index: IndexDirectory, version_path: Path) -> dict[str, int]:
    """What the index holds beside the current version: older versions (what they do not share with it),
    the exported query encoders and the embedding cache."""
    sizes = {"older_versions": max(0, directory_size(index.versions_dir) - directory_size(version_path))}
    for name, path in (("encoders", index.path / "encoders"), ("cache", index.cache_dir)):
        if path.exists():
            sizes[name] = directory_size(path)
    return sizes
