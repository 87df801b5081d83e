"""The catalog's own vocabulary, built at index time, for correcting misspelled query terms.

Each version's `spelling/vocabulary.json` maps the lower-cased words of
titles, brands, categories and short attribute values to how many products
use them; an update adds its products' words to the parent's counts. The
engine corrects query terms that are not in it (engine/spelling.py).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Iterable

from shoplens.indexers.catalog import Product
from shoplens.indexers.storage import atomic_write_json

VOCABULARY_FILE = "vocabulary.json"
_WORD = re.compile(r"[a-z][a-z'\-]*[a-z]|[a-z]")


def product_words(product: Product) -> set[str]:
    """Words a shopper might type for a product; hyphenated words also as one ("t-shirt" -> "tshirt")."""
    texts = [product.title, product.brand, *product.category]
    for value in product.attributes.values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and len(item) <= 40:
                texts.append(item)
    words: set[str] = set()
    for text in texts:
        for word in _WORD.findall((text or "").lower()):
            parts = [p for p in re.split(r"['\-]", word) if p]
            words.update(parts)
            if len(parts) > 1:
                words.add("".join(parts))
    return words


def write_vocabulary(target: Path, parent: Path | None, products: Iterable[Product]) -> int:
    """The parent's word counts plus these products' words; returns the vocabulary size."""
    counts: Counter = Counter()
    if parent is not None and (parent / VOCABULARY_FILE).is_file():
        counts.update(json.loads((parent / VOCABULARY_FILE).read_text()))
    for product in products:
        counts.update(product_words(product))
    target.mkdir(parents=True, exist_ok=True)
    atomic_write_json(target / VOCABULARY_FILE, dict(counts))
    return len(counts)


def read_vocabulary(directory: Path) -> dict[str, int] | None:
    path = directory / VOCABULARY_FILE
    return json.loads(path.read_text()) if path.is_file() else None
