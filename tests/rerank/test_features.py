import numpy as np
import pytest

from shoplens.engine.query import SearchRequest
from shoplens.engine.search import SearchEngine
from shoplens.indexers.lexical.analysis import build_analyzer
from shoplens.rerank.behaviour import BehaviourStats, fold
from shoplens.rerank.events import EventBatch
from shoplens.rerank.features import (BEHAVIOUR_FEATURES, COLUMN, FEATURE_GROUPS, FEATURE_NAMES, FeatureContext,
                             compute_features, price_limit, wants_cheap)
from shoplens.rerank.model import candidate_scores
from tests.helpers import SAMPLE, sample_products

ROWS = {r["id"]: r for r in sample_products()}


@pytest.fixture(scope="module")
def engine(sample_index, encoder):
    return SearchEngine(sample_index, device="cpu", encoder=encoder)


def features_for(engine, text=None, image=None, behaviour=None, use_behaviour=True):
    request = SearchRequest(text=text, image=image, k=50, candidates=50)
    snapshot, candidates, _ = engine.retrieve(request, for_rerank=True)
    context = FeatureContext(snapshot, behaviour, build_analyzer().analyze)
    matrix = compute_features(context, text, candidates, candidate_scores(snapshot, text, candidates.docnos)[0],
                              use_behaviour=use_behaviour)
    ids = snapshot.products.column_values("id", candidates.docnos)
    return matrix, ids


def column(matrix, name):
    return matrix[:, COLUMN[name]]


def test_names_are_unique_and_grouped():
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == sum(len(g) for g in FEATURE_GROUPS.values())
    assert BEHAVIOUR_FEATURES <= set(FEATURE_NAMES)


def test_query_words():
    assert price_limit("red dress under 1,000") == 1000.0
    assert price_limit("shoes below rs. 2500") == 2500.0
    assert price_limit("watch less than ₹999") == 999.0
    assert price_limit("size 10 shoes") is None
    assert wants_cheap("cheap tshirt") and wants_cheap("Budget watch") and not wants_cheap("cheapest-looking")


TINY = [
    {"id": "d1", "title": "Red Summer Dress", "brand": "Ona", "category": ["Apparel", "Dresses"], "price": 900,
     "gender": "Women", "base_colour": "Red", "usage": "Casual", "discounted_price": 450},
    {"id": "d2", "title": "Blue Party Dress", "brand": "Ona", "category": ["Apparel", "Dresses"], "price": 2500,
     "gender": "Women", "base_colour": "Blue", "usage": "Party"},
    {"id": "s1", "title": "Red Cotton Shirt", "brand": "Kora", "category": ["Apparel", "Shirts"], "price": 800,
     "gender": "Men", "base_colour": "Red", "usage": "Casual"},
    {"id": "s2", "title": "White Linen Shirt", "brand": "Kora", "category": ["Apparel", "Shirts"],
     "gender": "Men", "base_colour": "White", "usage": "Formal"},
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, encoder):
    from shoplens.indexers.writer import WriteOptions, build_index
    from tests.helpers import write_catalog

    directory = tmp_path_factory.mktemp("tiny")
    build_index(write_catalog(directory / "c.jsonl", TINY), directory / "ix", WriteOptions(device="cpu"), encoder=encoder)
    return SearchEngine(directory / "ix", device="cpu", encoder=encoder)


def by_id(matrix, ids, name):
    return {pid: (None if np.isnan(v) else round(float(v), 5)) for pid, v in zip(ids, column(matrix, name))}


