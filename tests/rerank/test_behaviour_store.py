import numpy as np

from shoplens.rerank.behaviour import BehaviourStats
from shoplens.rerank.behaviour_store import load, save
from tests.rerank.test_behaviour import folded_twice


def test_aggregates_round_trip_through_their_directory(tmp_path):
    stats = folded_twice(tmp_path)
    save(stats, tmp_path / "saved")
    again = load(tmp_path / "saved")
    assert again.products["id"].tolist() == stats.products["id"].tolist()
    np.testing.assert_allclose(again.products["popularity"], stats.products["popularity"])
    assert again.state == stats.state


def test_a_version_without_aggregates_loads_empty(tmp_path):
    assert not load(tmp_path / "none").has_data and not load(None).has_data
    assert load(None).products["id"].tolist() == BehaviourStats.empty().products["id"].tolist() == []
