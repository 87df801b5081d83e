"""Behaviour events in: parse and validate events files.

Events arrive as JSONL (also .gz), one object a line::

    {"ts": 1760000000.5, "type": "click", "id": "1163", "query": "blue shirt", "position": 3}

`ts` is unix seconds (or an ISO-8601 string), `type` one of impression,
click, cart, order; `query` and `position` are optional. A search with a photo
names it in an optional `image` (the photo's path or any text that identifies
it): such an event counts for its product (impressions, clicks, popularity)
but is kept out of the per-query tables, which are keyed by query text and
would otherwise mix what a photo search showed into the text query's history.
Bad lines are reported with their line numbers, like a bad catalog. The same reader guards
`shoplens events`, `watch` and the HTTP API's `POST /events`.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import json
import math
import re
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shoplens.common.errors import EventsError
from shoplens.common.jsontext import loads_line

EVENT_TYPES = ("impression", "click", "cart", "order")
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


def _ts_reason(value: Any, now: float) -> str:
    """Why a ts was refused; one in milliseconds or microseconds since 1970 (JavaScript's Date.now(), many
    loggers) says so, with the seconds to send, instead of only "between 1970 and one day from now"."""
    for unit, scale in (("milliseconds", 1e3), ("microseconds", 1e6)):
        try:
            seconds = float(value) / scale if not isinstance(value, bool) else None
            if seconds is not None and 1e8 < seconds <= now + MAX_FUTURE_SECONDS:
                return f"ts {_short(value)} looks like {unit} since 1970; send unix seconds ({seconds:.3f})"
        except (TypeError, ValueError, OverflowError):
            break
    return f"ts must be unix seconds or an ISO-8601 time between 1970 and one day from now, got {_short(value)}"


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
        raise ValueError(_ts_reason(event.get("ts"), now)) from None
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
                text = raw[3:].strip() if number == 1 and raw.startswith(b"\xef\xbb\xbf") else raw.strip()  # a BOM
                if not text:
                    continue
                try:
                    event = loads(text)
                    if not isinstance(event, dict):
                        raise ValueError("expected a JSON object")
                    if len(KEY_COLON.findall(text)) > len(event):  # perhaps a key given twice: orjson keeps the last
                        loads_line(text.decode("utf-8"))  # the strict parse says which key
                    rows.append(_check_event(event, kind_index, known_ids, now))
                except (ValueError, RecursionError) as exc:  # orjson's JSONDecodeError is a ValueError
                    reason = str(exc) if not isinstance(exc, RecursionError) else "nested too deeply"
                    if type(exc).__name__ == "JSONDecodeError":
                        reason = f"invalid JSON: {exc}" if _utf8(text) else "not UTF-8 text (save the file as UTF-8)"
                    rejects.append(EventReject(number, reason, text.decode("utf-8", "replace")))
    except (EOFError, zlib.error, OSError) as exc:
        raise EventsError(f"{path.name} ends early or is damaged after line {lines} ({exc}); nothing folded; "
                          "fix or re-create the file") from None
    ts, kinds, ids, queries, positions = (list(column) for column in zip(*rows)) if rows else ([], [], [], [], [])
    return EventBatch(np.asarray(ts, dtype=np.float64), np.asarray(kinds, dtype=np.int8), ids, queries,
                      np.asarray(positions, dtype=np.int32), rejects, lines, digest.hexdigest())


def _utf8(text: bytes) -> bool:
    """Whether a line is UTF-8 (orjson calls a Latin-1 or UTF-16 line "surrogates not allowed")."""
    try:
        text.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


KEY_COLON = re.compile(rb'"\s*:')  # at least one per key of a JSON object (more where a string holds one)


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _json_loads():
    try:
        import orjson

        return orjson.loads
    except ImportError:  # pragma: no cover - orjson is a dependency
        return json.loads


def concat(batches: list[EventBatch]) -> EventBatch:
    """One batch of several files' events (their digests kept in `digests`)."""
    merged = EventBatch(np.concatenate([b.ts for b in batches]), np.concatenate([b.kind for b in batches]),
                        [i for b in batches for i in b.ids], [q for b in batches for q in b.queries],
                        np.concatenate([b.positions for b in batches]),
                        [r for b in batches for r in b.rejects], sum(b.lines for b in batches), "")
    merged.digests = [b.digest for b in batches]
    return merged