def test_text_match_and_price_features_by_hand(tiny):
    matrix, ids = features_for(tiny, "red dress for women under 1000")
    assert sorted(ids) == ["d1", "d2", "s1", "s2"]
    assert by_id(matrix, ids, "category_match") == {"d1": 1.0, "d2": 1.0, "s1": 0.0, "s2": 0.0}
    assert by_id(matrix, ids, "colour_match") == {"d1": 1.0, "d2": 0.0, "s1": 1.0, "s2": 0.0}
    assert by_id(matrix, ids, "attribute_match_share") == {"d1": 1.0, "d2": 1.0, "s1": 0.0, "s2": 0.0}  # gender
    assert by_id(matrix, ids, "brand_match") == dict.fromkeys(ids)  # no brand named: missing, not "no match"
    assert by_id(matrix, ids, "query_price_limit_ok") == {"d1": 1.0, "d2": 0.0, "s1": 1.0, "s2": None}
    assert by_id(matrix, ids, "query_wants_cheap") == dict.fromkeys(ids, 0.0)
    # query terms after analysis: red, dress, women, under, 1000
    assert by_id(matrix, ids, "title_term_share") == {"d1": 0.4, "d2": 0.2, "s1": 0.2, "s2": 0.0}
    assert by_id(matrix, ids, "discount_share") == {"d1": 0.5, "d2": None, "s1": None, "s2": None}
    log_price = by_id(matrix, ids, "log_price")
    assert log_price["s2"] is None and log_price["d1"] == pytest.approx(np.log1p(900), rel=1e-6)
    # prices 900, 2500, 800: median 900, mean 1400, population std 770.2
    ratio = by_id(matrix, ids, "price_to_median")
    assert ratio["d2"] == pytest.approx(2500 / 900, rel=1e-5) and ratio["s2"] is None
    assert by_id(matrix, ids, "price_zscore")["s1"] == pytest.approx((800 - 1400) / np.std([900, 2500, 800]), rel=1e-5)
    # position among its leaf category's prices: dresses 900 < 2500, shirts: one priced, one without a price
    assert by_id(matrix, ids, "price_pct_in_category") == {"d1": 0.0, "d2": 1.0, "s1": 0.5, "s2": None}
    matrix, ids = features_for(tiny, "cheap kora shirts")
    assert by_id(matrix, ids, "brand_match") == {"d1": 0.0, "d2": 0.0, "s1": 1.0, "s2": 1.0}
    assert by_id(matrix, ids, "query_wants_cheap") == dict.fromkeys(ids, 1.0)
    assert by_id(matrix, ids, "query_price_limit_ok") == dict.fromkeys(ids)


def test_retrieval_features_on_the_sample(engine):
    matrix, ids = features_for(engine, "red dress for women under 1000")
    assert np.all(column(matrix, "fused_rank") == np.arange(1, len(ids) + 1))
    assert np.all(column(matrix, "bm25") >= 0) and np.isfinite(column(matrix, "bm25")).all()
    assert np.nanmax(column(matrix, "bm25_norm")) == 1.0
    found = column(matrix, "found_by_lexical") + column(matrix, "found_by_dense") + column(matrix, "found_by_native")
    assert found.min() >= 1  # every candidate came from at least one retriever
    assert np.isfinite(column(matrix, "age_days")).all()


def test_image_query_has_no_text_features(engine):
    image = str(SAMPLE.parent / sample_products(1)[0]["image"])
    matrix, _ = features_for(engine, image=image)
    for name in ("bm25", "bm25_norm", "sim_text_text", "sim_text_image", "title_term_share"):
        assert np.isnan(column(matrix, name)).all(), name
    assert np.isfinite(column(matrix, "sim_image_image")).all()
    assert np.nanmax(column(matrix, "sim_image_image")) > 0.99  # the photo's own product is a candidate


@pytest.mark.parametrize("kind", ["text", "photo", "text+photo"])
def test_similarities_from_fusion_equal_the_stored_vectors_read_again(engine, kind):
    """The similarity features come from the rows fusion read; read afresh for the reranked head, they agree."""
    text = None if kind == "photo" else "white casual shoes"
    image = None if kind == "text" else str(SAMPLE.parent / sample_products(1)[0]["image"])
    request = SearchRequest(text=text, image=image, k=50, candidates=50)
    snapshot, candidates, _ = engine.retrieve(request, for_rerank=True)
    head = candidates.take(np.arange(0, len(candidates), 2))  # a subset in another order, as reranking takes
    assert head.sims is not None
    stored = snapshot.vectors.vectors(head.docnos)
    if text is not None:
        np.testing.assert_allclose(head.sims["sim_text_text"], stored["text"] @ head.query.text, atol=1e-6)
    if image is not None:
        expected = np.where(stored["has_image"], stored["image"] @ head.query.image, np.nan)
        np.testing.assert_allclose(head.sims["sim_image_image"], expected, atol=1e-6)
        np.testing.assert_allclose(head.photo, expected, atol=1e-6)
    context = FeatureContext(snapshot, None, build_analyzer().analyze)
    scores = candidate_scores(snapshot, text, head.docnos)[0]
    served = compute_features(context, text, head, scores)
    head.sims = None  # the reranker reads the rows itself, as for candidates made elsewhere
    np.testing.assert_allclose(served, compute_features(context, text, head, scores), atol=1e-6, equal_nan=True)


