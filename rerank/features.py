"""Reranker features: the ordered names and the one function that computes them.

Serving, training, evaluation and benchmarks all call `compute_features`, so
training and serving cannot drift. Versions only add names (a model of an older
set reads its own columns by name, `rerank.model.check_meta`); a model naming a
feature this module does not compute, or older than the first compatible
version, refuses to load.

Missing values are NaN, never a silent zero: no price, an image-only query
(no BM25), no behaviour in the index, a query never seen in the logs. XGBoost
learns where missing values go.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any

import numpy as np

from shoplens.indexers.products import arrow_numpy
from shoplens.indexers.storage import atomic_write_json, file_identity, trim_files
from shoplens.indexers.vector.base import similarities
from shoplens.rerank.packed_rows import PackedRows, pack_rows
from shoplens.rerank.prices import CHEAP_WORDS, parse_price

FEATURE_VERSION = 4
FEATURE_GROUPS: dict[str, list[str]] = {
    "retrieval": ["bm25", "bm25_norm", "bm25_rank", "dense", "dense_rank", "fused", "fused_rank",
                  "found_by_lexical", "found_by_dense", "sim_text_text", "sim_text_image", "sim_image_image",
                  "sim_image_text", "native", "native_norm", "native_rank", "found_by_native", "query_has_text",
                  "query_has_image"],
    "fields": ["bm25_title", "bm25_brand", "bm25_category", "bm25_description", "bm25_attrs"],
    "text_match": ["title_term_share", "doc_term_share", "title_bigram_share", "title_phrase", "numbers_matched_share",
                   "numbers_conflict", "brand_match", "category_match", "colour_match", "attribute_match_share",
                   "query_terms", "title_terms"],
    "price": ["log_price", "discount_share", "price_to_median", "price_zscore", "price_pct_in_category",
              "query_price_limit_ok", "query_price_floor_ok", "query_wants_cheap"],
    "intent": ["intent_stated", "intent_met_share", "intent_audience_match", "intent_colour_match",
               "intent_type_match", "intent_price_ratio"],
    "behaviour": ["impressions", "clicks", "carts", "orders", "ctr_smoothed", "cart_rate_smoothed",
                  "order_rate_smoothed", "popularity_decayed", "rating", "query_seen", "qp_impressions", "qp_clicks",
                  "qp_ctr_smoothed"],
    "freshness": ["age_days"],
    "consensus": ["prf_text_top1", "prf_text_top5", "prf_image_top1", "prf_image_top5", "prf_native_top5"],
}
FEATURE_NAMES: list[str] = [name for group in FEATURE_GROUPS.values() for name in group]
SCORED_FIELDS = ("title", "brand", "category", "description", "attrs")  # the fields of the bm25_FIELD features
BEHAVIOUR_FEATURES = set(FEATURE_GROUPS["behaviour"]) - {"rating"}
COLUMN = {name: i for i, name in enumerate(FEATURE_NAMES)}

CTR_PRIOR_IMPRESSIONS = 20.0  # a product's CTR starts at the shop's CTR, worth this many impressions
RATE_PRIOR_CLICKS = 10.0  # cart and order rates: prior worth this many clicks
_COLOUR_FIELDS = ("base_colour", "colour", "color", "base_color", "baseColour")
_DISCOUNT_FIELDS = ("discounted_price", "sale_price", "discount_price", "special_price", "final_price")
_LISTED_FIELDS = ("catalog_add_date", "created_at", "listed_at", "published_at", "added_at", "release_date")
_RATING_FIELDS = ("rating", "average_rating", "stars")
_MAX_KEYWORD_VALUES = 500
VOCABULARY_CACHE_FILES = 50  # vocabulary files kept in the index's cache (a file per product state)
_VOCABULARY_FORMAT = 1
_ANALYZER_PROBE = "Men's Running-Shoes, 2.5cm T-shirts BLUE"  # its terms name the analyzer in the cache key


def price_limit(text: str) -> float | None:
    """A price ceiling stated in the query ("under 1000", "below rs 500"), if any."""
    return parse_price(text or "")[1]


def price_range(text: str) -> tuple[float | None, float | None]:
    """(floor, ceiling) stated in the query: "under 2000", "over 500", "between 1000 and 2000"."""
    floor, ceiling, _ = parse_price(text or "")
    return floor, ceiling


_UNITS = {
    "in": "in", "inch": "in", "inches": "in", '"': "in", "ft": "ft", "feet": "ft", "foot": "ft", "'": "ft",
    "gal": "gal", "gallon": "gal", "gallons": "gal", "w": "w", "watt": "w", "watts": "w", "v": "v", "volt": "v",
    "volts": "v", "lb": "lb", "lbs": "lb", "pound": "lb", "pounds": "lb", "oz": "oz", "ounce": "oz", "mm": "mm",
    "cm": "cm", "m": "m", "ml": "ml", "l": "l", "liter": "l", "litre": "l", "kg": "kg", "g": "g", "gm": "g",
    "a": "a", "amp": "a", "amps": "a", "pack": "pk", "pk": "pk", "count": "pk", "ct": "pk", "pc": "pk", "pcs": "pk",
    "piece": "pk", "pieces": "pk", "btu": "btu", "qt": "qt", "quart": "qt", "sq": "sq", "cu": "cu", "gb": "gb",
    "tb": "tb", "mah": "mah", "hp": "hp", "psi": "psi", "k": "k", "x": "x", "ply": "ply", "gauge": "ga", "ga": "ga",
}
_QUANTITY = re.compile(r"(\d+(?:\.\d+)?(?:\s*-\s*\d+/\d+|\s+\d+/\d+)?(?:/\d+)?)\s*(\.?[a-z]+\.?|\"|')?",
                       re.IGNORECASE)


def quantities(text: str) -> set[tuple[str, str]]:
    """Numbers with their units as (value, unit), unit "" when none: "1/2 in." -> ("0.5", "in")."""
    found = set()
    for number, unit in _QUANTITY.findall(text or ""):
        value = _number_value(number)
        if value is None:
            continue
        unit = (unit or "").strip(".").lower()
        found.add((f"{value:g}", _UNITS.get(unit, "")))
    return found


def _number_value(text: str) -> float | None:
    parts = re.split(r"\s*-\s*|\s+", text.strip())
    total = 0.0
    for part in parts:
        try:
            if "/" in part:
                top, bottom = part.split("/", 1)
                total += float(top) / float(bottom) if float(bottom) else 0.0
            else:
                total += float(part)
        except ValueError:
            return None
    return total


def _strings(value: Any) -> list[str]:
    """Every string in a record (nested lists and dicts included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for key, item in value.items() if key not in ("id", "image", "url") for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


_CHEAP = re.compile("|".join(rf"\b{re.escape(word)}\b" for word in CHEAP_WORDS))  # any one of the words


def wants_cheap(text: str) -> bool:
    return _CHEAP.search((text or "").lower()) is not None


class _Vocabulary:
    """Analyzed phrases of a keyword field's values -> codes; each row's codes are read from the product
    table (`ProductTable.keyword`, encoded once per column) only when a query first mentions the field."""

    def __init__(self, phrases: dict[tuple[str, ...], set[int]], products, column: str):
        self.phrases = phrases
        self.column = column
        self._products = products
        self.by_first: dict[str, list[tuple[tuple[str, ...], set[int]]]] = {}
        for phrase, codes in phrases.items():
            self.by_first.setdefault(phrase[0], []).append((phrase, codes))

    def mentioned(self, terms: list[str]) -> set[int]:
        """Codes of the values whose analyzed phrase occurs in the query's terms."""
        found: set[int] = set()
        for start, term in enumerate(terms):
            for phrase, codes in self.by_first.get(term, ()):
                if tuple(terms[start:start + len(phrase)]) == phrase:
                    found |= codes
        return found

    def has_any(self, docnos: np.ndarray, codes: set[int]) -> np.ndarray:
        row_codes, kind, _ = self._products.keyword(self.column)
        return rows_have_codes(row_codes, kind, docnos, np.fromiter(codes, dtype=np.int64))


def rows_have_codes(row_codes, kind: str, docnos: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Whether each of `docnos` has one of the `wanted` keyword codes (scalar codes, or list (offsets, flat))."""
    if kind == "scalar":
        return _member(row_codes[docnos], wanted)
    offsets, flat = row_codes
    starts, lengths = offsets[docnos], offsets[docnos + 1] - offsets[docnos]
    # the positions of the asked rows' codes in `flat`, row after row (only these rows are read)
    positions = np.arange(int(lengths.sum())) + np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    hits = _member(flat[positions], wanted)
    owner = np.repeat(np.arange(len(docnos)), lengths)
    return np.bincount(owner[hits], minlength=len(docnos)) > 0


def _member(values: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """`np.isin(values, wanted)`; a query names a few values, and comparing with each is cheaper than isin's setup."""
    if len(wanted) > 8:
        return np.isin(values, wanted)
    found = np.zeros(values.shape, dtype=bool)
    for code in wanted.tolist():
        found |= values == code
    return found


PACK_TAIL_ROWS = 5000  # rows an update may add beyond a version's packing before the rows are packed again
PACK_TAIL_SHARE = 0.05  # ... or this share of the rows, whichever is larger
_ANALYZED = ("_title_terms", "_title_sets", "_doc_terms", "_quantities")  # a context's analyzed rows


class _Lineage:
    """What analyzed-row lookups hold: the rows of the newest version that uses them. A version may share
    the lookups of an earlier one only while that one is still their newest (rows beyond it would be
    another version's)."""

    def __init__(self, rows: int):
        self.rows = rows


class FeatureContext:
    """Per-version lookups for features, built once when a version is first reranked.

    Everything here depends only on the index version (not the query), so it
    is kept off the query path.
    """

    def __init__(self, snapshot, behaviour, analyzer, earlier: "FeatureContext | None" = None):
        """`earlier`: the context of a version whose rows this snapshot's product table extends
        (`ProductTable.extends`); what depends only on rows it shares or on unchanged values is taken
        from it instead of computed again (a followed update costs its own rows)."""
        products = snapshot.products
        if earlier is not None and not products.extends(earlier.snapshot.products):
            earlier = None
        self.snapshot = snapshot
        self.behaviour = behaviour
        self.analyze = analyzer
        # analyzed rows by docno; shared with later versions that extend this one's rows (`adopt_rows`)
        self._title_terms: dict[int, list[str]] = {}
        self._doc_terms: dict[int, set[str]] = {}
        self._quantities: dict[int, tuple[frozenset, frozenset, frozenset]] = {}  # pairs, values, units
        self._title_sets: dict[int, tuple[set[str], set[tuple[str, str]], str]] = {}  # terms, bigrams, joined
        self._lineage = _Lineage(products.num_rows)
        self._value_codes: dict[str, dict[str, int]] = {}  # keyword column -> lower-cased value -> code
        self._packed: PackedRows | None = None  # every row's terms as arrays, once all are analyzed (`pack`)
        self._packed_limit = 0  # rows below it are served from `_packed`; the newest rows may be above it
        self._adopted: tuple[PackedRows | None, int] = (None, 0)  # an earlier version's packing, rows shared
        n = products.num_rows
        colour_col = _first_column(products, _COLOUR_FIELDS)
        skip = {colour_col, *self._numeric_lookups(products)}
        attributes = [name for name in products.table.column_names
                      if name.startswith("a.") and name not in skip and not products.is_numeric(name)]
        roles = [products.column_name("brand"), products.column_name("category"), colour_col]
        wanted = [(column, None) for column in roles if column] + [(name, _MAX_KEYWORD_VALUES) for name in attributes]
        phrases = self._phrases = _version_phrases(snapshot, analyzer, wanted, earlier)

        def vocabulary(column: str | None, limit: int | None = None) -> _Vocabulary | None:
            found = phrases.get(_phrase_key(column, limit)) if column else None
            return None if found is None else _Vocabulary(found, products, column)

        self.brand, self.category, self.colour = (vocabulary(column) for column in roles)
        self.attributes: list[_Vocabulary] = [v for v in (vocabulary(name, _MAX_KEYWORD_VALUES) for name in attributes)
                                              if v is not None]
        self._attributes_by_first: dict[str, list[int]] = {}  # a phrase's first term -> attributes that have it
        for position, vocab in enumerate(self.attributes):
            for first in vocab.by_first:
                self._attributes_by_first.setdefault(first, []).append(position)
        self.price_pct = self._price_percentile_in_category()

        self.ids = products.table.column("id").to_pylist() if earlier is None else \
            earlier.ids + products.column_values("id", np.arange(len(earlier.ids), n))
        self._behaviour_lookups(behaviour, earlier)

    def _numeric_lookups(self, products) -> tuple[str | None, ...]:
        """Price, discount, listing time and rating per row; returns the columns read for the last three."""
        n = products.num_rows
        self.price = products.numeric("price")
        self.log_price = np.log1p(self.price)
        discount_col = _first_column(products, _DISCOUNT_FIELDS)
        if discount_col:
            sale = products.numeric(discount_col)
            with np.errstate(invalid="ignore", divide="ignore"):
                self.discount = np.where(self.price > 0, np.clip((self.price - sale) / self.price, 0, 1), np.nan)
        else:
            self.discount = np.full(n, np.nan)
        listed_col = _first_column(products, _LISTED_FIELDS)
        listed = products.numeric(listed_col) if listed_col else np.full(n, np.nan)
        first_seen = arrow_numpy(products.table.column("first_seen"), np.nan).astype(float) \
            if "first_seen" in products.table.column_names else np.full(n, np.nan)
        self.listed_ts = np.where(np.isfinite(listed) & (listed > 1e8), listed, first_seen)
        rating_col = _first_column(products, _RATING_FIELDS)
        self.rating = products.numeric(rating_col) if rating_col else np.full(n, np.nan)
        return discount_col, listed_col, rating_col

    def _behaviour_lookups(self, behaviour, earlier: "FeatureContext | None") -> None:
        """Each row's behaviour row, the priors and decayed popularity (from `earlier` when it holds the same
        aggregates: only the added rows are looked up)."""
        self.behaviour_row = None
        if behaviour is None or not behaviour.has_data:
            return
        rows = behaviour.row_by_id
        same = earlier is not None and earlier.behaviour is behaviour and earlier.behaviour_row is not None
        start = len(earlier.behaviour_row) if same else 0
        added = np.array([rows.get(pid, -1) for pid in self.ids[start:]], dtype=np.int64)
        self.behaviour_row = np.concatenate([earlier.behaviour_row, added]) if same else added
        self.priors = earlier.priors if same else behaviour.priors()
        reference = behaviour.state.get("popularity_ts")
        if same and reference is not None:  # a fixed reference: the same popularity (else it is "now")
            self.popularity = earlier.popularity
        else:
            self.popularity = np.log1p(behaviour.popularity_at(time.time() if reference is None else reference))

    def attributes_for(self, terms: list[str]) -> list[_Vocabulary]:
        """The attribute vocabularies that have a value starting with one of the terms (the others mention none)."""
        positions = sorted({p for term in set(terms) for p in self._attributes_by_first.get(term, ())})
        return [self.attributes[p] for p in positions]

    def has_value(self, field: str, values, docnos: np.ndarray) -> np.ndarray | None:
        """Whether each of `docnos` has one of `values` in a keyword field (case-insensitive, as filters match;
        a list field when any element does); None when the index has no such field."""
        products = self.snapshot.products
        column = products.column_name(field)
        if column is None or products.is_numeric(column):
            return None
        codes, kind, vocab = products.keyword(column)
        lookup = self._value_codes.get(column)
        if lookup is None or len(lookup) != len(vocab):
            lookup = self._value_codes[column] = {value: code for code, value in enumerate(vocab) if value}
        wanted = np.array([lookup[v] for v in {str(v).strip().lower() for v in values} if v in lookup], dtype=np.int64)
        return rows_have_codes(codes, kind, docnos, wanted)

    def title_terms(self, docnos: np.ndarray) -> list[list[str]]:
        """Analyzed title terms of rows in order, computed once per row and version."""
        self._fill(docnos)
        return [self._title_terms[d] for d in docnos.tolist()]

    def title_sets(self, docnos: np.ndarray) -> list[tuple[set[str], set[tuple[str, str]], str]]:
        """Each row's title as (term set, bigram set, terms joined by spaces), once per row and version."""
        self._fill(docnos)
        return [self._title_sets[d] for d in docnos.tolist()]

    def term_overlaps(self, docnos: np.ndarray, query: set[str], bigrams: set[tuple[str, str]],
                      phrase: str) -> np.ndarray:
        """Per row, in one pass over the analyzed rows (rows x 5): title terms, query terms in the title, query
        terms anywhere in the row's text, query bigrams in the title, 1 when the query's phrase is in the title.
        Numpy over the rows' term ids for packed rows (`pack`), Python sets for the others: the same counts."""
        packed, inside = self._packed, docnos < self._packed_limit
        if packed is None or not inside.any():
            return self._set_overlaps(docnos, query, bigrams, phrase)
        if inside.all():
            return packed.overlaps(docnos, query, bigrams, phrase)
        out = np.empty((len(docnos), 5))
        out[inside] = packed.overlaps(docnos[inside], query, bigrams, phrase)
        out[~inside] = self._set_overlaps(docnos[~inside], query, bigrams, phrase)
        return out

    def _set_overlaps(self, docnos: np.ndarray, query: set[str], bigrams: set[tuple[str, str]],
                      phrase: str) -> np.ndarray:
        self._fill(docnos)
        titles, sets, docs = self._title_terms, self._title_sets, self._doc_terms
        return np.array([(len(titles[d]), len(query & sets[d][0]), len(query & docs[d]), len(bigrams & sets[d][1]),
                          phrase in sets[d][2]) for d in docnos.tolist()], dtype=np.float64).reshape(len(docnos), 5)

    def doc_terms(self, docnos: np.ndarray) -> list[set[str]]:
        """Analyzed terms of each row's whole text (every text field), once per row and version."""
        self._fill(docnos)
        return [self._doc_terms[d] for d in docnos.tolist()]

    def quantities(self, docnos: np.ndarray) -> list[tuple[frozenset, frozenset, frozenset]]:
        """Numbers with units ("1/2 in", "60 w") stated anywhere in each row's text, as (the (value, unit)
        pairs, their values, their units), so a query's numbers are looked up rather than scanned (only
        queries with a number ask, so rows are parsed on that first ask, once per row and version)."""
        missing = [d for d in docnos.tolist() if d not in self._quantities]
        for docno, _, text in self._records(missing):
            pairs = quantities(text)
            self._quantities[docno] = (frozenset(pairs), frozenset(v for v, _ in pairs),
                                       frozenset(u for _, u in pairs))
        return [self._quantities[d] for d in docnos.tolist()]

    def fill_all(self, chunk: int = 512, stop=None) -> int:
        """Analyze every row's title and text now (a long-running server does this in the background after
        it opens a version, so queries do not pay for the first sight of a product). Returns rows filled."""
        n = self.snapshot.products.num_rows
        for start in range(0, n, chunk):
            if stop is not None and stop():
                return start
            self._fill(np.arange(start, min(n, start + chunk), dtype=np.int64))
            time.sleep(0)  # let query threads in between chunks
        self.pack()
        return n

    def pack(self) -> bool:
        """Once every row is analyzed, keep the rows' terms as integer arrays (`PackedRows`) so term overlaps
        are numpy work per query; rows an earlier version's packing holds (`adopt_rows`) are taken from it.
        An update's few new rows are left to the sets (`term_overlaps` serves both) until more than
        PACK_TAIL_ROWS (or PACK_TAIL_SHARE of the rows) are: repacking costs the whole catalog's postings.
        Returns whether the rows are packed."""
        n = self.snapshot.products.num_rows
        if self._packed is not None:
            return True
        previous, shared = self._adopted
        if previous is not None and n - shared <= max(PACK_TAIL_ROWS, PACK_TAIL_SHARE * n):
            self._packed, self._packed_limit = previous, shared
            return True
        terms = self._title_terms  # shared lookups may also hold a newer version's rows: every row below n?
        if len(terms) < n or not all(d in terms for d in range(n)):
            return False
        self._packed = pack_rows(n, self._title_terms, self._title_sets, self._doc_terms, previous, shared)
        self._packed_limit, self._adopted = n, (None, 0)
        return True

    def adopt_rows(self, previous: "FeatureContext", rows: int) -> int:
        """Take the analyzed rows below `rows` from an earlier version's context: rows a newer version shares
        with an older one (`ProductTable.shared_rows`) are the same records, so their analysis is too.
        When `rows` are all of `previous`'s and no other version took them yet, the rows are shared, not
        copied: both contexts fill the same lookups (a row analyzed on either version serves both). Returns
        the rows taken (those analyzed so far). Safe while other threads fill `previous` (each dict is copied at once)."""
        if rows <= 0 or previous is self:
            return 0
        lineage = previous._lineage
        if lineage.rows == rows == previous.snapshot.products.num_rows:  # nobody appended other rows to them
            lineage.rows = self.snapshot.products.num_rows
            self._lineage = lineage
            for name in _ANALYZED:
                setattr(self, name, getattr(previous, name))
            if previous._packed is not None:
                self._adopted = (previous._packed, min(rows, previous._packed_limit))
            return len(self._title_terms)
        terms = {d: v for d, v in dict(previous._title_terms).items() if d < rows}  # first: a row there is complete
        for name in _ANALYZED[1:]:
            mine, theirs = getattr(self, name), dict(getattr(previous, name))
            mine.update((d, v) for d, v in theirs.items() if d < rows and (name == "_quantities" or d in terms))
        self._title_terms.update(terms)
        if previous._packed is not None:
            self._adopted = (previous._packed, min(rows, previous._packed_limit))
        return len(terms)

    def _fill(self, docnos: np.ndarray) -> None:
        missing = [d for d in docnos.tolist() if d not in self._title_terms]
        for docno, record, text in self._records(missing):
            terms = self.analyze(str(record.get("title") or ""))
            self._title_sets[docno] = (set(terms), set(zip(terms, terms[1:])), " ".join(terms))
            self._doc_terms[docno] = set(self.analyze(text))
            self._title_terms[docno] = terms  # last: a row in _title_terms is complete (another thread may fill)

    def _records(self, docnos: list[int]):
        """(docno, record, every string of the record joined) of rows."""
        if not docnos:
            return
        records = self.snapshot.products.column_values("record", np.array(docnos, dtype=np.int64))
        for docno, raw in zip(docnos, records):
            record = json.loads(raw) if isinstance(raw, str) else (raw or {})
            yield docno, record, " ".join(_strings(record))

    def _price_percentile_in_category(self) -> np.ndarray:
        """Where each product's price sits among its leaf category's prices (0 cheapest, 1 dearest)."""
        products = self.snapshot.products
        n = products.num_rows
        result = np.full(n, np.nan)
        column = products.column_name("category")
        if column is None:
            return result
        (offsets, flat), _, _ = products.keyword(column)
        leaf = np.full(n, -1, dtype=np.int64)
        has = offsets[1:] > offsets[:-1]
        leaf[has] = flat[offsets[1:][has] - 1]
        valid = (leaf >= 0) & np.isfinite(self.price)
        for code in np.unique(leaf[valid]):
            rows = np.flatnonzero(valid & (leaf == code))
            if len(rows) == 1:
                result[rows] = 0.5
                continue
            order = np.argsort(self.price[rows], kind="stable")
            ranks = np.empty(len(rows))
            ranks[order] = np.arange(len(rows))
            result[rows] = ranks / (len(rows) - 1)
        return result


def stored_phrases(snapshot, analyze, wanted: list[tuple[str, int | None]]) -> dict[str, dict | None]:
    """Each wanted keyword column's analyzed value phrases (`_phrases`), kept in the index's cache under the
    identity of the version's product files and the analyzer (a version whose products did not change
    shares them), so a fresh process reads one file instead of analyzing every value of ~200 columns;
    computed when the cache cannot be read or written (a read-only index). Keys: `_phrase_key`."""
    directory = snapshot.path / "products"
    identity = [file_identity(directory / name) for name in ("state.json", "live.npy")]
    key = hashlib.blake2b(repr((identity, FEATURE_VERSION, _VOCABULARY_FORMAT, analyze(_ANALYZER_PROBE), wanted))
                          .encode(), digest_size=10).hexdigest()
    target = snapshot.index.cache_dir / "vocabularies" / f"{key}.json"
    try:
        stored = json.loads(target.read_text(encoding="utf-8"))
        return {name: None if pairs is None else {tuple(terms): set(codes) for terms, codes in pairs}
                for name, pairs in stored.items()}
    except (OSError, ValueError, TypeError):
        pass
    computed = {_phrase_key(column, limit): _phrases(snapshot.products, analyze, column, limit)
                for column, limit in wanted}
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(target, {name: None if phrases is None else [[list(terms), sorted(codes)]
                                                                       for terms, codes in phrases.items()]
                                   for name, phrases in computed.items()})
        trim_files(target.parent, VOCABULARY_CACHE_FILES)
    except OSError:
        pass
    return computed


def _version_phrases(snapshot, analyze, wanted: list[tuple[str, int | None]],
                     earlier: FeatureContext | None) -> dict[str, dict | None]:
    """`stored_phrases`, or with `earlier` (the context of the version this one's products extend, same
    analyzer) its phrases of every column whose values the added rows did not change, and the others'
    computed (a price update changes none: nothing is analyzed, read or written)."""
    if earlier is None or earlier.analyze(_ANALYZER_PROBE) != analyze(_ANALYZER_PROBE):
        return stored_phrases(snapshot, analyze, wanted)
    products, out = snapshot.products, {}
    for column, limit in wanted:
        key = _phrase_key(column, limit)
        same = key in earlier._phrases and products.vocabulary_grew(column) is False
        out[key] = earlier._phrases[key] if same else _phrases(products, analyze, column, limit)
    return out


def _phrase_key(column: str, limit: int | None) -> str:
    return f"{column}|{'' if limit is None else limit}"


def _phrases(products, analyze, column: str, limit: int | None) -> dict[tuple[str, ...], set[int]] | None:
    """A keyword column's values analyzed: phrase (1 to 4 terms) -> the value codes that give it; None when
    the column has more than `limit` distinct values."""
    _, _, vocab = products.keyword(column)
    if limit is not None and len(vocab) > limit:
        return None
    phrases: dict[tuple[str, ...], set[int]] = {}
    for code, value in enumerate(vocab):
        if value is None:
            continue
        terms = tuple(analyze(value))
        if terms and len(terms) <= 4:
            phrases.setdefault(terms, set()).add(code)
    return phrases


def _first_column(products, names) -> str | None:
    for name in names:
        column = products.column_name(name)
        if column is not None and column.startswith("a."):
            return column
    return None


def compute_features(context: FeatureContext, text: str | None, candidates, lexical_scores: np.ndarray | None,
                     use_behaviour: bool = True, now: float | None = None,
                     field_scores: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """Feature matrix (candidates x FEATURE_NAMES) for one query.

    `candidates` is an engine.hybrid.Candidates in fused order;
    `lexical_scores` the BM25 score of every candidate (0 where it matches no
    term; None for a query without text); `field_scores` each SCORED_FIELDS
    field's BM25 of every candidate when the caller has them (else asked here).
    Each group is one small function.
    """
    docnos = candidates.docnos
    features = np.full((len(docnos), len(FEATURE_NAMES)), np.nan, dtype=np.float32)
    if len(docnos) == 0:
        return features

    def put(name: str, values) -> None:
        features[:, COLUMN[name]] = values

    terms = context.analyze(text) if text else []
    _retrieval_features(context, candidates, lexical_scores, put)
    _field_features(context, text, docnos, put, field_scores)
    _text_match_features(context, text, terms, docnos, put)
    intent = getattr(candidates, "intent", None)
    _price_features(context, text, docnos, put, stated_price(intent, text))
    _intent_features(context, intent, docnos, put)
    if use_behaviour and context.behaviour_row is not None:
        _behaviour_features(context, text, docnos, put)
    now = time.time() if now is None else now
    put("age_days", (now - context.listed_ts[docnos]) / 86400.0)
    _consensus_features(context, docnos, put)
    return features


PRF_DEPTH = 5  # the fused list's first candidates whose mean vector stands for what the query found


def _consensus_features(context: FeatureContext, docnos: np.ndarray, put) -> None:
    """Pseudo-relevance feedback: each candidate's similarity to the fused list's first candidate and to the
    mean of its first PRF_DEPTH, in the product text, product photo and text-native spaces. Products like the
    ones retrieval is surest of (the pictured product for a photo; the consensus for words) rank up; a
    candidate unlike all of them down. Needs the candidates in fused order, as reranking gets them."""
    stored = context.snapshot.vectors.vectors(docnos, parts=("text", "image", "has_image"))
    _put_prf(put, "text", np.asarray(stored["text"], dtype=np.float32), np.ones(len(docnos), dtype=bool))
    _put_prf(put, "image", np.asarray(stored["image"], dtype=np.float32), np.asarray(stored["has_image"], dtype=bool))
    native = context.snapshot.text_native
    if native is not None:
        rows = np.asarray(native.vectors(docnos, parts=("text",))["text"], dtype=np.float32)
        _put_prf(put, "native", rows, np.ones(len(docnos), dtype=bool), top1=False)


def _put_prf(put, space: str, rows: np.ndarray, present: np.ndarray, top1: bool = True) -> None:
    head = np.flatnonzero(present[:PRF_DEPTH])
    if len(head) == 0:
        return
    centre = rows[head].mean(axis=0)
    norm = float(np.linalg.norm(centre))
    if norm > 0:
        put(f"prf_{space}_top{PRF_DEPTH}", np.where(present, rows @ (centre / norm), np.nan))
    if top1 and present[0]:
        put(f"prf_{space}_top1", np.where(present, rows @ rows[0], np.nan))


def _retrieval_features(context: FeatureContext, candidates, lexical_scores, put) -> None:
    """Scores and ranks from each retriever and fusion, and every query-product similarity."""
    n = len(candidates.docnos)
    if lexical_scores is not None:
        put("bm25", lexical_scores)
        top = float(np.max(lexical_scores))
        put("bm25_norm", lexical_scores / top if top > 0 else 0.0)
    put("bm25_rank", candidates.bm25_rank)
    put("dense", candidates.dense)
    put("dense_rank", candidates.dense_rank)
    put("fused", candidates.fused)
    put("fused_rank", np.arange(1, n + 1))
    put("found_by_lexical", np.isfinite(candidates.bm25_rank).astype(np.float32))
    put("found_by_dense", np.isfinite(candidates.dense_rank).astype(np.float32))
    query = candidates.query
    put("query_has_text", float(query.text is not None))
    put("query_has_image", float(query.image is not None))
    sims = candidates.sims
    if sims is None:  # candidates not from engine.hybrid.union_candidates
        sims = similarities(context.snapshot.vectors.vectors(candidates.docnos), query.text, query.image)
    for name, values in sims.items():
        put(name, values)
    native = candidates.native
    if np.isfinite(native).any():
        put("native", native)
        put("native_norm", native - np.nanmax(native))
        put("native_rank", candidates.native_rank)
        put("found_by_native", np.isfinite(candidates.native_rank).astype(np.float32))


def _field_features(context: FeatureContext, text: str | None, docnos: np.ndarray, put,
                    scores: dict[str, np.ndarray] | None = None) -> None:
    """BM25 within each text field alone: where the query's words are matters as much as that they are.
    `scores`: the store's `field_scores` of SCORED_FIELDS when the caller fetched them already."""
    if not text or not text.strip():
        return
    if scores is None:
        scores = context.snapshot.lexical.field_scores(text, docnos, SCORED_FIELDS)
    if scores is None:
        return
    for field in SCORED_FIELDS:
        put(f"bm25_{field}", scores[field])


def _text_match_features(context: FeatureContext, text: str | None, terms: list[str], docnos: np.ndarray,
                         put) -> None:
    """Query-term coverage, bigrams and phrase in the title, quantities, lengths, mentioned field values."""
    if not terms:
        return
    query_set = set(terms)
    bigrams = set(zip(terms, terms[1:]))
    overlaps = context.term_overlaps(docnos, query_set, bigrams, " ".join(terms))
    put("query_terms", len(query_set))
    put("title_terms", overlaps[:, 0])
    put("title_term_share", overlaps[:, 1] / len(query_set))
    put("doc_term_share", overlaps[:, 2] / len(query_set))
    if bigrams:
        put("title_bigram_share", overlaps[:, 3] / len(bigrams))
        put("title_phrase", overlaps[:, 4])
    _quantity_features(context, text, docnos, put)
    _mention_features(context, terms, docnos, put)


def _quantity_features(context: FeatureContext, text: str | None, docnos: np.ndarray, put) -> None:
    """Share of the query's numbers (with units) the product states, and whether it states another value."""
    asked = {(value, unit) for value, unit in quantities(text or "")}
    if not asked:
        return
    bare = [value for value, unit in asked if not unit]  # a bare number matches that value in any unit
    with_unit = [(value, unit) for value, unit in asked if unit]
    matched, conflict = [], []
    for stated, values, units in context.quantities(docnos):
        hits = sum(1 for value in bare if value in values) + sum(1 for pair in with_unit if pair in stated)
        matched.append(hits / len(asked))
        # the product states one of the asked units, but not with the asked value
        conflict.append(float(any(unit in units and (value, unit) not in stated for value, unit in with_unit)))
    put("numbers_matched_share", matched)
    put("numbers_conflict", conflict)


def _mention_features(context: FeatureContext, terms: list[str], docnos: np.ndarray, put) -> None:
    """Brand, category, colour and other keyword values the query names, and whether each product has them."""
    n = len(docnos)
    for name, vocab in (("brand_match", context.brand), ("category_match", context.category),
                        ("colour_match", context.colour)):
        if vocab is None:
            continue
        mentioned = vocab.mentioned(terms)
        if mentioned:
            put(name, vocab.has_any(docnos, mentioned).astype(np.float32))
    matched, asked = np.zeros(n), 0
    for vocab in context.attributes_for(terms):
        mentioned = vocab.mentioned(terms)
        if mentioned:
            asked += 1
            matched += vocab.has_any(docnos, mentioned)
    if asked:
        put("attribute_match_share", matched / asked)


def _price_features(context: FeatureContext, text: str | None, docnos: np.ndarray, put,
                    stated: tuple[float | None, float | None] = (None, None)) -> None:
    """Price level, discount, price among the candidates and in its category, and the `stated` price limits."""
    price = context.price[docnos]
    put("log_price", context.log_price[docnos])
    put("discount_share", context.discount[docnos])
    finite = price[np.isfinite(price)]
    if len(finite):
        median = float(np.median(finite))
        put("price_to_median", price / median if median > 0 else np.nan)
        std = float(finite.std())
        put("price_zscore", (price - finite.mean()) / std if std > 0 else 0.0)
    put("price_pct_in_category", context.price_pct[docnos])
    floor, ceiling = stated
    if ceiling is not None:
        put("query_price_limit_ok", np.where(np.isfinite(price), (price <= ceiling).astype(np.float32), np.nan))
    if floor is not None:
        put("query_price_floor_ok", np.where(np.isfinite(price), (price >= floor).astype(np.float32), np.nan))
    put("query_wants_cheap", float(wants_cheap(text or "")))
    put("rating", context.rating[docnos])


def stated_price(intent, text: str | None) -> tuple[float | None, float | None]:
    """(floor, ceiling) the query states: the parsed intent's (whose text has the price phrase taken out), else
    read from the text itself (a search with intent off)."""
    if intent is not None and (intent.price_min is not None or intent.price_max is not None):
        return intent.price_min, intent.price_max
    return price_range(text or "")


def _intent_features(context: FeatureContext, intent, docnos: np.ndarray, put) -> None:
    """What the query states (engine.intent.Intent: a price range, audience, colour, type mapped onto the
    catalog's fields) against each product's own fields: 1 met, 0 not, missing when the query states nothing
    of that kind or the product has no price. `intent_stated` counts the stated constraints (0: none)."""
    put("intent_stated", 0.0)
    if intent is None:
        return
    met, stated = np.zeros(len(docnos)), 0
    for constraint in intent.constraints:
        has = context.has_value(constraint.field, constraint.values, docnos)
        if has is None:
            continue
        stated += 1
        met += has
        name = f"intent_{constraint.kind}_match"
        if name in COLUMN:
            put(name, has.astype(np.float32))
    if intent.price_min is not None or intent.price_max is not None:
        price = context.price[docnos]
        low = -np.inf if intent.price_min is None else intent.price_min
        high = np.inf if intent.price_max is None else intent.price_max
        stated += 1
        met += (price >= low) & (price <= high)
        bound = intent.price_max if intent.price_max is not None else intent.price_min
        put("intent_price_ratio", price / bound if bound else np.nan)
    if stated:
        put("intent_stated", float(stated))
        put("intent_met_share", met / stated)


def _behaviour_features(context: FeatureContext, text: str | None, docnos: np.ndarray, put) -> None:
    stats = context.behaviour
    rows = context.behaviour_row[docnos]
    known = rows >= 0
    safe = np.where(known, rows, 0)

    def counts(name: str) -> np.ndarray:
        return np.where(known, stats.products[name][safe], 0).astype(np.float64)

    impressions, clicks, carts, orders = (counts(c) for c in ("impressions", "clicks", "carts", "orders"))
    priors = context.priors
    ctr = (clicks + CTR_PRIOR_IMPRESSIONS * priors["ctr"]) / (impressions + CTR_PRIOR_IMPRESSIONS)
    put("impressions", impressions)
    put("clicks", clicks)
    put("carts", carts)
    put("orders", orders)
    put("ctr_smoothed", ctr)
    put("cart_rate_smoothed", (carts + RATE_PRIOR_CLICKS * priors["cart_rate"]) / (clicks + RATE_PRIOR_CLICKS))
    put("order_rate_smoothed", (orders + RATE_PRIOR_CLICKS * priors["order_rate"]) / (clicks + RATE_PRIOR_CLICKS))
    put("popularity_decayed", np.where(known, context.popularity[safe], 0.0))
    history = stats.query_rows(text) if text else None
    put("query_seen", 0.0 if history is None else 1.0)
    if history is not None:
        qp_rows = np.array([history.get(context.ids[d], -1) for d in docnos.tolist()], dtype=np.int64)
        seen = qp_rows >= 0
        safe_qp = np.where(seen, qp_rows, 0)
        qp_impressions = np.where(seen, stats.query_products["impressions"][safe_qp], 0).astype(np.float64)
        qp_clicks = np.where(seen, stats.query_products["clicks"][safe_qp], 0).astype(np.float64)
        put("qp_impressions", qp_impressions)
        put("qp_clicks", qp_clicks)
        put("qp_ctr_smoothed", (qp_clicks + CTR_PRIOR_IMPRESSIONS * ctr) / (qp_impressions + CTR_PRIOR_IMPRESSIONS))


def behaviour_columns() -> np.ndarray:
    """Indexes of the behaviour features (blanked when training without behaviour)."""
    return np.array([COLUMN[name] for name in FEATURE_NAMES if name in BEHAVIOUR_FEATURES])


__all__ = ["FEATURE_NAMES", "FEATURE_VERSION", "SCORED_FIELDS", "FEATURE_GROUPS", "FeatureContext", "compute_features",
           "behaviour_columns", "price_limit", "price_range", "quantities", "stated_price", "wants_cheap"]
