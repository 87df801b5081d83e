"""Spelling correction against a catalog vocabulary, and the vocabulary built from products."""

from shoplens.engine.spelling import SpellCorrector, skeleton
from shoplens.indexers.catalog import Product
from shoplens.indexers.spelling import product_words, read_vocabulary, write_vocabulary

VOCABULARY = {"sneakers": 50, "adidas": 30, "tshirt": 40, "shirt": 100, "white": 200, "men": 300, "jeans": 80,
              "blue": 300, "backpack": 20, "sweaters": 5}


def test_unknown_words_are_corrected_known_and_protected_ones_kept():
    corrector = SpellCorrector(VOCABULARY)
    assert corrector.correct("snekers") == "sneakers"
    assert corrector.correct("addidas tshirt") == "adidas tshirt"
    assert corrector.correct("blue jeens for men") == "blue jeans for men"
    assert corrector.correct("white sneakers under 2000") is None  # known words, a protected word, a number
    assert corrector.correct("kids school bag") is None  # nothing close enough: left as typed
    assert corrector.correct("xyzzyq") is None


def test_product_words_and_vocabulary_counts(tmp_path):
    product = Product.from_record({"id": "1", "title": "Nike Men T-Shirt", "brand": "Nike",
                                   "category": ["Apparel", "Topwear"]})
    words = product_words(product)
    assert {"nike", "men", "t", "shirt", "tshirt", "apparel", "topwear"} <= words
    first = tmp_path / "v1"
    write_vocabulary(first, None, [product])
    second = tmp_path / "v2"
    write_vocabulary(second, first, [product])  # an update adds its products' words to the parent's counts
    assert read_vocabulary(second)["nike"] == 2
    assert read_vocabulary(tmp_path / "none") is None


def _sample_corrector() -> SpellCorrector:
    from collections import Counter

    from tests.helpers import sample_products

    counts: Counter = Counter()
    for row in sample_products():
        counts.update(product_words(Product.from_record(row)))
    return SpellCorrector(dict(counts))


def test_on_the_sample_typos_are_corrected_and_real_words_it_lacks_are_kept():
    corrector = _sample_corrector()
    assert "school" not in corrector.vocabulary  # the 1,500-product sample never says "school"...
    assert corrector.correct("kids school bag") is None  # ...but it is English, not a typo of "scoop"
    assert corrector.correct("snekers") == "sneakers"
    assert corrector.correct("addidas tshirt") == "adidas tshirt"
    assert corrector.correct("lipstik") == "lipstick" and corrector.correct("earings") == "earrings"
    assert corrector.correct("backpak for kids") == "backpack for kids"
    assert corrector.correct("gents wallet") is None  # an audience word query understanding reads
    assert corrector.correct("maroon kurta") is None  # a colour word


def test_a_correction_must_be_close_for_its_length_and_used_by_more_than_one_product():
    corrector = SpellCorrector({"scoop": 40, "shoes": 90, "sneakers": 50, "zamberlan": 1})
    assert corrector.correct("schoo") is None  # two edits from "scoop" in a short word: not confident
    assert corrector.correct("shoez") == "shoes"  # one edit
    assert corrector.correct("snneakerss") == "sneakers"  # two edits in a long word
    assert corrector.correct("zamberlam") is None  # the only near word is used by a single product


def test_a_newer_vocabulary_with_the_same_words_shares_the_built_deletes_and_takes_the_new_counts():
    older = SpellCorrector({"shirts": 50, "skirts": 5, "jeans": 80})
    assert older.for_vocabulary({"shirts": 5, "skirts": 50, "jeans": 80})._symspell is None  # unbuilt: built on use
    assert older.correct("sxirts") == "shirts"  # one edit from both: the word more products use wins
    newer = older.for_vocabulary({"shirts": 5, "skirts": 50, "jeans": 80})  # counts changed, words did not
    assert newer._symspell._deletes is older._symspell._deletes
    assert newer.correct("sxirts") == "skirts" == SpellCorrector(newer.vocabulary).correct("sxirts")
    assert older.correct("sxirts") == "shirts"  # the older version's corrector is unchanged
    grown = older.for_vocabulary({"shirts": 50, "skirts": 5, "jeans": 80, "sweaters": 9})  # a new word
    assert grown._symspell is None  # other words: a new corrector, built on first use
    assert grown.correct("sweaterz") == "sweaters" and older.correct("sweaterz") is None


def test_a_misspelt_vowel_wins_over_a_nearer_more_frequent_word_and_the_first_letter_over_frequency():
    corrector = SpellCorrector({"handles": 400, "sandals": 30, "candles": 90, "faucet": 12, "fauces": 2})
    assert skeleton("sandles") == skeleton("sandals") == "sndls" != skeleton("handles")
    assert corrector.correct("sandles for women") == "sandals for women"  # two edits, vowels only
    assert corrector.correct("faucit") == "faucet"
    assert corrector.correct("xandles") == "handles"  # none keeps the first letter or the skeleton: the most used
    assert SpellCorrector({"bolts": 400, "colts": 30}).correct("cbolts") == "colts"  # one edit each: first letter
    assert SpellCorrector({"robe": 50}).correct("ryobi") is None  # two edits, a skeleton ("rb") too short to tell
