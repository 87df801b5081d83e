"""Every row's analyzed title and text as integer arrays, for the reranker's term-overlap features.

`FeatureContext` analyzes rows into Python sets (title terms, title bigrams, the whole text's terms);
counting a query's terms in 200 candidates' sets is then a Python loop of set intersections per query.
Once every row of a version is analyzed (`FeatureContext.fill_all`, the background warm-up), the sets are
packed here into CSR arrays of term ids (each row's distinct ids), so a query's counts are numpy work over
the candidates' ids: the same counts, so the same features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PackedRows:
    """Rows 0..num_rows-1: term ids (per row, distinct) of the title, of the whole text, and title bigram
    codes (first id * BIGRAM_BASE + second id), each as (offsets, flat); the title's length in terms and its
    terms joined by spaces (the phrase feature is a substring test on it)."""

    vocabulary: dict[str, int]
    title: tuple[np.ndarray, np.ndarray]
    text: tuple[np.ndarray, np.ndarray]
    bigrams: tuple[np.ndarray, np.ndarray]
    title_length: np.ndarray
    joined: list[str]

    text_postings: tuple[np.ndarray, np.ndarray]  # term id -> the rows whose text has it (sorted), as CSR
    bigram_codes: np.ndarray  # the distinct title bigram codes, sorted
    bigram_postings: tuple[np.ndarray, np.ndarray]  # position in bigram_codes -> rows whose title has it

    @property
    def num_rows(self) -> int:
        return len(self.title_length)

    def overlaps(self, docnos: np.ndarray, query: set[str], bigrams: set[tuple[str, str]], phrase: str) -> np.ndarray:
        """Per row (rows x 5): title terms, query terms in the title, query terms anywhere in the row's text,
        query bigrams in the title, 1 when the query's phrase is in the title (`FeatureContext.term_overlaps`)."""
        vocabulary = self.vocabulary
        ids = [vocabulary[term] for term in query if term in vocabulary]
        out = np.zeros((len(docnos), 5), dtype=np.float64)
        out[:, 0] = self.title_length[docnos]
        if ids:
            wanted = np.zeros(len(vocabulary), dtype=bool)
            wanted[ids] = True
            positions, starts = _positions(self.title[0], docnos)
            out[:, 1] = _counts(wanted[self.title[1][positions]], starts)
            out[:, 2] = _posting_hits(self.text_postings, ids, docnos)
        codes = np.array([vocabulary[a] * BIGRAM_BASE + vocabulary[b] for a, b in bigrams
                          if a in vocabulary and b in vocabulary], dtype=np.int64)
        if len(codes) and len(self.bigram_codes):
            found = np.minimum(np.searchsorted(self.bigram_codes, codes), len(self.bigram_codes) - 1)
            out[:, 3] = _posting_hits(self.bigram_postings, found[self.bigram_codes[found] == codes].tolist(), docnos)
        joined = self.joined
        out[:, 4] = [phrase in joined[d] for d in docnos.tolist()]
        return out


BIGRAM_BASE = 1 << 31  # term ids are below this


def pack_rows(count: int, title_terms: dict[int, list[str]], title_sets: dict, doc_terms: dict[int, set[str]],
              previous: PackedRows | None = None, shared: int = 0) -> PackedRows:
    """Pack rows 0..count-1 from `FeatureContext`'s per-row dicts (every row must be there); with `previous`
    (an earlier version's packing whose first `shared` rows are these rows), only rows from `shared` on are
    read from the dicts."""
    shared = min(shared, previous.num_rows) if previous is not None else 0
    vocabulary = dict(previous.vocabulary) if shared else {}

    def ids(terms) -> list[int]:
        return [vocabulary.setdefault(term, len(vocabulary)) for term in terms]

    title, text, bigrams, lengths, joined = [], [], [], [], []
    for docno in range(shared, count):
        terms, (title_set, _, joined_title) = title_terms[docno], title_sets[docno]
        title.append(sorted(ids(title_set)))
        text.append(sorted(ids(doc_terms[docno])))
        pairs = set(zip(ids(terms), ids(terms[1:])))
        bigrams.append(sorted(a * BIGRAM_BASE + b for a, b in pairs))
        lengths.append(len(terms))
        joined.append(joined_title)
    before = (lambda name: _head(getattr(previous, name), shared)) if shared else (lambda name: None)
    text_rows, bigram_rows = _csr(before("text"), text, np.int32), _csr(before("bigrams"), bigrams, np.int64)
    codes, bigram_ids = np.unique(bigram_rows[1], return_inverse=True)
    return PackedRows(vocabulary, _csr(before("title"), title, np.int32), text_rows, bigram_rows,
                      np.concatenate([previous.title_length[:shared] if shared else np.empty(0, np.int64),
                                      np.array(lengths, dtype=np.int64)]),
                      (previous.joined[:shared] if shared else []) + joined,
                      _transposed(text_rows[0], text_rows[1], len(vocabulary)), codes,
                      _transposed(bigram_rows[0], bigram_ids.reshape(-1), len(codes)))


def _transposed(offsets: np.ndarray, flat: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows -> ids (CSR) turned into ids -> the sorted rows that have each."""
    owner = np.repeat(np.arange(len(offsets) - 1, dtype=np.int32), np.diff(offsets))
    order = np.argsort(flat, kind="stable")
    return np.concatenate([[0], np.cumsum(np.bincount(flat, minlength=width))]).astype(np.int64), owner[order]


def _posting_hits(postings: tuple[np.ndarray, np.ndarray], ids: list[int], docnos: np.ndarray) -> np.ndarray:
    """How many of the `ids` each row has, from the ids' sorted row lists."""
    offsets, rows = postings
    count = np.zeros(len(docnos), dtype=np.int64)
    for term in ids:
        having = rows[offsets[term]:offsets[term + 1]]
        if len(having):
            found = np.minimum(np.searchsorted(having, docnos), len(having) - 1)
            count += having[found] == docnos
    return count


def _head(csr: tuple[np.ndarray, np.ndarray], rows: int) -> tuple[np.ndarray, np.ndarray]:
    offsets, flat = csr
    return offsets[:rows + 1], flat[:offsets[rows]]


def _csr(before: tuple[np.ndarray, np.ndarray] | None, rows: list[list[int]], dtype) -> tuple[np.ndarray, np.ndarray]:
    sizes = np.array([len(row) for row in rows], dtype=np.int64)
    flat = np.fromiter((value for row in rows for value in row), dtype=dtype, count=int(sizes.sum()))
    if before is None:
        return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), flat
    offsets, head = before
    return np.concatenate([offsets, offsets[-1] + np.cumsum(sizes)]).astype(np.int64), np.concatenate([head, flat])


def _positions(offsets: np.ndarray, docnos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The positions in `flat` of the rows' entries, row after row, and where each row's entries start among
    them (plus the end)."""
    begins, sizes = offsets[docnos], offsets[docnos + 1] - offsets[docnos]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    positions = np.arange(int(starts[-1])) + np.repeat(begins - starts[:-1], sizes)
    return positions, starts


def _counts(hits: np.ndarray, starts: np.ndarray) -> np.ndarray:
    cumulative = np.concatenate([[0], np.cumsum(hits)])
    return cumulative[starts[1:]] - cumulative[starts[:-1]]


__all__ = ["BIGRAM_BASE", "PackedRows", "pack_rows"]
