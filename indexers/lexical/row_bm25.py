"""Exact BM25 of given rows without a search: per-row term counts kept in memory, scored in numpy.

The reranker asks for the BM25 of its ~200 candidates, once for the whole field-boosted query and once
per text field. Searching for that costs one search per field; here each row's analyzed terms (term
counts and field lengths, row-major like a CSR matrix) are kept once per opened version, and a query
scores the rows with tantivy's own formula and statistics:

    score(term, field, row) = idf * (1 + k1) * tf / (tf + k1 * (1 - b + b * dl / avgdl))
    idf = ln(1 + (N - n + 0.5) / (n + 0.5)),  k1 = 1.2, b = 0.75

in float32 as tantivy computes it, with `dl` the row's field length quantized as tantivy stores it
(its fieldnorm code) and N, n and avgdl the searcher's (`FieldStatistics`), so the scores equal the
searches' up to float32 summation order.

Shared IDF (`shared_idf_factors`): a whole-query score may weigh a term in every field by the IDF of
the field where the term is most common, as Elasticsearch's `cross_fields` blends document
frequencies, instead of each field's own. A generic word that is rare in one field ("bag" in the
brand "Be For Bag", "home" in "Home Decorators Collection") then no longer scores as if it named the
brand. The searches get it as per-clause boosts (the field boost times `shared / own` IDF), the rows
here as the same factors, so both still agree.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

K1 = np.float32(1.2)
B = np.float32(0.75)


def _fieldnorm_table() -> np.ndarray:
    """tantivy's 256 field lengths a fieldnorm byte decodes to (exact up to 40, then 4 significant bits)."""
    identity = 24
    values = []
    for code in range(256):
        if code < identity:
            values.append(code)
            continue
        part = code - identity
        bits, shift = part & 0b111, part >> 3
        values.append(identity + (bits if shift == 0 else (bits | 8) << (shift - 1)))
    return np.array(values, dtype=np.int64)


FIELDNORMS = _fieldnorm_table()


def quantized_lengths(lengths: np.ndarray) -> np.ndarray:
    """Field lengths as tantivy scores them: rounded down to the nearest length its fieldnorm byte holds."""
    return FIELDNORMS[np.searchsorted(FIELDNORMS, np.asarray(lengths, dtype=np.int64), side="right") - 1]


@dataclass
class RowTerms:
    """Every row's analyzed terms per field: entries `offsets[row]:offsets[row + 1]` of `terms` (term ids),
    `fields` (the field's position) and `counts` (term frequency), and each row's quantized field lengths.
    Rows not given (deleted ones) have no entries."""

    names: tuple[str, ...]
    vocabulary: dict[str, int]
    offsets: np.ndarray
    terms: np.ndarray  # int32
    fields: np.ndarray  # uint8
    counts: np.ndarray  # float32
    lengths: np.ndarray  # (rows, fields) float32
    records: object = None  # what the rows were read from (a store uses it to tell a later version extends them)

    @property
    def num_rows(self) -> int:
        return len(self.offsets) - 1

    def term_in_field(self, field: str, live: np.ndarray | None = None) -> str | None:
        """One term some row (among the `live` docnos, when given) has in `field` (to ask the searcher for
        the field's statistics)."""
        position = self.names.index(field)
        alive = None
        if live is not None:  # a deleted row's terms may be in no live document: the searcher knows no length
            alive = np.zeros(self.num_rows, dtype=bool)
            alive[live[live < self.num_rows]] = True
        block = 65536  # entries looked at a time: the first block nearly always has one (not all, every version)
        for start in range(0, len(self.fields), block):
            hits = start + np.flatnonzero(self.fields[start:start + block] == position)
            if alive is not None:
                hits = hits[alive[np.searchsorted(self.offsets, hits, side="right") - 1]]
            if len(hits):
                term_id = int(self.terms[hits[0]])
                return next(term for term, number in self.vocabulary.items() if number == term_id)
        return None


