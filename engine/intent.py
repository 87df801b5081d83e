"""Query understanding: price limits, who it is for, colours and product types, as soft constraints.

`parse_intent(text, facets)` reads a query as a shopper types it ("white
sneakers under 2000", "blue jeans for men", "kids school bag") and maps what
it states onto the catalog's OWN field values: `facets` is every small
keyword field of the index with its values (`facet_values(products)`), so
nothing about a particular shop is hard-coded beyond a short English word
list (gender and age words, colour names). A word maps onto a field when one
of the field's values contains it as a word ("men" -> gender=Men and
age_group=Adults-Men: the field with fewer values wins; "blue" ->
base_colour=Blue|Navy Blue); a type word maps onto whole category values
("jeans" -> category=Jeans, "watch" -> category=Watches).

The engine uses an `Intent` two ways: with `--strict-intent` its constraints
become filters; otherwise they re-order the retrieved (and reranked) list
with `boosted_order`: a product's position is divided by a factor per
constraint it meets, so it is a strong preference, never a removal. The
price phrase is taken out of the text that goes to retrieval ("under 2000"
matches nothing useful, "under" matches the brand Under Armour).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from shoplens.indexers.storage import atomic_write_json, file_identity, trim_files
from shoplens.rerank.prices import CHEAP_WORDS, parse_price  # noqa: F401  (parse_price: re-exported)

FACET_CACHE_FILES = 50  # facet files kept in the index's cache (a file per distinct product state)

# who it is for: a query word -> the words a catalog value may use for it
AUDIENCE = {
    "men": ("men", "man", "mens", "male", "gents", "gent", "him", "gentlemen"),
    "women": ("women", "woman", "womens", "female", "ladies", "lady", "her"),
    "boys": ("boys", "boy"),
    "girls": ("girls", "girl"),
    "kids": ("kids", "kid", "children", "child", "childrens", "infant", "infants", "baby", "toddler"),
    "unisex": ("unisex",),
}
# values that also suit an audience ("kids" means boys and girls; unisex suits everyone)
AUDIENCE_ALSO = {"men": ("unisex",), "women": ("unisex",), "boys": ("kids", "unisex"),
                 "girls": ("kids", "unisex"), "kids": ("boys", "girls", "unisex")}
# a value naming one of these is for someone else, whatever else it names ("Kids-Girls" is not for boys);
# unisex values suit everyone, adults' included (a catalog's unisex bags are what it has for a kid's school bag)
AUDIENCE_NOT = {"men": ("women", "boys", "girls", "kids"), "women": ("men", "boys", "girls", "kids"),
                "boys": ("girls", "men", "women"), "girls": ("boys", "men", "women"), "kids": ("men", "women")}
COLOURS = ("black", "white", "blue", "navy", "red", "green", "yellow", "pink", "purple", "grey", "gray", "brown",
           "beige", "orange", "maroon", "silver", "gold", "golden", "cream", "olive", "khaki", "tan", "teal",
           "turquoise", "lavender", "magenta", "peach", "mustard", "burgundy", "charcoal", "copper", "bronze",
           "violet", "indigo", "off-white", "multicolour", "multicolor")
COLOUR_ALIASES = {"gray": "grey", "golden": "gold", "multicolor": "multi", "multicolour": "multi"}
PRICE_FIELD = "price"
MAX_FACET_VALUES = 100  # a keyword field with more distinct values than this is not a facet (titles, ids, brands)
# how strongly a met constraint moves a product up: its position is divided by this factor
BOOST = {"price": 50.0, "audience": 10.0, "type": 4.0, "colour": 3.0}

_TOKEN = re.compile(r"[a-z0-9]+(?:'s)?")


@dataclass(frozen=True)
class Constraint:
    """One stated constraint mapped onto a catalog field: `field` takes one of `values`."""

    kind: str  # audience, colour or type
    word: str  # the query word it came from
    field: str
    values: tuple[str, ...]

    def filter(self) -> str:
        return f"{self.field}={'|'.join(self.values)}"


@dataclass(frozen=True)
class Intent:
    """What a query states beyond its words: a price range and field constraints, plus the text to retrieve with."""

    text: str  # the query without its price phrase
    price_min: float | None = None
    price_max: float | None = None
    constraints: tuple[Constraint, ...] = field(default_factory=tuple)
    source: str = "text"  # "text": stated in the query; "photo": read from the catalog product a query photo shows
    price_level: str | None = None  # "low" ("cheap") or "high" ("premium"): the cheapest or dearest third
    type_words: str = ""  # words of the one category value the query stands for that it does not use itself

    def retrieved_text(self, with_photo: bool = False) -> str:
        """The text retrieval and the reranker read: `text`, plus `type_words` for a query without a photo (a
        photo shows what kind of product it is; on derived text + photo queries the added words cost 0.013
        NDCG@10 of the hybrid)."""
        return f"{self.text} {self.type_words}" if self.type_words and not with_photo else self.text

    @property
    def empty(self) -> bool:
        return self.price_min is None and self.price_max is None and not self.constraints and not self.price_level

    def filters(self) -> list[str]:
        """The constraints as filter expressions (what --strict-intent applies)."""
        out = [c.filter() for c in self.constraints]
        if self.price_min is not None:
            out.append(f"{PRICE_FIELD}>={_number_text(self.price_min)}")
        if self.price_max is not None:
            out.append(f"{PRICE_FIELD}<={_number_text(self.price_max)}")
        return out

    def to_dict(self) -> dict[str, Any]:
        constraints = [{"kind": c.kind, "word": c.word, "field": c.field, "values": list(c.values)}
                       for c in self.constraints]
        return {"text": self.text, "type_words": self.type_words, "source": self.source,
                "price_min": self.price_min, "price_max": self.price_max,
                "price_level": self.price_level, "constraints": constraints}


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _tokens(text: str) -> list[str]:
    text = re.sub(r"\bt[\s-]shirt", "tshirt", text.lower())
    return [t[:-2] if t.endswith("'s") else t for t in _TOKEN.findall(text.lower())]


def _singular(word: str) -> str:
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


@functools.lru_cache(maxsize=1 << 17)
def _value_words(value: str) -> frozenset[str]:
    """A facet value's words, once per value (facets hold tens of thousands of values; queries scan them)."""
    return frozenset(_tokens(value.replace("-", " ")))


