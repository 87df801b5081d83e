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
