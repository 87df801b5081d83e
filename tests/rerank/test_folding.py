import json

import pytest

from shoplens.common.errors import EventsError
from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.products import load_products
from shoplens.rerank.behaviour_store import load
from shoplens.rerank.folding import apply_events
from tests.helpers import write_events


def known_ids(index: IndexDirectory, count: int) -> list[str]:
    return list(load_products(index.version_path(index.current_version()) / "products").docno_by_id)[:count]


def test_events_fold_into_a_new_version_once(small_index, tmp_path):
    index = IndexDirectory(small_index)
    ids = known_ids(index, 3)
    path = write_events(tmp_path / "e.jsonl", [{"ts": 10, "type": "click", "id": ids[0], "query": "q", "position": 1},
                                              {"ts": 11, "type": "impression", "id": "not-a-product"}])
    report = apply_events(small_index, path)
    assert report.version == 2 and report.folded == 1 and len(report.rejects) == 1
    assert index.manifest()["behaviour"]["events"] == 1
    assert index.manifest()["kind"] == "events"
    with pytest.raises(EventsError, match="already folded"):
        apply_events(small_index, path)
    with pytest.raises(EventsError, match="nothing folded"):
        apply_events(small_index, path, strict=True, force=True)
    assert index.current_version() == 2
    report = apply_events(small_index, path, force=True)
    assert load(index.version_path(3) / "behaviour").products["clicks"].sum() == 2


def test_rejected_lines_go_to_the_index_rejects_file_naming_their_file(small_index, tmp_path):
    index = IndexDirectory(small_index)
    ids = known_ids(index, 1)
    first = write_events(tmp_path / "a.events.jsonl", [{"ts": 10, "type": "click", "id": ids[0]}, "{broken"])
    second = write_events(tmp_path / "b.events.jsonl", [{"ts": 11, "type": "buy", "id": ids[0]}])
    report = apply_events(small_index, [first, second])
    assert report.version == 2 and report.folded == 1
    assert report.rejects_path == str(small_index) + ".rejects.jsonl"
    assert not (tmp_path / "a.events.jsonl.rejects.jsonl").exists()
    lines = [json.loads(line) for line in open(report.rejects_path, encoding="utf-8")]
    assert [(r["kind"], r["source"], r["line"]) for r in lines] == [("events", "a.events.jsonl", 2),
                                                                    ("events", "b.events.jsonl", 1)]
    assert lines[0]["reason"].startswith("invalid JSON") and "type must be" in lines[1]["reason"]


def test_a_file_without_one_valid_event_is_an_error_and_commits_nothing(small_index, tmp_path):
    index = IndexDirectory(small_index)
    before = index.current_version()
    bad = write_events(tmp_path / "bad.jsonl", [{"ts": 1, "type": "buy", "id": "x"}, "{broken"])
    with pytest.raises(EventsError, match="no valid events .2 line.s. rejected"):
        apply_events(small_index, bad)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(EventsError, match="has no events"):
        apply_events(small_index, empty)
    assert index.current_version() == before