@pytest.mark.parametrize("kind", ["text", "photo"])
def test_consensus_features_compare_each_candidate_with_the_fused_lists_first(engine, kind):
    """prf_*: a candidate's product vectors against the first fused candidate's and the first five's mean."""
    text = "blue denim jeans for men" if kind == "text" else None
    image = None if kind == "text" else str(SAMPLE.parent / sample_products(1)[0]["image"])
    matrix, ids = features_for(engine, text, image)
    snapshot, candidates, _ = engine.retrieve(SearchRequest(text=text, image=image, k=50, candidates=50),
                                              for_rerank=True)
    stored = snapshot.vectors.vectors(candidates.docnos)
    centre = stored["text"][:5].mean(axis=0)
    np.testing.assert_allclose(column(matrix, "prf_text_top5"), stored["text"] @ (centre / np.linalg.norm(centre)),
                               atol=1e-5)
    np.testing.assert_allclose(column(matrix, "prf_text_top1"), stored["text"] @ stored["text"][0], atol=1e-5)
    assert column(matrix, "prf_text_top1")[0] == pytest.approx(1.0, abs=1e-5)  # the first candidate is itself
    images = column(matrix, "prf_image_top1")
    assert np.array_equal(np.isnan(images), ~stored["has_image"])  # no photo: missing, never a zero
    native = snapshot.text_native.vectors(candidates.docnos, parts=("text",))["text"]
    centre = native[:5].mean(axis=0)
    np.testing.assert_allclose(column(matrix, "prf_native_top5"), native @ (centre / np.linalg.norm(centre)),
                               atol=1e-5)
    if kind == "photo":  # the pictured product leads, and its own photo is the consensus's first
        assert ids[0] == sample_products(1)[0]["id"] and images[0] == pytest.approx(1.0, abs=1e-5)


def test_behaviour_is_missing_without_events_and_smoothed_with_them(engine):
    matrix, ids = features_for(engine, "casual shirt", behaviour=BehaviourStats.empty())
    for name in BEHAVIOUR_FEATURES:
        assert np.isnan(column(matrix, name)).all(), name
    one, many = ids[0], ids[1]
    kinds, events = [], []
    # one click in one view, against 900 clicks in 1,000 views, in a shop where 1% of views get a click
    shop = [(pid, 2000, 20) for pid in ids[3:13]]
    for pid, views, clicks in [(one, 1, 1), (many, 1000, 900)] + shop:
        events += [pid] * (views + clicks)
        kinds += [0] * views + [1] * clicks
    batch = EventBatch(np.zeros(len(events)), np.array(kinds, np.int8), events, ["casual shirt"] * len(events),
                       np.zeros(len(events), np.int32))
    stats = fold(BehaviourStats.empty(), batch)
    matrix, ids2 = features_for(engine, "casual shirt", behaviour=stats)
    assert ids2 == ids
    ctr = column(matrix, "ctr_smoothed")
    assert ctr[1] > ctr[0] > 0
    assert column(matrix, "clicks")[0] == 1 and column(matrix, "impressions")[1] == 1000
    assert column(matrix, "impressions")[2] == 0  # behaviour exists, this product has none: a real zero
    assert ctr[2] < ctr[0]  # and its rate is the shop's prior
    assert column(matrix, "query_seen")[0] == 1 and column(matrix, "qp_clicks")[1] == 900
    unseen, _ = features_for(engine, "leather belt", behaviour=stats)
    assert column(unseen, "query_seen")[0] == 0 and np.isnan(column(unseen, "qp_ctr_smoothed")).all()
    blanked, _ = features_for(engine, "casual shirt", behaviour=stats, use_behaviour=False)
    assert np.isnan(column(blanked, "ctr_smoothed")).all()


def test_quantities_and_price_ranges_by_hand():
    from shoplens.rerank.features import price_range, quantities

    assert quantities("1/2 in. x 10 ft. copper pipe") >= {("0.5", "in"), ("10", "ft")}
    assert ("1.5", "in") in quantities("1-1/2 in. PVC")
    assert quantities("60 watt bulb, 2 gal bucket") == {("60", "w"), ("2", "gal")}
    assert price_range("white sneakers under 2000") == (None, 2000.0)
    assert price_range("shoes between 1000 and 2,000") == (1000.0, 2000.0)
    assert price_range("bags above rs 500") == (500.0, None)


