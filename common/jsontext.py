"""One line of JSON from a user's file (a catalog row, a judgment, a query, an id, an event), parsed strictly.

`json.loads` accepts an escape such as "\\ud800" that is half of a UTF-16 pair and returns a string no
file, tokenizer or UTF-8 encoder can take; such a value would pass validation and fail later with a
traceback (hashing a title, writing a rejects file, encoding a query). Every reader of user JSON lines
parses through `loads_line`, so the class is refused where it enters, with the other JSON errors.
"""

from __future__ import annotations

import json
import re
from typing import Any

SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
LONE_SURROGATE = "an unpaired \\ud800-\\udfff escape (half of a UTF-16 pair); write the character itself or a whole pair"


def loads_line(text: str) -> Any:
    """json.loads(text); a ValueError (JSONDecodeError where the JSON is broken) with a short reason otherwise:
    nesting deeper than Python can follow, text holding a lone surrogate, or a key given twice in one object."""
    try:
        value = json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if SURROGATE_ESCAPE.search(text) and has_lone_surrogate(value):
        raise ValueError(LONE_SURROGATE)
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose key appears twice ({"title": "a", "title": "b"}) is refused: json.loads would keep the
    last value and drop the first unseen."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f"key {twice[:60]!r} appears twice in one object; keep one")
    return value


def has_lone_surrogate(value: Any) -> bool:
    """Whether any string in a parsed JSON value (keys too) holds a character from U+D800 to U+DFFF."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= char <= "\udfff" for char in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
