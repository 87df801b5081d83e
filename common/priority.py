"""A writer's CPU priority: background work yields the cores to the searches served on the same machine.

A commit (`update`, `watch`) encodes, writes and compacts for seconds of CPU; a server on the same
machine answers searches in milliseconds. With both at the same priority, a commit takes a core from
requests in flight and their p99 rises while updates land (README, "Under load, and while updates land").
Raising the writer's niceness (Unix `nice`) lets the scheduler run the searches first when the cores are
busy, and costs the writer nothing when they are idle.
"""

from __future__ import annotations

import os

WATCH_NICE = 10  # `shoplens watch` runs in the background by design: its default niceness increment
MAX_NICE = 19


def lower_priority(increment: int) -> int:
    """Raise this process's niceness by `increment` (0 leaves it); returns the niceness now. Where the
    operating system has no niceness or refuses, the process keeps its priority."""
    if not hasattr(os, "nice"):  # pragma: no cover - Windows
        return 0
    if increment <= 0:
        return os.nice(0)
    try:
        return os.nice(increment)
    except OSError:  # pragma: no cover - a sandbox that forbids it
        return os.nice(0)
