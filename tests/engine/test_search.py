"""End-to-end searches over the bundled sample, with the real model, FAISS and tantivy."""

import json

import numpy as np
import pytest

from shoplens.common.errors import FilterError, ModelMismatchError, QueryError
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.indexers.writer import WriteOptions, build_index
from tests.helpers import SAMPLE, sample_products, write_catalog

ROWS = {row["id"]: row for row in sample_products()}


@pytest.fixture(scope="module")
def engine(sample_index, encoder):
    engine = SearchEngine(sample_index, device="cpu", encoder=encoder)
    yield engine
    engine.close()


def categories(response):
    return [ROWS[r.id]["category"] for r in response.results]


def test_text_query_finds_matching_products_with_every_signal(engine):
    response = engine.search(SearchRequest(text="analog watch", k=5))
    assert len(response.results) == 5
    assert all("Watches" in c for c in categories(response))
    top = response.results[0]
    assert top.rank == 1 and top.signals["fused"] == top.score
    assert top.signals["bm25"] is not None and top.signals["dense"] is not None and top.signals["rerank"] is None
    assert set(response.stages_ms) == {"encode", "lexical", "vector", "fuse", "rerank"}
    assert response.stages_ms["encode"] > 0 and response.stages_ms["lexical"] > 0 and response.stages_ms["vector"] > 0
    assert response.took_ms >= response.stages_ms["vector"]
    scores = [r.score for r in response.results]
    assert scores == sorted(scores, reverse=True)


def test_image_query_finds_the_product_in_the_photo(engine):
    product = sample_products()[100]
    response = engine.search(SearchRequest(image=str(SAMPLE.parent / product["image"]), k=5))
    assert product["id"] in [r.id for r in response.results[:3]]
    assert all(r.signals["bm25"] is None for r in response.results)  # no text, no BM25
    assert response.stages_ms["lexical"] is None


def test_text_and_image_together(engine):
    product = next(p for p in sample_products() if "Watches" in p["category"])
    response = engine.search(SearchRequest(text="watch", image=str(SAMPLE.parent / product["image"]), k=10))
    assert product["id"] in [r.id for r in response.results]
    assert all(r.signals["dense"] is not None for r in response.results)


def test_filters_restrict_both_retrievers_before_the_cut(engine):
    response = engine.search(SearchRequest(text="shirt", k=20, filters=["price<=500"]))
    assert len(response.results) == 20
    assert all(r.price is not None and r.price <= 500 for r in response.results)
    # a selective filter: every matching product comes back, and nothing else
    brand = "Fastrack"
    expected = {pid for pid, row in ROWS.items() if row["brand"] == brand}
    assert 1 < len(expected) < 50
    response = engine.search(SearchRequest(text="black watch", k=50, filters=[f"brand={brand}"]))
    assert {r.id for r in response.results} == expected
    response = engine.search(SearchRequest(text="shoes", k=10, filters=["category=Footwear", "gender=Women"]))
    assert len(response.results) == 10
    assert all("Footwear" in ROWS[r.id]["category"] and ROWS[r.id]["gender"] == "Women" for r in response.results)


def test_pages_do_not_overlap(engine):
    first = engine.search(SearchRequest(text="casual shirt", k=10, page=1))
    second = engine.search(SearchRequest(text="casual shirt", k=10, page=2))
    assert [r.rank for r in second.results] == list(range(11, 21))
    assert not {r.id for r in first.results} & {r.id for r in second.results}


def test_modes_and_fusion_methods(engine):
    lexical = engine.search(SearchRequest(text="running shoes", k=5, mode="lexical"))
    assert all(r.signals["dense"] is None and r.signals["bm25"] is not None for r in lexical.results)
    assert [r.signals["bm25"] for r in lexical.results] == sorted([r.signals["bm25"] for r in lexical.results], reverse=True)
    dense = engine.search(SearchRequest(text="running shoes", k=5, mode="dense"))
    assert all(r.signals["bm25"] is None for r in dense.results)
    assert [r.signals["dense"] for r in dense.results] == sorted([r.signals["dense"] for r in dense.results], reverse=True)
    wsum = engine.search(SearchRequest(text="running shoes", k=5, fusion="wsum", normalization="zscore"))
    assert len(wsum.results) == 5 and wsum.query["fusion"] == "wsum"
    lexical_heavy = engine.search(SearchRequest(text="running shoes", k=5, weights=(1.0, 0.0, 0.0)))
    assert [r.id for r in lexical_heavy.results] == [r.id for r in lexical.results]


