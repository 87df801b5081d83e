"""Behaviour aggregates: impressions, clicks, carts and orders, folded from events.

Aggregates are updated by adding counts: per product (counts, first and last
event, a popularity that decays with a half-life), per query and product
(counts), and per query, product and position (impressions and clicks, for
the position-bias correction of `train-ranker --from-events`). The digests of
the files folded are kept in the state, so a file is never counted twice.

Events are parsed in `rerank.events`, aggregates saved and loaded by
`rerank.behaviour_store`, and folded into an index as a new version by
`rerank.folding`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from shoplens.rerank.events import EVENT_TYPES, EventBatch, normalize_query

POPULARITY_WEIGHTS = {"impression": 0.0, "click": 1.0, "cart": 3.0, "order": 5.0}
DEFAULT_HALF_LIFE_DAYS = 14.0

PRODUCT_COLUMNS = ("impressions", "clicks", "carts", "orders")


class BehaviourStats:
    """One version's aggregates, loaded for serving and training."""

    def __init__(self, products: dict[str, np.ndarray], query_products: dict[str, np.ndarray],
                 positions: dict[str, np.ndarray], state: dict[str, Any]):
        self.products = products  # id, impressions, clicks, carts, orders, first_ts, last_ts, popularity
        self.query_products = query_products  # query, id, impressions, clicks, carts, orders
        self.positions = positions  # query, id, position, impressions, clicks
        self.state = state
        self.row_by_id = {pid: i for i, pid in enumerate(products["id"].tolist())}
        self._qp_rows: dict[str, dict[str, int]] | None = None
        self.source: tuple | None = None  # the identities of the files it was loaded from (behaviour_store)

    @classmethod
    def empty(cls) -> "BehaviourStats":
        return cls(_empty_products(), _empty_query_products(), _empty_positions(), _empty_state())

    @property
    def has_data(self) -> bool:
        return self.state["events"] > 0

    def query_rows(self, query: str) -> dict[str, int] | None:
        """Row of each product that has history for this (normalized) query; None if the query is new."""
        if self._qp_rows is None:
            rows: dict[str, dict[str, int]] = {}
            for i, (q, pid) in enumerate(zip(self.query_products["query"].tolist(), self.query_products["id"].tolist())):
                rows.setdefault(q, {})[pid] = i
            self._qp_rows = rows
        return self._qp_rows.get(normalize_query(query))

    def popularity_at(self, when: float) -> np.ndarray:
        """Decayed popularity of every product row at time `when`."""
        half_life = self.state["half_life_days"] * 86400.0
        ref = self.state.get("popularity_ts")
        ref = when if ref is None else ref
        return self.products["popularity"] * np.power(2.0, -(when - ref) / half_life)

    def priors(self) -> dict[str, float]:
        """Shop-wide rates, the Bayesian priors that smooth per-product rates."""
        totals = self.state["totals"]
        impressions = max(totals["impression"], 1)
        clicks = max(totals["click"], 1)
        return {"ctr": totals["click"] / impressions if totals["impression"] else 0.05,
                "cart_rate": totals["cart"] / clicks if totals["click"] else 0.1,
                "order_rate": totals["order"] / clicks if totals["click"] else 0.05}


def _empty_products() -> dict[str, np.ndarray]:
    data = {"id": np.array([], dtype=object)}
    for name in PRODUCT_COLUMNS:
        data[name] = np.zeros(0, np.int64)
    data["first_ts"] = np.zeros(0)
    data["last_ts"] = np.zeros(0)
    data["popularity"] = np.zeros(0)
    return data


def _empty_query_products() -> dict[str, np.ndarray]:
    data = {"query": np.array([], dtype=object), "id": np.array([], dtype=object)}
    for name in PRODUCT_COLUMNS:
        data[name] = np.zeros(0, np.int64)
    return data