@functools.lru_cache(maxsize=1 << 16)
def _singular_phrase(value: str) -> str:
    return " ".join(_singular(w) for w in _tokens(value))


def _best_field(facets: dict[str, dict[str, int]], wanted: set[str], required: set[str] | None = None,
                skip: tuple[str, ...] = (), exclude: frozenset[str] = frozenset()) -> tuple[str, tuple[str, ...]] | None:
    """Among facets with a value containing a `required` word, the one whose `required` values cover the most
    products (ties: fewer values); returned with its values containing any `wanted` word and no `exclude` word."""
    best = None
    for name, values in facets.items():
        if name in skip:
            continue
        hits = tuple(v for v in values if _value_words(v) & wanted and not _value_words(v) & exclude)
        covered = sum(values[v] for v in hits if _value_words(v) & (required or wanted))
        if not covered:
            continue
        key = (covered, -len(values))
        if best is None or key > best[2]:
            best = (name, hits, key)
    return None if best is None else (best[0], best[1])


def _audience(tokens: list[str], facets: dict[str, dict[str, int]]) -> list[Constraint]:
    out = []
    for canonical, words in AUDIENCE.items():
        said = next((t for t in tokens if t in words), None)
        if said is None:
            continue
        wanted = set(words) | {w for also in AUDIENCE_ALSO.get(canonical, ()) for w in AUDIENCE[also]}
        found = _best_field(facets, wanted, required=set(words) | set(AUDIENCE_ALSO.get(canonical, ()))
                            if canonical == "kids" else set(words), skip=("category",),
                            exclude=_audience_not(canonical))
        if found:
            out.append(Constraint("audience", said, found[0], found[1]))
    return out[:1]  # one audience: the first stated


@functools.lru_cache(maxsize=None)
def _audience_not(canonical: str) -> frozenset[str]:
    """The words of the audiences a value must not name to suit `canonical`."""
    return frozenset(w for group in AUDIENCE_NOT.get(canonical, ()) for w in AUDIENCE[group])


def _colours(tokens: list[str], facets: dict[str, dict[str, int]]) -> list[Constraint]:
    out = []
    for token in tokens:
        if token not in COLOURS:
            continue
        colour = COLOUR_ALIASES.get(token, token)
        found = _best_field(facets, {colour}, skip=("category",))
        if found:
            out.append(Constraint("colour", token, found[0], found[1]))
            break  # the first colour named is the product's ("black shirt with white print")
    return out


