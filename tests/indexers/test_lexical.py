"""One conformance suite for every lexical backend.

tantivy always runs. Elasticsearch runs when SHOPLENS_ES_URL points at a
server, OpenSearch when SHOPLENS_OS_URL does, and each is skipped (saying why) otherwise.
"""

import os
import uuid

import numpy as np
import pytest

from shoplens.common.errors import ConfigError
from shoplens.indexers.lexical import LEXICAL_BACKENDS, lexical_store_class

pytestmark = pytest.mark.usefixtures("drop_test_indices")  # tests/indexers/conftest.py

DOCS = {
    0: {"title": "Nike Men Blue Running Shoes", "brand": "Nike", "category": "Footwear Shoes Sports Shoes",
        "description": "Lightweight mesh running shoe", "attrs": "Men Blue Sports"},
    1: {"title": "Puma Women Red Dress", "brand": "Puma", "category": "Apparel Dress",
        "description": "A red dress for summer evenings", "attrs": "Women Red Casual"},
    2: {"title": "Adidas Men Black Track Pants", "brand": "Adidas", "category": "Apparel Bottomwear",
        "description": "Track pants with side stripes, pairs well with running shoes", "attrs": "Men Black Sports"},
    3: {"title": "Fastrack Unisex Black Watch", "brand": "Fastrack", "category": "Accessories Watches",
        "description": "Analog watch with leather strap", "attrs": "Unisex Black Casual"},
    4: {"title": "Nike Women Pink Running Shoe", "brand": "Nike", "category": "Footwear Shoes Sports Shoes",
        "description": "Cushioned running shoe", "attrs": "Women Pink Sports"},
}


def backend_params():
    params = []
    for name in LEXICAL_BACKENDS:
        marks = []
        if name == "elasticsearch" and not os.environ.get("SHOPLENS_ES_URL"):
            marks.append(pytest.mark.skip(reason="SHOPLENS_ES_URL is not set: no Elasticsearch server to run the suite against"))
        if name == "opensearch" and not os.environ.get("SHOPLENS_OS_URL"):
            marks.append(pytest.mark.skip(reason="SHOPLENS_OS_URL is not set: no OpenSearch server to run the suite against"))
        params.append(pytest.param(name, marks=marks))
    return params


@pytest.fixture(params=backend_params())
def backend(request):
    return request.param


def config_for(backend):
    if backend in ("elasticsearch", "opensearch"):
        return {"index_prefix": f"shoplens-test-{uuid.uuid4().hex[:6]}"}
    return {}


@pytest.fixture
def store_dirs(tmp_path, backend):
    cls = lexical_store_class(backend)
    v1 = tmp_path / "v1"
    cls.write(v1, None, list(DOCS.items()), [], config_for(backend))
    return cls, v1


def ids(result):
    return result[0].tolist()


def test_bm25_finds_and_ranks_by_field_boosts(store_dirs):
    cls, v1 = store_dirs
    store = cls.open(v1)
    assert store.num_docs() == 5
    docnos, scores = store.search("running shoes", 10)
    # titles with both terms first; the track pants only mention them in the (low-boost) description
    assert set(ids((docnos[:2], scores[:2]))) == {0, 4}
    assert docnos[-1] == 2
    assert np.all(np.diff(scores) <= 1e-6)


def test_stemming_and_case(store_dirs):
    cls, v1 = store_dirs
    store = cls.open(v1)
    assert set(ids(store.search("WATCHES", 10))) == {3}
    assert set(ids(store.search("dresses", 10))) == {1}


def test_the_local_analyzer_analyzes_as_the_store_does(store_dirs):
    cls, v1 = store_dirs
    store = cls.open(v1)
    analyze = store.text_analyzer()
    for text in ("Running Shoes for MEN", "Red DRESSES", "the and of"):
        assert analyze(text) == store.analyze(text)
    assert analyze("Running Shoes") == ["run", "shoe"]


