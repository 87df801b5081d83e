"""The product store: every indexed row, in append-only Parquet segments.

Rows are addressed by a `docno`, their position in the store. Rows are only
ever appended: a changed product gets a new row and its old row is marked dead
in the version's live mask, as in Lucene. Segments are immutable files, shared
between versions by hard links; a version owns only its `live.npy` and
`state.json`. Compaction writes one dense segment again.

Typed columns are written at index time (numbers as float64, lists as
list<string>, everything else as strings), so loading a version and
evaluating filters is columnar work in Arrow, not Python loops.
"""

from __future__ import annotations

import json
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shoplens.common.errors import IndexCorruptError
from shoplens.indexers.catalog import Product
from shoplens.indexers.storage import atomic_write_json, link_or_copy, read_json

ATTRIBUTE_PREFIX = "a."
CORE_COLUMNS = ("docno", "id", "title", "description", "brand", "category", "price", "image",
                "text_hash", "image_hash", "added_at", "first_seen", "record")


@dataclass
class RowMeta:
    """Index-time facts about a row that are not catalog data."""

    text_hash: str
    image_hash: str | None  # None when the product has no usable image
    first_seen: float | None = None  # when ShopLens first indexed the product (kept across updates)


def _attribute_column(values: list[Any]) -> pa.Array:
    present = [value for value in values if value is not None]
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pa.array([None if v is None else float(v) for v in values], type=pa.float64())
    if present and all(isinstance(v, list) for v in present):
        return pa.array([None if v is None else [str(item) for item in v] for v in values],
                        type=pa.list_(pa.string()))
    return pa.array([None if v is None else _scalar_text(v) for v in values], type=pa.string())


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def products_table(products: list[Product], metas: list[RowMeta], first_docno: int) -> pa.Table:
    """Build one segment's Arrow table for products appended at `first_docno`."""
    now = time.time()
    columns: dict[str, pa.Array] = {
        "docno": pa.array(np.arange(first_docno, first_docno + len(products), dtype=np.int64)),
        "id": pa.array([p.id for p in products], type=pa.string()),
        "title": pa.array([p.title for p in products], type=pa.string()),
        "description": pa.array([p.description for p in products], type=pa.large_string()),
        "brand": pa.array([p.brand for p in products], type=pa.string()),
        "category": pa.array([p.category for p in products], type=pa.list_(pa.string())),
        "price": pa.array([p.price for p in products], type=pa.float64()),
        "image": pa.array([p.image for p in products], type=pa.string()),
        "text_hash": pa.array([m.text_hash for m in metas], type=pa.string()),
        "image_hash": pa.array([m.image_hash for m in metas], type=pa.string()),
        "added_at": pa.array(np.full(len(products), now)),
        "first_seen": pa.array([m.first_seen if m.first_seen is not None else now for m in metas], type=pa.float64()),
        # large_string: 64-bit offsets, so a store of millions of records can sit in one chunk
        "record": pa.array([json.dumps(p.to_record(), ensure_ascii=False) for p in products], type=pa.large_string()),
    }
    keys = sorted({key for p in products for key in p.attributes})
    for key in keys:
        columns[ATTRIBUTE_PREFIX + key] = _attribute_column([p.attributes.get(key) for p in products])
    return pa.table(columns)


