"""BM25 with tantivy, embedded: the default lexical store.

Each version's `lexical/` directory is a complete tantivy index. A new version
starts from hard links to the parent's segment files (tantivy never rewrites a
segment file; the small meta files it replaces are copied instead), then
deletes and adds documents and commits. Older versions keep their own meta
and so their own view, which is what makes rollback and consistent reads work.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from shoplens.common.errors import ConfigError, IndexCorruptError
from shoplens.indexers.catalog import Product
from shoplens.indexers.lexical.analysis import build_analyzer
from shoplens.indexers.lexical.base import FIELD_BOOSTS, TEXT_FIELDS, LexicalStore, idf_mode, lexical_fields
from shoplens.indexers.lexical.row_bm25 import (FieldStatistics, RowTerms, build_row_terms, extended_row_terms,
                                                load_row_terms, row_scores_by_idf, save_row_terms,
                                                shared_idf_factors)
from shoplens.indexers.storage import atomic_write_json, link_tree, read_json

ANALYZER = "shoplens_en"
META_FILES = ("meta.json", ".managed.json")
LOCK_FILES = (".tantivy-writer.lock", ".tantivy-meta.lock")
TERM_SET_MAX = 4096  # above this many allowed rows, scan all matches and mask instead
ALL_MATCHES_MAX = 512  # scoring given rows: fetch every match when at most this many documents can match


def _tantivy():
    import tantivy

    return tantivy


def build_schema():
    tantivy = _tantivy()
    builder = tantivy.SchemaBuilder()
    builder.add_unsigned_field("docno", stored=True, indexed=True, fast=True)
    for field in TEXT_FIELDS:
        builder.add_text_field(field, stored=False, tokenizer_name=ANALYZER, index_option="position")
    return builder.build()


def open_for_reading(tantivy, directory: Path):
    """`tantivy.Index.open`, whose reader takes a lock file in the index folder even to search (tantivy-py
    0.27 has no read-only open). A folder it cannot write to, or files it cannot read, are a one-line
    `ConfigError` that says what to do rather than tantivy's Rust error."""
    try:
        return tantivy.Index.open(str(directory))
    except ValueError as exc:
        problem = access_problem(str(exc), directory)
        if problem is None:
            raise
        raise ConfigError(problem) from None


def access_problem(text: str, directory: Path) -> str | None:
    """What to do about a tantivy error that is about file access, not damage (None for anything else)."""
    locked = "Lockfile" in text
    if locked and ("ReadOnlyFilesystem" in text or "Read-only file system" in text):
        return (f"cannot search {directory}: it is on a read-only file system (tantivy writes a lock file there "
                "even to read); copy the index to a writable folder")
    if "PermissionDenied" in text or "Permission denied" in text:
        if locked:
            return (f"cannot search {directory}: this user may not write there (tantivy writes a lock file there "
                    "even to read); copy the index to a writable folder, or make that folder writable")
        return f"cannot read the keyword store in {directory}: permission denied; run as a user who can read the index"
    return None


