"""Development data derived from a catalog's attributes, and behaviour simulated on top of it.

Neither is real: the catalogs we have carry no queries, judgments or
behaviour. Everything this module writes says so in its file names and
README (`DERIVED` / `SIMULATED`).

Queries (derived): a seed product's attributes (article type, gender, colour,
usage, brand, price) are turned into the words shoppers type, with synonyms
and loose wording ("tee", "sneakers", "navy", "under 1000", "cheap").

Judgments (derived, graded 0-4): a product's match grade is how many of the
query's intents it satisfies (the type must match); a hidden "appeal" of each
product (a latent popularity plus price relative to its type and discount)
moves a matching product one grade up or down, because shoppers prefer
appealing products among equally matching ones. Appeal is exactly what
behaviour reveals and text does not.

Photo queries (derived): a product's own photo is the query. Judgments: the
product itself 4; the same type and colour 2 (moved one up or down by appeal,
kept within 1-3); the same type 1.

Text + photo queries (derived): words derived from a product's attributes, as
above, plus the product's photo. Judgments: the text query's grades (at most
3) and the product itself 4.

Every judgment line records its query's kind (text, photo, text+photo) and its
source ("derived"); each kind is split into train / validation / test / log on
its own, so every split holds each kind in proportion.

Behaviour (simulated): sessions for a pool of log queries (disjoint from the
test queries) replay ShopLens's own hybrid ranking; a position-based click
model decides clicks from examination (position) times attraction (match
grade and appeal), then carts and orders. Sessions of photo queries name the
photo in their events' `image` field (product-level behaviour only, see
rerank/behaviour.py).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shoplens.common.errors import CatalogError
from shoplens.indexers.catalog import Product
from shoplens.rerank.judgments import JudgedQuery, judgment_line

SOURCE = "derived"

TYPE_SYNONYMS: dict[str, list[str]] = {
    "tshirts": ["t-shirt", "tshirt", "tee", "t shirts", "tees"],
    "shirts": ["shirt", "shirts"],
    "casual shoes": ["sneakers", "casual shoes", "canvas shoes"],
    "sports shoes": ["running shoes", "sports shoes", "trainers"],
    "formal shoes": ["formal shoes", "office shoes", "leather shoes"],
    "flip flops": ["flip flops", "slippers", "chappals"],
    "watches": ["watch", "watches", "wrist watch"],
    "handbags": ["handbag", "purse", "hand bag"],
    "heels": ["heels", "high heels", "pumps"],
    "sunglasses": ["sunglasses", "shades", "sun glasses"],
    "briefs": ["briefs", "underwear"],
    "perfume and body mist": ["perfume", "body mist", "fragrance"],
    "kurtas": ["kurta", "kurtas"],
    "track pants": ["track pants", "joggers", "trackpants"],
    "trousers": ["trousers", "pants", "chinos"],
    "sweatshirts": ["sweatshirt", "hoodie"],
    "jeans": ["jeans", "denims", "denim jeans"],
    "backpacks": ["backpack", "school bag", "rucksack"],
    "wallets": ["wallet", "wallets"],
    "belts": ["belt", "belts"],
    "tops": ["top", "tops"],
    "sandals": ["sandals", "sandal"],
    "socks": ["socks"],
    "shorts": ["shorts"],
    "dresses": ["dress", "dresses"],
    "jackets": ["jacket", "jackets"],
    "caps": ["cap", "caps", "hat"],
    "flats": ["flats", "flat sandals"],
    "sarees": ["saree", "sari"],
    "earrings": ["earrings", "ear rings"],
    "deodorant": ["deodorant", "deo"],
    "sweaters": ["sweater", "pullover"],
    "clutches": ["clutch", "clutches"],
    "kurtis": ["kurti", "kurtis"],
}
GENDER_WORDS = {
    "men": ["men", "mens", "for men", "men's"],
    "women": ["women", "womens", "for women", "ladies"],
    "boys": ["boys", "for boys"],
    "girls": ["girls", "for girls"],
    "unisex": ["unisex"],
}
COLOUR_SYNONYMS = {"navy blue": ["navy", "navy blue", "dark blue"], "grey": ["grey", "gray"],
                   "off white": ["off white", "cream"], "multi": []}
USAGE_WORDS = {"casual": ["casual", "everyday"], "sports": ["sports", "gym", "workout"],
               "formal": ["formal", "office"], "ethnic": ["ethnic", "traditional"], "party": ["party"]}
CHEAP_WORDS = ["cheap", "budget", "affordable", "low price"]
LIMIT_WORDS = ["under", "below", "less than"]


@dataclass
class Query:
    qid: str
    text: str  # "" for a photo alone
    intents: dict[str, Any]  # type, gender, colour, usage, brand, max_price, cheap; product for a photo
    image: str | None = None  # the photo of a photo or text + photo query

    @property
    def judged(self) -> JudgedQuery:
        return JudgedQuery(self.text or None, self.image, SOURCE)

    @property
    def kind(self) -> str:
        return self.judged.kind

    @property
    def key(self) -> str:
        """The query's key in judgments and in the simulated sessions' rankings."""
        return self.judged.key


def _type_of(product: Product, type_field: str | None) -> str | None:
    if type_field and type_field in product.attributes:
        return str(product.attributes[type_field]).lower()
    return product.category[-1].lower() if product.category else None


def _attr(product: Product, name: str) -> str | None:
    value = product.attributes.get(name)
    return str(value).lower() if value not in (None, "") else None


class Catalog:
    """The catalog facts the generator needs, in arrays."""

    def __init__(self, products: list[Product], type_field: str | None = None, seed: int = 7):
        self.products = products
        self.ids = [p.id for p in products]
        self.types = [_type_of(p, type_field) for p in products]
        self.genders = [_attr(p, "gender") for p in products]
        self.colours = [_attr(p, "base_colour") or _attr(p, "colour") or _attr(p, "color") for p in products]
        self.usages = [_attr(p, "usage") for p in products]
        self.brands = [p.brand.lower() if p.brand else None for p in products]
        self.prices = np.array([p.price if p.price else np.nan for p in products], dtype=float)
        discounted = np.array([_number(p.attributes.get("discounted_price")) for p in products], dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            self.discount = np.nan_to_num(np.clip((self.prices - discounted) / self.prices, 0, 1), nan=0.0)
        self.by_type: dict[str, np.ndarray] = defaultdict(list)
        for i, t in enumerate(self.types):
            if t:
                self.by_type[t].append(i)
        self.by_type = {t: np.array(ix) for t, ix in self.by_type.items()}
        self.type_median = {t: float(np.nanmedian(self.prices[ix])) if np.isfinite(self.prices[ix]).any() else np.nan
                            for t, ix in self.by_type.items()}
        self.type_p30 = {t: float(np.nanpercentile(self.prices[ix], 30)) if np.isfinite(self.prices[ix]).any() else np.nan
                         for t, ix in self.by_type.items()}
        self.appeal = self._appeal(seed)

    def _appeal(self, seed: int) -> np.ndarray:
        """Hidden appeal: latent popularity, cheaper than the type's median, discounted."""
        latent = np.array([_stable_normal(pid, seed) for pid in self.ids])
        median = np.array([self.type_median.get(t, np.nan) if t else np.nan for t in self.types])
        with np.errstate(invalid="ignore", divide="ignore"):
            relative = np.nan_to_num(np.log(self.prices / median), nan=0.0)
        return latent - 0.7 * np.clip(relative, -2, 2) + 1.5 * self.discount


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def _stable_normal(key: str, seed: int) -> float:
    digest = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    u1 = (int.from_bytes(digest[:4], "big") + 1) / (2 ** 32 + 2)
    u2 = (int.from_bytes(digest[4:8], "big") + 1) / (2 ** 32 + 2)
    return math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)