class ProductTable:
    """One version's product rows, loaded for serving: Arrow columns plus the live mask.

    A column may hold several chunks (one per segment): a followed version's table is the served one's
    chunks plus the update's, so following a small update copies no rows. Rows are read through
    `records`, `column_values` and `column_arrow`, which take them chunk by chunk.
    """

    def __init__(self, table: pa.Table, live: np.ndarray, segments: list[str] | None = None,
                 extends: "ProductTable | None" = None):
        if table.num_rows != len(live):
            raise IndexCorruptError(
                f"product store has {table.num_rows} rows but its live mask has {len(live)}; run `shoplens check`"
            )
        self.table = table
        self._columns = frozenset(table.column_names) - {"docno", "record", "text_hash", "image_hash", "added_at",
                                                          "first_seen"}  # resolvable by column_name
        self.live = live
        self.segments = segments  # the segment files the rows came from, when loaded from a store
        self.segment_files: dict[str, tuple[int, ...]] = {}  # their (device, inode, size, mtime)
        self.docno_by_id: dict[str, int] = _live_ids(table, live, extends)
        self._numeric: dict[str, np.ndarray] = {}
        self._has_numbers: dict[str, bool] = {}
        self._chunk_starts: dict[str, np.ndarray] = {}  # column -> first row of each chunk, and the row count
        self._keyword: dict[str, tuple[Any, str, list[str]]] = {}
        self._lookups: dict[str, dict[str, int]] = {}  # keyword column -> value -> code (built when extending)
        self._counts: dict[str, np.ndarray] = {}  # keyword column -> live rows per code
        # an earlier version whose rows are this one's first rows: its keyword codes and counts are extended
        self._inherited = None if extends is None else _Inherited(
            extends.num_rows, extends.table.schema, extends._keyword, extends._lookups, extends.live, extends._counts)
        # how many first rows are exactly that earlier version's (what was derived from them can be reused)
        self.shared_rows = 0 if extends is None else extends.num_rows
        self._extended = None if extends is None else weakref.ref(extends)  # not kept alive by its successor
        self._grown: dict[str, bool] = {}  # keyword column -> whether the added rows brought new values
        # duplicate-collapsing key per row, learned on first use (-1: not yet); a row's content never changes
        self._collapse = np.full(table.num_rows, -1, dtype=np.int64)
        if extends is not None:
            self._collapse[:extends.num_rows] = extends._collapse[:extends.num_rows]

    @property
    def num_rows(self) -> int:
        return self.table.num_rows

    @property
    def num_live(self) -> int:
        return len(self.docno_by_id)

    def extends(self, other: "ProductTable") -> bool:
        """Whether this table was loaded on top of `other`: its first `shared_rows` rows are other's rows."""
        return self._extended is not None and self._extended() is other

    def vocabulary_grew(self, column: str) -> bool | None:
        """Whether the rows added since the table this one extends brought values its keyword `column` did
        not have (its codes and vocabulary are otherwise the earlier ones); None when not known (the column
        was encoded whole)."""
        self.keyword(column)
        return self._grown.get(column)

    def field_names(self) -> list[str]:
        """Names usable in filters: canonical fields and attribute keys."""
        names = ["id", "title", "brand", "category", "price", "description"]
        names += [name[len(ATTRIBUTE_PREFIX):] for name in self.table.column_names if name.startswith(ATTRIBUTE_PREFIX)]
        return names

    def column_name(self, field: str) -> str | None:
        """Resolve a user's field name to a column (exact, then case-insensitive)."""
        for candidate in (field, ATTRIBUTE_PREFIX + field):
            if candidate in self._columns:
                return candidate
        lowered = field.lower()
        matches = [name for name in self.field_names() if name.lower() == lowered]
        if len(matches) == 1:
            return self.column_name(matches[0])
        return None

    def is_numeric(self, column: str) -> bool:
        return pa.types.is_floating(self.table.schema.field(column).type)

    def numeric(self, column: str) -> np.ndarray:
        """float64 values of a column, NaN where missing or not a number."""
        if column not in self._numeric:
            array = self.table.column(column)
            if pa.types.is_floating(array.type):
                values = arrow_numpy(array, np.nan).astype(np.float64)
            else:
                codes, _, vocab = self.keyword(column)
                parsed = np.array([_parse_number(v) for v in vocab] + [np.nan], dtype=np.float64)
                if pa.types.is_list(array.type):  # a list's number: its first element
                    first = np.full(self.num_rows, -1, dtype=np.int64)
                    offsets, flat = codes
                    has = offsets[1:] > offsets[:-1]
                    first[has] = flat[offsets[:-1][has]]
                    values = parsed[first]
                else:
                    values = parsed[codes]
            self._numeric[column] = values
        return self._numeric[column]

    def has_numbers(self, column: str) -> bool:
        """Whether any row of a column holds a number (a text column's values may be numbers: a year "2012")."""
        if column not in self._has_numbers:
            self._has_numbers[column] = bool(np.isfinite(self.numeric(column)).any())
        return self._has_numbers[column]

    def keyword(self, column: str):
        """Lower-cased dictionary codes of a string or list column.

        Returns (codes, kind, vocab): for a string column codes is an int64
        array with -1 for missing; for a list column codes is (offsets, flat
        codes).
        """
        if column not in self._keyword:
            extended = self._extend_keyword(column)
            if extended is not None:
                self._keyword[column] = extended
                return extended
            array = self.table.column(column).combine_chunks()
            if pa.types.is_list(array.type):
                offsets = arrow_numpy(array.offsets).astype(np.int64)
                offsets = offsets - offsets[0]
                flat = array.flatten()
                encoded = pc.dictionary_encode(pc.utf8_lower(pc.utf8_trim_whitespace(flat)))
                flat_codes = arrow_numpy(encoded.indices, -1).astype(np.int64)
                # a null list gives equal offsets, so it simply has no values
                self._keyword[column] = ((offsets, flat_codes), "list", encoded.dictionary.to_pylist())
            else:
                if not pa.types.is_string(array.type):
                    array = pc.cast(array, pa.string())
                encoded = pc.dictionary_encode(pc.utf8_lower(pc.utf8_trim_whitespace(array)))
                codes = arrow_numpy(encoded.indices, -1).astype(np.int64)
                self._keyword[column] = (codes, "scalar", encoded.dictionary.to_pylist())
        return self._keyword[column]

    def release_inherited(self) -> None:
        """Stop holding the earlier version's keyword codes and counts (columns not encoded or counted yet
        will be done whole)."""
        self._inherited = None

    def _extend_keyword(self, column: str):
        """The codes of an earlier version's rows, plus codes for the rows added since (new values appended).

        Codes are numbered in order of first appearance, so this gives what
        encoding the whole column would, for the price of the new rows.
        """
        earlier = self._inherited
        if earlier is None:
            return None
        rows, schema, cached = earlier.rows, earlier.schema, earlier.keyword
        kind_type = self.table.schema.field(column).type
        if column not in cached or schema.get_field_index(column) < 0 or schema.field(column).type != kind_type:
            return None
        codes, kind, vocab = cached[column]
        added = self.table.column(column).slice(rows).combine_chunks()
        self._grown[column] = False
        if added.null_count == len(added):  # most attribute columns are sparse: nothing new to encode
            if kind == "list":
                offsets, flat_codes = codes
                return ((np.concatenate([offsets, np.full(len(added), offsets[-1])]), flat_codes), kind, vocab)
            return np.concatenate([codes, np.full(len(added), -1, dtype=np.int64)]), kind, vocab
        lookup = earlier.lookups.get(column)
        if lookup is None or len(lookup) != len(vocab):
            lookup = {value: code for code, value in enumerate(vocab)}
        known = len(vocab)
        if kind == "list":
            offsets, flat_codes = codes
            new_offsets = arrow_numpy(added.offsets).astype(np.int64)
            new_offsets = new_offsets - new_offsets[0]
            flat = pc.utf8_lower(pc.utf8_trim_whitespace(added.flatten())).to_pylist()
            new_codes, vocab, lookup = _encode_values(flat, vocab, lookup)
            extended = ((np.concatenate([offsets, offsets[-1] + new_offsets[1:]]),
                         np.concatenate([flat_codes, new_codes])), kind, vocab)
        else:
            if not pa.types.is_string(added.type):
                added = pc.cast(added, pa.string())
            values = pc.utf8_lower(pc.utf8_trim_whitespace(added)).to_pylist()
            new_codes, vocab, lookup = _encode_values(values, vocab, lookup)
            extended = np.concatenate([codes, new_codes]), kind, vocab
        self._lookups[column] = lookup
        self._grown[column] = len(vocab) > known
        return extended

    def live_counts(self, column: str) -> np.ndarray:
        """How many live rows have each value of a keyword column (indexed by code; a list row counts each of
        its elements), once per version: a version loaded on top of an earlier one counts only the rows whose
        liveness changed and the rows added, from the earlier one's counts."""
        counts = self._counts.get(column)
        if counts is None:
            codes, kind, vocab = self.keyword(column)
            earlier = self._inherited
            before = None if earlier is None else earlier.counts.get(column)
            if before is None:
                counts = _count_codes(codes_of_rows(codes, kind, self.live), len(vocab))
            else:
                rows = earlier.rows
                died = np.flatnonzero(earlier.live & ~self.live[:rows])
                came = np.concatenate([np.flatnonzero(~earlier.live & self.live[:rows]),
                                       rows + np.flatnonzero(self.live[rows:])])
                counts = np.zeros(len(vocab), dtype=np.int64)
                counts[:len(before)] = before
                counts += _count_codes(codes_of_rows(codes, kind, came), len(vocab))
                counts -= _count_codes(codes_of_rows(codes, kind, died), len(vocab))
            self._counts[column] = counts
        return counts

    def records(self, docnos: Iterable[int]) -> list[dict[str, Any]]:
        """Full product records for the given rows, in order."""
        docnos = np.asarray(list(docnos), dtype=np.int64)
        if len(docnos) == 0:
            return []
        texts = self.column_arrow("record", docnos).to_pylist()
        return [json.loads(text) for text in texts]

    def column_values(self, column: str, docnos: np.ndarray) -> list[Any]:
        return self.column_arrow(column, docnos).to_pylist()

    def column_arrow(self, column: str, docnos: np.ndarray) -> pa.Array:
        """A column's values for the given rows, in order, as Arrow (for vectorized work on them)."""
        array = self.table.column(column)
        starts = self._chunk_starts.get(column)
        if starts is None:
            starts = self._chunk_starts[column] = chunk_starts(array)
        return take_rows(array, np.asarray(docnos, dtype=np.int64), starts)

    def collapse_keys(self, docnos: np.ndarray) -> np.ndarray:
        """A key per row that equal products share: the title lower-cased with every run of other characters
        than a-z and 0-9 made one space, the brand lower-cased, and the image's content hash. Computed for rows
        not seen before and remembered (a version's rows never change), so a query pays for new rows only."""
        docnos = np.asarray(docnos, dtype=np.int64)
        keys = self._collapse
        todo = np.unique(docnos[keys[docnos] < 0])
        if len(todo):  # Arrow kernels with their options only: a Python scalar argument would import pandas
            title = pc.utf8_trim_whitespace(pc.replace_substring_regex(
                pc.utf8_lower(self.column_arrow("title", todo)), pattern="[^a-z0-9]+", replacement=" ")).to_pylist()
            brand = pc.utf8_lower(pc.utf8_trim_whitespace(self.column_arrow("brand", todo))).to_pylist() \
                if self.column_name("brand") else [None] * len(todo)
            image = self.column_arrow("image_hash", todo).to_pylist()  # None (no photo) differs from any photo
            keys[todo] = [hash((t or "", b or "", i)) & 0x7FFF_FFFF_FFFF_FFFF for t, b, i in zip(title, brand, image)]
        return keys[docnos]

    def live_docnos(self) -> np.ndarray:
        return np.flatnonzero(self.live)


