import json

import pytest

from shoplens.benchmarks.updates import cold_build_seconds
from shoplens.common.errors import ConfigError


def test_cold_build_seconds_come_from_a_saved_index_report(tmp_path):
    with_summary = tmp_path / "a.json"
    with_summary.write_text(json.dumps({"summary": {"build_s": 1087.5}, "tables": []}))
    assert cold_build_seconds(with_summary) == 1087.5
    table_only = tmp_path / "b.json"  # reports saved before the summary carried it
    table_only.write_text(json.dumps({"tables": [{"name": "indexing", "rows": [
        ["encode texts + images (cold cache)", 1000.0, 44.0], ["whole build (read, validate, encode, write)", 1050.0, 42.0]]}]}))
    assert cold_build_seconds(table_only) == 1050.0
    other = tmp_path / "c.json"
    other.write_text(json.dumps({"tables": [{"name": "latency", "rows": [["text", 1, 2]]}]}))
    with pytest.raises(ConfigError, match="not a `shoplens bench index` report"):
        cold_build_seconds(other)
    with pytest.raises(ConfigError, match="cannot read"):
        cold_build_seconds(tmp_path / "missing.json")


def test_new_photos_are_picked_among_products_that_have_one(tmp_path):
    """A catalog may hold text-only products: `bench updates` opened a product's missing photo
    (`Image.open(None)`, an AttributeError traceback) when its random pick fell on one."""
    from shoplens.benchmarks.updates import _changed_rows
    from tests.helpers import SAMPLE

    photo = str(SAMPLE.parent / "images" / "1528.jpg")
    records = [{"id": f"t{i}", "title": "text only", "image": None} for i in range(20)]
    rows = _changed_rows(records + [{"id": "p", "title": "with photo", "image": photo}], "image", tmp_path, 5, 1)
    assert [row["id"] for row in rows] == ["p"] and (tmp_path / "images" / "p-1.jpg").is_file()
    assert _changed_rows(records, "image", tmp_path, 5, 1) == []
