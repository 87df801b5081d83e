import json

import numpy as np
import pytest

from shoplens.common.errors import EventsError
from shoplens.rerank.behaviour import BehaviourStats, apply_events, fold, load, normalize_query, read_events, save

DAY = 86400.0


def write_events(path, events):
    path.write_text("\n".join(e if isinstance(e, str) else json.dumps(e) for e in events) + "\n")
    return path


def test_bad_lines_are_reported_with_line_numbers(tmp_path):
    path = write_events(tmp_path / "e.jsonl", [
        {"ts": 1, "type": "click", "id": "a", "query": "Blue  Shirt", "position": 2},
        {"ts": 2, "type": "purchase", "id": "a"},
        {"ts": "yesterday", "type": "click", "id": "a"},
        {"ts": 3, "type": "click"},
        "{nope",
        {"ts": 4, "type": "click", "id": "a", "position": 0},
        {"ts": "2026-01-01T00:00:00Z", "type": "order", "id": 7},
        {"ts": 5, "type": "click", "id": "zzz"},
    ])
    batch = read_events(path, known_ids={"a", "7"})
    assert len(batch) == 2
    assert batch.queries[0] == "blue shirt" and batch.ids[1] == "7"
    assert batch.ts[1] == pytest.approx(1767225600.0)
    reasons = {r.line: r.reason for r in batch.rejects}
    assert sorted(reasons) == [2, 3, 4, 5, 6, 8]
    assert "type must be one of" in reasons[2] and "ts must be" in reasons[3] and reasons[4] == "missing id"
    assert reasons[5].startswith("invalid JSON") and "position" in reasons[6] and "unknown product id" in reasons[8]


def test_fold_adds_counts_in_place_and_decays_popularity(tmp_path):
    first = write_events(tmp_path / "1.jsonl", [
        {"ts": 0, "type": "impression", "id": "a", "query": "shirt", "position": 1},
        {"ts": 0, "type": "impression", "id": "b", "query": "shirt", "position": 2},
        {"ts": 0, "type": "click", "id": "a", "query": "shirt", "position": 1},
    ])
    second = write_events(tmp_path / "2.jsonl", [
        {"ts": 14 * DAY, "type": "impression", "id": "a", "query": "Shirt", "position": 2},
        {"ts": 14 * DAY, "type": "order", "id": "a"},
    ])
    stats = fold(fold(BehaviourStats.empty(), read_events(first)), read_events(second))
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
    save(stats, tmp_path / "saved")
    again = load(tmp_path / "saved")
    assert again.products["id"].tolist() == stats.products["id"].tolist()
    np.testing.assert_allclose(again.products["popularity"], stats.products["popularity"])
    assert again.state == stats.state


def test_priors_and_queries():
    assert normalize_query("  Blue\tShirt ") == "blue shirt"
    empty = BehaviourStats.empty()
    assert not empty.has_data and empty.query_rows("x") is None
    assert empty.priors()["ctr"] == 0.05


def test_events_fold_into_a_new_version_once(small_index, tmp_path):
    from shoplens.indexers.index import IndexDirectory
    from shoplens.indexers.products import load_products

    index = IndexDirectory(small_index)
    ids = list(load_products(index.version_path(1) / "products").docno_by_id)[:3]
    path = write_events(tmp_path / "e.jsonl", [{"ts": 10, "type": "click", "id": ids[0], "query": "q", "position": 1},
                                              {"ts": 11, "type": "impression", "id": "not-a-product"}])
    report = apply_events(small_index, path)
    assert report.version == 2 and report.folded == 1 and len(report.rejects) == 1
    assert index.manifest()["behaviour"]["events"] == 1
    assert index.manifest()["kind"] == "events"
    with pytest.raises(EventsError, match="already folded"):
        apply_events(small_index, path)
    with pytest.raises(EventsError, match="nothing folded"):
        apply_events(small_index, path, strict=True, force=True)
    assert index.current_version() == 2
    report = apply_events(small_index, path, force=True)
    assert load(index.version_path(3) / "behaviour").products["clicks"].sum() == 2


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
