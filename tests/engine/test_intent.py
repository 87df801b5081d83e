"""Query understanding on hand-worked examples (pure functions), and its use by the engine on the sample."""

import pytest

from shoplens.engine.intent import boosted_order, parse_intent, parse_price

FACETS = {  # a catalog's own small fields, as facet_values reads them from an index: value -> products
    "gender": {"men": 750, "women": 634, "unisex": 70, "boys": 24, "girls": 22},
    "age_group": {"adults-men": 745, "adults-women": 626, "kids-boys": 29, "kids-girls": 29, "adults-unisex": 63},
    "base_colour": {"black": 350, "white": 167, "blue": 167, "navy blue": 53, "off white": 3, "red": 84},
    "attributes.Colour Family": {"red": 2, "blue": 3},
    "category": {"apparel": 700, "bottomwear": 100, "jeans": 40, "footwear": 300, "shoes": 200,
                 "casual shoes": 80, "sports shoes": 60, "accessories": 200, "watches": 50, "bags": 60,
                 "backpacks": 24, "laptop bag": 3, "topwear": 400, "shirts": 120, "tshirts": 150, "dresses": 30},
}


@pytest.mark.parametrize("text, low, high, rest", [
    ("white sneakers under 2000", None, 2000, "white sneakers"),
    ("kurta below rs 500", None, 500, "kurta"),
    ("watch between 1000 and 2000", 1000, 2000, "watch"),
    ("shoes 2000-3000", 2000, 3000, "shoes"),
    ("jacket under ₹2.5k", None, 2500, "jacket"),
    ("perfume above 1,500", 1500, None, "perfume"),
    ("kids shoes 2-3 years", None, None, "kids shoes 2-3 years"),  # an age, not a price
    ("under armour shorts", None, None, "under armour shorts"),  # a brand, not a limit
    ("deo 150 ml", None, None, "deo 150 ml"),
])
def test_price_limits(text, low, high, rest):
    assert parse_price(text) == (low, high, rest)


def test_audience_colour_and_type_map_onto_the_catalogs_fields():
    intent = parse_intent("blue jeans for men", FACETS)
    got = {c.kind: (c.field, set(c.values)) for c in intent.constraints}
    assert got == {"audience": ("gender", {"men", "unisex"}),  # gender covers more products than age_group
                   "colour": ("base_colour", {"blue", "navy blue"}),  # not the sparse Colour Family
                   "type": ("category", {"jeans"})}
    assert intent.filters() == ["gender=men|unisex", "base_colour=blue|navy blue", "category=jeans"]
    assert intent.text == "blue jeans for men" and intent.price_max is None


def test_kids_women_and_types():
    kids = parse_intent("kids school bag", FACETS)
    audience = next(c for c in kids.constraints if c.kind == "audience")
    assert not {"adults-men", "adults-women", "men", "women"} & set(audience.values)
    assert {"kids-boys", "kids-girls"} <= set(audience.values) or {"boys", "girls"} <= set(audience.values)
    bag = next(c for c in kids.constraints if c.kind == "type")
    assert set(bag.values) == {"bags", "laptop bag"}  # "bag" and every kind of bag named so
    assert next(c for c in parse_intent("womens t-shirt", FACETS).constraints if c.kind == "type").values == ("tshirts",)
    shoes = parse_intent("white sports shoes under 2k", FACETS)
    assert shoes.price_max == 2000 and shoes.text == "white sports shoes"
    assert [c.values for c in shoes.constraints if c.kind == "type"] == [("sports shoes",)]
    assert set(next(c for c in shoes.constraints if c.kind == "colour").values) == {"white", "off white"}


