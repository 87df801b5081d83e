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
from shoplens.indexers.storage import atomic_write_json, read_json
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


def load(directory: Path | None) -> BehaviourStats:
    """The aggregates of a version's `behaviour/` directory (empty when it has none)."""
    if directory is None or not (directory / "state.json").exists():
        return BehaviourStats.empty()

    def columns(name: str, strings: Iterable[str]) -> dict[str, np.ndarray]:
        table = pq.ParquetFile(directory / name).read()
        return {col: (np.array(table.column(col).to_pylist(), dtype=object) if col in strings
                      else column_numpy(table.column(col))) for col in table.column_names}

    return BehaviourStats(columns("products.parquet", {"id"}), columns("query_products.parquet", {"query", "id"}),
                          columns("positions.parquet", {"query", "id"}), read_json(directory / "state.json"))