def _types(tokens: list[str], facets: dict[str, dict[str, int]]) -> list[Constraint]:
    categories = facets.get("category") or []
    if not categories:
        return []
    by_singular: dict[str, list[str]] = {}
    for value in categories:
        by_singular.setdefault(_singular_phrase(value), []).append(value)
    singular = [_singular(t) for t in tokens]
    for size in (2, 1):  # "sports shoes" before "shoes"
        for start in range(len(singular) - size, -1, -1):  # the last noun names the type
            phrase = " ".join(singular[start:start + size])
            if size == 2 and phrase not in by_singular:  # a compound written as two words: "sweat shirt", "ear rings"
                phrase = _singular("".join(tokens[start:start + size]))
            if phrase in by_singular:
                values = tuple(by_singular[phrase])
                if size == 1:  # "shoe" also means every kind of shoe: "Casual Shoes", "Sports Shoes"
                    values += tuple(v for key, vs in by_singular.items() if key.endswith(" " + phrase) for v in vs)
                return [Constraint("type", " ".join(tokens[start:start + size]), "category", values)]
    return []


def parse_intent(text: str, facets: dict[str, dict[str, int]],
                 associate: Callable[..., str | None] | None = None) -> Intent:
    """Price limits and audience, colour and type constraints of a query, mapped onto `facets`' values.
    `associate(word)`, when given, names the category value a word the category names do not hold stands for
    in this catalog ("sneakers" -> casual shoes); it is asked only when no type word was found. When one was,
    `associate(phrase, constraint)` may narrow it: the value the phrase stands for among the constraint's
    products ("school bag" -> backpacks)."""
    low, high, rest = parse_price(text or "")
    level = _price_level(rest)
    tokens = _tokens(rest)
    head = _head_part(tokens)
    types = _types(head, facets) or (_types(tokens, facets) if head is not tokens else [])
    if not types and associate is not None:
        types = _associated_type(head, associate) or (_associated_type(tokens, associate) if head is not tokens else [])
    elif associate is not None:
        types = _qualified_type(tokens, types[0], associate)
    constraints = _audience(tokens, facets) + _colours(tokens, facets) + types
    return Intent(rest if rest else (text or ""), low, high, tuple(constraints), price_level=level,
                  type_words=_type_words(tokens, types))


# words after which a query names what the product goes with, not what it is: "shoes that go with jeans"
_QUALIFIERS = frozenset("for with that which to without matching".split())


def _head_part(tokens: list[str]) -> list[str]:
    """The query's words before its first qualifier ("shoes" of "shoes that go with jeans", "bulb" of "bulb for
    ceiling fan"), where the type is read first; all of them when it starts with one or has none."""
    at = next((i for i, token in enumerate(tokens) if token in _QUALIFIERS), 0)
    return tokens[:at] if at > 0 else tokens


def _type_words(tokens: list[str], types: list[Constraint]) -> str:
    """The words of the one category value the query's type stands for that the query does not use ("kids school
    bag" -> "backpacks", "white sneakers" -> "casual shoes"): retrieved too, retrieval then finds the products
    the boost prefers, not only those repeating the query's words (a brand called "Be For Bag" says "bag"
    twice). Nothing for a type with several values ("bag": every kind of bag)."""
    if len(types) != 1 or len(types[0].values) != 1:
        return ""
    have = {_singular(t) for t in tokens}
    return " ".join(word for word in _tokens(types[0].values[0]) if _singular(word) not in have)


# words asking for the cheap or the dear end of what matches, whatever the catalog's prices are
PRICE_LEVELS = {"low": CHEAP_WORDS + ("cheapest", "cheaper", "budget-friendly", "low-cost", "low-priced"),
                "high": ("premium", "luxury", "luxurious", "expensive", "costly", "high-end", "upscale")}
PRICE_LEVEL_SHARE = 1 / 3  # "cheap" prefers the cheapest third of the candidates of the asked type
_LEVEL_WORD = re.compile(r"(?<![\w-])(" + "|".join(w for words in PRICE_LEVELS.values() for w in words) + r")(?![\w-])",
                         re.I)


def _price_level(text: str) -> str | None:
    """"low" or "high" when the text asks for the cheap or the dear end (the words stay in the retrieved text:
    a catalog may name products "premium"), else None."""
    said = _LEVEL_WORD.search(text)
    if said is None:
        return None
    return next(level for level, words in PRICE_LEVELS.items() if said.group(1).lower() in words)