def _empty_positions() -> dict[str, np.ndarray]:
    return {"query": np.array([], dtype=object), "id": np.array([], dtype=object), "position": np.zeros(0, np.int32),
            "impressions": np.zeros(0, np.int64), "clicks": np.zeros(0, np.int64)}


def _empty_state() -> dict[str, Any]:
    return {"events": 0, "totals": {name: 0 for name in EVENT_TYPES}, "files": [], "first_ts": None, "last_ts": None,
            "popularity_ts": None, "half_life_days": DEFAULT_HALF_LIFE_DAYS}


def _group_sum(keys: list[tuple], columns: dict[str, np.ndarray]) -> tuple[list[tuple], dict[str, np.ndarray]]:
    """Sum columns by key (keys are tuples), keys in first-seen order."""
    index: dict[tuple, int] = {}
    inverse = np.empty(len(keys), dtype=np.int64)
    for i, key in enumerate(keys):
        inverse[i] = index.setdefault(key, len(index))
    sums = {name: np.bincount(inverse, weights=values, minlength=len(index)) for name, values in columns.items()}
    return list(index), sums


def fold(stats: BehaviourStats, batch: EventBatch) -> BehaviourStats:
    """New aggregates: the old ones plus a batch of events (counts added in place of a recount)."""
    onehot = {name: (batch.kind == i).astype(np.float64) for i, name in enumerate(EVENT_TYPES)}
    reference = max([t for t in (stats.state.get("popularity_ts"), float(batch.ts.max()) if len(batch) else None)
                     if t is not None], default=None)
    with_query = np.array([bool(q) for q in batch.queries], dtype=bool)
    return BehaviourStats(_fold_products(stats, batch, onehot, reference),
                          _fold_query_products(stats, batch, onehot, with_query),
                          _fold_positions(stats, batch, onehot, with_query),
                          _fold_state(stats, batch, reference))


def _fold_products(stats: BehaviourStats, batch: EventBatch, onehot: dict[str, np.ndarray],
                   reference: float | None) -> dict[str, np.ndarray]:
    """Per product: event counts, first and last event time, and popularity decayed to `reference`."""
    half_life = stats.state["half_life_days"] * 86400.0
    weights = sum(POPULARITY_WEIGHTS[name] * onehot[name] for name in EVENT_TYPES)
    decayed = weights * np.power(2.0, -(reference - batch.ts) / half_life) if len(batch) else weights
    old = stats.products
    old_pop = old["popularity"] * (np.power(2.0, -(reference - stats.state["popularity_ts"]) / half_life)
                                   if stats.state.get("popularity_ts") is not None else 1.0)
    keys = [(pid,) for pid in old["id"].tolist()] + [(pid,) for pid in batch.ids]
    cols = {name: np.concatenate([old[name], onehot[event]]) for name, event in zip(PRODUCT_COLUMNS, EVENT_TYPES)}
    cols["popularity"] = np.concatenate([old_pop, decayed])
    product_keys, sums = _group_sum(keys, cols)
    position_of = {key: i for i, key in enumerate(product_keys)}
    first = np.full(len(product_keys), np.inf)
    last = np.full(len(product_keys), -np.inf)
    where = np.array([position_of[key] for key in keys], dtype=np.int64)
    np.minimum.at(first, where, np.concatenate([old["first_ts"], batch.ts]))
    np.maximum.at(last, where, np.concatenate([old["last_ts"], batch.ts]))
    return {"id": np.array([k[0] for k in product_keys], dtype=object),
            **{name: sums[name].astype(np.int64) for name in PRODUCT_COLUMNS},
            "first_ts": first, "last_ts": last, "popularity": sums["popularity"]}


