"""Small file-system primitives that make writes atomic and durable."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (renames, new files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory below root (used once per commit)."""
    for directory, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(directory))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so readers see the old or the new file, never a mix."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8"))


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def link_or_copy(source: Path, target: Path) -> None:
    """Share an immutable file with another version: a hard link, or a copy where links fail."""
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def link_tree(source: Path, target: Path, copy_names: tuple[str, ...] = ()) -> None:
    """Hard-link every file of `source` into `target`; files named in copy_names are copied.

    Copies are for files a library may rewrite in place; everything else must be
    write-once for sharing to be safe.
    """
    target.mkdir(parents=True, exist_ok=True)
    for entry in source.iterdir():
        if entry.is_dir():
            link_tree(entry, target / entry.name, copy_names)
        elif entry.name in copy_names:
            shutil.copy2(entry, target / entry.name)
        else:
            link_or_copy(entry, target / entry.name)


def directory_size(path: Path) -> int:
    """Bytes used by the files below path (hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, _, files in os.walk(path):
        for name in files:
            stat = os.stat(os.path.join(directory, name))
            key = (stat.st_dev, stat.st_ino)
            if key not in seen:
                seen.add(key)
                total += stat.st_size
    return total


def file_identity(path: Path) -> tuple[int, ...] | None:
    """(device, inode, size, mtime) of a file, None when it does not exist: a cache key for derived data
    that changes when the file is replaced or rewritten."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def trim_files(directory: Path, keep: int, pattern: str = "*.json") -> None:
    """Delete all but the `keep` newest files of a cache folder that match `pattern`."""
    files = sorted(directory.glob(pattern), key=lambda p: p.stat().st_mtime_ns, reverse=True)
    for stale in files[keep:]:
        stale.unlink(missing_ok=True)
