"""How long-running work reports progress without knowing who is watching."""

from __future__ import annotations

from typing import Callable, Protocol

Advance = Callable[[int], None]


class Progress(Protocol):
    def stage(self, name: str, total: int | None) -> Advance:
        """Start a named stage of `total` items; returns a function to call with items done."""


class NoProgress:
    """Progress that shows nothing (library use, tests, --json)."""

    def stage(self, name: str, total: int | None) -> Advance:
        return lambda done: None
