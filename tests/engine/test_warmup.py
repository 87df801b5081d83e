"""Warming an engine with the shop's frequent queries (engine/warmup.py): which queries, read how, and
that each was answered. Real index, real behaviour folded from an events file."""

from __future__ import annotations

import json

import pytest

from shoplens.common.errors import ConfigError
from shoplens.engine.search import SearchEngine
from shoplens.engine.warmup import frequent_queries, read_query_file, warm_up
from shoplens.rerank.folding import apply_events

SHOWN = {"Red Dress": 5, "blue jeans": 9, "white  sneakers": 9, "kurta": 1}  # impressions per query


@pytest.fixture
def shown_index(small_index, small_catalog, tmp_path):
    """The 60-product index with impressions of four queries (two tied) and a photo query's."""
    ids = [json.loads(line)["id"] for line in small_catalog.read_text().splitlines()[:3]]
    events, ts = [], 1_760_000_000.0
    for query, count in SHOWN.items():
        for n in range(count):
            ts += 1
            events.append({"ts": ts, "type": "impression", "id": ids[n % 3], "query": query, "position": 1 + n % 3})
    events.append({"ts": ts + 1, "type": "impression", "id": ids[0], "position": 1})  # no query text
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(event) + "\n" for event in events))
    apply_events(small_index, path)
    return small_index


def test_frequent_queries_are_the_most_shown_first_ties_by_text(shown_index):
    snapshot = SearchEngine(shown_index, device="cpu", preload=False).snapshot
    assert frequent_queries(snapshot, 10) == ["blue jeans", "white sneakers", "red dress", "kurta"]
    assert frequent_queries(snapshot, 2) == ["blue jeans", "white sneakers"]
    assert frequent_queries(snapshot, 0) == []


def test_an_index_without_behaviour_has_no_frequent_queries(small_index):
    assert frequent_queries(SearchEngine(small_index, device="cpu", preload=False).snapshot, 100) == []


def test_warm_up_answers_each_query_once_and_counts_those_that_fail(shown_index, encoder):
    engine = SearchEngine(shown_index, device="cpu", encoder=encoder, query_cache_size=100)
    texts = frequent_queries(engine.snapshot, 10)
    seen = []
    report = warm_up(engine, texts + ["x" * 5000], progress=lambda done, total: seen.append((done, total)),
                     source="test")
    assert (report.queries, report.failed, report.source) == (5, 1, "test") and report.seconds > 0
    assert seen[-1] == (5, 5)
    assert 1 <= len(engine.query_cache) <= len(texts)  # the texts were encoded (and are cached for shoppers)
    assert engine.query_cache.misses == len(engine.query_cache)
    stopped = warm_up(engine, texts, stop=lambda: True)
    assert stopped.queries == 0


def test_a_query_file_reads_plain_lines_and_json_lines(tmp_path):
    path = tmp_path / "warm.txt"
    path.write_text("\ufeffred dress\n\n{\"text\": \"blue jeans\"}\n{\"query\": \" kurta \"}\n"
                    "{\"image\": \"photo.jpg\"}\n  white sneakers  \n", encoding="utf-8")
    assert read_query_file(path) == ["red dress", "blue jeans", "kurta", "white sneakers"]
    assert read_query_file(path, limit=2) == ["red dress", "blue jeans"]


@pytest.mark.parametrize("content, message", [
    ("red dress\n{\"text\": \n", "line 2: not valid JSON"),
    ("{\"text\": 5}\n", "line 1: \"text\" must be a string"),
    ("\n\n{\"image\": \"a.jpg\"}\n", "holds no query text"),
    ("y" * 2001 + "\n", "at most 2,000"),
    ("{\"text\": \"red dress\"}\nnull\n", "line 2: null is JSON but not an object"),  # was warmed as "null"
    ("red dress\n[1, 2]\n", r"line 2: \[1, 2\] is JSON but not an object"),
])
def test_a_bad_query_file_is_a_one_line_error_naming_the_line(tmp_path, content, message):
    path = tmp_path / "warm.txt"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as caught:
        read_query_file(path)
    assert "\n" not in str(caught.value)


def test_a_missing_or_binary_query_file_says_what_to_give(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        read_query_file(tmp_path / "nothing.txt")
    with pytest.raises(ConfigError, match="not a regular file"):
        read_query_file(tmp_path)
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ConfigError, match="UTF-8"):
        read_query_file(tmp_path / "bin")
