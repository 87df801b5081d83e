"""Consistency checks of the components rerank writes into an index version: behaviour and the model.

`indexers.maintenance.check_index` checks the stores and runs these as its
component checks (the engine wires them in for `shoplens check`).
"""

from __future__ import annotations

from shoplens.indexers.maintenance import CheckReport
from shoplens.indexers.snapshot import Snapshot
from shoplens.indexers.storage import read_json
from shoplens.rerank import behaviour, behaviour_store
from shoplens.rerank.model import check_meta


def check_behaviour(snapshot: Snapshot, report: CheckReport) -> None:
    """The behaviour aggregates load and hold finite, non-negative values; records how many events they hold."""
    try:
        stats = behaviour_store.load(snapshot.path / "behaviour")
        report.facts["behaviour_events"] = stats.state["events"]
        report.problems.extend(behaviour.problems(stats))
    except (OSError, ValueError, KeyError) as exc:
        report.problems.append(f"behaviour aggregates do not load: {exc}")


def check_ranker(snapshot: Snapshot, report: CheckReport) -> None:
    """A reranker the manifest names has its files, and was trained on this ShopLens's features."""
    if not snapshot.manifest.get("ranker"):
        return
    meta_path = snapshot.path / "ranker" / "meta.json"
    if not meta_path.is_file() or not (snapshot.path / "ranker" / "model.json").is_file():
        report.problems.append("the manifest names a reranker but its files are missing")
        return
    try:
        check_meta(read_json(meta_path), meta_path.parent)
    except Exception as exc:  # RankerError: a stale model is worth a warning, not a corruption
        report.warnings.append(str(exc))


COMPONENT_CHECKS = (check_behaviour, check_ranker)
