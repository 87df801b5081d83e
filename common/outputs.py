"""Files a command writes for the user (--save reports, --out results and heads, --plot pictures), checked
where the option enters and written whole or not at all.

`check_output_file` runs before any work, so a folder, a device, a parent that is a file or a place that
cannot be written is a one-line error at once rather than a traceback after minutes of benchmarking or
training; `atomic_output` writes beside the target and renames it into place, so a failure (a full disk)
leaves the old file or nothing, never half a report.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from shoplens.common.errors import ConfigError


def check_output_file(path: Path, option: str = "") -> None:
    """A one-line ConfigError unless `path` can be written as a regular file (missing folders count as
    writable where they could be made; `atomic_output` makes them); the message starts with `option` and the path."""
    option = f"{option} {path}".strip()
    if path.is_dir():
        raise ConfigError(f"{option} is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{option} is not a regular file (a pipe or a device?); give a file name")
    problem = unwritable_folder(path.absolute().parent)
    if problem:
        raise ConfigError(f"{option}: {problem}; give a path in a writable folder")


def check_output_folder(path: Path, option: str = "") -> None:
    """A one-line ConfigError unless `path` is a folder files can be written in, or one that can be made."""
    option = f"{option} {path}".strip()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} is a file; give a folder")
    problem = unwritable_folder(path.absolute())
    if problem:
        raise ConfigError(f"{option}: {problem}; give a folder that can be written")


def unwritable_folder(folder: Path) -> str | None:
    """Why files cannot be made in `folder` (or in the folders it would be made in, when it is missing),
    or None when they can: tried for real, so a read-only mount or /proc answers as it would later."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return f"{folder} is a file, not a folder"
    try:
        handle, probe = tempfile.mkstemp(prefix=".shoplens-probe-", dir=folder)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        return f"cannot write in {folder} ({exc.strerror or exc})"
    return None


@contextmanager
def atomic_output(path: Path, mode: str = "w") -> Iterator[IO]:
    """A handle on a temporary file beside `path`, renamed onto it when the block ends without an error
    (and removed when it does not); an OSError on the way is a one-line ConfigError."""
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as stream:
            yield stream
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise ConfigError(f"cannot write {path} ({exc.strerror or exc}); give a path in a writable folder") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
