"""Property tests of the events reader: any file gives valid events and line-numbered rejects, or an EventsError."""

import gzip
import json
import math
import time

import numpy as np

from hypothesis import given, strategies as st

from shoplens.common.errors import EventsError
from shoplens.rerank.behaviour import BehaviourStats, fold, problems
from shoplens.rerank.events import EVENT_TYPES, MAX_FUTURE_SECONDS, read_events
from tests.helpers import bounded

field_values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10 ** 400), max_value=10 ** 400),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["nan", "inf", "1e300", "9999-12-31T23:59:59", "2026-01-01T00:00:00Z", "click", "order",
                     "a", "b", ["click"], {"x": 1}, 1e300, -1, 0, 3]),
)
events = st.fixed_dictionaries({}, optional={"ts": field_values, "type": field_values, "id": field_values,
                                             "query": field_values, "position": field_values})
garbage = st.one_of(st.binary(max_size=40), st.sampled_from([b"[", b"[1]", b"\xff", b"{" * 3000, b"null"]))


def encode(event) -> bytes:
    try:
        return json.dumps(event, allow_nan=True).encode()
    except (ValueError, OverflowError):
        return b"{"


@given(lines=st.lists(st.one_of(events.map(encode), garbage), max_size=15), compress=st.booleans())
def test_any_events_file_gives_events_and_rejects(tmp_path_factory, lines, compress):
    lines = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines]
    data = b"\n".join(lines) + b"\n"
    path = tmp_path_factory.mktemp("e") / ("e.jsonl.gz" if compress else "e.jsonl")
    path.write_bytes(gzip.compress(data) if compress else data)
    with bounded():
        batch = read_events(path, known_ids={"a", "b", "1", "3"})
    non_empty = sum(1 for line in lines if line.strip())
    assert len(batch) + len(batch.rejects) == non_empty
    assert all(1 <= r.line <= len(lines) for r in batch.rejects)
    assert all(math.isfinite(t) and 0 <= t <= time.time() + MAX_FUTURE_SECONDS for t in batch.ts)
    assert set(batch.ids) <= {"a", "b", "1", "3"} and set(batch.kind.tolist()) <= set(range(len(EVENT_TYPES)))
    stats = fold(BehaviourStats.empty(), batch)  # folding them keeps every aggregate finite
    assert problems(stats) == []


@given(cut=st.integers(min_value=1, max_value=300))
def test_damaged_gzip_events_are_an_events_error(tmp_path_factory, cut):
    path = tmp_path_factory.mktemp("g") / "e.events.jsonl.gz"
    whole = gzip.compress(b'{"ts": 1, "type": "click", "id": "a"}\n' * 100)
    path.write_bytes(whole[:cut])
    try:
        with bounded():
            read_events(path)
    except EventsError as exc:
        assert "after line" in str(exc) or "damaged" in str(exc)


def test_bad_timestamps_and_types_are_rejected_with_their_lines(tmp_path):
    path = tmp_path / "e.jsonl"
    rows = [{"ts": "nan", "type": "click", "id": "a"}, {"ts": 1e300, "type": "click", "id": "a"},
            {"ts": "9999-12-31T23:59:59", "type": "click", "id": "a"}, {"ts": 10 ** 400, "type": "click", "id": "a"},
            {"ts": 1, "type": ["click"], "id": "a"}, {"ts": 1, "type": "click", "id": "a"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    batch = read_events(path)
    assert len(batch) == 1 and [r.line for r in batch.rejects] == [1, 2, 3, 4, 5]
    assert all("ts must be" in r.reason for r in batch.rejects[:3]) and "type must be" in batch.rejects[4].reason


def test_check_finds_non_finite_aggregates():
    stats = BehaviourStats.empty()
    stats.products = {**stats.products, "id": np.array(["a"], dtype=object), "popularity": np.array([np.nan]),
                      "first_ts": np.array([1.0]), "last_ts": np.array([np.inf]),
                      **{k: np.array([1]) for k in ("impressions", "clicks", "carts", "orders")}}
    found = problems(stats)
    assert any("popularity" in p for p in found) and any("last_ts" in p for p in found)