def generate_queries(catalog: Catalog, count: int, seed: int = 1, min_relevant: int = 3,
                     max_relevant: int = 2000) -> list[tuple[Query, dict[str, tuple[int, int]]]]:
    """Derived queries with their judgments: id -> (match grade 1-3, judged grade 1-4); unlisted means 0."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[tuple[Query, dict[str, int]]] = []
    attempts = 0
    while len(out) < count and attempts < count * 50:
        attempts += 1
        i = rng.randrange(len(catalog.products))
        query = _query_from_seed(catalog, i, rng)
        if query is None or query.text in seen:
            continue
        grades = judge(catalog, query)
        top = sum(1 for match, _ in grades.values() if match == 3)
        if top < min_relevant or len(grades) > max_relevant:
            continue
        seen.add(query.text)
        query.qid = f"q{len(out) + 1:05d}"
        out.append((query, grades))
    return out


def _query_from_seed(catalog: Catalog, i: int, rng: random.Random) -> Query | None:
    type_ = catalog.types[i]
    if not type_:
        return None
    intents: dict[str, Any] = {"type": type_}
    optional = ["gender", "colour", "usage", "brand", "price"]
    rng.shuffle(optional)
    for name in optional[: rng.choice([1, 1, 2, 2, 3])]:
        if name == "gender" and catalog.genders[i]:
            intents["gender"] = catalog.genders[i]
        elif name == "colour" and catalog.colours[i] and catalog.colours[i] != "multi":
            intents["colour"] = catalog.colours[i]
        elif name == "usage" and catalog.usages[i] in USAGE_WORDS:
            intents["usage"] = catalog.usages[i]
        elif name == "brand" and catalog.brands[i]:
            intents["brand"] = catalog.brands[i]
        elif name == "price" and np.isfinite(catalog.prices[i]):
            if rng.random() < 0.5:
                intents["cheap"] = True
            else:
                price = catalog.prices[i]
                step = 500 if price < 3000 else 1000
                intents["max_price"] = int(math.ceil(price / step) * step)
    if len(intents) == 1:
        return None
    return Query("", render(intents, rng), intents)


def render(intents: dict[str, Any], rng: random.Random) -> str:
    """Words for intents, in one of several orders shoppers use."""
    type_words = rng.choice(TYPE_SYNONYMS.get(intents["type"], [intents["type"]]))
    parts_before, parts_after = [], []
    if "brand" in intents:
        parts_before.append(intents["brand"])
    if "cheap" in intents:
        parts_before.insert(0, rng.choice(CHEAP_WORDS))
    if "colour" in intents:
        parts_before.append(rng.choice(COLOUR_SYNONYMS.get(intents["colour"], [intents["colour"]]) or [intents["colour"]]))
    if "usage" in intents:
        parts_before.append(rng.choice(USAGE_WORDS[intents["usage"]]))
    if "gender" in intents:
        word = rng.choice(GENDER_WORDS.get(intents["gender"], [intents["gender"]]))
        if word.startswith("for ") or rng.random() < 0.4:
            parts_after.append(word if word.startswith("for ") else f"for {word}")
        else:
            parts_before.insert(0, word)
    if "max_price" in intents:
        parts_after.append(f"{rng.choice(LIMIT_WORDS)} {intents['max_price']}")
    return " ".join(parts_before + [type_words] + parts_after)


def judge(catalog: Catalog, query: Query) -> dict[str, tuple[int, int]]:
    """(match grade, judged grade) for every matching product: the match grade from the intents,
    the judged grade moved one up or down by the product's hidden appeal (kept within 1-4)."""
    intents = query.intents
    candidates = catalog.by_type.get(intents["type"], np.array([], dtype=int))
    others = [name for name in ("gender", "colour", "usage", "brand", "max_price", "cheap") if name in intents]
    grades: dict[str, int] = {}
    for i in candidates:
        satisfied = 0
        for name in others:
            if name == "gender":
                ok = catalog.genders[i] == intents["gender"] or (catalog.genders[i] == "unisex" and intents["gender"] in ("men", "women"))
            elif name == "colour":
                ok = catalog.colours[i] == intents["colour"]
            elif name == "usage":
                ok = catalog.usages[i] == intents["usage"]
            elif name == "brand":
                ok = catalog.brands[i] == intents["brand"]
            elif name == "max_price":
                ok = bool(np.isfinite(catalog.prices[i]) and catalog.prices[i] <= intents["max_price"])
            else:
                ok = bool(np.isfinite(catalog.prices[i]) and catalog.prices[i] <= catalog.type_p30[intents["type"]])
            satisfied += ok
        missing = len(others) - satisfied
        match = 3 if missing == 0 else 2 if missing == 1 and len(others) >= 2 else 1 if missing == 2 and len(others) >= 3 else 0
        if match == 0:
            continue
        appeal = catalog.appeal[i]
        grade = match + (1 if appeal > 0.8 else 0) - (1 if appeal < -0.8 else 0)
        grades[catalog.ids[i]] = (match, int(min(4, max(1, grade))))
    return grades


