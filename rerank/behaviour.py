"""Behaviour events and their aggregates: impressions, clicks, carts and orders.

Events arrive as JSONL, one object a line::

    {"ts": 1760000000.5, "type": "click", "id": "1163", "query": "blue shirt", "position": 3}

`ts` is unix seconds (or an ISO-8601 string), `type` one of impression,
click, cart, order; `query` and `position` are optional. A search with a photo
names it in an optional `image` (the photo's path or any text that identifies
it): such an event counts for its product (impressions, clicks, popularity)
but is kept out of the per-query tables, which are keyed by query text and
would otherwise mix what a photo search showed into the text query's history.
Bad lines are reported with their line numbers, like a bad catalog.

Aggregates live in each version's `behaviour/` directory and are updated in
place by adding counts: per product (counts, first and last event, a
popularity that decays with a half-life), per query and product (counts),
and per query, product and position (impressions and clicks, for the
position-bias correction of `train-ranker --from-events`). Folding a file
twice is refused: the digests of folded files are recorded.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from shoplens.common.errors import EventsError
from shoplens.indexers.products import column_numpy
from shoplens.indexers.storage import atomic_write_json, read_json

EVENT_TYPES = ("impression", "click", "cart", "order")
POPULARITY_WEIGHTS = {"impression": 0.0, "click": 1.0, "cart": 3.0, "order": 5.0}
DEFAULT_HALF_LIFE_DAYS = 14.0
MAX_POSITION = 100


def normalize_query(text: str | None) -> str:
    """The key a query's behaviour is stored under: lower-cased, whitespace collapsed."""
    return " ".join((text or "").lower().split())


@dataclass
class EventReject:
    line: int
    reason: str
    raw: str = ""

    def describe(self) -> str:
        return f"line {self.line}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "reason": self.reason, "raw": self.raw[:300]}


@dataclass
class EventBatch:
    """Parsed, valid events as columns."""

    ts: np.ndarray
    kind: np.ndarray  # index into EVENT_TYPES
    ids: list[str]
    queries: list[str]  # normalized; "" when absent
    positions: np.ndarray  # 0 when absent
    rejects: list[EventReject] = field(default_factory=list)
    lines: int = 0
    digest: str = ""
    digests: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


MAX_FUTURE_SECONDS = 86400.0  # an event may be stamped at most a day ahead of this machine's clock
MAX_QUERY_CHARS = 10_000


def _parse_ts(value: Any, now: float) -> float:
    """Unix seconds (a number or numeric text) or ISO-8601 text; finite, not before 1970-01-01 and
    at most MAX_FUTURE_SECONDS after `now`, so no stamp can push decayed popularity to NaN or infinity."""
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, (int, float)):
        stamp = float(value)  # OverflowError for integers beyond a float
    elif isinstance(value, str) and len(value) <= 64:
        text = value.strip()
        try:
            stamp = float(text)
        except ValueError:
            parsed = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=_dt.timezone.utc)
            stamp = parsed.timestamp()
    else:
        raise ValueError
    if not math.isfinite(stamp) or stamp < 0 or stamp > now + MAX_FUTURE_SECONDS:
        raise ValueError
    return stamp


