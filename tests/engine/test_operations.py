"""Check and watch across layers: the stores' checks plus rerank's components, events folded by the watcher."""

import json

from shoplens.engine.operations import check_index, create_watcher
from shoplens.indexers import maintenance
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.watch import WatchConfig, Watcher
from shoplens.indexers.writer import replace_component
from tests.helpers import sample_products

ROWS = sample_products(60)


def test_check_covers_the_rerank_components(small_index):
    report = check_index(small_index)
    assert report.ok and report.facts["behaviour_events"] == 0
    assert "behaviour_events" not in maintenance.check_index(small_index).facts  # the stores alone
    # a version whose manifest names a reranker without its files
    replace_component(small_index, "ranker", "ranker", lambda target, parent: None, {"ranker": {"source": "test"}})
    report = check_index(small_index)
    assert report.problems == ["the manifest names a reranker but its files are missing"]
    assert maintenance.check_index(small_index).ok


def test_the_engine_watcher_folds_events_and_a_bare_one_refuses_them(small_index, tmp_path):
    event = json.dumps({"ts": 1, "type": "click", "id": ROWS[1]["id"], "query": "q", "position": 1}) + "\n"
    bare_inbox, inbox = tmp_path / "bare", tmp_path / "inbox"
    for directory in (bare_inbox, inbox):
        directory.mkdir()
        (directory / "a.events.jsonl").write_text(event)
    config = WatchConfig(settle_seconds=0)
    commits = Watcher(small_index, bare_inbox, config).step(force=True)
    assert commits[0]["queue"] == "failed" and "folds no behaviour events" in commits[0]["error"]
    commits = create_watcher(small_index, inbox, config).step(force=True)
    assert [c["queue"] for c in commits] == ["events"] and commits[0]["events"] == 1
    assert IndexDirectory(small_index).manifest()["behaviour"]["events"] == 1