def generate_photo_queries(catalog: Catalog, count: int, seed: int = 1, with_text: bool = False,
                           exclude: set[str] | None = None) -> list[tuple[Query, dict[str, tuple[int, int]]]]:
    """Photo queries (a product's own photo), or text + photo queries (derived words plus the photo), with
    judgments: id -> (match grade, judged grade); the product in the photo is graded 4."""
    rng = random.Random(seed + (101 if with_text else 100))
    order = [i for i in range(len(catalog.products)) if catalog.products[i].image and catalog.types[i]
             and catalog.ids[i] not in (exclude or set()) and len(catalog.by_type.get(catalog.types[i], ())) >= 3]
    rng.shuffle(order)
    out: list[tuple[Query, dict[str, tuple[int, int]]]] = []
    prefix = "tp" if with_text else "p"
    for i in order[:count]:
        if with_text:
            query = _query_from_seed(catalog, i, rng) or Query("", render({"type": catalog.types[i]}, rng),
                                                               {"type": catalog.types[i]})
            grades = {pid: (match, min(grade, 3)) for pid, (match, grade) in judge(catalog, query).items()}
        else:
            query = Query("", "", {"type": catalog.types[i], "colour": catalog.colours[i]})
            grades = judge_photo(catalog, i)
        query.intents["product"] = catalog.ids[i]
        query.image = catalog.products[i].image
        grades[catalog.ids[i]] = (3, 4)
        query.qid = f"{prefix}{len(out) + 1:05d}"
        out.append((query, grades))
    return out