def _check_event(event: dict, kind_index: dict[str, int], known_ids: set[str] | None,
                 now: float) -> tuple[float, int, str, str, int]:
    """(ts, kind, id, normalized query, position) of a valid event, or ValueError with the reason."""
    kind = event.get("type")
    if not isinstance(kind, str) or kind not in kind_index:
        raise ValueError(f"type must be one of {', '.join(EVENT_TYPES)}, got {_short(kind)}")
    pid = event.get("id")
    if isinstance(pid, float) and math.isfinite(pid) and pid.is_integer():
        pid = int(pid)
    if not isinstance(pid, (str, int)) or isinstance(pid, bool) or not str(pid).strip() or len(str(pid)) > 512:
        raise ValueError("missing id" if pid is None else f"id must be text or a whole number, got {_short(pid)}")
    try:
        stamp = _parse_ts(event.get("ts"), now)
    except (ValueError, TypeError, OverflowError):
        raise ValueError(f"ts must be unix seconds or an ISO-8601 time between 1970 and one day from now, "
                         f"got {_short(event.get('ts'))}") from None
    position = event.get("position")
    if position is not None and (isinstance(position, bool) or not isinstance(position, int) or position < 1):
        raise ValueError(f"position must be a positive integer, got {_short(position)}")
    query = event.get("query")
    if query is not None and (not isinstance(query, str) or len(query) > MAX_QUERY_CHARS):
        raise ValueError(f"query must be text of at most {MAX_QUERY_CHARS:,} characters, got {_short(query)}")
    image = event.get("image")
    if image is not None and (not isinstance(image, str) or not image.strip() or len(image) > MAX_QUERY_CHARS):
        raise ValueError(f"image must be a photo's path or name (text of at most {MAX_QUERY_CHARS:,} characters), "
                         f"got {_short(image)}")
    pid = str(pid).strip()
    if known_ids is not None and pid not in known_ids:
        raise ValueError(f"unknown product id {_short(pid)}")
    query_key = "" if image is not None else normalize_query(query)  # a photo search: product-level counts only
    return stamp, kind_index[kind], pid, query_key, min(position or 0, MAX_POSITION)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def read_events(path: str | Path, known_ids: set[str] | None = None) -> EventBatch:
    """Parse and validate an events file; unknown product ids are rejected when known_ids is given.

    Every bad line is rejected with its number and reason, the others are kept. A file
    that is not there, not a regular file, or compressed and cut short is an EventsError.
    """
    import time

    path = Path(path)
    if not path.exists():
        raise EventsError(f"events file {path} does not exist; check the path")
    if not path.is_file():
        raise EventsError(f"{path} is not a regular file; pass an events file (JSONL)")
    loads = _json_loads()
    rows: list[tuple[float, int, str, str, int]] = []
    rejects: list[EventReject] = []
    digest = hashlib.sha1()
    kind_index = {name: i for i, name in enumerate(EVENT_TYPES)}
    now = time.time()
    lines = 0
    try:
        with _open(path) as handle:
            for number, raw in enumerate(handle, start=1):
                digest.update(raw)
                lines = number
                text = raw.strip()
                if not text:
                    continue
                try:
                    event = loads(text)
                    if not isinstance(event, dict):
                        raise ValueError("expected a JSON object")
                    rows.append(_check_event(event, kind_index, known_ids, now))
                except (ValueError, RecursionError) as exc:  # orjson's JSONDecodeError is a ValueError
                    reason = str(exc) if not isinstance(exc, RecursionError) else "nested too deeply"
                    if type(exc).__name__ == "JSONDecodeError":
                        reason = f"invalid JSON: {exc}"
                    rejects.append(EventReject(number, reason, text.decode("utf-8", "replace")))
    except (EOFError, zlib.error, OSError) as exc:
        raise EventsError(f"{path.name} ends early or is damaged after line {lines} ({exc}); nothing folded; "
                          "fix or re-create the file") from None
    ts, kinds, ids, queries, positions = (list(column) for column in zip(*rows)) if rows else ([], [], [], [], [])
    return EventBatch(np.asarray(ts, dtype=np.float64), np.asarray(kinds, dtype=np.int8), ids, queries,
                      np.asarray(positions, dtype=np.int32), rejects, lines, digest.hexdigest())


def _open(path: Path):
    import gzip

    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _json_loads():
    try:
        import orjson

        return orjson.loads
    except ImportError:  # pragma: no cover - orjson is a dependency
        return json.loads


# -- aggregates -----------------------------------------------------------------------

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


# -- persistence ----------------------------------------------------------------------


def save(stats: BehaviourStats, directory: Path) -> dict[str, Any]:
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({k: _arrow(v) for k, v in stats.products.items()}), directory / "products.parquet")
    pq.write_table(pa.table({k: _arrow(v) for k, v in stats.query_products.items()}), directory / "query_products.parquet")
    pq.write_table(pa.table({k: _arrow(v) for k, v in stats.positions.items()}), directory / "positions.parquet")
    atomic_write_json(directory / "state.json", stats.state)
    return stats.state


def _arrow(values: np.ndarray) -> pa.Array:
    if values.dtype == object:
        return pa.array(values.tolist(), type=pa.string())
    return pa.array(values)


def load(directory: Path | None) -> BehaviourStats:
    """The aggregates of a version's `behaviour/` directory (empty when it has none)."""
    if directory is None or not (directory / "state.json").exists():
        return BehaviourStats.empty()

    def columns(name: str, strings: Iterable[str]) -> dict[str, np.ndarray]:
        table = pq.ParquetFile(directory / name).read()
        return {col: (np.array(table.column(col).to_pylist(), dtype=object) if col in strings
                      else column_numpy(table.column(col))) for col in table.column_names}

    return BehaviourStats(columns("products.parquet", {"id"}), columns("query_products.parquet", {"query", "id"}),
                          columns("positions.parquet", {"query", "id"}), read_json(directory / "state.json"))


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