class TantivyStore(LexicalStore):
    name = "tantivy"
    physical_deletes = True

    def __init__(self, directory: Path, idf: str = "field"):
        tantivy = _tantivy()
        if not tantivy.Index.exists(str(directory)):
            raise IndexCorruptError(f"no tantivy index in {directory}; run `shoplens check`")
        self.directory = directory
        self.index = open_for_reading(tantivy, directory)
        self.index.register_tokenizer(ANALYZER, build_analyzer())
        self.index.reload()
        self.searcher = self.index.searcher()
        self.schema = self.index.schema
        self.analyzer = build_analyzer()
        self._tantivy = tantivy
        self.shared_idf = idf == "shared"  # a whole-query score weighs each term by its shared IDF (row_bm25)
        self._rows: tuple[RowTerms, FieldStatistics] | None = None  # set by prepare_rows: rows scored in numpy
        self._last_scores: tuple[tuple, tuple[np.ndarray, np.ndarray]] | None = None

    @classmethod
    def write(cls, target, parent, adds, deletes, config):
        tantivy = _tantivy()
        target.mkdir(parents=True, exist_ok=True)
        if parent is not None:
            link_tree(parent, target, copy_names=META_FILES)
            for name in LOCK_FILES:
                (target / name).unlink(missing_ok=True)
            index = tantivy.Index.open(str(target))
        else:
            index = tantivy.Index(build_schema(), path=str(target), reuse=False)
        index.register_tokenizer(ANALYZER, build_analyzer())
        writer = index.writer(heap_size=int((config or {}).get("heap_size", 128_000_000)), num_threads=1)
        if len(deletes):
            # by query: a term on the u64 field must be typed as the schema types it
            schema = index.schema
            for start in range(0, len(deletes), TERM_SET_MAX):
                chunk = [int(d) for d in deletes[start:start + TERM_SET_MAX]]
                writer.delete_documents_by_query(tantivy.Query.term_set_query(schema, "docno", chunk))
        adds = list(adds)
        for docno, fields in adds:
            document = tantivy.Document()
            document.add_unsigned("docno", int(docno))
            for field in TEXT_FIELDS:
                text = fields.get(field) or ""
                if text:
                    document.add_text(field, text)
            writer.add_document(document)
        writer.commit()
        writer.wait_merging_threads()
        index.reload()
        _save_analyzed(target, adds)
        searcher = index.searcher()
        state = {"backend": cls.name, "documents": searcher.num_docs}
        atomic_write_json(target / "state.json", state)
        return state

    @classmethod
    def open(cls, directory, config=None):
        return cls(directory, idf=idf_mode(config))

    def analyze(self, text: str) -> list[str]:
        return self.analyzer.analyze(text)

    def text_analyzer(self) -> Callable[[str], list[str]]:
        return self.analyzer.analyze

    def _query(self, terms: list[str]):
        """Every term in every field, each clause boosted by its field's boost (times the term's shared / own
        IDF in that field with shared IDF)."""
        tantivy = self._tantivy
        boosts = np.array([[boost] * len(terms) for boost in FIELD_BOOSTS.values()], dtype=np.float32)
        if self.shared_idf and terms:
            frequencies = [[self.searcher.doc_freq(field, term) for term in terms] for field in FIELD_BOOSTS]
            boosts = boosts * shared_idf_factors(frequencies, int(self.searcher.num_docs))
        clauses = []
        for row, field in enumerate(FIELD_BOOSTS):
            for column, term in enumerate(terms):
                clauses.append((tantivy.Occur.Should, tantivy.Query.boost_query(
                    tantivy.Query.term_query(self.schema, field, term), float(boosts[row, column]))))
        return tantivy.Query.boolean_query(clauses)

    def _search(self, terms, limit, restrict):
        tantivy = self._tantivy
        query = self._query(terms)
        mask = None
        if restrict is not None:
            if len(restrict) <= TERM_SET_MAX:
                # scoring 0: a restriction must not change the BM25 score (a bare term set adds 1.0)
                docset = tantivy.Query.const_score_query(
                    tantivy.Query.term_set_query(self.schema, "docno", [int(d) for d in restrict]), 0.0)
                query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, docset)])
            else:
                mask = np.zeros(int(restrict.max()) + 1, dtype=bool)
                mask[restrict] = True
                limit, wanted = self.searcher.num_docs, limit
        if limit <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        hits = self.searcher.search(query, int(limit), count=False).hits
        if not hits:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        scores = np.fromiter((score for score, _ in hits), dtype=np.float32, count=len(hits))
        docnos = np.asarray(self.searcher.fast_field_values("docno", [address for _, address in hits]), dtype=np.int64)
        if mask is not None:
            inside = docnos < len(mask)
            keep = np.zeros(len(docnos), dtype=bool)
            keep[inside] = mask[docnos[inside]]
            docnos, scores = docnos[keep][:wanted], scores[keep][:wanted]
        return docnos, scores

    def field_scores(self, text, docnos, fields):
        """Per-field BM25 of the given rows: from the rows' terms in memory once `prepare_rows` has run,
        otherwise one query per field (see `_row_scores`)."""
        tantivy = self._tantivy
        terms = self.query_terms(text)
        docnos = np.asarray(docnos, dtype=np.int64)
        result = {field: np.zeros(len(docnos)) for field in fields}
        if not terms or not len(docnos):
            return result
        prepared = self._prepared(docnos)
        if prepared is not None:
            rows = prepared[0]
            scores = self._prepared_scores(prepared, terms, docnos)[0]
            return {field: scores[:, rows.names.index(field)].astype(np.float64) for field in fields}
        for field in fields:
            clauses = [(tantivy.Occur.Should, tantivy.Query.term_query(self.schema, field, term)) for term in terms]
            matches = sum(self.searcher.doc_freq(field, term) for term in terms)
            result[field] = self._row_scores(tantivy.Query.boolean_query(clauses), docnos, matches)
        return result

    def scores_of(self, text, docnos):
        """BM25 of the given rows for the whole (field-boosted) query, 0 where a row matches no term."""
        terms = self.query_terms(text)
        docnos = np.asarray(docnos, dtype=np.int64)
        if not terms or not len(docnos):
            return np.zeros(len(docnos))
        prepared = self._prepared(docnos)
        if prepared is not None:
            boosts = np.array([FIELD_BOOSTS[field] for field in prepared[0].names], dtype=np.float32)
            scores = self._prepared_scores(prepared, terms, docnos)[1 if self.shared_idf else 0]
            return (scores * boosts).sum(axis=1, dtype=np.float32).astype(np.float64)
        matches = sum(self.searcher.doc_freq(field, term) for field in FIELD_BOOSTS for term in terms)
        return self._row_scores(self._query(terms), docnos, matches)

    def documents_at_least(self, text):
        """The most documents any one field holds a term of `text` in (they are counted in deleted rows too,
        until a merge: a bound for screening, not a count)."""
        return max((self.searcher.doc_freq(field, term) for field in FIELD_BOOSTS for term in self.query_terms(text)),
                   default=0)

    def prepare_rows(self, products, stop=None, previous=None) -> bool:
        """Have every live row's analyzed fields in memory, so `field_scores` and `scores_of` score rows in
        numpy instead of searching: the rows each write saved (`rowterms-*.npz`) are loaded, and rows with
        none (an index written before them) are analyzed (seconds on a large catalog: a long-running caller
        does it in the background). With `previous` (the store of an earlier version whose rows this
        version's rows start with), only extend what it holds by the rows added since; nothing when it
        holds none or its rows differ."""
        if self._rows is not None:
            return True
        base = None
        if previous is not None:
            held = getattr(previous, "_rows", None)
            base = held[0] if held is not None and _starts_with(products, held[0]) else None
            if base is None:
                return False
        base = self._saved_rows(base, products.num_rows)
        column = products.table.column("record")
        rows = base
        if base is None or base.num_rows < products.num_rows:
            live = products.live_docnos()
            live = live[live >= (0 if base is None else base.num_rows)]

            def documents():
                for start in range(0, len(live), 512):
                    chunk = live[start:start + 512]
                    for docno, raw in zip(chunk.tolist(), products.column_values("record", chunk)):
                        yield docno, lexical_fields(Product.from_record(json.loads(raw)))

            rows = build_row_terms(documents(), products.num_rows, TEXT_FIELDS, self.analyzer.analyze, stop, base)
            if rows is None:
                return False
        rows = dataclasses.replace(rows, records=column)
        self._rows = (rows, self._statistics(rows, products.live_docnos()))
        return True

    def _saved_rows(self, rows: RowTerms | None, total: int) -> RowTerms | None:
        """`rows` (or nothing) extended by the analyzed rows writes saved from where they end, as far as
        saved files reach without a gap."""
        while (start := 0 if rows is None else rows.num_rows) < total:
            added = load_row_terms(self.directory, start)
            extended = None if added is None or start + added.num_rows > total else \
                extended_row_terms(rows, added, start)
            if extended is None:
                break
            rows = extended
        return rows

    def _prepared(self, docnos: np.ndarray) -> tuple[RowTerms, FieldStatistics] | None:
        prepared = self._rows
        if prepared is None or int(docnos.max()) >= prepared[0].num_rows:
            return None
        return prepared

    def _prepared_scores(self, prepared, terms: list[str], docnos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`row_scores_by_idf` (the fields' own IDF, the shared IDF), kept for the last (terms, rows) asked: the
        reranker asks for the whole query's score and the per-field scores of the same candidates one after
        the other."""
        key = (tuple(terms), docnos.tobytes())
        last = self._last_scores
        if last is not None and last[0] == key:
            return last[1]
        scores = row_scores_by_idf(prepared[0], prepared[1], terms, docnos)
        self._last_scores = (key, scores)
        return scores

    def _statistics(self, rows: RowTerms, live: np.ndarray) -> FieldStatistics:
        """The searcher's N and average field lengths (read from its explanation of one term per field, so
        they are the ones its scores use, deleted documents included), and its document frequencies."""
        tantivy = self._tantivy
        documents, average = int(self.searcher.num_docs), {}
        for field in rows.names:
            term = rows.term_in_field(field, live)
            if term is None:
                continue
            query = tantivy.Query.term_query(self.schema, field, term)
            hits = self.searcher.search(query, 1, count=False).hits
            if hits:
                found = _explained(json.loads(query.explain(self.searcher, hits[0][1]).to_json()))
                documents = int(found.get("N, total number of docs", documents))
                average[field] = float(found.get("avgdl, average length of field", 1.0))
        return FieldStatistics(documents, average, self.searcher.doc_freq, int(self.searcher.num_docs))

    def _row_scores(self, query, docnos: np.ndarray, matches: int) -> np.ndarray:
        """Each row's score for `query` (0 where it does not match).

        `matches` bounds how many documents match (the terms' document frequencies). When that is
        small, every match is fetched and the rows picked out, which is ten times cheaper than
        restricting the search to the rows (a term-set query looks each row up); otherwise the
        search is restricted. The scores are the same either way: the restriction scores 0.
        """
        tantivy = self._tantivy
        if matches <= 0:
            return np.zeros(len(docnos))
        if matches <= ALL_MATCHES_MAX:
            limit = matches
        else:
            limit = len(docnos)
            docset = tantivy.Query.const_score_query(
                tantivy.Query.term_set_query(self.schema, "docno", [int(d) for d in np.unique(docnos)]), 0.0)
            query = tantivy.Query.boolean_query([(tantivy.Occur.Must, query), (tantivy.Occur.Must, docset)])
        hits = self.searcher.search(query, int(limit), count=False).hits
        if not hits:
            return np.zeros(len(docnos))
        found = np.asarray(self.searcher.fast_field_values("docno", [address for _, address in hits]), dtype=np.int64)
        values = np.fromiter((score for score, _ in hits), dtype=np.float32, count=len(hits))
        unique, inverse = np.unique(docnos, return_inverse=True)
        at = np.searchsorted(unique, found)
        wanted = at < len(unique)
        wanted[wanted] = unique[at[wanted]] == found[wanted]
        per_row = np.zeros(len(unique))
        per_row[at[wanted]] = values[wanted]
        return per_row[inverse]

    def num_docs(self) -> int:
        return int(self.searcher.num_docs)

    def all_docnos(self) -> np.ndarray:
        tantivy = self._tantivy
        hits = self.searcher.search(tantivy.Query.all_query(), max(self.num_docs(), 1), count=False).hits
        return np.sort(np.asarray(self.searcher.fast_field_values("docno", [a for _, a in hits]), dtype=np.int64))

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info["segments"] = int(self.searcher.num_segments)
        info["analyzer"] = "simple tokenizer, lowercase, ASCII folding, English stop words, English stemmer"
        return info


def _save_analyzed(target: Path, adds: list[tuple[int, dict[str, Any]]]) -> None:
    """Save the analyzed fields of a write's documents (docnos ascending from the first), so readers load
    them (`TantivyStore.prepare_rows`) instead of analyzing every added row again in each process."""
    docnos = [int(docno) for docno, _ in adds]
    if not docnos or any(b <= a for a, b in zip(docnos, docnos[1:])):
        return
    first = docnos[0]
    documents = ((docno - first, fields) for docno, fields in zip(docnos, (fields for _, fields in adds)))
    rows = build_row_terms(documents, docnos[-1] - first + 1, TEXT_FIELDS, build_analyzer().analyze)
    save_row_terms(target, first, rows)


def _starts_with(products, rows: RowTerms) -> bool:
    """Whether the product table's first rows are the ones `rows` was built from (not renumbered by a
    compaction or a rebuild)."""
    records = rows.records
    column = products.table.column("record")
    if records is None or not len(column) >= len(records) == rows.num_rows:
        return False
    return _same_first_chunks(column, records) or column.slice(0, len(records)).equals(records)


def _same_first_chunks(column, records) -> bool:
    """Whether `records`' chunks are `column`'s first chunks, the same memory (a followed version's table
    holds the served one's chunks), so comparing their contents is not needed."""
    if column.num_chunks < records.num_chunks:
        return False
    for mine, theirs in zip(column.chunks, records.chunks):
        if len(mine) != len(theirs) or mine.offset != theirs.offset or mine.type != theirs.type or \
                [b.address if b is not None else None for b in mine.buffers()] != \
                [b.address if b is not None else None for b in theirs.buffers()]:
            return False
    return True


def _explained(node: dict[str, Any], found: dict[str, float] | None = None) -> dict[str, float]:
    """Every (description -> value) of a tantivy score explanation, depth first."""
    found = {} if found is None else found
    found.setdefault(node.get("description", ""), node.get("value"))
    for child in node.get("details") or []:
        _explained(child, found)
    return found


def read_state(directory: Path) -> dict[str, Any]:
    return read_json(directory / "state.json")