@dataclass(frozen=True)
class _Inherited:
    """What a table loaded on top of an earlier version's holds of it until `release_inherited`."""

    rows: int
    schema: pa.Schema
    keyword: dict[str, tuple[Any, str, list[str]]]
    lookups: dict[str, dict[str, int]]
    live: np.ndarray
    counts: dict[str, np.ndarray]


def _encode_values(values: list[str | None], vocab: list[str], lookup: dict[str, int]):
    """Codes of `values` (-1 for None) by `lookup` (value -> code in `vocab`); values not there are appended
    to copies of both, numbered in order of first appearance. Returns (codes, vocab, lookup): the same
    vocab and lookup objects when no value was new (so versions share them)."""
    get = lookup.get
    out = np.array([-1 if value is None else get(value, -2) for value in values], dtype=np.int64)
    if not len(out) or out.min() > -2:
        return out, vocab, lookup
    vocab, lookup = list(vocab), dict(lookup)
    for i in np.flatnonzero(out == -2).tolist():
        code = lookup.get(values[i])
        if code is None:
            code = lookup[values[i]] = len(vocab)
            vocab.append(values[i])
        out[i] = code
    return out, vocab, lookup


def codes_of_rows(codes, kind: str, rows: np.ndarray) -> np.ndarray:
    """The keyword codes of some rows (a boolean mask or row numbers), every element of a list row."""
    if kind == "scalar":
        return codes[rows]
    offsets, flat = codes
    if rows.dtype == bool:
        return flat[np.repeat(rows, np.diff(offsets))]
    starts, lengths = offsets[rows], offsets[rows + 1] - offsets[rows]
    return flat[np.arange(int(lengths.sum())) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)]