def build_row_terms(documents: Iterable[tuple[int, dict[str, str]]], rows: int, names: tuple[str, ...],
                    analyze: Callable[[str], list[str]], stop: Callable[[], bool] | None = None,
                    base: RowTerms | None = None) -> RowTerms | None:
    """RowTerms of `rows` rows from (docno, {field: text}) documents (docnos ascending; missing rows stay
    empty); with `base`, its rows followed by the documents' (docnos from `base.num_rows` on). None when
    `stop()` turned true before the end."""
    first = 0 if base is None else base.num_rows
    vocabulary: dict[str, int] = {} if base is None else dict(base.vocabulary)
    sizes = np.zeros(rows - first, dtype=np.int64)
    lengths = np.zeros((rows - first, len(names)), dtype=np.int64)
    terms: list[int] = []
    fields: list[int] = []
    counts: list[int] = []
    for number, (docno, document) in enumerate(documents):
        if stop is not None and number % 512 == 0 and stop():
            return None
        before = len(terms)
        for position, field in enumerate(names):
            analyzed = analyze(document.get(field) or "")
            lengths[docno - first, position] = len(analyzed)
            for term, count in Counter(analyzed).items():
                terms.append(vocabulary.setdefault(term, len(vocabulary)))
                fields.append(position)
                counts.append(count)
        sizes[docno - first] = len(terms) - before
    added = RowTerms(names, vocabulary, np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
                     np.array(terms, dtype=np.int32), np.array(fields, dtype=np.uint8),
                     np.array(counts, dtype=np.float32), quantized_lengths(lengths).astype(np.float32))
    return added if base is None else _appended(base, added)


def _appended(base: RowTerms, added: RowTerms) -> RowTerms:
    """`base`'s rows followed by `added`'s (whose vocabulary extends base's)."""
    return RowTerms(base.names, added.vocabulary, np.concatenate([base.offsets, base.offsets[-1] + added.offsets[1:]]),
                    np.concatenate([base.terms, added.terms]), np.concatenate([base.fields, added.fields]),
                    np.concatenate([base.counts, added.counts]), np.concatenate([base.lengths, added.lengths]))


def extended_row_terms(base: RowTerms | None, added: RowTerms, first: int) -> RowTerms | None:
    """`base`'s rows followed by `added`'s, which start at docno `first` and carry their own vocabulary
    (as `save_row_terms` wrote them): their term ids are mapped onto base's vocabulary, extended by their
    new terms. None when `added` does not start where `base` ends (0 without a base)."""
    if first != (0 if base is None else base.num_rows) or added.names != (base.names if base else added.names):
        return None
    vocabulary: dict[str, int] = {} if base is None else base.vocabulary
    local = sorted(added.vocabulary.items(), key=lambda item: item[1])
    known = vocabulary.get
    mapping = np.fromiter((known(term, -1) for term, _ in local), dtype=np.int32, count=len(local))
    if (mapping < 0).any():  # new terms: a copy of base's vocabulary extended (base's own stays as it is)
        vocabulary = dict(vocabulary)
        mapping = np.fromiter((vocabulary.setdefault(term, len(vocabulary)) for term, _ in local), dtype=np.int32,
                              count=len(local))
    mapped = RowTerms(added.names, vocabulary, added.offsets, mapping[added.terms] if len(added.terms) else
                      added.terms.astype(np.int32), added.fields, added.counts, added.lengths)
    return mapped if base is None else _appended(base, mapped)


ROW_TERMS_PREFIX = "rowterms-"  # a lexical component's analyzed rows of one write: rowterms-<first docno>.npz


def row_terms_name(first: int) -> str:
    return f"{ROW_TERMS_PREFIX}{first:010d}.npz"


def save_row_terms(directory: Path, first: int, rows: RowTerms) -> None:
    """Write the analyzed rows of one write (docnos `first`...) next to the store's files, so a reader
    loads them instead of analyzing the rows again (`load_row_terms`). Uncompressed; written once."""
    target = Path(directory) / row_terms_name(first)
    vocabulary = np.array(sorted(rows.vocabulary, key=rows.vocabulary.__getitem__), dtype=np.str_)
    partial = target.with_name(target.name + ".partial")
    with open(partial, "wb") as handle:
        np.savez(handle, names=np.array(rows.names, dtype=np.str_), vocabulary=vocabulary, offsets=rows.offsets,
                 terms=rows.terms, fields=rows.fields, counts=rows.counts, lengths=rows.lengths)
    partial.replace(target)