@pytest.mark.parametrize("text", ['nike AND "shoes', "title:nike", "-nike +shoes", "shoes*", "nike) OR (", "\\", "[a TO z]"])
def test_query_syntax_is_never_parsed(store_dirs, text):
    cls, v1 = store_dirs
    store = cls.open(v1)
    docnos, _ = store.search(text, 10)  # must not raise
    words = {w.strip('"()*+-:\\[]').lower() for w in text.split()}
    if {"nike", "shoes"} & words:
        assert {0, 4} <= set(docnos.tolist())


def test_stop_words_only_and_empty_queries_return_nothing(store_dirs):
    cls, v1 = store_dirs
    store = cls.open(v1)
    assert len(store.search("the and of", 10)[0]) == 0
    assert len(store.search("   ", 10)[0]) == 0


def test_allowed_mask_restricts_before_the_cut(store_dirs):
    cls, v1 = store_dirs
    store = cls.open(v1)
    allowed = np.zeros(5, bool)
    allowed[[2, 4]] = True
    docnos, _ = store.search("running shoes", 2, allowed)
    assert docnos.tolist() == [4, 2]  # both allowed matches, although three others score higher or equal
    assert len(store.search("running", 10, np.zeros(5, bool))[0]) == 0


def test_a_restriction_does_not_change_bm25_scores(store_dirs):
    """A filter (an allowed mask, however it is applied) keeps each product's BM25 score as it is."""
    cls, v1 = store_dirs
    store = cls.open(v1)
    docnos, scores = store.search("running shoes", 10)
    unfiltered = dict(zip(docnos.tolist(), scores.tolist()))
    allowed = np.zeros(5, bool)
    allowed[[2, 4]] = True
    store.direct_restrict_max = 10  # the backend searches only the allowed rows
    for docno, score in zip(*store.search("running shoes", 10, allowed)):
        assert score == pytest.approx(unfiltered[int(docno)], rel=1e-6)


def test_restricted_search_over_a_large_catalog_still_fills_k(tmp_path, backend):
    cls = lexical_store_class(backend)
    docs = [(i, {"title": f"cotton shirt {i}", "description": "plain" if i % 100 else "cotton cotton"})
            for i in range(6000)]
    cls.write(tmp_path / "big", None, docs, [], config_for(backend))
    store = cls.open(tmp_path / "big")
    allowed = np.zeros(6000, bool)
    allowed[np.arange(3, 6000, 997)] = True  # 7 rows, none among the top matches
    docnos, _ = store.search("cotton shirt", 10, allowed)
    assert sorted(docnos.tolist()) == np.flatnonzero(allowed).tolist()
    allowed = np.ones(6000, bool)
    allowed[::2] = False
    allowed[:100] = False
    docnos, _ = store.search("cotton", 50, allowed)  # a loose filter: over-fetch path
    assert len(docnos) == 50 and all(d % 2 == 1 and d >= 100 for d in docnos.tolist())


def test_new_version_leaves_the_parent_untouched(store_dirs, tmp_path, backend):
    cls, v1 = store_dirs
    v2 = tmp_path / "v2"
    cls.write(v2, v1, [(5, {"title": "Nike Kids Running Shoes", "brand": "Nike"})], [0], config_for(backend))
    old, new = cls.open(v1), cls.open(v2)
    if cls.physical_deletes:
        assert set(ids(old.search("running", 10))) == {0, 2, 4}
        assert set(ids(new.search("running", 10))) == {2, 4, 5}
        assert new.all_docnos().tolist() == [1, 2, 3, 4, 5]
        assert old.all_docnos().tolist() == [0, 1, 2, 3, 4]
    else:  # deletes are expressed by the live mask the engine passes
        live = np.array([False, True, True, True, True, True])
        assert set(ids(new.search("running", 10, live))) == {2, 4, 5}
        assert 5 not in set(ids(old.search("running", 10)))


@pytest.mark.parametrize("backend, name, variable", [("elasticsearch", "Elasticsearch", "SHOPLENS_ES_URL"),
                                                     ("opensearch", "OpenSearch", "SHOPLENS_OS_URL")])
