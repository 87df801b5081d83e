"""Property tests of search requests: any query text and any numeric options give results or a QueryError.

Options are checked before any index or model work; a real search runs (on a
small real index, the real model) for every request that passes.
"""

import json
import math

import pytest
from hypothesis import given, strategies as st

from shoplens.common.errors import QueryError, ShopLensError
from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from tests.helpers import bounded, sample_products, write_catalog

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(10 ** 25), max_value=10 ** 25),
                    st.sampled_from([0, 1, 60, 0.5, -1, 1e308]))
whole = st.one_of(st.integers(min_value=-(10 ** 25), max_value=10 ** 25), st.sampled_from([0, 1, 10, 1000, 10001]))


@pytest.fixture(scope="module")
def engine(tmp_path_factory, encoder):
    from shoplens.indexers.writer import WriteOptions, build_index

    folder = tmp_path_factory.mktemp("q")
    catalog = write_catalog(folder / "c.jsonl", sample_products(40))
    build_index(catalog, folder / "index", WriteOptions(device="cpu"), encoder=encoder)
    engine = SearchEngine(folder / "index", device="cpu", encoder=encoder)
    yield engine
    engine.close()


@given(rrf_k=numbers, lexical=numbers, dense=numbers, k=whole, page=whole, candidates=whole)
def test_numeric_options_are_valid_or_a_query_error(rrf_k, lexical, dense, k, page, candidates):
    request = SearchRequest(text="shirt", rrf_k=rrf_k, weights=(lexical, dense), k=k, page=page, candidates=candidates)
    try:
        request.validate()
    except QueryError:
        return
    assert math.isfinite(request.rrf_k) and all(math.isfinite(w) for w in request.weights)
    assert 1 <= request.k * request.page <= 10_000


@given(text=st.one_of(st.text(max_size=80), st.text(max_size=3000), st.sampled_from(["\x00", " ", "AND OR NOT",
                                                                                     '"', "*:*", "-", "🙂" * 50])),
       mode=st.sampled_from(["hybrid", "lexical", "dense"]), fusion=st.sampled_from(["rrf", "wsum"]),
       rrf_k=numbers, page=st.integers(min_value=1, max_value=3))
def test_any_query_text_gives_results_or_a_query_error(engine, text, mode, fusion, rrf_k, page):
    request = SearchRequest(text=text, mode=mode, fusion=fusion, rrf_k=rrf_k, k=5, page=page, candidates=20)
    try:
        with bounded(30):
            response = engine.search(request)
    except ShopLensError as exc:
        assert isinstance(exc, QueryError), exc
        return
    data = response.to_json()
    json.dumps(data, allow_nan=False)  # standard JSON: no NaN or Infinity in any score
    assert len(response.results) <= 5