def test_a_value_naming_another_audience_is_not_theirs():
    facets = {"age_group": {"adults-men": 745, "adults-women": 626, "adults-unisex": 63, "kids-boys": 29,
                            "kids-girls": 29, "kids-unisex": 12}}
    audience = {w: set(next(c for c in parse_intent(f"{w} jacket", facets).constraints
                            if c.kind == "audience").values) for w in ("kids", "boys", "men")}
    assert audience["kids"] == {"kids-boys", "kids-girls", "kids-unisex", "adults-unisex"}  # unisex suits kids
    assert audience["boys"] == {"kids-boys", "kids-unisex", "adults-unisex"}  # not the girls'
    assert audience["men"] == {"adults-men", "adults-unisex"}


def test_nothing_stated_is_empty():
    assert parse_intent("puma", FACETS).empty
    assert parse_intent("analog", {}).empty


def test_boost_moves_items_that_meet_constraints_up_without_removing_any():
    import numpy as np

    price = np.array([False, False, True, True, False])
    order, factor = boosted_order({"price": price}, 5)
    assert order.tolist() == [2, 3, 0, 1, 4] and factor.tolist() == [1, 1, 50, 50, 1]
    colour = np.array([False, False, False, False, True])
    assert boosted_order({"colour": colour}, 5)[0].tolist() == [0, 4, 1, 2, 3]  # position 5 / 3 ties with 2: stable


@pytest.fixture(scope="module")
def engine(sample_index, encoder):
    from shoplens.engine.search import SearchEngine

    engine = SearchEngine(sample_index, device="cpu", encoder=encoder)
    yield engine
    engine.close()


def test_stated_intent_on_the_sample(engine):
    from shoplens.engine.query import SearchRequest
    from tests.helpers import sample_products

    rows = {row["id"]: row for row in sample_products()}
    cheap = engine.search(SearchRequest(text="white sneakers under 2000", k=5))
    assert all(r.price <= 2000 for r in cheap.results)
    assert cheap.query["intent"]["price_max"] == 2000 and cheap.query["intent"]["applied"] == "boost"
    assert any("price <= 2000" in note for note in cheap.notes)
    plain = engine.search(SearchRequest(text="white sneakers under 2000", k=5, intent=False))
    assert "intent" not in plain.query
    jeans = engine.search(SearchRequest(text="blue jeans for men", k=5))
    assert all(rows[r.id]["gender"] in ("Men", "Unisex") and "Jeans" in rows[r.id]["category"] for r in jeans.results)
    strict = engine.search(SearchRequest(text="red dress for women between 500 and 1500", k=20, strict_intent=True))
    assert strict.query["intent"]["applied"] == "filters" and "price<=1500" in strict.query["filters"]
    assert all(500 <= r.price <= 1500 and rows[r.id]["gender"] in ("Women", "Unisex") for r in strict.results)


def test_facets_are_kept_in_the_index_cache_per_product_state(small_index):
    import json

    from shoplens.engine.intent import facet_values, stored_facet_values
    from shoplens.indexers.index import IndexDirectory
    from shoplens.indexers.snapshot import Snapshot

    snapshot = Snapshot.open(IndexDirectory(small_index), device="cpu")
    computed = stored_facet_values(snapshot)
    assert computed == facet_values(snapshot.products) and "category" in computed
    stored, = (small_index / "cache" / "facets").glob("*.json")
    stored.write_text(json.dumps({"category": {"from the cache": 1}}))  # a second reader takes the file
    assert stored_facet_values(snapshot) == {"category": {"from the cache": 1}}
    (snapshot.path / "products" / "live.npy").touch()  # other product files: computed again, not the stale file
    assert stored_facet_values(snapshot) == computed


