"""Filters: `price<=3000`, `brand=Nike`, `category=Shoes|Sandals`, `brand!=Puma`, ANDed together.

A filter is parsed once into a `Filter` and evaluated over the product
store's columns into a boolean mask by docno; both retrievers are then
restricted to the mask before their top-k is cut.

Keyword comparisons are case-insensitive and exact on the whole value (a
list field such as `category` matches when any element does); `a|b` means
either value. Numeric comparisons work on number fields and on text fields
whose values are numbers (such as a `year` stored as "2012").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from shoplens.common.errors import FilterError
from shoplens.indexers.lexical.base import FieldFilter

OPERATORS = ("<=", ">=", "!=", "=", "<", ">")
MAX_FILTER_CHARS = 10_000
_PATTERN = re.compile(r"^\s*([^<>=!]+?)\s*(<=|>=|!=|==|=|<|>)\s*(.*?)\s*$", re.S)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # as in typed query text; tab and newline are spaces


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    values: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.field}{self.op}{'|'.join(self.values)}"


def parse_filter(text: str) -> Filter:
    """Parse one filter expression; raises FilterError with an example on bad syntax."""
    if not isinstance(text, str) or len(text) > MAX_FILTER_CHARS:
        raise FilterError(f"a filter is text of at most {MAX_FILTER_CHARS:,} characters, e.g. price<=3000")
    if _CONTROL.search(text):
        raise FilterError(f"filter {text[:40]!r} has a control character (NUL, escape...); write it as plain text, "
                          "e.g. brand=Nike")
    match = _PATTERN.match(text)
    if match and not match.group(3).strip():
        raise FilterError(f"filter {text!r} has no value after {match.group(2)!r}; give one, e.g. "
                          f"{match.group(1)}{match.group(2)}{'3000' if match.group(2) not in ('=', '==', '!=') else 'Nike'}")
    if not match:
        raise FilterError(
            f"cannot parse filter {text!r}; write FIELD OP VALUE with OP one of = != < <= > >=, e.g. price<=3000 or brand=Nike"
        )
    field, op, raw = match.groups()
    op = "=" if op == "==" else op  # brand==Nike as a programmer writes it
    raw = raw.strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
        values = (raw[1:-1],)
    else:
        values = tuple(part.strip() for part in raw.split("|") if part.strip())
    if not values:
        raise FilterError(f"filter {text!r} has no value")
    if op in ("<", "<=", ">", ">="):
        if len(values) != 1:
            raise FilterError(f"filter {text!r}: {op} takes one number")
        try:
            bound = float(values[0].replace(",", ""))
        except ValueError:
            raise FilterError(f"filter {text!r}: {op} needs a number, got {values[0]!r}") from None
        if not math.isfinite(bound):
            raise FilterError(f"filter {text!r}: {op} needs a finite number, got {values[0]!r}")
    return Filter(field.strip(), op, values)


def parse_filters(texts: list[str] | tuple[str, ...] | None) -> list[Filter]:
    return [parse_filter(text) for text in (texts or [])]


def check_comparable(products, filters: list[Filter]) -> None:
    """A user's range filter on a field no product holds a number in (title>3, brand<=5, price<=3000 on a catalog
    without prices) matched nothing, answered as an empty page; it is a FilterError saying why. Not run on the
    engine's own filters (a price read from the query text narrows what it can)."""
    for flt in filters:
        column = products.column_name(flt.field)
        if flt.op in ("<", "<=", ">", ">=") and column is not None and not products.has_numbers(column):
            raise FilterError(f"filter '{flt}': no product in this index has a number in {flt.field!r}, so {flt.op} "
                              f"matches nothing; compare its text with = or !=, or filter on a field with numbers")


def filter_mask(products, filters: list[Filter], rows: np.ndarray | None = None) -> np.ndarray | None:
    """Boolean mask over all rows for the ANDed filters (None when there are none); with `rows`, over those
    rows only, in their order (a few hundred candidates instead of the whole catalog)."""
    if not filters:
        return None
    mask = np.ones(products.num_rows if rows is None else len(rows), dtype=bool)
    for flt in filters:
        mask &= _evaluate(products, flt, rows)
    return mask


def pushdown_filters(products, filters: list[Filter]) -> list[FieldFilter]:
    """The filters resolved to product-store columns, for a store that filters natively (Elasticsearch).

    Same semantics as `filter_mask`: the store must select exactly the rows the mask selects.
    """
    resolved = []
    for flt in filters:
        column = products.column_name(flt.field)
        if column is None:
            _evaluate(products, flt)  # raises the unknown-field error
        numeric = flt.op in ("<", "<=", ">", ">=") or products.is_numeric(column)
        values = tuple(v.replace(",", "") if numeric else v.strip().lower() for v in flt.values)
        resolved.append(FieldFilter(column, flt.op, values, numeric))
    return resolved


def _evaluate(products, flt: Filter, rows: np.ndarray | None = None) -> np.ndarray:
    column = products.column_name(flt.field)
    if column is None:
        known = ", ".join(products.field_names()[:25])
        raise FilterError(f"unknown filter field {flt.field!r}; fields in this index: {known}")
    if flt.op in ("<", "<=", ">", ">="):
        values = products.numeric(column) if rows is None else products.numeric(column)[rows]
        bound = float(flt.values[0].replace(",", ""))
        with np.errstate(invalid="ignore"):
            result = {"<": values < bound, "<=": values <= bound, ">": values > bound, ">=": values >= bound}[flt.op]
        return result & ~np.isnan(values)
    if products.is_numeric(column):
        values = products.numeric(column) if rows is None else products.numeric(column)[rows]
        try:
            wanted = np.array([float(v.replace(",", "")) for v in flt.values])
        except ValueError:
            raise FilterError(f"filter {flt}: field {flt.field!r} holds numbers") from None
        match = np.isin(values, wanted)
    else:
        match = _keyword_match(products, column, flt.values, rows)
    return ~match if flt.op == "!=" else match


def _keyword_match(products, column: str, values: tuple[str, ...], rows: np.ndarray | None = None) -> np.ndarray:
    codes, kind, vocab = products.keyword(column)
    wanted = {v.strip().lower() for v in values}
    hit = np.zeros(len(vocab) + 1, dtype=bool)  # by code; the last slot is code -1 (no value), never a hit
    hit[[i for i, term in enumerate(vocab) if term in wanted]] = True
    if kind == "scalar":
        return hit[codes if rows is None else codes[rows]]
    offsets, flat = codes
    if rows is not None:  # the rows' slices of the flat value list, gathered
        starts = offsets[rows]
        lengths = offsets[np.asarray(rows) + 1] - starts
        owner = np.repeat(np.arange(len(starts)), lengths)
        within = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return np.bincount(owner, weights=hit[flat[starts[owner] + within]], minlength=len(starts)) > 0
    flat_hit = hit[flat].astype(np.int64)
    cumulative = np.concatenate([[0], np.cumsum(flat_hit)])
    return (cumulative[offsets[1:]] - cumulative[offsets[:-1]]) > 0