# words that never name a product type on their own
_NOT_TYPES = frozenset("a an and the for with of in on to by from at my me i is new best buy men women kids "
                       "boys girls unisex".split()) | frozenset(COLOURS)
_AUDIENCE_WORDS = frozenset(w for words in AUDIENCE.values() for w in words)


def _associated_type(tokens: list[str], associate: Callable[[str], str | None]) -> list[Constraint]:
    """The first word, from the end (the head noun is usually last), that the catalog associates with one
    category value, as a type constraint."""
    for token in reversed(tokens):
        if token in _NOT_TYPES or token in _AUDIENCE_WORDS or len(token) < 3 or token.isdigit():
            continue
        value = associate(token)
        if value:
            return [Constraint("type", token, "category", (value,))]
    return []


def _qualified_type(tokens: list[str], found: Constraint, associate: Callable[..., str | None]) -> list[Constraint]:
    """`found` (a one-word type) narrowed to the category value the catalog associates with it and the word
    before it, among the products of that type: "school bag" means backpacks where most bags saying both words
    are backpacks."""
    head = found.word.split()
    at = len(tokens) - 1 - tokens[::-1].index(head[0]) if len(head) == 1 and head[0] in tokens else -1
    modifier = tokens[at - 1] if at > 0 else ""
    if not modifier or modifier in _NOT_TYPES or modifier in _AUDIENCE_WORDS or len(modifier) < 3 or modifier.isdigit():
        return [found]
    phrase = f"{modifier} {head[0]}"
    value = associate(phrase, found)
    if not value or found.values == (value,):  # perhaps a kind the catalog writes as one word: "tee shirt"
        value = associate(phrase)
        if not value or value in found.values or \
                not _singular_phrase(value).replace(" ", "").endswith(_singular(head[0])):
            return [found]  # "dress shirt" is not a dress: the phrase's kind must end with the type's noun
    return [Constraint("type", phrase, found.field, (value,))]


# a word stands for a category value when at least this share of the products that match it best share that
# value (each product counted by its most specific category value), among at least ASSOCIATION_MIN matches
ASSOCIATION_SHARE = 0.6
ASSOCIATION_MIN = 5
ASSOCIATION_DEPTH = 50  # how many best-matching products are counted
PHRASE_DEPTH = 1000  # a phrase says something only when its rarest word is in at most this many products


def associated_category(docnos: np.ndarray, products, facets: dict[str, dict[str, int]]) -> str | None:
    """The category value most of `docnos` (a word's best BM25 matches) have, as their most specific value
    (the rarest in the catalog); None when fewer than ASSOCIATION_MIN matched or no value holds
    ASSOCIATION_SHARE of them."""
    categories = facets.get("category") or {}
    column = products.column_name("category")
    if len(docnos) < ASSOCIATION_MIN or not categories or column is None:
        return None
    counts: dict[str, int] = {}
    for values in products.column_values(column, docnos):
        own = [v.strip().lower() for v in (values if isinstance(values, list) else [values]) if v]
        own = [v for v in own if v in categories]
        if own:
            leaf = min(own, key=lambda v: categories[v])
            counts[leaf] = counts.get(leaf, 0) + 1
    if not counts:
        return None
    value, count = max(counts.items(), key=lambda item: (item[1], -categories[item[0]]))
    return value if count >= ASSOCIATION_SHARE * len(docnos) else None


# what a photo shows of the product in it, as a typed query would state it: its kind and its colour (not who it
# is for, which a photo rarely shows, nor a price)
PHOTO_KINDS = ("type", "colour")


def photo_intent(products, facets: dict[str, dict[str, int]], docno: int) -> Intent:
    """What a query photo of catalog product `docno` (the product it shows) asks for beyond that product:
    products of its type and colour. The type is the product's most specific category value (the rarest in
    the catalog); the colour is read from its title without the brand ("Red Tape Men Brown Shoes" is brown),
    mapped onto the catalog's fields like a typed query's. Only constraints the product itself meets are kept."""
    constraints = []
    categories = facets.get("category") or {}
    column = products.column_name("category")
    if categories and column is not None:
        own = products.column_values(column, [docno])[0]
        own = [v for v in (own if isinstance(own, list) else [own]) if v and v.strip().lower() in categories]
        if own:
            leaf = min(own, key=lambda v: categories[v.strip().lower()])
            constraints.append(Constraint("type", "photo", "category", (leaf.strip().lower(),)))
    title = str(products.column_values("title", [docno])[0] or "")
    brand = products.column_values("brand", [docno])[0] if products.column_name("brand") else None
    words = [t for t in _tokens(title) if t not in set(_tokens(str(brand or "")))]
    constraints += _colours(words, facets)
    intent = Intent("", constraints=tuple(c for c in constraints if c.kind in PHOTO_KINDS), source="photo")
    met = constraint_matches(products, intent, np.array([docno], dtype=np.int64))
    return Intent("", constraints=tuple(c for c in intent.constraints if met.get(c.kind, np.zeros(1, bool))[0]),
                  source="photo")