def _count_codes(codes: np.ndarray, size: int) -> np.ndarray:
    return np.bincount(codes[codes >= 0], minlength=size).astype(np.int64)


def _parse_number(value: str | None) -> float:
    if value is None:
        return np.nan
    try:
        return float(value.replace(",", ""))
    except ValueError:
        return np.nan


def _live_ids(table: pa.Table, live: np.ndarray, extends: "ProductTable | None") -> dict[str, int]:
    """id -> docno of the live rows; from `extends` (an earlier version whose rows this table's first rows
    are), only the rows whose liveness changed and the rows added are looked at (an update, not the catalog)."""
    column = table.column("id")
    if extends is None:
        ids = column.to_pylist()
        return {ids[i]: i for i in np.flatnonzero(live)}
    known = extends.num_rows
    by_id = dict(extends.docno_by_id)
    died = np.flatnonzero(extends.live & ~live[:known])
    for docno, product_id in zip(died.tolist(), take_rows(column, died).to_pylist()):
        if by_id.get(product_id) == docno:
            del by_id[product_id]
    # rows made live again, then the added rows: ascending, as a whole-table pass would set them
    back = np.concatenate([np.flatnonzero(~extends.live & live[:known]), known + np.flatnonzero(live[known:])])
    by_id.update(zip(take_rows(column, back).to_pylist(), back.tolist()))
    return by_id