def judge_photo(catalog: Catalog, i: int) -> dict[str, tuple[int, int]]:
    """(match grade, judged grade) for a photo of product i: the same type and colour 2 (moved one up or down by
    appeal, within 1-3), the same type 1; the product itself is added by the caller."""
    grades: dict[str, tuple[int, int]] = {}
    colour = catalog.colours[i]
    for j in catalog.by_type[catalog.types[i]]:
        if colour and catalog.colours[j] == colour:
            appeal = catalog.appeal[j]
            grades[catalog.ids[j]] = (2, int(min(3, max(1, 2 + (appeal > 0.8) - (appeal < -0.8)))))
        else:
            grades[catalog.ids[j]] = (1, 1)
    return grades


def split_by_kind(items: list, seed: int = 3) -> dict[str, list]:
    """`split_queries` on each query kind's items, joined: every split holds each kind in proportion."""
    splits: dict[str, list] = {}
    for kind in ("text", "photo", "text+photo"):
        part = [item for item in items if item[0].kind == kind]
        for name, chosen in split_queries(part, seed).items():
            splits.setdefault(name, []).extend(chosen)
    return splits


def split_queries(items: list, seed: int = 3, shares=(0.5, 0.15, 0.15)) -> dict[str, list]:
    """train / validation / test / log: the log queries only ever drive simulated behaviour."""
    rng = random.Random(seed)
    items = list(items)
    rng.shuffle(items)
    n = len(items)
    a, b, c = int(n * shares[0]), int(n * (shares[0] + shares[1])), int(n * (shares[0] + shares[1] + shares[2]))
    return {"train": items[:a], "validation": items[a:b], "test": items[b:c], "log": items[c:]}


def write_judgments(path: Path, items: list[tuple[Query, dict[str, int]]]) -> None:
    """One line per judged product: query (and image), id, grade, the query's kind and source ("derived")."""
    with open(path, "w", encoding="utf-8") as handle:
        for query, grades in items:
            for pid, (_, grade) in sorted(grades.items()):
                handle.write(json.dumps(judgment_line(query.judged, pid, grade)) + "\n")