def test_a_photo_alone_prefers_the_shown_products_type_and_colour_after_it(engine):
    from shoplens.engine.query import SearchRequest
    from tests.helpers import SAMPLE, sample_products

    rows = {row["id"]: row for row in sample_products()}
    image = str(SAMPLE.parent / rows["10183"]["image"])  # Puma Women ... White Casual Shoes
    shown = engine.search(SearchRequest(image=image, k=10))
    plain = engine.search(SearchRequest(image=image, k=10, intent=False))
    assert shown.results[0].id == plain.results[0].id == "10183"
    assert "intent" not in plain.query
    intent = shown.query["intent"]
    assert intent["source"] == "photo" and intent["applied"] == "boost"
    got = {c["kind"]: set(c["values"]) for c in intent["constraints"]}
    assert got["type"] == {"casual shoes"} and "white" in got["colour"]
    assert any(note.startswith("from the product in the photo") for note in shown.notes)

    def alike(response):
        return sum("Casual Shoes" in rows[r.id]["category"] and rows[r.id]["base_colour"] in ("White", "Off White")
                   for r in response.results[1:])

    assert alike(shown) > alike(plain)
    # the same photo with words: what the words state is read instead
    worded = engine.search(SearchRequest(text="black shoes", image=image, k=5))
    assert worded.query["intent"]["source"] == "text"


def test_a_photos_colour_is_read_from_the_title_without_the_brand(engine):
    from shoplens.engine.intent import photo_intent

    snapshot = engine.snapshot
    docno = snapshot.products.docno_by_id["2376"]  # Red Tape Semi Casual Brown Men's Shoe, category Casual Shoes
    intent = photo_intent(snapshot.products, engine.facets(snapshot), docno)
    got = {c.kind: set(c.values) for c in intent.constraints}
    assert got["type"] == {"casual shoes"} and "brown" in got["colour"] and "red" not in got["colour"]


def test_a_word_the_category_names_lack_maps_to_the_category_its_matches_share():
    from shoplens.engine.intent import parse_intent

    asked = []

    def associate(word):
        asked.append(word)
        return {"sneakers": "casual shoes"}.get(word)

    intent = parse_intent("white sneakers under 2000", FACETS, associate)
    got = {c.kind: (c.field, set(c.values), c.word) for c in intent.constraints}
    assert got["type"] == ("category", {"casual shoes"}, "sneakers") and got["colour"][0] == "base_colour"
    assert asked == ["sneakers"]  # colour words and the price phrase are never asked
    asked.clear()
    assert {c.kind for c in parse_intent("blue jeans for men", FACETS, associate).constraints} >= {"type"}
    assert asked == []  # a type word was found: nothing is asked
    assert not [c for c in parse_intent("for the men", FACETS, associate).constraints if c.kind == "type"]


def test_associated_category_needs_a_clear_majority_of_the_words_matches():
    import numpy as np
    import pyarrow as pa

    from shoplens.engine.intent import associated_category
    from shoplens.indexers.products import ProductTable

    categories = [["Footwear", "Shoes", "Casual Shoes"]] * 7 + [["Apparel", "Topwear", "Tshirts"]] * 3
    table = pa.table({"id": [str(i) for i in range(10)], "category": categories})
    products = ProductTable(table, np.ones(10, dtype=bool))
    facets = {"category": {"footwear": 300, "shoes": 200, "casual shoes": 80, "apparel": 700, "topwear": 400,
                           "tshirts": 150}}
    assert associated_category(np.arange(10), products, facets) == "casual shoes"  # 7 of 10, the leaf value
    assert associated_category(np.arange(3, 10), products, facets) is None  # 4 of 7: no clear majority
    assert associated_category(np.arange(4), products, facets) is None  # too few matches to tell


def test_the_engine_reads_a_type_from_the_catalogs_own_words_but_never_a_brand(engine):
    from shoplens.engine.intent import ASSOCIATION_DEPTH, associated_category
    from shoplens.engine.query import SearchRequest

    snapshot = engine.snapshot
    facets = engine.facets(snapshot)

    def types(text):
        intent = engine.search(SearchRequest(text=text, k=5)).query.get("intent") or {}
        return [(c["word"], c["values"]) for c in intent.get("constraints", []) if c["kind"] == "type"]

    # on the sample, most products that match "running" best are sports shoes, and "running" names no category
    assert types("black running") == [("running", ["sports shoes"])]
    # every best match of "casio" is a watch, but a brand is not a type
    casio = snapshot.lexical.search("casio", ASSOCIATION_DEPTH, snapshot.products.live)[0]
    assert associated_category(casio, snapshot.products, facets) == "watches"
    assert types("casio") == []