STATE_FILE = "state.json"  # a products/ component's segments, row count and live count


def load_products(directory: Path, previous: ProductTable | None = None) -> ProductTable:
    """Load a version's `products/` component; segments already held by `previous` (an earlier version)
    are not read again. Missing or damaged files are an `IndexCorruptError`."""
    try:
        return _load_products(directory, previous)
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        raise IndexCorruptError(f"the product store {directory} cannot be read ({type(exc).__name__}: "
                                f"{' '.join(str(exc).split())[:200]}); run `shoplens check`, or `shoplens rollback` "
                                "to a good version") from None


def _load_products(directory: Path, previous: ProductTable | None) -> ProductTable:
    state = read_json(directory / STATE_FILE)
    segments = list(state["segments"])
    files = _file_identities(directory, segments)
    known = len(previous.segments) if previous is not None and previous.segments is not None else 0
    # the same names and the same (hard-linked) files: a rebuilt index reuses names, never files
    extends = bool(known) and segments[:known] == previous.segments \
        and all(files.get(name) == previous.segment_files.get(name) for name in previous.segments)
    if extends:
        added = [_read_segment(directory / name) for name in segments[known:]]
        table = _appended(previous.table, added) if added else previous.table
    else:
        tables = [_read_segment(directory / name) for name in segments]
        table = _concat(tables) if tables else products_table([], [], 0)
    # the chunks are kept (the served version's plus the new segments'): rows are taken chunk by chunk
    live = np.load(directory / "live.npy") if (directory / "live.npy").exists() else np.ones(table.num_rows, bool)
    loaded = ProductTable(table, live, segments, previous if extends else None)
    loaded.segment_files = files
    return loaded