def write_queries(path: Path, items: list[tuple[Query, dict[str, int]]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for query, _ in items:
            row = {"qid": query.qid, "text": query.text, "intents": query.intents, "kind": query.kind}
            handle.write(json.dumps({**row, "image": query.image} if query.image else row) + "\n")


# -- simulated behaviour ---------------------------------------------------------------


def examination(position: int, eta: float = 1.0) -> float:
    """Probability a shopper looks at the result in 1-based `position` (position-based model)."""
    return 1.0 / position ** eta


def attraction(grade_match: int, appeal: float) -> float:
    """Probability a shopper who looks at a result clicks it."""
    if grade_match <= 0:
        return 0.02
    return 1.0 / (1.0 + math.exp(-(-3.0 + 0.9 * grade_match + 1.0 * appeal)))


def simulate_sessions(catalog: Catalog, queries: list[tuple[Query, dict[str, tuple[int, int]]]], rank_fn, sessions: int,
                      seed: int = 11, depth: int = 20, start_ts: float = 1_760_000_000.0,
                      days: float = 30.0, swap_share: float = 0.0) -> list[dict[str, Any]]:
    """Impression, click, cart and order events for `sessions` searches over ShopLens's rankings.

    rank_fn(query) -> list of product ids in the order ShopLens shows them (a Query: text and/or photo).
    Query popularity is Zipf-like; a query's ranking is computed once and reused;
    in `swap_share` of sessions two neighbouring results trade places. A photo query's events
    name its photo in `image`.
    """
    rng = random.Random(seed)
    index_of = {pid: i for i, pid in enumerate(catalog.ids)}
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(queries))]
    rankings: dict[str, list[str]] = {}
    events: list[dict[str, Any]] = []
    span = days * 86400
    for session in range(sessions):
        query, grades = rng.choices(queries, weights=weights)[0]
        if query.key not in rankings:
            rankings[query.key] = rank_fn(query)[:depth]
        shown = list(rankings[query.key])
        if len(shown) > 2 and rng.random() < swap_share:
            i = rng.randrange(len(shown) - 1)
            shown[i], shown[i + 1] = shown[i + 1], shown[i]
        ts = start_ts + span * session / max(1, sessions)
        asked = {"query": query.text} if query.text else {}
        if query.image:
            asked["image"] = query.image
        events.extend(_session_events(catalog, rng, shown, grades, index_of, ts, asked))
    return events


def _session_events(catalog: Catalog, rng: random.Random, shown: list[str], grades, index_of: dict[str, int],
                    ts: float, asked: dict[str, str]) -> list[dict[str, Any]]:
    """One session: an impression per shown result; clicks by examination x attraction; then carts and orders."""
    events: list[dict[str, Any]] = []
    for position, pid in enumerate(shown, start=1):
        events.append({"ts": round(ts, 3), "type": "impression", "id": pid, **asked, "position": position})
        match = grades.get(pid, (0, 0))[0]
        appeal = catalog.appeal[index_of[pid]]
        if rng.random() < examination(position) and rng.random() < attraction(match, appeal):
            events.append({"ts": round(ts + 5 + position, 3), "type": "click", "id": pid, **asked,
                           "position": position})
            if rng.random() < 0.25 * attraction(match, appeal) * 2:
                events.append({"ts": round(ts + 60 + position, 3), "type": "cart", "id": pid, **asked})
                if rng.random() < 0.5:
                    events.append({"ts": round(ts + 300 + position, 3), "type": "order", "id": pid, **asked})
    return events


def write_latency_queries(path: Path, catalog: Catalog, items: list, seed: int, images: int = 100) -> None:
    """Test queries as text, as a photo (a best-judged product's image), and as both, for latency replays."""
    rng = random.Random(seed + 8)
    index_of = {pid: i for i, pid in enumerate(catalog.ids)}
    with open(path, "w", encoding="utf-8") as handle:
        for query, _ in items:
            handle.write(json.dumps({"text": query.text}) + "\n")
        for query, grades in rng.sample(items, min(images, len(items))):
            best = max(grades, key=lambda pid: grades[pid][1])
            image = catalog.products[index_of[best]].image
            if image:
                handle.write(json.dumps({"image": image}) + "\n")
                handle.write(json.dumps({"text": query.text, "image": image}) + "\n")


