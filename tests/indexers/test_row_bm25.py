"""BM25 of given rows from the rows' terms in memory equals tantivy's own scores."""

import json
import shutil

import numpy as np
import pytest

from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.maintenance import compact
from shoplens.indexers.lexical.base import TEXT_FIELDS
from shoplens.indexers.lexical.row_bm25 import FIELDNORMS, ROW_TERMS_PREFIX, idf, quantized_lengths, row_terms_name
from shoplens.indexers.snapshot import Snapshot
from shoplens.indexers.updates import apply_delta, delete_products

from tests.helpers import sample_products

QUERIES = ["red dress", "navy blue casual shirt for men", "black leather wallet", "white sneakers under 2000",
           "nike running shoes size 10", "puma t shirt", "blue jeans", "women watches", "zzzz unknownword"]


def searched_and_prepared(index_path):
    """Two stores of the same version: one scores by searching, one from prepared rows."""
    index = IndexDirectory(index_path)
    searched, prepared = Snapshot.open(index, device="cpu"), Snapshot.open(index, device="cpu")
    assert prepared.lexical.prepare_rows(prepared.products)
    return searched, prepared


def rows_for(snapshot, text, rng):
    """The query's top BM25 rows plus random live rows (most of which match no term)."""
    found, _ = snapshot.lexical.search(text, 150)
    live = snapshot.products.live_docnos()
    return np.concatenate([found, rng.choice(live, 50)]).astype(np.int64)


def assert_same_scores(searched, prepared, rng):
    matched = 0
    for text in QUERIES:
        docnos = rows_for(searched, text, rng)
        expected = searched.lexical.scores_of(text, docnos)
        np.testing.assert_allclose(prepared.lexical.scores_of(text, docnos), expected, rtol=1e-5, atol=1e-6,
                                   err_msg=text)
        fields_expected = searched.lexical.field_scores(text, docnos, TEXT_FIELDS)
        fields_prepared = prepared.lexical.field_scores(text, docnos, TEXT_FIELDS)
        for field in TEXT_FIELDS:
            np.testing.assert_allclose(fields_prepared[field], fields_expected[field], rtol=1e-5, atol=1e-6,
                                       err_msg=f"{text}: {field}")
            matched += int((fields_expected[field] > 0).sum())
    assert matched > 500  # the queries match many rows in every field, so the comparison means something


def test_prepared_rows_score_as_tantivy_searches(sample_index):
    searched, prepared = searched_and_prepared(sample_index)
    assert prepared.lexical._rows is not None and searched.lexical._rows is None
    assert_same_scores(searched, prepared, np.random.default_rng(0))


def test_prepared_rows_score_as_tantivy_with_each_field_s_own_idf(sample_index):
    """A version recorded before shared IDF (no `idf` in its lexical settings) keeps each field's own IDF in
    searches and in rows, and that scores differently from the shared IDF new indexes get."""
    searched, prepared = searched_and_prepared(sample_index)
    assert searched.manifest["backends"]["lexical"]["idf"] == "shared" and searched.lexical.shared_idf
    docnos = rows_for(searched, "black leather wallet", np.random.default_rng(2))
    shared = searched.lexical.scores_of("black leather wallet", docnos)
    for snapshot in (searched, prepared):
        snapshot.lexical.shared_idf = False
    assert not np.allclose(searched.lexical.scores_of("black leather wallet", docnos), shared)
    assert_same_scores(searched, prepared, np.random.default_rng(0))


def test_prepared_rows_score_as_tantivy_after_deletes(small_index):
    """Deleted documents still count in tantivy's statistics until a merge; the prepared scores follow."""
    delete_products(small_index, [row["id"] for row in sample_products(60)[:15]])
    searched, prepared = searched_and_prepared(small_index)
    assert prepared.products.num_live == 45
    rng = np.random.default_rng(1)
    for text in ("shirt", "men black", "women watch casual"):
        docnos = rows_for(searched, text, rng)
        np.testing.assert_allclose(prepared.lexical.scores_of(text, docnos), searched.lexical.scores_of(text, docnos),
                                   rtol=1e-5, atol=1e-6, err_msg=text)


