"""Behaviour aggregates on disk: a version's `behaviour/` directory.

Three Parquet tables (`products`, `query_products`, `positions`) and
`state.json` (totals, time range, popularity reference, folded file digests).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from shoplens.indexers.products import column_numpy
from shoplens.indexers.storage import atomic_write_json, file_identity, read_json
from shoplens.rerank.behaviour import BehaviourStats


def save(stats: BehaviourStats, directory: Path) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({k: _arrow(v) for k, v in stats.products.items()}), directory / "products.parquet")
    pq.write_table(pa.table({k: _arrow(v) for k, v in stats.query_products.items()}), directory / "query_products.parquet")
    pq.write_table(pa.table({k: _arrow(v) for k, v in stats.positions.items()}), directory / "positions.parquet")
    atomic_write_json(directory / "state.json", stats.state)
    return stats.state


def _arrow(values: np.ndarray) -> pa.Array:
    if values.dtype == object:
        return pa.array(values.tolist(), type=pa.string())
    return pa.array(values)


FILES = ("products.parquet", "query_products.parquet", "positions.parquet", "state.json")


def identity(directory: Path | None) -> tuple | None:
    """The identities of a `behaviour/` directory's files: versions that carried it over unchanged hard-link
    them, so equal identities mean the same aggregates (None when there is no directory)."""
    return None if directory is None else tuple(file_identity(directory / name) for name in FILES)


def load(directory: Path | None, earlier: BehaviourStats | None = None) -> BehaviourStats:
    """The aggregates of a version's `behaviour/` directory (empty when it has none); `earlier`, the
    aggregates of another version, when it was loaded from the same files (`identity`)."""
    source = identity(directory)
    if earlier is not None and source is not None and getattr(earlier, "source", None) == source:
        return earlier
    if directory is None or not (directory / "state.json").exists():
        return BehaviourStats.empty()

    def columns(name: str, strings: Iterable[str]) -> dict[str, np.ndarray]:
        table = pq.ParquetFile(directory / name).read()
        return {col: (np.array(table.column(col).to_pylist(), dtype=object) if col in strings
                      else column_numpy(table.column(col))) for col in table.column_names}

    stats = BehaviourStats(columns("products.parquet", {"id"}), columns("query_products.parquet", {"query", "id"}),
                           columns("positions.parquet", {"query", "id"}), read_json(directory / "state.json"))
    stats.source = source
    return stats