def test_an_unreachable_cluster_is_a_clear_error(monkeypatch, backend, name, variable):
    """Runs without a server: the backend must say what is wrong before any work is done."""
    from shoplens.indexers.writer import WriteOptions, check_options

    monkeypatch.setenv(variable, "http://127.0.0.1:9")
    with pytest.raises(ConfigError, match=f"cannot reach {name} at http://127.0.0.1:9.*{variable}"):
        check_options(WriteOptions(lexical_backend=backend))
    monkeypatch.delenv(variable)
    with pytest.raises(ConfigError, match=f"set {variable}"):
        check_options(WriteOptions(lexical_backend=backend))


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="tantivy, elasticsearch"):
        lexical_store_class("solr")


def test_tantivy_version_files_are_not_modified_by_a_child_version(tmp_path):
    cls = lexical_store_class("tantivy")
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    cls.write(v1, None, list(DOCS.items()), [], {})
    before = {p.name: p.read_bytes() for p in v1.iterdir() if p.is_file() and "lock" not in p.name}
    cls.write(v2, v1, [(5, {"title": "extra"})], [1, 2], {})
    after = {p.name: p.read_bytes() for p in v1.iterdir() if p.is_file() and "lock" not in p.name}
    assert before == after


def test_documents_at_least_never_exceeds_the_matches(store_dirs):
    cls, v1 = store_dirs
    store = cls.open(v1)
    for text in ("running shoes", "shoes", "pants", "nothingmatcheshere"):
        matches = len(store.search(text, 100)[0])
        assert 0 <= store.documents_at_least(text) <= matches  # a lower bound (0: the store cannot tell)
    if cls.name == "tantivy":
        assert store.documents_at_least("shoes") >= 1


# A generic word in one brand name: "bag" is in five titles but one brand ("Be For Bag"), "kids" in five titles.
BAG_DOCS = {
    0: {"title": "Women Handbag", "brand": "Be For Bag", "category": "Accessories Handbags"},
    1: {"title": "Kids Bag", "brand": "Wildcraft", "category": "Accessories Bags"},
    **{i: {"title": f"{kind} Bag", "brand": brand, "category": "Accessories Bags"}
       for i, (kind, brand) in enumerate([("Laptop", "Puma"), ("Travel", "Nike"), ("Sling", "Adidas"),
                                          ("Duffel", "Fila")], start=2)},
    **{i: {"title": f"Kids {kind}", "brand": brand, "category": "Apparel"}
       for i, (kind, brand) in enumerate([("Tshirt", "Gini"), ("Shoes", "Bata"), ("Shorts", "Max"),
                                          ("Cap", "Fila")], start=6)},
}


@pytest.mark.parametrize("idf", ["field", "shared"])
def test_shared_idf_scores_a_generic_word_in_a_brand_as_the_word(tmp_path, backend, idf):
    """With each field's own IDF, "bag" in the one brand that holds it outweighs "kids" in a title; with the
    shared IDF (the field where the word is most common) it counts as the common word it is."""
    cls = lexical_store_class(backend)
    config = config_for(backend)
    cls.write(tmp_path / "v1", None, list(BAG_DOCS.items()), [], config)
    store = cls.open(tmp_path / "v1", {**config, "idf": idf})
    assert store.describe()["idf"] == idf
    docnos, scores = store.search("kids bag", 10)
    assert docnos[0] == 1  # both words in the title, either way
    brand_only = dict(zip(docnos.tolist(), scores.tolist()))[0]
    title_only = dict(zip(docnos.tolist(), scores.tolist()))[2]  # "Laptop Bag": "bag" in the title
    if idf == "field":
        assert brand_only > title_only
    else:
        assert brand_only < title_only
    np.testing.assert_allclose(store.scores_of("kids bag", docnos), scores, rtol=1e-4)


def test_an_unknown_idf_setting_is_refused(store_dirs):
    cls, v1 = store_dirs
    with pytest.raises(ConfigError, match="unknown lexical idf"):
        cls.open(v1, {"idf": "blended"})
