import pytest

from shoplens.rerank.events import read_events
from tests.helpers import write_events


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


def test_a_byte_order_mark_is_not_a_bad_first_line(tmp_path):
    """Like every other text file a user hands over, an events file saved with a UTF-8 BOM reads whole
    (its first event was rejected as invalid JSON, and lost without --strict)."""
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"ts": 1, "type": "click", "id": "a"}\n{"ts": 2, "type": "order", "id": "a"}\n')
    batch = read_events(path, known_ids={"a"})
    assert len(batch) == 2 and not batch.rejects


def test_a_key_given_twice_rejects_the_event_naming_the_key(tmp_path):
    """orjson keeps the last of two values for one key; the event is rejected instead (and a colon inside a
    string, which the quick count also sees, is not mistaken for a second key)."""
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"ts": 1, "type": "click", "id": "a", "id": "b"}\n'
                     b'{"ts": 2, "type": "order", "id": "a", "query": "size \\":\\" 42"}\n'
                     b'{"ts": 3, "type" : "click", "id": "a", "type": "order"}\n')
    batch = read_events(path, known_ids={"a", "b"})
    reasons = {r.line: r.reason for r in batch.rejects}
    assert sorted(reasons) == [1, 3] and len(batch) == 1 and batch.queries[0] == 'size ":" 42'
    assert "'id' appears twice" in reasons[1] and "'type' appears twice" in reasons[3]


def test_a_line_that_is_not_utf8_is_rejected_as_such(tmp_path):
    """A Latin-1 or UTF-16 events line was rejected as orjson put it, "invalid JSON: str is not valid UTF-8:
    surrogates not allowed: line 1 column 1", which says nothing a user can act on; the reason is now the
    one every other reader gives, and the good lines are kept."""
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"ts": 1, "type": "click", "id": "a", "query": "caf\xe9"}\n'
                     + '{"ts": 2, "type": "click", "id": "a"}\n'.encode("utf-16")
                     + b'\n{"ts": 3, "type": "order", "id": "a"}\n')
    batch = read_events(path, known_ids={"a"})
    reasons = {r.line: r.reason for r in batch.rejects}
    assert reasons[1] == reasons[2] == "not UTF-8 text (save the file as UTF-8)", reasons
    assert len(batch) == 1 and batch.ts.tolist() == [3.0]


def test_a_ts_in_milliseconds_or_microseconds_says_so_with_the_seconds(tmp_path):
    """JavaScript's Date.now() is milliseconds: 'ts must be unix seconds ... between 1970 and one day from now,
    got 1700000000000' left the sender to guess the unit; the reason now names it and the seconds to send."""
    path = write_events(tmp_path / "e.jsonl", [
        {"ts": 1700000000123, "type": "click", "id": "a"}, {"ts": "1700000000000000", "type": "click", "id": "a"},
        {"ts": 4102444800, "type": "click", "id": "a"}, {"ts": 1700000000, "type": "click", "id": "a"},
    ])
    batch = read_events(path, known_ids={"a"})
    reasons = [r.reason for r in batch.rejects]
    assert reasons == ["ts 1700000000123 looks like milliseconds since 1970; send unix seconds (1700000000.123)",
                       "ts '1700000000000000' looks like microseconds since 1970; send unix seconds (1700000000.000)",
                       "ts must be unix seconds or an ISO-8601 time between 1970 and one day from now, got 4102444800"]
    assert len(batch) == 1
