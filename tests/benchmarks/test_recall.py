import numpy as np

from shoplens.benchmarks.recall import exact_top, sweep_faiss
from shoplens.indexers.vector.base import normalize_rows


def test_a_set_too_small_for_ivfpq_is_measured_without_it():
    """`bench recall --index` on a 30-product index ended in FAISS's RuntimeError (IVF-PQ's codebooks need
    256 vectors to train); the sweep now leaves IVF-PQ out on such a set and measures the rest."""
    rng = np.random.default_rng(0)
    vectors = normalize_rows(rng.standard_normal((60, 16)).astype(np.float32))
    queries = normalize_rows(rng.standard_normal((5, 16)).astype(np.float32))
    rows, hnsw = sweep_faiss(vectors, queries, exact_top(vectors, queries, 100))
    kinds = {row[0] for row in rows}
    assert kinds == {"faiss hnsw", "faiss ivf", "faiss flat (exact)"} and hnsw is not None