def _fold_query_products(stats: BehaviourStats, batch: EventBatch, onehot: dict[str, np.ndarray],
                         with_query: np.ndarray) -> dict[str, np.ndarray]:
    """Per (query, product): event counts of the events that logged their query."""
    qp_old = stats.query_products
    keys = list(zip(qp_old["query"].tolist(), qp_old["id"].tolist()))
    keys += [(q, pid) for q, pid, keep in zip(batch.queries, batch.ids, with_query) if keep]
    cols = {name: np.concatenate([qp_old[name], onehot[event][with_query]])
            for name, event in zip(PRODUCT_COLUMNS, EVENT_TYPES)}
    qp_keys, qp_sums = _group_sum(keys, cols)
    return {"query": np.array([k[0] for k in qp_keys], dtype=object),
            "id": np.array([k[1] for k in qp_keys], dtype=object),
            **{name: qp_sums[name].astype(np.int64) for name in PRODUCT_COLUMNS}}


def _fold_positions(stats: BehaviourStats, batch: EventBatch, onehot: dict[str, np.ndarray],
                    with_query: np.ndarray) -> dict[str, np.ndarray]:
    """Per (query, product, position): impressions and clicks where a position was logged."""
    positioned = with_query & (batch.positions > 0) & ((batch.kind == 0) | (batch.kind == 1))
    pos_old = stats.positions
    keys = list(zip(pos_old["query"].tolist(), pos_old["id"].tolist(), pos_old["position"].tolist()))
    keys += [(q, pid, int(p)) for q, pid, p, keep in zip(batch.queries, batch.ids, batch.positions, positioned) if keep]
    cols = {"impressions": np.concatenate([pos_old["impressions"], onehot["impression"][positioned]]),
            "clicks": np.concatenate([pos_old["clicks"], onehot["click"][positioned]])}
    pos_keys, pos_sums = _group_sum(keys, cols)
    return {"query": np.array([k[0] for k in pos_keys], dtype=object),
            "id": np.array([k[1] for k in pos_keys], dtype=object),
            "position": np.array([k[2] for k in pos_keys], dtype=np.int32),
            "impressions": pos_sums["impressions"].astype(np.int64),
            "clicks": pos_sums["clicks"].astype(np.int64)}


def _fold_state(stats: BehaviourStats, batch: EventBatch, reference: float | None) -> dict[str, Any]:
    """Totals, time range, the popularity reference time and the digests of the files folded."""
    state = json.loads(json.dumps(stats.state))
    state["events"] += len(batch)
    for i, name in enumerate(EVENT_TYPES):
        state["totals"][name] += int((batch.kind == i).sum())
    if len(batch):
        state["first_ts"] = min(t for t in (state["first_ts"], float(batch.ts.min())) if t is not None)
        state["last_ts"] = max(t for t in (state["last_ts"], float(batch.ts.max())) if t is not None)
        state["popularity_ts"] = reference
    if batch.digest:
        state["files"].append(batch.digest)
    return state


def problems(stats: BehaviourStats) -> list[str]:
    """What is wrong with loaded aggregates: non-finite or negative values (for `shoplens check`)."""
    found = []
    products = stats.products
    for name in ("popularity", "first_ts", "last_ts"):
        bad = int((~np.isfinite(np.asarray(products[name], dtype=np.float64))).sum())
        if bad:
            found.append(f"behaviour aggregate {name} is not finite for {bad} product(s)")
    for table_name, table in (("products", products), ("query_products", stats.query_products),
                              ("positions", stats.positions)):
        for name in ("impressions", "clicks", "carts", "orders"):
            if name in table and len(table[name]) and int(np.min(table[name])) < 0:
                found.append(f"behaviour aggregate {table_name}.{name} holds negative counts")
    for key in ("first_ts", "last_ts", "popularity_ts"):
        value = stats.state.get(key)
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
            found.append(f"behaviour state {key} is {value!r}, not a finite time")
    return found


def summary(stats: BehaviourStats) -> dict[str, Any]:
    """What the manifest and `info` say about behaviour."""
    state = stats.state
    return {"events": state["events"], "totals": state["totals"], "products_with_events": len(stats.products["id"]),
            "queries": len(set(stats.query_products["query"].tolist())), "files_folded": len(state["files"]),
            "first_ts": state["first_ts"], "last_ts": state["last_ts"]}
