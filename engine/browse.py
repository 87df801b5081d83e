"""Looking around an index rather than searching it: one product's details, the filterable fields.

These read one `Snapshot` (one committed version), so what the shell shows
next to a result list comes from the version that answered it.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shoplens.common.errors import FilterError, QueryError
from shoplens.engine.filters import Filter, parse_filters

CANONICAL_FIELDS = ("id", "title", "brand", "category", "price", "description")
_FREE_TEXT = ("title", "description", "id")  # filterable, but examples of free text say little


@dataclass
class FieldSummary:
    """One filterable field: its kind, how many live products have it, and example values."""

    name: str
    kind: str  # number, keyword, list or text
    products: int
    examples: list[str] = field(default_factory=list)  # the most common values, or min and max for numbers
    distinct: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def find_product(snapshot, product_id: str) -> dict[str, Any]:
    """The stored record of a live product (with its image path); QueryError for an unknown id."""
    product_id = str(product_id).strip()
    docno = snapshot.products.docno_by_id.get(product_id)
    if docno is None:
        raise QueryError(f"no product with id {product_id!r} in version {snapshot.version}; "
                         "ids are in the results' id column")
    return snapshot.products.records([docno])[0]


def field_summaries(snapshot, examples: int = 4) -> list[FieldSummary]:
    """Every filterable field with its kind, coverage among live products and common values."""
    products = snapshot.products
    live = products.live
    summaries = []
    for name in products.field_names():
        column = products.column_name(name)
        if column is None:
            continue
        if products.is_numeric(column):
            values = products.numeric(column)[live]
            values = values[~np.isnan(values)]
            shown = [] if len(values) == 0 else [_number(values.min()), _number(values.max())]
            summaries.append(FieldSummary(name, "number", int(len(values)), shown))
            continue
        codes, kind, vocab = products.keyword(column)
        counts, present = _keyword_counts(codes, kind, live, len(vocab))
        top = [] if name in _FREE_TEXT else [vocab[i] for i in np.argsort(-counts, kind="stable")[:examples]
                                                 if counts[i] > 0]
        kind = "list" if kind == "list" else ("text" if name in _FREE_TEXT else "keyword")
        summaries.append(FieldSummary(name, kind, present, top,
                                      int((counts > 0).sum())))
    return summaries


def check_filters(snapshot, texts: list[str]) -> list[Filter]:
    """Parse filters and check that each names a field of this index, without running a search.

    The error for an unknown field suggests close names and points at the shell's :fields.
    """
    filters = parse_filters(texts)
    for flt in filters:
        column = snapshot.products.column_name(flt.field)
        if column is None:
            names = snapshot.products.field_names()
            close = difflib.get_close_matches(flt.field.lower(), [n.lower() for n in names], n=3, cutoff=0.6)
            lowered = {n.lower(): n for n in names}
            guess = f"; did you mean {' or '.join(lowered[c] for c in close)}?" if close else ""
            raise FilterError(f"unknown filter field {flt.field!r}{guess} (:fields lists the {len(names)} fields "
                              "with example values)")
        if flt.op in ("=", "!=") and snapshot.products.is_numeric(column):
            try:
                [float(v.replace(",", "")) for v in flt.values]
            except ValueError:
                raise FilterError(f"filter {flt}: field {flt.field!r} holds numbers") from None
    return filters


def _keyword_counts(codes, kind: str, live: np.ndarray, vocab_size: int) -> tuple[np.ndarray, int]:
    """How many live products hold each vocabulary value, and how many hold any value."""
    if kind == "list":
        offsets, flat = codes
        lengths = np.diff(offsets)
        owner_live = np.repeat(live, lengths)
        values = flat[owner_live]
        present = int(((lengths > 0) & live).sum())
    else:
        values = codes[live]
        values = values[values >= 0]
        present = int(len(values))
    counts = np.bincount(values[values >= 0], minlength=vocab_size) if vocab_size else np.zeros(0, np.int64)
    return counts, present


def _number(value: float) -> str:
    value = float(value)
    return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"

