"""A bounded LRU cache of query embeddings, by normalized text or by photo content.

Shop query streams are heavy-headed: the same few thousand queries make up
most traffic, and encoding a query is the largest part of a search. Keys are
the text with its whitespace collapsed (the tokenizers split on whitespace, so
the embedding is the same) or a hash of the photo's pixels; values are the
vectors the encoder returned, never modified by callers. Thread-safe.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any, Callable

DEFAULT_CAPACITY = 10_000


def text_key(text: str) -> tuple[str, str]:
    return ("text", " ".join(text.split()))


def image_key(image) -> tuple[str, str]:
    """A digest of a PIL image's decoded pixels (and its size and mode)."""
    digest = hashlib.blake2b(image.tobytes(), digest_size=16)
    digest.update(f"{image.size}{image.mode}".encode())
    return ("image", digest.hexdigest())


class QueryCache:
    """Least-recently-used query vectors; `capacity` 0 turns it off."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY):
        self.capacity = max(0, int(capacity))
        self._items: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: tuple[str, str], compute: Callable[[], Any]) -> Any:
        """The cached value for key, or compute() stored under it (computed outside the lock)."""
        if self.capacity == 0:
            return compute()
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return value
            self.misses += 1
        value = compute()
        self.put(key, value)
        return value

    def contains(self, key: tuple[str, str]) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key: tuple[str, str], value: Any) -> None:
        if self.capacity == 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def grow(self, capacity: int) -> None:
        """Make room for at least `capacity` entries (offline runs that prepare all their queries first)."""
        if self.capacity:
            self.capacity = max(self.capacity, int(capacity))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
        self.reset_stats()

    def reset_stats(self) -> None:
        self.hits = self.misses = 0

    def stats(self) -> dict[str, Any]:
        lookups = self.hits + self.misses
        return {"capacity": self.capacity, "entries": len(self._items), "hits": self.hits, "misses": self.misses,
                "hit_rate": self.hits / lookups if lookups else None}