def test_a_new_version_extends_the_previous_versions_rows(small_index, tmp_path):
    """Following an update analyzes only the rows it added; a renumbered (compacted) version is not extended."""
    index = IndexDirectory(small_index)
    old = Snapshot.open(index, device="cpu")
    assert old.lexical.prepare_rows(old.products)
    rows = sample_products(60)
    changed = [{**rows[0], "title": "Navy Blue Casual Shirt Shirt"}, {**rows[1], "description": "black leather wallet"}]
    delta = tmp_path / "delta.jsonl"
    delta.write_text("".join(json.dumps(row) + "\n" for row in changed))
    apply_delta(small_index, delta, device="cpu")
    new, searched = Snapshot.open(index, device="cpu", previous=old), Snapshot.open(index, device="cpu")
    assert new.products.num_rows == 62 and new.lexical.prepare_rows(new.products, previous=old.lexical)
    assert new.lexical._rows[0].num_rows == 62 and new.lexical._rows[0].terms[:10].tolist() == \
        old.lexical._rows[0].terms[:10].tolist()
    rng = np.random.default_rng(2)
    for text in ("navy shirt", "black leather wallet", "men casual"):
        docnos = np.concatenate([rows_for(searched, text, rng), [60, 61]]).astype(np.int64)
        np.testing.assert_allclose(new.lexical.scores_of(text, docnos), searched.lexical.scores_of(text, docnos),
                                   rtol=1e-5, atol=1e-6, err_msg=text)
    compact(small_index)
    renumbered = Snapshot.open(index, device="cpu")
    assert not renumbered.lexical.prepare_rows(renumbered.products, previous=new.lexical)
    assert renumbered.lexical._rows is None


def test_prepare_stops_when_asked(sample_index, tmp_path):
    """Analyzing rows (an index written before writes saved them) stops when asked."""
    snapshot = Snapshot.open(IndexDirectory(_without_saved_rows(sample_index, tmp_path / "old")), device="cpu")
    assert not snapshot.lexical.prepare_rows(snapshot.products, stop=lambda: True)
    assert snapshot.lexical._rows is None


def test_fieldnorm_table_and_idf_by_hand():
    # exact lengths up to 40, then buckets of two, four, ... (tantivy's fieldnorm byte)
    assert FIELDNORMS[:41].tolist() == list(range(41))
    assert FIELDNORMS[41:47].tolist() == [42, 44, 46, 48, 50, 52]
    assert FIELDNORMS[-1] == 2_013_265_944 and np.all(np.diff(FIELDNORMS) > 0)
    assert quantized_lengths(np.array([0, 7, 40, 41, 43, 57, 100])).tolist() == [0, 7, 40, 40, 42, 56, 96]
    # ln(1 + (N - n + 0.5) / (n + 0.5)): N = 44441, n = 8653 gives tantivy's explained 1.6362212
    assert idf(np.array([8653]), 44441)[0] == pytest.approx(1.6362212, abs=1e-6)


def _without_saved_rows(source, target):
    """A copy of an index as written before writes saved their analyzed rows."""
    shutil.copytree(source, target)
    for saved in target.rglob(f"{ROW_TERMS_PREFIX}*.npz"):
        saved.unlink()
    return target


def _row_entries(rows, docno):
    """A row's analyzed fields as {(field, term): count} plus its quantized lengths, independent of term ids."""
    words = {number: term for term, number in rows.vocabulary.items()}
    span = slice(rows.offsets[docno], rows.offsets[docno + 1])
    entries = {(rows.names[f], words[int(t)]): float(c) for t, f, c in
               zip(rows.terms[span], rows.fields[span], rows.counts[span])}
    return entries, rows.lengths[docno].tolist()


