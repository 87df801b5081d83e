"""Loading the index's reranker (the XGBoost model itself arrives with the rerank issue)."""

from __future__ import annotations


def load_ranker(snapshot):
    """The snapshot's ranker, or None when the index has not been given one."""
    if not snapshot.manifest.get("ranker"):
        return None
    raise NotImplementedError("reranking is not implemented yet")