def test_text_native_and_field_features_are_present(engine):
    matrix, ids = features_for(engine, text="navy blue shirt for men")
    assert np.isfinite(column(matrix, "native")).all()
    assert np.nanmax(column(matrix, "bm25_title")) > 0
    shares = column(matrix, "title_bigram_share")  # share of the query's bigrams found in the title
    assert np.all((shares >= 0) & (shares <= 1)) and shares.max() > 0
    best = int(np.argmax(column(matrix, "title_term_share")))
    assert column(matrix, "doc_term_share")[best] >= column(matrix, "title_term_share")[best]


def test_intent_features_by_hand(tiny):
    # "red dress for women under 1000": audience women (gender), colour red, type dress, price at most 1000
    matrix, ids = features_for(tiny, "red dress for women under 1000")
    assert by_id(matrix, ids, "intent_stated") == dict.fromkeys(ids, 4.0)
    assert by_id(matrix, ids, "intent_audience_match") == {"d1": 1.0, "d2": 1.0, "s1": 0.0, "s2": 0.0}
    assert by_id(matrix, ids, "intent_colour_match") == {"d1": 1.0, "d2": 0.0, "s1": 1.0, "s2": 0.0}
    assert by_id(matrix, ids, "intent_type_match") == {"d1": 1.0, "d2": 1.0, "s1": 0.0, "s2": 0.0}
    # price 900 / 2500 / 800 / none against the ceiling 1000 (a product without a price does not meet it)
    assert by_id(matrix, ids, "intent_price_ratio") == {"d1": 0.9, "d2": 2.5, "s1": 0.8, "s2": None}
    assert by_id(matrix, ids, "intent_met_share") == {"d1": 1.0, "d2": 0.5, "s1": 0.5, "s2": 0.0}
    # the price phrase is out of the retrieval text, but the stated ceiling still reaches the price features
    assert by_id(matrix, ids, "query_price_limit_ok") == {"d1": 1.0, "d2": 0.0, "s1": 1.0, "s2": None}
    matrix, ids = features_for(tiny, "linen party wear")  # states nothing: 0 stated, every match missing
    assert by_id(matrix, ids, "intent_stated") == dict.fromkeys(ids, 0.0)
    for name in ("intent_met_share", "intent_audience_match", "intent_colour_match", "intent_type_match",
                 "intent_price_ratio", "query_price_limit_ok"):
        assert by_id(matrix, ids, name) == dict.fromkeys(ids), name
    matrix, ids = features_for(tiny, "shirts over 850")  # a floor alone: the ratio is to the floor
    assert by_id(matrix, ids, "intent_stated") == dict.fromkeys(ids, 2.0)
    assert by_id(matrix, ids, "intent_price_ratio")["s1"] == pytest.approx(800 / 850, rel=1e-5)
    assert by_id(matrix, ids, "intent_met_share") == {"d1": 0.5, "d2": 0.5, "s1": 0.5, "s2": 0.5}


def test_vocabularies_are_kept_in_the_index_cache_per_product_state(small_index):
    import json

    from shoplens.indexers.index import IndexDirectory
    from shoplens.indexers.snapshot import Snapshot

    analyze = build_analyzer().analyze
    snapshot = Snapshot.open(IndexDirectory(small_index), device="cpu")
    computed = FeatureContext(snapshot, None, analyze)
    assert computed.brand is not None and computed.brand.phrases
    stored, = (small_index / "cache" / "vocabularies").glob("*.json")
    again = FeatureContext(snapshot, None, analyze)  # a second reader takes the file: the same vocabularies
    assert again.brand.phrases == computed.brand.phrases and again.category.phrases == computed.category.phrases
    assert [v.phrases for v in again.attributes] == [v.phrases for v in computed.attributes]
    docnos = np.arange(snapshot.products.num_rows)
    code = next(iter(next(iter(computed.brand.phrases.values()))))
    np.testing.assert_array_equal(again.brand.has_any(docnos, {code}), computed.brand.has_any(docnos, {code}))
    data = json.loads(stored.read_text())
    data[next(name for name in data if name.startswith(f"{computed.brand.column}|"))] = [[["from", "cache"], [0]]]
    stored.write_text(json.dumps(data))
    assert FeatureContext(snapshot, None, analyze).brand.phrases == {("from", "cache"): {0}}
    (snapshot.path / "products" / "live.npy").touch()  # other product files: computed again, not the stale file
    assert FeatureContext(snapshot, None, analyze).brand.phrases == computed.brand.phrases
