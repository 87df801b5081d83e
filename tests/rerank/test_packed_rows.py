"""Rows packed as term-id arrays (`rerank/packed_rows.py`) give exactly the features the per-row Python sets give."""

import numpy as np
import pytest

from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.indexers.lexical.analysis import build_analyzer
from shoplens.rerank.features import FEATURE_NAMES, FeatureContext, compute_features
from shoplens.rerank.model import candidate_scores
from shoplens.rerank.packed_rows import pack_rows

QUERIES = ["red dress", "navy blue casual shirt for men", "black leather wallet", "white sneakers under 2000",
           "nike running shoes size 10", "puma t shirt", "blue jeans", "women watches", "men", "tshirt xyzzy",
           "casual shirt casual shirt"]


@pytest.fixture(scope="module")
def engine(sample_index, encoder):
    return SearchEngine(sample_index, device="cpu", encoder=encoder)


@pytest.fixture(scope="module")
def contexts(engine):
    snapshot = engine.snapshot
    packed = FeatureContext(snapshot, None, build_analyzer().analyze)
    packed.fill_all()
    plain = FeatureContext(snapshot, None, build_analyzer().analyze)
    plain.fill_all()
    plain._packed = None  # the per-row Python sets only
    assert packed._packed is not None and packed._packed.num_rows == snapshot.products.num_rows
    return packed, plain


@pytest.mark.parametrize("text", QUERIES)
def test_packed_rows_give_every_feature_column_unchanged(engine, contexts, text):
    snapshot, candidates, _ = engine.retrieve(SearchRequest(text=text, k=200, candidates=200), for_rerank=True)
    docnos = candidates.docnos
    assert len(docnos) > 20
    lexical = candidate_scores(snapshot, text, docnos)[0]
    packed, plain = contexts
    new = compute_features(packed, text, candidates, lexical, now=1.8e9)
    old = compute_features(plain, text, candidates, lexical, now=1.8e9)
    for column, name in enumerate(FEATURE_NAMES):
        np.testing.assert_allclose(new[:, column], old[:, column], rtol=0, atol=1e-6, err_msg=name)
    np.testing.assert_array_equal(new, old)


def test_term_overlaps_equal_the_sets_on_every_row(engine, contexts):
    packed, plain = contexts
    rows = np.arange(engine.snapshot.products.num_rows, dtype=np.int64)
    for text in QUERIES:
        terms = packed.analyze(text)
        query, bigrams, phrase = set(terms), set(zip(terms, terms[1:])), " ".join(terms)
        np.testing.assert_array_equal(packed.term_overlaps(rows, query, bigrams, phrase),
                                      plain.term_overlaps(rows, query, bigrams, phrase), err_msg=text)


def test_packing_extended_from_an_earlier_packing_equals_packing_afresh(contexts):
    packed, _ = contexts
    whole = packed._packed
    count = whole.num_rows
    head = pack_rows(count // 2, packed._title_terms, packed._title_sets, packed._doc_terms)
    extended = pack_rows(count, packed._title_terms, packed._title_sets, packed._doc_terms, head, count // 2)
    assert extended.joined == whole.joined
    for name in ("title", "text", "bigrams", "text_postings", "bigram_postings"):
        for mine, theirs in zip(getattr(extended, name), getattr(whole, name)):
            np.testing.assert_array_equal(mine, theirs, err_msg=name)
    np.testing.assert_array_equal(extended.title_length, whole.title_length)
    np.testing.assert_array_equal(extended.bigram_codes, whole.bigram_codes)


def test_an_adopted_packing_is_extended_and_rows_not_yet_analyzed_are_not_packed(engine, contexts, monkeypatch):
    import shoplens.rerank.features as features

    monkeypatch.setattr(features, "PACK_TAIL_ROWS", 0)  # any new row: pack again
    monkeypatch.setattr(features, "PACK_TAIL_SHARE", 0.0)
    packed, _ = contexts
    snapshot = engine.snapshot
    fresh = FeatureContext(snapshot, None, build_analyzer().analyze)
    assert not fresh.pack() and fresh._packed is None  # rows not analyzed yet: the sets serve
    shared = snapshot.products.num_rows - 7
    fresh.adopt_rows(packed, shared)
    fresh.title_terms(np.arange(shared, snapshot.products.num_rows, dtype=np.int64))
    assert fresh.pack()
    assert fresh._packed.joined == packed._packed.joined
    np.testing.assert_array_equal(fresh._packed.text[1], packed._packed.text[1])


def test_an_updates_few_new_rows_stay_on_the_sets_beside_the_adopted_packing(engine, contexts):
    packed, plain = contexts
    snapshot = engine.snapshot
    rows = np.arange(snapshot.products.num_rows, dtype=np.int64)
    tail = FeatureContext(snapshot, None, build_analyzer().analyze)
    shared = len(rows) - 40  # as if the last 40 rows came with an update
    tail.adopt_rows(packed, shared)
    tail.title_terms(rows[shared:])
    assert tail.pack() and tail._packed is packed._packed and tail._packed_limit == shared  # nothing repacked
    for text in QUERIES:
        terms = tail.analyze(text)
        query, bigrams, phrase = set(terms), set(zip(terms, terms[1:])), " ".join(terms)
        mixed = np.concatenate([rows[-60:], rows[:30]])  # rows on both sides of the packing's limit
        np.testing.assert_array_equal(tail.term_overlaps(mixed, query, bigrams, phrase),
                                      plain.term_overlaps(mixed, query, bigrams, phrase), err_msg=text)
