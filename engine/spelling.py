"""Correcting misspelled query terms against the catalog's own vocabulary (symspellpy).

A term is corrected only when the catalog never uses it and a catalog word is
within two edits; numbers, short words and the words of price and audience
phrases ("under", "kids") are left alone. The rewritten query is shown to the
user, who can search the original instead (--no-spell).
"""

from __future__ import annotations

import re

PROTECTED = {"under", "below", "above", "over", "between", "less", "than", "upto", "within", "cheap", "budget",
             "for", "with", "and", "the", "kids", "kid", "children", "mens", "womens", "ladies", "boys", "girls",
             "men", "women", "rs", "inr", "from", "without", "size", "pack", "set", "pair", "best", "new", "sale"}
MIN_LENGTH = 4  # shorter terms are too ambiguous to correct
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'\-]*|[^A-Za-z]+")


class SpellCorrector:
    """Corrects unknown query words to the nearest frequent catalog word."""

    def __init__(self, vocabulary: dict[str, int], max_edit: int = 2):
        from symspellpy import SymSpell

        self.vocabulary = vocabulary
        self.max_edit = max_edit
        self._symspell = SymSpell(max_dictionary_edit_distance=max_edit, prefix_length=7)
        for word, count in vocabulary.items():
            if len(word) >= 2:
                self._symspell.create_dictionary_entry(word, int(count))

    def correct_word(self, word: str) -> str | None:
        """The catalog word to use instead, or None to keep the word as typed."""
        from symspellpy import Verbosity

        lowered = word.lower()
        if len(lowered) < MIN_LENGTH or lowered in PROTECTED or lowered in self.vocabulary:
            return None
        plain = lowered.replace("-", "").replace("'", "")
        if plain in self.vocabulary or (lowered.endswith("s") and lowered[:-1] in self.vocabulary):
            return None
        edit = 1 if len(lowered) <= 5 else self.max_edit
        suggestions = self._symspell.lookup(lowered, Verbosity.CLOSEST, max_edit_distance=edit)
        if not suggestions:
            return None
        best = max(suggestions, key=lambda s: (-s.distance, s.count))
        return best.term if best.term != lowered else None

    def correct(self, text: str) -> str | None:
        """The query with unknown words corrected, or None when nothing changed."""
        changed = False
        parts = []
        for token in _TOKEN.findall(text or ""):
            fixed = self.correct_word(token) if token[:1].isalpha() else None
            parts.append(fixed if fixed else token)
            changed |= fixed is not None
        return "".join(parts) if changed else None