def load_row_terms(directory: Path, first: int) -> RowTerms | None:
    """The analyzed rows a write saved for docnos from `first` (their own vocabulary), None when there are
    none or they cannot be read (the caller analyzes the rows instead)."""
    path = Path(directory) / row_terms_name(first)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as saved:
            terms = saved["vocabulary"].tolist()
            return RowTerms(tuple(saved["names"].tolist()), dict(zip(terms, range(len(terms)))),
                            saved["offsets"].astype(np.int64), saved["terms"].astype(np.int32),
                            saved["fields"].astype(np.uint8), saved["counts"].astype(np.float32),
                            saved["lengths"].astype(np.float32))
    except (OSError, ValueError, KeyError):
        return None


@dataclass(frozen=True)
class FieldStatistics:
    """The searcher's statistics BM25 uses: documents (N), each field's average length, and a function
    giving a term's document frequency in a field (n)."""

    documents: int
    average_length: dict[str, float]
    doc_freq: Callable[[str, str], int]
    live_documents: int = 0  # the N shared IDF factors are computed with (the searcher's live documents)


def idf(doc_freq: np.ndarray, documents: int) -> np.ndarray:
    """tantivy's inverse document frequency, in float32."""
    doc_freq = np.asarray(doc_freq, dtype=np.float32)
    ratio = (np.float32(documents) - doc_freq + np.float32(0.5)) / (doc_freq + np.float32(0.5))
    return np.log(np.float32(1.0) + ratio).astype(np.float32)


def shared_idf_factors(doc_freq: np.ndarray, documents: int) -> np.ndarray:
    """(fields, terms) float32 factors turning each field's IDF of a term into the term's shared IDF, the
    IDF of the field where it is most common (1 where a field lacks the term: it scores nothing there)."""
    doc_freq = np.asarray(doc_freq, dtype=np.float32)
    own = idf(doc_freq, documents)
    shared = idf(doc_freq.max(axis=0, keepdims=True), documents)
    return np.where(doc_freq > 0, shared / own, np.float32(1.0)).astype(np.float32)


def row_scores_by_idf(rows: RowTerms, stats: FieldStatistics, terms: list[str],
                      docnos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two (len(docnos), fields) float32 arrays: each row's BM25 within each field alone for the distinct `terms`,
    with each field's own IDF and with the terms' shared IDF, from one pass over the rows."""
    width = len(rows.names)
    docnos = np.asarray(docnos, dtype=np.int64)
    known = [(term, rows.vocabulary[term]) for term in terms if term in rows.vocabulary]
    if not known or not len(docnos):
        empty = np.zeros((len(docnos), width), dtype=np.float32)
        return empty, empty.copy()
    frequencies = np.array([[stats.doc_freq(field, term) for term, _ in known] for field in rows.names])
    weights = idf(frequencies, stats.documents) * (np.float32(1.0) + K1)  # (fields, query terms)
    blended = weights * shared_idf_factors(frequencies, stats.live_documents or stats.documents)
    average = np.array([stats.average_length.get(field) or 1.0 for field in rows.names], dtype=np.float32)
    slot = np.full(len(rows.vocabulary), -1, dtype=np.int32)  # term id -> its position among the query's terms
    slot[[number for _, number in known]] = np.arange(len(known))
    starts, sizes = rows.offsets[docnos], rows.offsets[docnos + 1] - rows.offsets[docnos]
    positions = np.arange(int(sizes.sum())) + np.repeat(starts - (np.cumsum(sizes) - sizes), sizes)
    term = slot[rows.terms[positions]]
    hit = term >= 0
    positions, term = positions[hit], term[hit]
    owner = np.repeat(np.arange(len(docnos)), sizes)[hit]
    field = rows.fields[positions].astype(np.int64)
    tf = rows.counts[positions]
    part = tf / (tf + K1 * (np.float32(1.0) - B + B * rows.lengths[docnos[owner], field] / average[field]))
    cell = owner * width + field

    def summed(by_term: np.ndarray) -> np.ndarray:
        out = np.bincount(cell, weights=by_term[field, term] * part, minlength=len(docnos) * width)
        return out.reshape(len(docnos), width).astype(np.float32)

    return summed(weights), summed(blended)


__all__ = ["FIELDNORMS", "FieldStatistics", "RowTerms", "build_row_terms", "extended_row_terms", "idf",
           "row_scores_by_idf", "shared_idf_factors",
           "load_row_terms", "quantized_lengths", "row_terms_name", "save_row_terms"]
