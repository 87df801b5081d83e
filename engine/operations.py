"""Index operations that span the stores (indexers) and the reranker's components (rerank).

indexers never import rerank, so the layer that sees both wires them
together: the consistency check runs rerank's component checks after the
stores' own, and the inbox watcher folds events files through rerank's
behaviour aggregates. Commands call these.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from shoplens.indexers import maintenance
from shoplens.indexers.maintenance import CheckReport
from shoplens.indexers.watch import WatchConfig, Watcher
from shoplens.rerank.folding import apply_events
from shoplens.rerank.checks import COMPONENT_CHECKS


def check_index(index_path: str | Path, deep: int = 0, version: int | None = None, seed: int = 0) -> CheckReport:
    """Every store and component of a version: same products everywhere, embeddings matching content,
    behaviour aggregates that load, a reranker trained on this ShopLens's features."""
    return maintenance.check_index(index_path, deep=deep, version=version, seed=seed,
                                   component_checks=COMPONENT_CHECKS)


def rollback(index_path: str | Path, version: int) -> int:
    """Make an earlier version current again (a new version), once it passes every check of `check_index`."""
    return maintenance.rollback(index_path, version, component_checks=COMPONENT_CHECKS)


def create_watcher(index_path: str | Path, inbox: str | Path, config: WatchConfig | None = None,
                   on_commit: Callable[[dict[str, Any]], None] | None = None) -> Watcher:
    """An inbox watcher that applies product deltas and deletes, and folds behaviour events."""
    return Watcher(index_path, inbox, config, on_commit=on_commit, fold_events=apply_events)
