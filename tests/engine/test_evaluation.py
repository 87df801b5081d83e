"""Offline evaluation refuses judgments of another catalog instead of scoring every system zero."""

import pytest

from shoplens.common.errors import ShopLensError
from shoplens.engine.evaluation import evaluate
from shoplens.engine.search import SearchEngine
from shoplens.rerank.judgments import load_judgments
from tests.helpers import sample_products


def write(path, rows):
    import json

    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_judgments_of_another_catalog_are_refused(small_index, tmp_path, encoder):
    engine = SearchEngine(small_index, device="cpu", encoder=encoder)
    other = load_judgments(write(tmp_path / "other.jsonl", [{"query": "shirt", "id": "elsewhere-1", "grade": 2},
                                                            {"query": "shoes", "id": "elsewhere-2", "grade": 1}]))
    with pytest.raises(ShopLensError, match="none of the 2 product ids in the judgments is in this index"):
        evaluate(engine, other)
    known = sample_products(1)[0]["id"]
    ours = load_judgments(write(tmp_path / "ours.jsonl", [{"query": "shirt", "id": known, "grade": 2},
                                                          {"query": "shirt", "id": "elsewhere-1", "grade": 0}]))
    assert evaluate(engine, ours, systems=["bm25"]).queries == 1
    engine.close()
