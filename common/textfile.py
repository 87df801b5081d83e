"""Reading a user's text file line by line, with every way it can be unreadable as one error class.

Queries files, judgments, id lists and the like enter through here: a line that is not UTF-8, a
damaged .gz or an I/O error is the caller's `ShopLensError` subclass with a one-line message
naming the file and line, never a UnicodeDecodeError traceback.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Iterator

from shoplens.common.errors import ShopLensError


def text_lines(path: str | Path, error: type[ShopLensError], hint: str = "save the file as UTF-8"
               ) -> Iterator[tuple[int, str]]:
    """(number, text) of every line, numbered from 1; a UTF-8 byte-order mark on line 1 is dropped."""
    path = Path(path)
    number = 0
    try:
        with (gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")) as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
                except UnicodeDecodeError:
                    raise error(f"{path.name} line {number} is not UTF-8 text; {hint}") from None
    except (EOFError, zlib.error, OSError) as exc:
        raise error(f"cannot read {path.name} after line {number}: {exc}") from None