def test_explain_carries_ranks(engine):
    response = engine.search(SearchRequest(text="red dress", k=3, explain=True))
    explain = response.results[0].explain
    assert explain["fused_rank"] == 1 and "bm25_rank" in explain and "dense_rank" in explain


def test_json_shape(engine):
    data = engine.search(SearchRequest(text="belt", k=2)).to_json()
    json.dumps(data)
    assert set(data) >= {"query", "took_ms", "stages_ms", "results"}
    assert set(data["results"][0]) == {"rank", "id", "title", "brand", "price", "score", "signals"}
    assert set(data["results"][0]["signals"]) == {"bm25", "dense", "text_native", "fused", "rerank", "intent_boost"}
    assert data["query"]["intent"]["constraints"][0]["values"] == ["belts"]  # "belt" read as the type Belts
    plain = engine.search(SearchRequest(text="belt", k=2, intent=False)).to_json()
    assert set(plain["results"][0]["signals"]) == {"bm25", "dense", "text_native", "fused", "rerank"}


def test_query_syntax_in_user_text_is_harmless(engine):
    response = engine.search(SearchRequest(text='watch AND "title:(black', k=5))
    assert response.results


@pytest.mark.parametrize("request_kwargs, error, message", [
    ({"text": "   "}, QueryError, "empty query"),
    ({"text": "x", "k": 0}, QueryError, "-k must be"),
    ({"image": "/no/such/photo.jpg"}, QueryError, "not found"),
    ({"text": "x", "filters": ["price<=abc"]}, FilterError, "needs a number"),
    ({"text": "x", "filters": ["colour=Blue"]}, FilterError, "unknown filter field"),
    ({"text": "x", "mode": "fuzzy"}, QueryError, "hybrid, lexical, dense"),
])
def test_bad_queries_are_clear_errors(engine, request_kwargs, error, message):
    with pytest.raises(error, match=message):
        engine.search(SearchRequest(**request_kwargs))


def test_unreadable_query_image(engine, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    with pytest.raises(QueryError, match="is not an image"):
        engine.search(SearchRequest(image=str(bad)))


def test_searching_with_another_model_is_an_error(sample_index, encoder):
    with pytest.raises(ModelMismatchError, match="built with model shoplens-lite0-minilm, not ViT-B-32"):
        SearchEngine(sample_index, device="cpu", model="ViT-B-32", encoder=encoder)


def test_engine_follows_new_versions_without_restart(tmp_path, encoder):
    rows = sample_products(30)
    catalog = write_catalog(tmp_path / "c.jsonl", rows)
    build_index(catalog, tmp_path / "ix", WriteOptions(device="cpu"), encoder=encoder)
    engine = SearchEngine(tmp_path / "ix", device="cpu", encoder=encoder)
    assert engine.search(SearchRequest(text="zanzibar velvet slipper", k=3, mode="lexical")).results == []
    rows.append({"id": "new-1", "title": "Zanzibar Velvet Slipper", "brand": "Zanzi", "price": 10})
    write_catalog(catalog, rows)
    build_index(catalog, tmp_path / "ix", WriteOptions(device="cpu"), encoder=encoder)
    response = engine.search(SearchRequest(text="zanzibar velvet slipper", k=3))
    assert response.version == 2 and response.results[0].id == "new-1"
    assert engine.snapshot.products.num_live == 31
    assert np.isnan(engine.snapshot.products.numeric("price")).sum() == 0


def test_a_product_listed_twice_is_one_result_unless_asked(tmp_path, encoder):
    rows = sample_products(40)
    twin = dict(rows[7], id="twin-of-" + rows[7]["id"], title=rows[7]["title"].upper() + " ")
    catalog = write_catalog(tmp_path / "twice.jsonl", rows + [twin])
    index = tmp_path / "index"
    build_index(catalog, index, WriteOptions(device="cpu"), encoder=encoder)
    engine = SearchEngine(index, device="cpu", encoder=encoder)
    try:
        collapsed = [r.id for r in engine.search(SearchRequest(text=rows[7]["title"], k=10)).results]
        every = [r.id for r in engine.search(SearchRequest(text=rows[7]["title"], k=10, collapse=False)).results]
    finally:
        engine.close()
    assert {rows[7]["id"], twin["id"]} <= set(every)
    assert len({rows[7]["id"], twin["id"]} & set(collapsed)) == 1
    pair = {rows[7]["id"], twin["id"]}
    assert [i for i in every if i not in pair][:8] == [i for i in collapsed if i not in pair][:8]
