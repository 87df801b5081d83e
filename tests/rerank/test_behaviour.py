import pytest

from shoplens.rerank.behaviour import BehaviourStats, fold
from shoplens.rerank.events import normalize_query, read_events
from tests.helpers import write_events

DAY = 86400.0


def folded_twice(tmp_path) -> BehaviourStats:
    first = write_events(tmp_path / "1.jsonl", [
        {"ts": 0, "type": "impression", "id": "a", "query": "shirt", "position": 1},
        {"ts": 0, "type": "impression", "id": "b", "query": "shirt", "position": 2},
        {"ts": 0, "type": "click", "id": "a", "query": "shirt", "position": 1},
    ])
    second = write_events(tmp_path / "2.jsonl", [
        {"ts": 14 * DAY, "type": "impression", "id": "a", "query": "Shirt", "position": 2},
        {"ts": 14 * DAY, "type": "order", "id": "a"},
    ])
    return fold(fold(BehaviourStats.empty(), read_events(first)), read_events(second))


def test_fold_adds_counts_in_place_and_decays_popularity(tmp_path):
    stats = folded_twice(tmp_path)
    row = stats.row_by_id["a"]
    assert [stats.products[c][row] for c in ("impressions", "clicks", "carts", "orders")] == [2, 1, 0, 1]
    # a click (weight 1) 14 days (one half-life) before the reference time, plus an order (weight 5) at it
    assert stats.products["popularity"][row] == pytest.approx(0.5 + 5.0)
    assert stats.popularity_at(28 * DAY)[row] == pytest.approx((0.5 + 5.0) / 2)
    history = stats.query_rows("SHIRT")
    qp = stats.query_products
    assert qp["impressions"][history["a"]] == 2 and qp["clicks"][history["a"]] == 1
    assert qp["orders"][history["a"]] == 0  # the order had no query
    positions = {(q, i, int(p)): (int(n), int(c)) for q, i, p, n, c in zip(*stats.positions.values())}
    assert positions == {("shirt", "a", 1): (1, 1), ("shirt", "b", 2): (1, 0), ("shirt", "a", 2): (1, 0)}
    assert stats.state["totals"] == {"impression": 3, "click": 1, "cart": 0, "order": 1}
    assert len(stats.state["files"]) == 2


def test_priors_and_queries():
    assert normalize_query("  Blue\tShirt ") == "blue shirt"
    empty = BehaviourStats.empty()
    assert not empty.has_data and empty.query_rows("x") is None
    assert empty.priors()["ctr"] == 0.05


def test_a_photo_search_counts_for_its_product_but_not_under_any_query_text(tmp_path):
    path = write_events(tmp_path / "e.jsonl", [
        {"ts": 1, "type": "impression", "id": "a", "query": "wallet", "image": "images/1.jpg", "position": 1},
        {"ts": 2, "type": "click", "id": "a", "image": "images/1.jpg", "position": 1},
        {"ts": 3, "type": "click", "id": "a", "query": "wallet", "position": 1},
        {"ts": 4, "type": "click", "id": "a", "image": 7},
    ])
    batch = read_events(path)
    assert batch.queries == ["", "", "wallet"]  # the photo searches: product-level only
    assert len(batch.rejects) == 1 and "image must be" in batch.rejects[0].reason
    stats = fold(BehaviourStats.empty(), batch)
    products = dict(zip(stats.products["id"].tolist(), stats.products["clicks"].tolist()))
    assert products["a"] == 2
    assert stats.query_products["clicks"].tolist() == [1] and stats.query_products["query"].tolist() == ["wallet"]