def write_products(target: Path, parent: Path | None, new_rows: pa.Table | None, live: np.ndarray,
                   segment_name: str) -> dict[str, Any]:
    """Write a version's `products/` component: the parent's segments (linked), an optional new segment,
    and the live mask."""
    target.mkdir(parents=True, exist_ok=True)
    segments: list[str] = []
    rows = 0
    if parent is not None:
        parent_state = read_json(parent / STATE_FILE)
        for name in parent_state["segments"]:
            link_or_copy(parent / name, target / name)
            if _mapped_copy(parent / name).exists():  # absent in stores written before it existed
                link_or_copy(_mapped_copy(parent / name), _mapped_copy(target / name))
            segments.append(name)
        rows = parent_state["rows"]
    if new_rows is not None and new_rows.num_rows:
        first = new_rows.column("docno")[0].as_py()
        if first != rows:
            raise IndexCorruptError(f"new product rows start at {first}, store has {rows}")
        pq.write_table(new_rows, target / segment_name, compression="zstd")
        _write_mapped_copy(new_rows, _mapped_copy(target / segment_name))
        segments.append(segment_name)
        rows += new_rows.num_rows
    if len(live) != rows:
        raise IndexCorruptError(f"live mask has {len(live)} entries for {rows} rows")
    with open(target / "live.npy", "wb") as handle:
        np.save(handle, live.astype(bool))
    state = {"segments": segments, "rows": rows, "live": int(live.sum())}
    atomic_write_json(target / STATE_FILE, state)
    return state


def _mapped_copy(segment: Path) -> Path:
    """The segment's uncompressed Arrow IPC twin, which opens by memory-mapping instead of decoding."""
    return segment.with_suffix(".arrow")


