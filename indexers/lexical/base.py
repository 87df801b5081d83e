"""What every lexical (BM25) store offers the engine, and the document it indexes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from shoplens.common.errors import ConfigError
from shoplens.indexers.catalog import Product

# Field weights of the BM25 query: a term in the title counts three times one in the description's six.
FIELD_BOOSTS: dict[str, float] = {"title": 3.0, "brand": 2.0, "category": 2.0, "attrs": 1.0, "description": 0.5}
TEXT_FIELDS = tuple(FIELD_BOOSTS)
MAX_ATTRIBUTE_CHARS = 2000
# How the whole query weighs a term: "field", each field's own IDF; "shared", the IDF of the field where the
# term is most common, in every field (a generic word in a brand name no longer scores like the brand).
# New indexes record "shared"; an index recorded without the setting keeps "field", as its reranker learned.
IDF_MODES = ("field", "shared")
NEW_INDEX_IDF = "shared"


def idf_mode(config: dict[str, Any] | None) -> str:
    """The IDF mode a version's lexical settings record ("field" when they predate the setting)."""
    mode = (config or {}).get("idf", "field")
    if mode not in IDF_MODES:
        raise ConfigError(f"unknown lexical idf {mode!r}; use one of {', '.join(IDF_MODES)}")
    return mode


@dataclass(frozen=True)
class FieldFilter:
    """A filter resolved against the product store's columns, for a store that filters natively.

    `column` is a product-store column ("price", "brand", "a.colour"); `numeric` says whether the
    comparison is on numbers (a number column, or `<`, `<=`, `>`, `>=` on any column) or on
    lower-cased keywords; `values` are the wanted values (any of them matches; `!=` negates).
    """

    column: str
    op: str
    values: tuple[str, ...]
    numeric: bool


def filter_values(product: Product) -> dict[str, tuple[list[str], float | None]]:
    """Per product-store column: (lower-cased keywords, number) as the product store's filters see them.

    Keywords are the whole value and, for a list, each element; the number is the value itself, a
    number written as text, or a list's first element (see `ProductTable.numeric`).
    """
    columns: dict[str, Any] = {"id": product.id, "title": product.title, "description": product.description,
                               "brand": product.brand, "category": list(product.category), "price": product.price}
    columns.update({"a." + key: value for key, value in product.attributes.items()})
    return {column: _keywords_and_number(value) for column, value in columns.items() if value is not None}


def _keywords_and_number(value: Any) -> tuple[list[str], float | None]:
    if isinstance(value, bool):
        return ["true" if value else "false"], None
    if isinstance(value, (int, float)):
        text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
        return [text.lower()], float(value)
    if isinstance(value, list):
        items = [str(item).strip().lower() for item in value]
        whole = ", ".join(str(item) for item in value).strip().lower()
        return list(dict.fromkeys([*items, whole])), (_number(items[0]) if items else None)
    text = str(value).strip().lower()
    return [text], _number(text)


def _number(text: str) -> float | None:
    try:
        number = float(text.replace(",", ""))
    except ValueError:
        return None
    return number if np.isfinite(number) else None


def lexical_fields(product: Product) -> dict[str, str]:
    """The text fields a product is indexed with: canonical text plus its textual attributes."""
    values: list[str] = []
    for value in product.attributes.values():
        if isinstance(value, str):
            values.append(value)
        elif isinstance(value, list):
            values.extend(str(item) for item in value if isinstance(item, str))
    return {
        "title": product.title,
        "brand": product.brand,
        "category": " ".join(product.category),
        "description": product.description,
        "attrs": " ".join(values)[:MAX_ATTRIBUTE_CHARS],
    }


def lexical_document(product: Product) -> dict[str, Any]:
    """The text fields a product is indexed with (`lexical_fields`), and under "filters" its filterable
    values (for stores that filter natively; others ignore them)."""
    return {**lexical_fields(product), "filters": filter_values(product)}