def test_saved_rows_equal_the_rows_analyzed_when_serving(sample_index, tmp_path):
    """After updates and deletes, the rows each write saved give every live row the same analyzed terms and
    candidates the same BM25 (1e-6) as analyzing the stored records, which an index without them still does."""
    path = tmp_path / "index"
    shutil.copytree(sample_index, path)
    rows = sample_products(40)
    changed = [{**row, "title": row["title"] + " Navy Blue Casual Shirt"} for row in rows[:25]]
    delta = tmp_path / "delta.jsonl"
    delta.write_text("".join(json.dumps(row) + "\n" for row in changed))
    apply_delta(path, delta, device="cpu")
    delete_products(path, [row["id"] for row in rows[25:40]])
    old = _without_saved_rows(path, tmp_path / "old")
    saved = Snapshot.open(IndexDirectory(path), device="cpu")
    analyzed = Snapshot.open(IndexDirectory(old), device="cpu")
    assert sorted(p.name for p in (saved.path / "lexical").glob(f"{ROW_TERMS_PREFIX}*")) == \
        [row_terms_name(0), row_terms_name(1500)]
    # every row comes from saved files: a stop asked at once would abandon any analysis
    assert saved.lexical.prepare_rows(saved.products, stop=lambda: True)
    assert not analyzed.lexical.prepare_rows(analyzed.products, stop=lambda: True)
    assert analyzed.lexical.prepare_rows(analyzed.products)
    live = saved.products.live_docnos()
    assert saved.products.num_rows == 1525 and len(live) == 1485
    for docno in live.tolist():
        assert _row_entries(saved.lexical._rows[0], docno) == _row_entries(analyzed.lexical._rows[0], docno)
    rng = np.random.default_rng(3)
    for text in QUERIES:
        docnos = np.concatenate([rows_for(saved, text, rng), live[-25:]]).astype(np.int64)
        np.testing.assert_allclose(saved.lexical.scores_of(text, docnos), analyzed.lexical.scores_of(text, docnos),
                                   rtol=0, atol=1e-6, err_msg=text)
        for field, scores in saved.lexical.field_scores(text, docnos, TEXT_FIELDS).items():
            np.testing.assert_allclose(scores, analyzed.lexical.field_scores(text, docnos, TEXT_FIELDS)[field],
                                       rtol=0, atol=1e-6, err_msg=f"{text}: {field}")


def test_a_followed_version_loads_the_rows_its_write_saved(small_index, tmp_path):
    """An index written before the saved rows (analyzed when opened) gains them with its next update: the
    follower extends the open version's rows from the file without analyzing, and scores as tantivy."""
    path = _without_saved_rows(small_index, tmp_path / "old")
    index = IndexDirectory(path)
    old = Snapshot.open(index, device="cpu")
    assert old.lexical.prepare_rows(old.products)
    rows = sample_products(60)
    delta = tmp_path / "delta.jsonl"
    delta.write_text("".join(json.dumps({**row, "title": "Black Leather Wallet " + row["title"]}) + "\n"
                             for row in rows[:3]))
    apply_delta(path, delta, device="cpu")
    new, searched = Snapshot.open(index, device="cpu", previous=old), Snapshot.open(index, device="cpu")
    assert (new.path / "lexical" / row_terms_name(60)).is_file()
    assert new.lexical.prepare_rows(new.products, stop=lambda: True, previous=old.lexical)
    assert new.lexical._rows[0].num_rows == 63
    rng = np.random.default_rng(4)
    for text in ("black leather wallet", "men casual", "shirt"):
        docnos = np.concatenate([rows_for(searched, text, rng), [60, 61, 62]]).astype(np.int64)
        np.testing.assert_allclose(new.lexical.scores_of(text, docnos), searched.lexical.scores_of(text, docnos),
                                   rtol=1e-5, atol=1e-6, err_msg=text)