def test_a_phrase_the_catalog_ties_to_one_kind_narrows_the_type():
    asked = []

    def associate(words, within=None):
        asked.append(words)
        assert within is None or within.kind == "type"  # among the products of the type found, or all
        return {"school bag": "backpacks"}.get(words)

    bag = next(c for c in parse_intent("kids school bag", FACETS, associate).constraints if c.kind == "type")
    assert (bag.word, bag.values) == ("school bag", ("backpacks",))
    assert asked == ["school bag"]  # the audience word is never asked
    asked.clear()
    shirt = next(c for c in parse_intent("navy casual shirts", FACETS, associate).constraints if c.kind == "type")
    assert (shirt.word, shirt.values) == ("shirts", ("shirts",))
    assert asked == ["casual shirts", "casual shirts"]  # among shirts, then among all products
    asked.clear()
    parse_intent("blue jeans for men", FACETS, associate)  # a colour before the type is not a modifier
    assert asked == []


def test_a_compound_written_as_two_words_is_the_type_the_catalog_writes_as_one():
    facets = {**FACETS, "category": {**FACETS["category"], "sweatshirts": 20, "earrings": 15, "handbags": 9}}
    for text, word, values in (("grey sweat shirt", "sweat shirt", ("sweatshirts",)),
                               ("gold ear rings", "ear rings", ("earrings",)),
                               ("t shirt", "tshirt", ("tshirts",)), ("hand bag", "hand bag", ("handbags",))):
        kind = next(c for c in parse_intent(text, facets).constraints if c.kind == "type")
        assert (kind.word, kind.values) == (word, values), text
    assert parse_intent("dress shirt", facets).constraints[0].values == ("shirts",)  # not a compound here


def test_a_phrase_the_whole_catalog_ties_to_a_kind_of_the_type_written_as_one_word_names_it():
    facets = {**FACETS, "category": {**FACETS["category"], "sweatshirts": 20}}
    whole = {"tee shirt": "tshirts", "dress shirt": "dresses", "formal shirt": "shirts"}

    def associate(words, within=None):
        return "shirts" if within is not None else whole.get(words)  # among shirts, every one is a shirt

    def kind(text):
        return next(c for c in parse_intent(text, facets, associate).constraints if c.kind == "type")

    assert (kind("tee shirt").word, kind("tee shirt").values) == ("tee shirt", ("tshirts",))
    assert kind("dress shirt").values == ("shirts",)  # a dress is not a kind of shirt: the word must end it
    assert kind("formal shirt").values == ("shirts",)


def test_the_type_is_what_the_query_names_before_it_says_what_the_product_goes_with():
    def kind(text):
        return [c.values for c in parse_intent(text, FACETS).constraints if c.kind == "type"]

    assert kind("shoes that go with jeans") == kind("shoes")  # not jeans
    assert kind("bag for laptop") == kind("bag") != kind("laptop bag")
    assert kind("tshirt to wear with jeans") == [("tshirts",)]
    assert kind("for men shoes") == kind("shoes")  # nothing before the first qualifier: the whole query
    assert kind("gift for jeans lovers") == [("jeans",)]  # no type before it: the rest is read
    assert parse_intent("blue jeans for men", FACETS).constraints[0].kind == "audience"  # after "for" as before


def test_retrieval_also_searches_the_words_of_the_one_type_a_query_stands_for():
    """"kids school bag" also retrieves "backpacks" (a brand named "Be For Bag" repeats "bag", backpacks do not
    say it); words the query has already, or a type with several values, add nothing."""
    def associate(words, within=None):
        return {"school bag": "backpacks", "sneakers": "casual shoes"}.get(words)

    bag = parse_intent("kids school bag", FACETS, associate)
    assert bag.retrieved_text() == "kids school bag backpacks" and bag.type_words == "backpacks"
    assert bag.retrieved_text(with_photo=True) == "kids school bag"  # a photo shows the kind of product
    assert parse_intent("white sneakers under 2000", FACETS, associate).retrieved_text().split() == \
        ["white", "sneakers", "casual", "shoes"]  # the price phrase out, the type's words in
    for text in ("blue jeans for men", "casual shoe", "black shoes"):  # has the words; every kind of shoe
        assert parse_intent(text, FACETS, associate).retrieved_text() == text