@dataclass
class EventsReport:
    version: int | None
    folded: int
    rejects: list[EventReject]
    by_type: dict[str, int]
    seconds: float
    events_per_second: float
    rejects_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "folded": self.folded, "by_type": self.by_type,
                "rejects": [r.to_json() for r in self.rejects], "rejects_path": self.rejects_path,
                "seconds": round(self.seconds, 3), "events_per_second": round(self.events_per_second, 1)}


def concat(batches: list[EventBatch]) -> EventBatch:
    """One batch of several files' events (their digests kept in `digests`)."""
    merged = EventBatch(np.concatenate([b.ts for b in batches]), np.concatenate([b.kind for b in batches]),
                        [i for b in batches for i in b.ids], [q for b in batches for q in b.queries],
                        np.concatenate([b.positions for b in batches]),
                        [r for b in batches for r in b.rejects], sum(b.lines for b in batches), "")
    merged.digests = [b.digest for b in batches]
    return merged


def apply_events(index_path: str | Path, events_paths: str | Path | list, strict: bool = False,
                 force: bool = False) -> EventsReport:
    """Validate events files and fold them into the index's aggregates as one new version.

    A file already folded (same content) is refused, or skipped when several
    files come together (a watcher restarting after a crash).
    """
    import time

    from shoplens.indexers.index import IndexDirectory, pause_point
    from shoplens.indexers.products import load_products

    started = time.perf_counter()
    paths = [Path(p) for p in (events_paths if isinstance(events_paths, list) else [events_paths])]
    index = IndexDirectory(index_path)
    index.require()
    with index.lock():  # before reading the known ids: the fold commits on the version they came from
        current = index.version_path(index.current_version())
        known = set(load_products(current / "products").docno_by_id)
        batches = [read_events(path, known_ids=known) for path in paths]
        pause_point("base-read")
        return _fold_and_commit(index, paths, batches, strict, force, started)


def _fold_and_commit(index, paths: list[Path], batches: list[EventBatch], strict: bool, force: bool,
                     started: float) -> EventsReport:
    import time

    from shoplens.indexers.writer import replace_component

    rejects = [r for b in batches for r in b.rejects]
    rejects_path = None
    if rejects:
        rejects_path = Path(str(paths[0]) + ".rejects.jsonl")
        with open(rejects_path, "w", encoding="utf-8") as handle:
            for path, batch in zip(paths, batches):
                for reject in batch.rejects:
                    handle.write(json.dumps({"file": path.name, **reject.to_json()}) + "\n")
    if strict and rejects:
        raise EventsError(f"{len(rejects)} bad event line(s) in {', '.join(p.name for p in paths)} "
                          f"(first: {rejects[0].describe()}); nothing folded; see {rejects_path}")
    result: dict[str, Any] = {}

    def write(target: Path, parent: Path | None) -> None:
        stats = load(parent)
        fresh = [b for b in batches if force or b.digest not in stats.state["files"]]
        if len(fresh) < len(batches) and len(batches) == 1:
            raise EventsError(f"{paths[0].name} was already folded into this index; pass --force to count it again")
        batch = concat(fresh) if fresh else None
        if batch is None or len(batch) == 0:
            raise _NothingToFold()
        stats = fold(stats, batch)
        stats.state["files"].extend(batch.digests)
        result["stats"], result["batch"] = stats, batch
        save(stats, target)

    try:
        version = replace_component(index, "behaviour", "events", write,
                                    lambda: {"behaviour": summary(result["stats"])},
                                    change={"events": sum(len(b) for b in batches), "rejected": len(rejects),
                                            "files": [p.name for p in paths]})
    except _NothingToFold:
        return EventsReport(None, 0, rejects, {name: 0 for name in EVENT_TYPES}, time.perf_counter() - started, 0.0,
                            rejects_path)
    batch = result["batch"]
    by_type = {name: int((batch.kind == i).sum()) for i, name in enumerate(EVENT_TYPES)}
    seconds = time.perf_counter() - started
    return EventsReport(version, len(batch), rejects, by_type, seconds, len(batch) / seconds, rejects_path)


class _NothingToFold(Exception):
    pass
