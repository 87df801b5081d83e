"""The query-embedding cache: bounded, least recently used first out, and invisible in results."""

import numpy as np
import pytest

from shoplens.engine.query import SearchRequest
from shoplens.engine.query_cache import QueryCache, image_key, text_key
from shoplens.engine.search import SearchEngine


def test_least_recently_used_entry_leaves_first():
    cache = QueryCache(capacity=2)
    cache.get(text_key("a"), lambda: 1)
    cache.get(text_key("b"), lambda: 2)
    assert cache.get(text_key("a"), lambda: 99) == 1  # a is now the most recent
    cache.get(text_key("c"), lambda: 3)  # evicts b
    assert len(cache) == 2 and not cache.contains(text_key("b")) and cache.contains(text_key("a"))
    assert cache.stats()["hits"] == 1 and cache.stats()["misses"] == 3


def test_keys_collapse_whitespace_and_zero_capacity_turns_it_off():
    assert text_key(" red   dress ") == text_key("red dress")
    assert text_key("red dress") != text_key("Red dress")
    cache = QueryCache(capacity=0)
    calls = []
    cache.get(text_key("a"), lambda: calls.append(1) or 1)
    cache.get(text_key("a"), lambda: calls.append(1) or 1)
    assert len(calls) == 2 and len(cache) == 0


def test_image_key_is_by_pixels():
    from PIL import Image

    red, also_red, blue = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")
    assert image_key(red) == image_key(also_red) != image_key(blue)


@pytest.fixture(scope="module")
def engines(sample_index):
    cached = SearchEngine(sample_index, device="cpu")
    uncached = SearchEngine(sample_index, device="cpu", query_cache_size=0)
    yield cached, uncached
    cached.close()
    uncached.close()


def _ids_and_scores(response):
    return [r.id for r in response.results], [r.score for r in response.results]


def test_cached_searches_return_identical_results(engines):
    cached, uncached = engines
    for text in ("red dress", "analog watch for men", "red dress"):
        first = cached.search(SearchRequest(text=text, k=10))
        again = cached.search(SearchRequest(text=" " + text + " ", k=10))
        plain = uncached.search(SearchRequest(text=text, k=10))
        assert _ids_and_scores(first) == _ids_and_scores(again) == _ids_and_scores(plain)
    assert cached.query_cache.stats()["hits"] >= 4


def test_prepared_queries_rank_like_encoding_one_at_a_time(engines, sample_index):
    _, uncached = engines
    prepared = SearchEngine(sample_index, device="cpu")
    texts = ["red dress", "blue jeans", "white sports shoes", "leather wallet"]
    assert prepared.prepare_queries(texts + ["red  dress"]) == 4
    before = prepared.query_cache.stats()["hits"]
    for text in texts:
        got = prepared.search(SearchRequest(text=text, k=10))
        expected = uncached.search(SearchRequest(text=text, k=10))
        assert [r.id for r in got.results] == [r.id for r in expected.results]
        np.testing.assert_allclose([r.score for r in got.results], [r.score for r in expected.results], atol=1e-5)
    assert prepared.query_cache.stats()["hits"] - before == len(texts)
    prepared.close()


def test_photo_queries_are_cached_by_content(engines):
    from tests.helpers import SAMPLE, sample_products

    cached, _ = engines
    path = SAMPLE.parent / sample_products(1)[0]["image"]
    hits = cached.query_cache.hits
    first = cached.search(SearchRequest(image=str(path), k=5))
    second = cached.search(SearchRequest(image=str(path), k=5))
    assert _ids_and_scores(first) == _ids_and_scores(second)
    assert cached.query_cache.hits == hits + 1