def stored_facet_values(snapshot) -> dict[str, dict[str, int]]:
    """`facet_values` of a version, kept in the index's cache under the identity of its product files (a
    version whose products did not change shares them), so a fresh process reads 30 KB instead of walking
    every keyword column; computed when the cache cannot be read or written (a read-only index)."""
    directory = snapshot.path / "products"
    identity = [file_identity(directory / name) for name in ("state.json", "live.npy")]
    key = hashlib.blake2b(repr(identity).encode(), digest_size=10).hexdigest()
    target = snapshot.index.cache_dir / "facets" / f"{key}.json"
    try:
        return json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    facets = facet_values(snapshot.products)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(target, facets)
        trim_files(target.parent, FACET_CACHE_FILES)
    except OSError:
        pass
    return facets


def facet_values(products) -> dict[str, dict[str, int]]:
    """Every keyword field of a product table with at most MAX_FACET_VALUES distinct values, and `category`:
    each value with the number of live products that have it."""
    facets = {}
    for name in products.field_names():
        if name in ("id", "title", "description", "price", "brand"):
            continue
        column = products.column_name(name)
        if column is None or products.is_numeric(column):
            continue
        _, _, vocab = products.keyword(column)
        if name != "category" and len([v for v in vocab if v]) > MAX_FACET_VALUES:
            continue
        counts = products.live_counts(column)  # a followed version counts only the rows that changed
        facets[name] = {value: int(count) for value, count in zip(vocab, counts.tolist()) if value and count}
    return facets


def constraint_matches(products, intent: Intent, docnos: np.ndarray) -> dict[str, np.ndarray]:
    """For each constraint kind (price, audience, colour, type): whether each of `docnos` meets it."""
    from shoplens.engine.filters import filter_mask, parse_filter

    out = {}
    for constraint in intent.constraints:
        out[constraint.kind] = filter_mask(products, [parse_filter(constraint.filter())], rows=docnos)
    if intent.price_min is not None or intent.price_max is not None:
        column = products.column_name(PRICE_FIELD)
        if column is not None:
            prices = products.numeric(column)[docnos]
            ok = ~np.isnan(prices)
            if intent.price_min is not None:
                ok &= prices >= intent.price_min
            if intent.price_max is not None:
                ok &= prices <= intent.price_max
            out["price"] = ok
    if intent.price_level is not None and products.column_name(PRICE_FIELD) is not None:
        level = _level_matches(products.numeric(products.column_name(PRICE_FIELD))[docnos], intent.price_level,
                               out.get("type"))
        out["price"] = level & out["price"] if "price" in out else level
    return out


def _level_matches(prices: np.ndarray, level: str, of_type: np.ndarray | None) -> np.ndarray:
    """Which prices are in the cheapest (low) or dearest (high) PRICE_LEVEL_SHARE of the candidates of the asked
    type (of all candidates when none is of it); none when fewer than 3 candidates have a price."""
    priced = ~np.isnan(prices)
    pool = priced & of_type if of_type is not None and (priced & of_type).sum() >= 3 else priced
    if pool.sum() < 3:
        return np.zeros(len(prices), dtype=bool)
    share = PRICE_LEVEL_SHARE if level == "low" else 1 - PRICE_LEVEL_SHARE
    cut = float(np.quantile(prices[pool], share))
    return priced & (prices <= cut if level == "low" else prices >= cut)


def boosted_order(matches: dict[str, np.ndarray], count: int) -> tuple[np.ndarray, np.ndarray]:
    """A stable new order of `count` ranked items: position / product of BOOST of the constraints each meets.
    Returns (order, boost factor per item)."""
    factor = np.ones(count)
    for kind, met in matches.items():
        factor = np.where(met, factor * BOOST[kind], factor)
    adjusted = (np.arange(count) + 1) / factor
    return np.lexsort((np.arange(count), adjusted)), factor
