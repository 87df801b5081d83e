"""Warming an engine before it serves: the shop's frequent queries, answered once with results dropped.

A store pays more for a query text it has not met yet: on a fresh Elasticsearch or OpenSearch cluster,
the first pass over unseen texts had a tail several times the second pass's (README, "Scaling out on
Elasticsearch": its cause is not found; warming with *other* texts bought only 4-10% at the first pass's
p50 and p95). A warmed text is a second-pass text, so `shoplens serve` answers the index's most frequent
queries (from its folded behaviour, or a file the shop gives) before `/ready` turns 200: a shop's head
queries then meet a warm store, and the query-embedding cache holds them. Embedded, it also reads the
index's pages before the first shopper does.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from shoplens.common.errors import ConfigError, ShopLensError
from shoplens.engine.batch import query_lines
from shoplens.engine.query import MAX_QUERY_CHARS, SearchRequest
from shoplens.indexers.snapshot import Snapshot
from shoplens.rerank import behaviour_store

WARM_UP_QUERIES = 100  # `shoplens serve`'s default: the index's most frequent queries answered before /ready
MAX_WARM_UP_QUERIES = 10_000


@dataclass
class WarmUp:
    """What a warm-up did: queries asked, those that failed (left to fail where a shopper asks them), time."""

    queries: int = 0
    failed: int = 0
    seconds: float = 0.0
    source: str = ""

    def to_dict(self) -> dict:
        return {"queries": self.queries, "failed": self.failed, "seconds": round(self.seconds, 3),
                "source": self.source}


def frequent_queries(snapshot: Snapshot, limit: int) -> list[str]:
    """The `limit` queries shown most often in the version's folded behaviour (impressions summed over
    products; ties by text), or none when the index has no behaviour."""
    if limit <= 0:
        return []
    stats = behaviour_store.load(snapshot.path / "behaviour") if (snapshot.path / "behaviour").is_dir() else None
    if stats is None or not stats.has_data:
        return []
    shown: Counter[str] = Counter()
    for query, impressions in zip(stats.query_products["query"].tolist(),
                                  stats.query_products["impressions"].tolist()):
        if query:
            shown[query] += int(impressions)
    return [query for query, _ in sorted(shown.items(), key=lambda item: (-item[1], item[0]))[:limit]]


def read_query_file(path: Path, limit: int = MAX_WARM_UP_QUERIES) -> list[str]:
    """Query texts, one a line: plain text, or a JSON object with "text" (as `bench latency` query files and
    `shoplens batch` write them) or "query". Blank lines and objects without text (photo queries) are skipped;
    anything else unreadable is a one-line error naming the line."""
    lines = query_lines(path, ConfigError, "give a UTF-8 text file, one query a line", "warm-up queries file")
    texts = [text for number, line, is_object in lines if (text := _query_text(path, number, line, is_object))]
    if not texts:
        raise ConfigError(f"warm-up queries file {path} holds no query text; write one query a line")
    return texts[:limit]


def _query_text(path: Path, number: int, line: str, is_object: bool) -> str | None:
    if not is_object:
        text = line
    else:
        try:
            value = json.loads(line)
        except ValueError:
            raise ConfigError(f"{path} line {number}: not valid JSON; write a JSON object or plain query text") from None
        text = value.get("text", value.get("query")) if isinstance(value, dict) else None
        if text is not None and not isinstance(text, str):
            raise ConfigError(f"{path} line {number}: \"text\" must be a string")
    if text and len(text) > MAX_QUERY_CHARS:
        raise ConfigError(f"{path} line {number}: a query of {len(text):,} characters; at most {MAX_QUERY_CHARS:,}")
    return text.strip() if text else None


def warm_up(engine, texts: list[str], k: int = 10, stop: Callable[[], bool] | None = None,
            progress: Callable[[int, int], None] | None = None, source: str = "") -> WarmUp:
    """Answer each text once on `engine` (results dropped). A query that fails is counted and skipped: it
    fails again, with its own message, when a shopper asks it."""
    report = WarmUp(source=source)
    started = time.perf_counter()
    for number, text in enumerate(texts, 1):
        if stop is not None and stop():
            break
        try:
            engine.search(SearchRequest(text=text, k=k))
        except ShopLensError:
            report.failed += 1
        report.queries += 1
        if progress is not None:
            progress(number, len(texts))
    report.seconds = time.perf_counter() - started
    return report
