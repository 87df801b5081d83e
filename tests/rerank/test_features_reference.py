"""The reranker's fast feature paths give exactly what the straightforward code gives.

The references below are the plain implementations the fast ones replaced (a BM25 search
restricted to the candidates, Python loops over each candidate's title, every attribute
vocabulary scanned over all rows); they are kept here to check against.
"""

import numpy as np
import pytest

from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.indexers.lexical import tantivy_store
from shoplens.indexers.lexical.analysis import build_analyzer
from shoplens.indexers.lexical.base import LexicalStore
from shoplens.rerank.features import COLUMN, FeatureContext, compute_features
from shoplens.rerank.model import candidate_scores

QUERIES = ["red dress", "navy blue casual shirt for men", "black leather wallet", "white sneakers under 2000",
           "nike running shoes size 10", "puma t shirt", "blue jeans", "women watches"]
FIELDS = ("title", "brand", "category", "description", "attrs")


@pytest.fixture(scope="module")
def engine(sample_index, encoder):
    return SearchEngine(sample_index, device="cpu", encoder=encoder)


def candidates_for(engine, text):
    snapshot, candidates, _ = engine.retrieve(SearchRequest(text=text, k=200, candidates=200), for_rerank=True)
    return snapshot, candidates


def restricted_field_scores(store, text, docnos, fields):
    """Per-field BM25, each search restricted to the rows by a term set (the code the fast path replaced)."""
    tantivy = store._tantivy
    terms = store.query_terms(text)
    result = {field: np.zeros(len(docnos)) for field in fields}
    docset = tantivy.Query.const_score_query(
        tantivy.Query.term_set_query(store.schema, "docno", [int(d) for d in np.unique(docnos)]), 0.0)
    position = {d: i for i, d in enumerate(docnos.tolist())}
    for field in fields:
        clauses = [(tantivy.Occur.Should, tantivy.Query.term_query(store.schema, field, term)) for term in terms]
        query = tantivy.Query.boolean_query([(tantivy.Occur.Must, tantivy.Query.boolean_query(clauses)),
                                             (tantivy.Occur.Must, docset)])
        hits = store.searcher.search(query, len(docnos), count=False).hits
        found = store.searcher.fast_field_values("docno", [address for _, address in hits]) if hits else []
        for (score, _), docno in zip(hits, found):
            result[field][position[int(docno)]] = score
    return result


def reference_text_match(context, terms, docnos):
    query = set(terms)
    titles = context.title_terms(docnos)
    out = {"title_term_share": [len(query & set(t)) / len(query) for t in titles],
           "doc_term_share": [len(query & t) / len(query) for t in context.doc_terms(docnos)]}
    bigrams = set(zip(terms, terms[1:]))
    if bigrams:
        out["title_bigram_share"] = [len(bigrams & set(zip(t, t[1:]))) / len(bigrams) for t in titles]
        out["title_phrase"] = [float(" ".join(terms) in " ".join(t)) for t in titles]
    return out


def reference_has_any(vocab, docnos, codes):
    wanted = np.fromiter(codes, dtype=np.int64)
    row_codes, kind, _ = vocab._products.keyword(vocab.column)
    if kind == "scalar":
        return np.isin(row_codes[docnos], wanted)
    offsets, flat = row_codes
    cumulative = np.concatenate([[0], np.cumsum(np.isin(flat, wanted))])
    return (cumulative[offsets[docnos + 1]] - cumulative[offsets[docnos]]) > 0


def reference_attribute_share(context, terms, docnos):
    matched, asked = np.zeros(len(docnos)), 0
    for vocab in context.attributes:  # every vocabulary, not only those starting with a query term
        mentioned = vocab.mentioned(terms)
        if mentioned:
            asked += 1
            matched += reference_has_any(vocab, docnos, mentioned)
    return matched / asked if asked else np.full(len(docnos), np.nan)


@pytest.mark.parametrize("text", QUERIES)
def test_fast_features_equal_the_reference(engine, text):
    snapshot, candidates = candidates_for(engine, text)
    docnos = candidates.docnos
    assert len(docnos) > 20
    context = FeatureContext(snapshot, None, build_analyzer().analyze)
    matrix = compute_features(context, text, candidates, candidate_scores(snapshot, text, docnos)[0], now=1.8e9)
    store = snapshot.lexical
    expected = {"bm25": LexicalStore.scores_of(store, text, docnos)}
    expected.update({f"bm25_{f}": v for f, v in restricted_field_scores(store, text, docnos, FIELDS).items()})
    terms = context.analyze(text)
    expected.update(reference_text_match(context, terms, docnos))
    expected["attribute_match_share"] = reference_attribute_share(context, terms, docnos)
    for name, vocab in (("brand_match", context.brand), ("category_match", context.category),
                        ("colour_match", context.colour)):
        mentioned = vocab.mentioned(terms) if vocab is not None else set()
        expected[name] = reference_has_any(vocab, docnos, mentioned) if mentioned else np.full(len(docnos), np.nan)
    assert expected["bm25"].max() > 0 and expected["bm25_title"].max() > 0
    for name, values in expected.items():
        np.testing.assert_allclose(matrix[:, COLUMN[name]], np.asarray(values, dtype=np.float32), rtol=0, atol=1e-6,
                                   err_msg=name)


def test_scores_of_many_matches_takes_the_restricted_search_and_agrees(engine, monkeypatch):
    snapshot, candidates = candidates_for(engine, "navy blue casual shirt for men")
    store, docnos = snapshot.lexical, candidates.docnos
    every_match = store.scores_of("navy blue casual shirt for men", docnos), store.field_scores(
        "navy blue casual shirt for men", docnos, FIELDS)
    monkeypatch.setattr(tantivy_store, "ALL_MATCHES_MAX", 0)
    restricted = store.scores_of("navy blue casual shirt for men", docnos), store.field_scores(
        "navy blue casual shirt for men", docnos, FIELDS)
    assert (every_match[0] > 0).sum() > 10
    np.testing.assert_array_equal(every_match[0], restricted[0])
    for field in FIELDS:
        np.testing.assert_array_equal(every_match[1][field], restricted[1][field])
    repeated = np.concatenate([docnos[:5], docnos[:5]])
    np.testing.assert_array_equal(store.scores_of("navy blue casual shirt for men", repeated),
                                  np.concatenate([every_match[0][:5]] * 2))


def test_rows_filled_ahead_give_the_same_features(engine):
    """`fill_all` (what `serve` runs in the background) analyzes every row, and features do not change."""
    snapshot, candidates = candidates_for(engine, "navy blue casual shirt for men")
    text, docnos = "navy blue casual shirt for men", candidates.docnos
    lexical = candidate_scores(snapshot, text, docnos)[0]
    cold = FeatureContext(snapshot, None, build_analyzer().analyze)
    expected = compute_features(cold, text, candidates, lexical, now=1.8e9)
    warm = FeatureContext(snapshot, None, build_analyzer().analyze)
    stopped = warm.fill_all(chunk=100, stop=lambda: True)
    assert stopped == 0 and not warm._title_terms
    assert warm.fill_all(chunk=100) == snapshot.products.num_rows == len(warm._title_terms)
    np.testing.assert_array_equal(compute_features(warm, text, candidates, lexical, now=1.8e9), expected)
