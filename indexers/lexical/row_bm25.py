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
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
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
    """Every row's analyzed terms per field: entries `offsets[row]:offsets[row + 1]` of `codes` (term id
    times the number of fields plus the field's position) and `counts` (term frequency), and each row's
    quantized field lengths. Rows not given (deleted ones) have no entries."""

    fields: tuple[str, ...]
    vocabulary: dict[str, int]
    offsets: np.ndarray
    codes: np.ndarray
    counts: np.ndarray
    lengths: np.ndarray  # (rows, fields) float32

    @property
    def num_rows(self) -> int:
        return len(self.offsets) - 1

    def term_in_field(self, field: str) -> str | None:
        """One term some row has in `field` (to ask the searcher for the field's statistics)."""
        position = self.fields.index(field)
        hits = np.flatnonzero(self.codes % len(self.fields) == position)
        if not len(hits):
            return None
        term_id = int(self.codes[hits[0]]) // len(self.fields)
        return next(term for term, number in self.vocabulary.items() if number == term_id)


def build_row_terms(documents: Iterable[tuple[int, dict[str, str]]], rows: int, fields: tuple[str, ...],
                    analyze: Callable[[str], list[str]], stop: Callable[[], bool] | None = None) -> RowTerms | None:
    """RowTerms of `rows` rows from (docno, {field: text}) documents (docnos ascending; missing rows stay
    empty). None when `stop()` turned true before the end."""
    vocabulary: dict[str, int] = {}
    sizes = np.zeros(rows, dtype=np.int64)
    lengths = np.zeros((rows, len(fields)), dtype=np.int64)
    codes: list[int] = []
    counts: list[int] = []
    width = len(fields)
    for number, (docno, document) in enumerate(documents):
        if stop is not None and number % 512 == 0 and stop():
            return None
        before = len(codes)
        for position, field in enumerate(fields):
            terms = analyze(document.get(field) or "")
            lengths[docno, position] = len(terms)
            for term, count in Counter(terms).items():
                codes.append(vocabulary.setdefault(term, len(vocabulary)) * width + position)
                counts.append(count)
        sizes[docno] = len(codes) - before
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return RowTerms(fields, vocabulary, offsets, np.array(codes, dtype=np.int64),
                    np.array(counts, dtype=np.float32), quantized_lengths(lengths).astype(np.float32))


@dataclass(frozen=True)
class FieldStatistics:
    """The searcher's statistics BM25 uses: documents (N), each field's average length, and a function
    giving a term's document frequency in a field (n)."""

    documents: int
    average_length: dict[str, float]
    doc_freq: Callable[[str, str], int]


def idf(doc_freq: np.ndarray, documents: int) -> np.ndarray:
    """tantivy's inverse document frequency, in float32."""
    doc_freq = np.asarray(doc_freq, dtype=np.float32)
    ratio = (np.float32(documents) - doc_freq + np.float32(0.5)) / (doc_freq + np.float32(0.5))
    return np.log(np.float32(1.0) + ratio).astype(np.float32)


def row_field_scores(rows: RowTerms, stats: FieldStatistics, terms: list[str], docnos: np.ndarray) -> np.ndarray:
    """(len(docnos), fields) float32: each row's BM25 within each field alone for the distinct `terms`."""
    width = len(rows.fields)
    docnos = np.asarray(docnos, dtype=np.int64)
    out = np.zeros((len(docnos), width), dtype=np.float64)
    known = [(term, rows.vocabulary[term]) for term in terms if term in rows.vocabulary]
    if not known or not len(docnos):
        return out.astype(np.float32)
    term_ids = np.array([number for _, number in known], dtype=np.int64)
    frequencies = np.array([[stats.doc_freq(field, term) for term, _ in known] for field in rows.fields])
    weights = idf(frequencies, stats.documents) * (np.float32(1.0) + K1)  # (fields, terms)
    average = np.array([stats.average_length.get(field, 1.0) or 1.0 for field in rows.fields], dtype=np.float32)
    wanted = np.sort((term_ids[:, None] * width + np.arange(width)[None, :]).ravel())
    starts, sizes = rows.offsets[docnos], rows.offsets[docnos + 1] - rows.offsets[docnos]
    positions = np.arange(int(sizes.sum())) + np.repeat(starts - (np.cumsum(sizes) - sizes), sizes)
    codes = rows.codes[positions]
    at = np.minimum(np.searchsorted(wanted, codes), len(wanted) - 1)
    hit = wanted[at] == codes
    owner = np.repeat(np.arange(len(docnos)), sizes)[hit]
    codes, tf = codes[hit], rows.counts[positions[hit]]
    field = codes % width
    term = np.searchsorted(np.sort(term_ids), codes // width)
    weights = weights[:, np.argsort(term_ids)]  # columns in the order of the sorted term ids
    norm = K1 * (np.float32(1.0) - B + B * rows.lengths[docnos[owner], field] / average[field])
    scores = weights[field, term] * (tf / (tf + norm))
    np.add.at(out, (owner, field), scores)
    return out.astype(np.float32)


__all__ = ["FIELDNORMS", "FieldStatistics", "RowTerms", "build_row_terms", "idf", "quantized_lengths",
           "row_field_scores"]