def _write_mapped_copy(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _read_segment(path: Path) -> pa.Table:
    """A segment's rows: memory-mapped from its Arrow twin (milliseconds), else decoded from the Parquet file."""
    mapped = _mapped_copy(path)
    if mapped.exists():
        return pa.ipc.open_file(pa.memory_map(str(mapped), "r")).read_all()
    return pq.ParquetFile(path).read()


def _file_identities(directory: Path, names: list[str]) -> dict[str, tuple[int, int]]:
    out = {}
    for name in names:
        try:
            info = (directory / name).stat()
        except OSError:
            continue
        out[name] = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
    return out


def _concat(tables: list[pa.Table]) -> pa.Table:
    """Concatenate segments whose attribute columns may differ in presence or type."""
    if len(tables) == 1:
        return tables[0]
    types: dict[str, set[pa.DataType]] = {}
    for table in tables:
        for fld in table.schema:
            types.setdefault(fld.name, set()).add(_plain_type(fld.type))
    target_types = {}
    for name, seen in types.items():
        if len(seen) == 1:
            target_types[name] = seen.pop()
        elif all(pa.types.is_string(t) or pa.types.is_large_string(t) for t in seen):
            target_types[name] = pa.large_string()
        else:
            target_types[name] = pa.string()
    aligned = []
    for table in tables:
        columns = []
        present = set(table.column_names)  # a set: a list lookup per column is quadratic in a wide table
        for name, kind in target_types.items():
            if name in present:
                column = table.column(name)
                if _plain_type(column.type) == kind != column.type:  # the same list, its item named otherwise
                    column = column.cast(kind)
                elif column.type != kind:
                    column = pc.cast(_list_to_text(column), kind) if pa.types.is_list(column.type) else pc.cast(column, kind)
                columns.append(column)
            else:
                columns.append(pa.nulls(table.num_rows, type=kind))
        aligned.append(pa.table(columns, names=list(target_types)))
    return pa.concat_tables(aligned)


def _appended(table: pa.Table, added: list[pa.Table]) -> pa.Table:
    """`table` (aligned already: an earlier version's) followed by new segments. When every new segment's
    columns are among the table's, of the same types, only the new segments are aligned (missing columns as
    nulls) and the table's columns are kept as they are; otherwise `_concat` aligns everything."""
    types = {field.name: field.type for field in table.schema}
    if any(_plain_type(kind) != kind for kind in types.values()):  # a list item named otherwise (Parquet)
        return _concat([table, *added])
    aligned = []
    for segment in added:
        columns = []
        for fld in segment.schema:
            kind = types.get(fld.name)
            if kind is None or _plain_type(fld.type) != _plain_type(kind):
                return _concat([table, *added])
        present = set(segment.column_names)
        for name, kind in types.items():
            if name not in present:
                columns.append(pa.nulls(segment.num_rows, type=kind))
                continue
            column = segment.column(name)
            columns.append(column if column.type == kind else column.cast(kind))  # a list's item named "element"
        aligned.append(pa.table(columns, schema=table.schema))
    return pa.concat_tables([table, *aligned])


def _plain_type(kind: pa.DataType) -> pa.DataType:
    """A type without its list item's field name: Parquet names it "element", Arrow IPC "item"; the same list."""
    return pa.list_(kind.value_type) if pa.types.is_list(kind) else kind


def _list_to_text(column: pa.ChunkedArray) -> pa.Array:
    values = [None if v is None else ", ".join(v) for v in column.to_pylist()]
    return pa.array(values, type=pa.string())


def arrow_numpy(array, fill=None) -> np.ndarray:
    """A numeric Arrow array (or chunked array) as a read-only numpy view, nulls replaced by `fill`.

    pyarrow's own `to_numpy` imports pandas (about a second of a one-shot search's start-up), even for
    a zero-copy conversion; a numeric array's data buffer is all numpy needs.
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    dtype = np.dtype(_NUMPY_TYPES[str(array.type)])
    if len(array) == 0:
        return np.empty(0, dtype=dtype)
    validity, data = array.buffers()[:2]
    start, stop = array.offset, array.offset + len(array)
    values = np.frombuffer(data, dtype=dtype)[start:stop]
    if array.null_count:
        if fill is None:
            raise ValueError("an Arrow array with nulls needs a fill value")
        valid = np.unpackbits(np.frombuffer(validity, dtype=np.uint8), bitorder="little")[start:stop].astype(bool)
        values = np.where(valid, values, np.asarray(fill).astype(dtype))
    return values


def column_numpy(column) -> np.ndarray:
    """A writable numpy copy of a column, as pyarrow's `to_numpy` gives, read from the buffers (no pandas)
    when the column is numeric and has no nulls."""
    if str(column.type) in _NUMPY_TYPES and column.null_count == 0:
        return arrow_numpy(column).copy()
    return column.to_numpy()


_NUMPY_TYPES = {"int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64, "uint8": np.uint8,
                "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64, "float": np.float32,
                "double": np.float64, "halffloat": np.float16}


def chunk_starts(column: pa.ChunkedArray) -> np.ndarray:
    """The first row of each of a column's chunks, then its row count."""
    return np.concatenate([[0], np.cumsum([len(chunk) for chunk in column.chunks], dtype=np.int64)]).astype(np.int64)


def take_rows(column: pa.ChunkedArray, docnos: np.ndarray, starts: np.ndarray | None = None) -> pa.Array:
    """`column`'s values at `docnos`, in that order, taken from each chunk separately: Arrow's own `take`
    on a chunked array first concatenates every chunk (a copy of the whole column per call)."""
    docnos = np.ascontiguousarray(docnos, dtype=np.int64)
    if column.num_chunks == 1:
        return column.chunk(0).take(_indices(docnos))
    if column.num_chunks == 0 or not len(docnos) or docnos.min() < 0 or docnos.max() >= len(column):
        return pa.concat_arrays(column.take(_indices(docnos)).chunks or [pa.nulls(0, column.type)])
    starts = chunk_starts(column) if starts is None else starts
    owner = np.searchsorted(starts, docnos, side="right") - 1
    in_order = bool(np.all(owner[1:] >= owner[:-1]))  # rows ascending (e.g. all live rows): no reordering
    order = np.arange(len(owner)) if in_order else np.argsort(owner, kind="stable")
    grouped = owner[order]
    pieces = []
    for group in np.split(order, np.flatnonzero(np.diff(grouped)) + 1):
        chunk = int(owner[group[0]])
        pieces.append(column.chunk(chunk).take(_indices(docnos[group] - starts[chunk])))
    taken = pa.concat_arrays(pieces) if len(pieces) > 1 else pieces[0]
    if in_order:
        return taken
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    return taken.take(_indices(position))


def _indices(docnos) -> pa.Array:
    """Row numbers as an Arrow int64 array, built from the numpy buffer: `pa.array` would import
    pandas (a second of a one-shot search's start-up) just to check the argument's type."""
    values = np.ascontiguousarray(docnos, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])