def build(catalog_path: Path, index_path: Path, out_dir: Path, field_map: list[str] | None = None,
          queries: int = 1000, sessions: int = 20000, seed: int = 1, swap_share: float = 0.3,
          progress=None, photo_queries: int | None = None, text_photo_queries: int | None = None) -> dict[str, Any]:
    """Write derived queries and judgments (text, photo and text + photo, split by query) and simulated events.

    `photo_queries` and `text_photo_queries` default to a third of `queries` each (0: none of that kind).
    Sessions replay ShopLens's hybrid ranking (no reranker) for the train,
    validation and log queries (never the test queries); in `swap_share` of
    sessions two neighbouring results are swapped, the small randomization
    that lets the click model tell position from attractiveness.
    """
    from shoplens.engine.search import SearchEngine
    from shoplens.indexers.catalog import parse_field_map, read_catalog

    result = read_catalog(catalog_path, parse_field_map(field_map or []))
    if not result.products:
        raise CatalogError(f"{catalog_path} holds no valid products to derive queries from; give the catalog "
                           "the index was built from")
    catalog = Catalog(result.products, seed=seed + 6)
    photo_queries = queries // 3 if photo_queries is None else photo_queries
    text_photo_queries = queries // 3 if text_photo_queries is None else text_photo_queries
    items = generate_queries(catalog, queries, seed=seed)
    photos = generate_photo_queries(catalog, photo_queries, seed=seed)
    items += photos + generate_photo_queries(catalog, text_photo_queries, seed=seed, with_text=True,
                                             exclude={q.intents["product"] for q, _ in photos})
    splits = split_by_kind(items, seed=seed + 2)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, part in splits.items():
        write_judgments(out_dir / f"judgments.{name}.jsonl", part)
        write_queries(out_dir / f"queries.{name}.jsonl", part)
    engine = SearchEngine(index_path, device="cpu")
    write_latency_queries(out_dir / "queries.latency.jsonl", catalog,
                          [item for item in splits["test"] if item[0].kind == "text"], seed)
    log_queries = splits["train"] + splits["validation"] + splits["log"]
    events = simulate_sessions(catalog, log_queries, _ranker(engine), sessions, seed=seed + 5,
                               swap_share=swap_share)
    with open(out_dir / "events.simulated.jsonl", "w", encoding="utf-8") as handle:
        for event in events:
            handle.write(json.dumps(event) + "\n")
    engine.close()
    counts = {name: len(part) for name, part in splits.items()}
    kinds = {kind: sum(1 for q, _ in items if q.kind == kind) for kind in ("text", "photo", "text+photo")}
    (out_dir / "README.md").write_text(_readme(catalog_path, counts, kinds, len(events), sessions))
    return {"queries": counts, "kinds": kinds, "events": len(events), "sessions": sessions, "out": str(out_dir)}


def _ranker(engine):
    """rank_fn for the simulated sessions: ShopLens's hybrid order (no reranker) for a derived query."""
    from shoplens.engine.query import SearchRequest

    def rank(query: Query) -> list[str]:
        request = SearchRequest(text=query.text or None, image=query.image, k=20, rerank=False)
        return [r.id for r in engine.search(request).results]

    return rank


def _readme(catalog_path: Path, counts: dict, kinds: dict, events: int, sessions: int) -> str:
    return ("# Development data (DERIVED and SIMULATED, not real)\n\n"
            f"Catalog: {catalog_path}\n\n"
            "- `queries.*.jsonl`, `judgments.*.jsonl`: queries DERIVED from product attributes "
            "(type, gender, colour, usage, brand, price words) with synonyms; grades 0-4 from how many of the "
            "query's intents a product satisfies, moved one up or down by a hidden product appeal "
            "(latent popularity, price relative to its type, discount). Photo queries are a product's own "
            "photo (the product 4, same type and colour 1-3, same type 1); text + photo queries add derived "
            "words to the photo (the text grades, at most 3, and the product 4). Every judgment line says its "
            f"query's kind and `\"source\": \"derived\"`. Queries by kind: {kinds}; split by query, each kind "
            f"on its own: {counts}.\n"
            f"- `events.simulated.jsonl`: {events:,} SIMULATED events from {sessions:,} sessions of a "
            "position-based click model over ShopLens's hybrid rankings (train, validation and log queries only, "
            "never test queries); attraction depends on the match grade and the hidden appeal. Photo sessions "
            "name their photo in `image`.\n\n"
            "Generated by `shoplens bench devdata` (benchmarks/devdata.py).\n")