def test_a_phrases_matches_hold_every_word(engine):
    import numpy as np

    from shoplens.engine.search import _best_matches

    snapshot = engine.snapshot
    every = snapshot.products.live.nonzero()[0]
    both = {int(d) for d in every[(snapshot.lexical.scores_of("leather", every) > 0)
                                  & (snapshot.lexical.scores_of("wallet", every) > 0)]}
    found = _best_matches(snapshot, "leather wallet")
    assert both and {int(d) for d in found} == both  # exactly the products that say both words
    assert np.all(snapshot.lexical.scores_of("wallet", found) > 0)


def test_a_phrase_of_common_words_is_read_from_its_best_matches_holding_both(engine, monkeypatch):
    import numpy as np

    from shoplens.engine import intent
    from shoplens.engine.search import _best_matches

    snapshot = engine.snapshot
    every = snapshot.products.live.nonzero()[0]
    monkeypatch.setattr(intent, "PHRASE_DEPTH", 5)  # "leather" and "wallet" both count as common words now
    found = _best_matches(snapshot, "leather wallet")
    best = snapshot.lexical.search("leather wallet", intent.ASSOCIATION_DEPTH, snapshot.products.live)[0]
    assert 0 < len(found) <= intent.ASSOCIATION_DEPTH and set(found.tolist()) <= set(best.tolist())
    for word in ("leather", "wallet"):
        assert np.all(snapshot.lexical.scores_of(word, found) > 0)
    assert len(every) > len(found)


@pytest.mark.parametrize("text, level", [
    ("cheap watches for men", "low"), ("Cheapest watch under 500", "low"), ("budget-friendly bag", "low"),
    ("premium shoes", "high"), ("luxury watch", "high"), ("cheapo shoes", None), ("watches", None),
])
def test_cheap_and_premium_ask_for_an_end_of_the_price_range(text, level):
    intent = parse_intent(text, FACETS)
    assert intent.price_level == level
    assert intent.text.lower().startswith(text.lower().split(" under")[0])  # the words stay in the retrieved text


def test_the_cheap_end_is_the_cheapest_third_of_the_asked_type():
    import numpy as np

    from shoplens.engine.intent import _level_matches

    prices = np.array([100.0, 5000, 900, 1200, np.nan, 3000, 50, 2000])
    watches = np.array([False, True, True, True, True, True, False, True])
    low = _level_matches(prices, "low", watches)
    # the watches' prices 900, 1200, 2000, 3000, 5000: the cheapest third is cut between 1,200 and 2,000 (socks at
    # 100 and 50 are under it too)
    assert low.tolist() == [True, False, True, True, False, False, True, False]
    high = _level_matches(prices, "high", watches)
    assert high.tolist() == [False, True, False, False, False, True, False, False]
    assert not _level_matches(np.array([np.nan, 10.0]), "low", None).any()  # too few prices to tell


def test_cheap_on_the_sample_prefers_the_cheapest_of_the_type(engine):
    import numpy as np

    from shoplens.engine.query import SearchRequest

    cheap = engine.search(SearchRequest(text="cheap watch", k=5, rerank=False))
    plain = engine.search(SearchRequest(text="watch", k=5, rerank=False))
    assert cheap.query["intent"]["price_level"] == "low" and "cheapest third" in " ".join(cheap.notes)
    prices = lambda response: [r.price for r in response.results]  # noqa: E731
    assert np.median(prices(cheap)) < np.median(prices(plain))
