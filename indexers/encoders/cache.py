"""A content-addressed embedding cache, so unchanged products are never encoded twice.

Keys combine the encoder's identity, what was encoded (text or image) and the
content's hash; values are float32 vectors. SQLite makes every write atomic,
so a killed process never leaves a half-written entry behind.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterable

import numpy as np


class EmbeddingCache:
    """Vectors by (namespace, content hash), stored in one SQLite file."""

    def __init__(self, path: Path | None):
        self.path = path
        self.hits = 0
        self.misses = 0
        if path is None:
            self._db = None
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")

    @staticmethod
    def key(namespace: str, digest: str) -> str:
        return f"{namespace}|{digest}"

    def get_many(self, namespace: str, digests: Iterable[str]) -> dict[str, np.ndarray]:
        """Cached vectors for the digests that have one."""
        digests = list(dict.fromkeys(digests))
        found: dict[str, np.ndarray] = {}
        if self._db is not None:
            for start in range(0, len(digests), 500):
                chunk = digests[start:start + 500]
                keys = [self.key(namespace, d) for d in chunk]
                rows = self._db.execute(
                    f"SELECT key, vector FROM vectors WHERE key IN ({','.join('?' * len(keys))})", keys
                ).fetchall()
                for key, blob in rows:
                    found[key[len(namespace) + 1:]] = np.frombuffer(blob, dtype=np.float32)
        self.hits += len(found)
        self.misses += len(digests) - len(found)
        return found

    def put_many(self, namespace: str, items: Iterable[tuple[str, np.ndarray]]) -> None:
        if self._db is None:
            return
        rows = [(self.key(namespace, digest), np.asarray(vector, dtype=np.float32).tobytes()) for digest, vector in items]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors (key, vector) VALUES (?, ?)", rows)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
