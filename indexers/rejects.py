"""The one place rejected input goes: `<index>.rejects.jsonl`, beside the index directory.

Every command that reads input into an index (`index`, `update`, `delete`,
`events`, and `watch` for each of these) appends each row or line it rejects
there, one JSON object a line, saying when, what kind of input, which file and
which line::

    {"at": "2026-11-24T05:40:00Z", "kind": "update", "source": "delta.jsonl", "line": 3,
     "id": "17", "reason": "missing title", "raw": "{\\"id\\": \\"17\\"}"}

`kind` is one of `catalog` (index), `update`, `delete` or `events`. The file
only grows: delete it (or move it away) once its rows are dealt with.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Protocol, Sequence

from shoplens.common.errors import ConfigError

REJECT_KINDS = ("catalog", "update", "delete", "events")


class Rejected(Protocol):
    """A rejected row or line: catalog `Reject`s and behaviour `EventReject`s both are."""

    def to_json(self) -> dict[str, Any]: ...


def rejects_path(index_path: str | Path) -> Path:
    """`<index>.rejects.jsonl`, beside the index directory."""
    return Path(str(index_path).rstrip("/") + ".rejects.jsonl")


def record_rejects(index_path: str | Path, kind: str, source: str, rejects: Sequence[Rejected]) -> Path:
    """Append rejects to the index's rejects file (one write, so a concurrent writer's lines never interleave
    inside ours); a reject that names its own source file keeps it. Returns the file's path."""
    if kind not in REJECT_KINDS:
        raise ValueError(f"unknown reject kind {kind!r}")
    path = rejects_path(index_path)
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    lines = "".join(json.dumps({"at": at, "kind": kind, "source": source, **reject.to_json()}, ensure_ascii=False,
                               default=str) + "\n" for reject in rejects)
    if lines:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)  # a first build into a folder that does not exist yet
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:  # a PermissionError traceback after the rows were read, the commit not yet made
            raise ConfigError(f"cannot write the rejects file {path} ({exc.strerror or exc}); rejected rows are "
                              f"kept there, beside the index: make {Path(os.path.abspath(path)).parent} writable for this user (or move "
                              "the index to a folder that is); nothing was changed") from None
        try:
            data = lines.encode("utf-8")
            while data:
                data = data[os.write(descriptor, data):]
        finally:
            os.close(descriptor)
    return path