class LexicalStore(ABC):
    """BM25 over product text, addressed by docno.

    Query text is analyzed into terms and searched as a weighted disjunction
    over the text fields; it is never handed to a query parser, so characters
    such as `"`, `:`, `-` or `AND` carry no meaning.
    """

    name: str = "base"
    shared_idf: bool = False  # see IDF_MODES
    # True when deletes are physical in each version (no live mask needed to hide dead rows)
    physical_deletes: bool = True
    # an allowed set this small is searched natively at once (no over-fetching first)
    direct_restrict_max: int = 4096

    @classmethod
    @abstractmethod
    def write(
        cls,
        target: Path,
        parent: Path | None,
        adds: list[tuple[int, dict[str, str]]],
        deletes: list[int],
        config: dict[str, Any],
    ) -> dict[str, Any]:
        """Write a version: the parent's documents, minus `deletes`, plus `adds` (docno, fields)."""

    @classmethod
    def manifest_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """The settings a version's manifest records (a server address is kept only by server stores)."""
        return {key: value for key, value in config.items() if key != "url"}

    @classmethod
    def check_backend(cls, config: dict[str, Any] | None = None) -> None:
        """Fail fast, before any encoding, if the backend cannot be used (a server that does not answer)."""
        return None

    @classmethod
    def release(cls, removed: list[Path], kept: list[Path]) -> None:
        """Free what the versions in `removed` (their store folders, about to be deleted) hold outside
        the index directory and no version in `kept` still needs: a server's index or its documents.

        Called by pruning, compaction's pruning and aborted writes; an embedded store holds nothing
        outside its folder. Raises a ShopLensError when the server cannot be reached (the caller then
        keeps those versions, to try again at the next prune).
        """
        return None

    @classmethod
    @abstractmethod
    def open(cls, directory: Path, config: dict[str, Any] | None = None) -> "LexicalStore":
        """Open a version for searching."""

    @abstractmethod
    def analyze(self, text: str) -> list[str]:
        """The terms the store makes of a text (the same analysis as at index time)."""

    def text_analyzer(self) -> Callable[[str], list[str]]:
        """A function that analyzes text in process as this store does, for analyzing many texts at once
        (the reranker's title and attribute terms); a server store returns its analyzer's local equivalent."""
        return self.analyze

    def query_terms(self, text: str) -> list[str]:
        """What `_search` receives for a user's text: its distinct analyzed terms."""
        return list(dict.fromkeys(self.analyze(text)))

    @abstractmethod
    def _search(self, terms: list[str], limit: int, restrict: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """BM25 top `limit` for analyzed terms, optionally only among the `restrict` docnos."""

    def field_scores(self, text: str, docnos: np.ndarray, fields: tuple[str, ...]) -> dict[str, np.ndarray] | None:
        """BM25 of each given row within each single field (0 where the field matches no term).

        None when the backend cannot score fields separately (the features are then missing).
        """
        return None

    def candidate_scores(self, text: str, docnos: np.ndarray,
                         fields: tuple[str, ...]) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        """`scores_of` and `field_scores` of the same rows, as the reranker asks for both: a server store
        answers them in one round trip."""
        return self.scores_of(text, docnos), self.field_scores(text, docnos, fields)

    def prepare_rows(self, products, stop=None, previous: "LexicalStore | None" = None) -> bool:
        """Keep what scoring given rows needs in memory (run once per opened version, off the query path),
        so `field_scores` and `scores_of` need no search. True when the store now has it; the default
        keeps searching. `stop()` true abandons the work; with `previous` (an earlier version's store)
        only what it holds is extended by the rows added since (cheap enough for following updates)."""
        return False

    def scores_of(self, text: str, docnos: np.ndarray) -> np.ndarray:
        """BM25 of each given row for the whole query (0 where it matches no term): the rows' own search."""
        docnos = np.asarray(docnos, dtype=np.int64)
        if not len(docnos):
            return np.zeros(0)
        allowed = np.zeros(int(docnos.max()) + 1, dtype=bool)
        allowed[docnos] = True
        found, scores = self.search(text, len(docnos), allowed)
        by_docno = dict(zip(found.tolist(), scores.tolist()))
        return np.array([by_docno.get(d, 0.0) for d in docnos.tolist()], dtype=np.float64)

    def documents_at_least(self, text: str) -> int:
        """A lower bound of how many documents match `text` (0 when the store cannot tell without searching):
        lets a caller skip a search for a word too common to say anything."""
        return 0

    @abstractmethod
    def num_docs(self) -> int: ...

    @abstractmethod
    def all_docnos(self) -> np.ndarray:
        """Every docno the store holds (for consistency checks)."""

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "documents": self.num_docs(), "field_boosts": dict(FIELD_BOOSTS),
                "idf": "shared" if self.shared_idf else "field"}

    def search(self, text: str, limit: int, allowed: np.ndarray | None = None,
               filters: list[FieldFilter] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top `limit` (docnos, BM25 scores) for a user's text, among `allowed` rows if given.

        `filters`, when given, are the filters `allowed` was computed from: a store that can filter
        natively (a server) applies them itself instead of the mask; the others use the mask.

        With a mask, the store first over-fetches and filters, which is cheap
        when most rows pass; when too few survive it asks the backend to
        search only the allowed rows, so a filtered query still returns
        `limit` results whenever that many match.
        """
        terms = self.query_terms(text)
        if not terms or limit <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        if allowed is None:
            return self._search(terms, limit, None)
        allowed = np.asarray(allowed, dtype=bool)
        n_allowed = int(allowed.sum())
        if n_allowed == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        if n_allowed <= self.direct_restrict_max:
            return self._search(terms, limit, np.flatnonzero(allowed))
        share = n_allowed / max(len(allowed), 1)
        fetch = int(min(self.num_docs(), max(limit * 2, limit / share * 1.5) + 10))
        docnos, scores = self._search(terms, fetch, None)
        keep = _allowed(docnos, allowed)
        if keep.sum() >= limit or len(docnos) < fetch:
            return docnos[keep][:limit], scores[keep][:limit]
        return self._search(terms, limit, np.flatnonzero(allowed))


def _allowed(docnos: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    inside = docnos < len(allowed)
    keep = np.zeros(len(docnos), dtype=bool)
    keep[inside] = allowed[docnos[inside]]
    return keep
