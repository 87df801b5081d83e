"""Position-bias correction: the EM click model recovers examination and attractiveness it was not told."""

import numpy as np

from shoplens.rerank.behaviour import BehaviourStats, fold
from shoplens.rerank.events import EventBatch
from shoplens.rerank.labels import fit_position_model, labels_from_behaviour


def simulate(theta, alpha, sessions=40000, seed=0):
    """Sessions over 5 products; each session shows them in a random order (so positions vary)."""
    rng = np.random.default_rng(seed)
    products = list(alpha)
    ts, kinds, ids, queries, positions = [], [], [], [], []
    for session in range(sessions):
        order = rng.permutation(len(products))
        for position, index in enumerate(order, start=1):
            pid = products[index]
            ts.append(session)
            kinds.append(0)
            ids.append(pid)
            queries.append("q")
            positions.append(position)
            if rng.random() < theta[position - 1] * alpha[pid]:
                ts.append(session)
                kinds.append(1)
                ids.append(pid)
                queries.append("q")
                positions.append(position)
    return EventBatch(np.array(ts, float), np.array(kinds, np.int8), ids, queries, np.array(positions, np.int32))


def test_em_recovers_the_position_based_model():
    theta = [1.0, 0.6, 0.4, 0.3, 0.2]
    alpha = {"a": 0.8, "b": 0.5, "c": 0.3, "d": 0.1, "e": 0.05}
    stats = fold(BehaviourStats.empty(), simulate(theta, alpha))
    model = fit_position_model(stats, iterations=500, tolerance=1e-9)
    np.testing.assert_allclose(model.examination, theta, atol=0.05)
    # attractiveness up to the model's scale (theta_1 * alpha is what clicks at position 1 pin down)
    estimated = np.array([model.attractiveness[("q", pid)] for pid in alpha])
    estimated = estimated / estimated[0] * alpha["a"]
    np.testing.assert_allclose(estimated, list(alpha.values()), atol=0.05)


def test_labels_undo_position_bias():
    """'low' is as attractive as 'top' but was always shown lower: it must not be labelled worse."""
    theta = [1.0, 0.5, 0.25, 0.12]
    rng = np.random.default_rng(1)
    ts, kinds, ids, queries, positions = [], [], [], [], []
    for session in range(20000):
        # mostly the logged ranking top, mid, low, junk; sometimes a neighbouring pair swaps
        order = ["top", "mid", "low", "junk"]
        if rng.random() < 0.5:
            i = rng.integers(0, 3)
            order[i], order[i + 1] = order[i + 1], order[i]
        attractive = {"top": 0.6, "mid": 0.3, "low": 0.6, "junk": 0.02}
        for position, pid in enumerate(order, start=1):
            ts.append(session), kinds.append(0), ids.append(pid), queries.append("q"), positions.append(position)
            if rng.random() < theta[position - 1] * attractive[pid]:
                ts.append(session), kinds.append(1), ids.append(pid), queries.append("q"), positions.append(position)
    batch = EventBatch(np.array(ts, float), np.array(kinds, np.int8), ids, queries, np.array(positions, np.int32))
    stats = fold(BehaviourStats.empty(), batch)
    clicks = dict(zip(stats.query_products["id"].tolist(), stats.query_products["clicks"].tolist()))
    assert clicks["low"] < clicks["top"] / 2  # raw clicks are strongly position-biased
    labels, model = labels_from_behaviour(stats)
    assert labels["q"]["low"] == labels["q"]["top"] == 3
    assert labels["q"]["mid"] == 2
    assert labels["q"]["junk"] == 1  # clicked now and then, so not a hard zero
    assert model.examination[3] < model.examination[1] < 1.0
