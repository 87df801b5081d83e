"""Correcting misspelled query terms against the catalog's own vocabulary (symspellpy).

A term is corrected only when it is confidently a typo:

- the catalog never uses it, and it is not a word query understanding reads
  (price, audience and colour words: "under", "kids", "white");
- it is not a common English word (symspellpy's English frequency list): a
  small catalog lacks most of English, and "school" absent from a fashion
  sample is a real word, not a typo of "scoop";
- a catalog word used by at least MIN_SUGGESTION_COUNT products is within
  one edit (words of up to LONG_WORD letters) or two edits (longer words).

A word two edits away is also a candidate for a short word when only its vowels
or doubled letters differ (the same `skeleton`, of at least MIN_SKELETON
letters: "sandles" and "sandals", not "ryobi" and "robe"). Such a
word wins, then one with the typed word's first letter (people rarely mistype
a word's first letter), then the closer and the more used word: "sandles" is
"sandals", not the more frequent "handles" one edit away.

Numbers and short words are left alone. The rewritten query is shown to the
user, who can search the original instead (--no-spell).
"""

from __future__ import annotations

import copy
import functools
import re
import threading
from importlib import resources

from shoplens.engine.intent import AUDIENCE, COLOURS

PROTECTED = {"under", "below", "above", "over", "between", "less", "than", "upto", "within", "cheap", "budget",
             "for", "with", "and", "the", "kids", "kid", "children", "mens", "womens", "ladies", "boys", "girls",
             "men", "women", "rs", "inr", "from", "without", "size", "pack", "set", "pair", "best", "new", "sale"}
PROTECTED |= {word for words in AUDIENCE.values() for word in words} | set(COLOURS)
MIN_LENGTH = 4  # shorter terms are too ambiguous to correct
LONG_WORD = 7  # words up to this long are corrected within one edit, longer ones within two
COMMON_ENGLISH = 1_000_000  # an English word used this often (symspellpy's corpus counts) is never a typo
MIN_SUGGESTION_COUNT = 2  # a correction must be a word at least this many products use
MIN_SKELETON = 4  # a short word two edits away must share this many skeleton letters ("ryobi" is no "robe")


@functools.lru_cache(maxsize=1)
def english_counts() -> dict[str, int]:
    """symspellpy's English word frequencies (shipped in its wheel), read once."""
    text = resources.files("symspellpy").joinpath("frequency_dictionary_en_82_765.txt").read_text(encoding="utf-8")
    counts = {}
    for line in text.splitlines():
        word, _, count = line.partition(" ")
        if count.strip().isdigit():
            counts[word] = int(count)
    return counts


def is_common_english(word: str) -> bool:
    """Whether a lower-cased word is a common English word (so not a typo, even when a catalog lacks it)."""
    return english_counts().get(word, 0) >= COMMON_ENGLISH


_VOWELS = re.compile(r"[aeiouy]")
_REPEATS = re.compile(r"(.)\1+")


def skeleton(word: str) -> str:
    """A word's first letter and its later consonants, doubled letters once: "sandles" and "sandals" are both
    "sndls", "addidas" and "adidas" "ads". Vowels and doubled letters are what people misspell most."""
    return _REPEATS.sub(r"\1", word[:1] + _VOWELS.sub("", word[1:]))


_TOKEN = re.compile(r"[A-Za-z][A-Za-z'\-]*|[^A-Za-z]+")


class SpellCorrector:
    """Corrects unknown query words to the nearest frequent catalog word."""

    def __init__(self, vocabulary: dict[str, int], max_edit: int = 2):
        self.vocabulary = vocabulary
        self.max_edit = max_edit
        self._symspell = None
        self._lock = threading.Lock()

    def prepare(self):
        """Build the symspell dictionary and read the English list (a second or so on a large catalog).

        Done on the first query with a word the catalog does not know, so a one-shot search whose words
        are all known never pays it; a long-running server calls it ahead, off the query path."""
        with self._lock:
            if self._symspell is None:
                from symspellpy import SymSpell

                symspell = SymSpell(max_dictionary_edit_distance=self.max_edit, prefix_length=7)
                for word, count in self.vocabulary.items():
                    if len(word) >= 2:
                        symspell.create_dictionary_entry(word, int(count))
                english_counts()
                self._symspell = symspell
        return self._symspell

    def for_vocabulary(self, vocabulary: dict[str, int]) -> "SpellCorrector":
        """A corrector for another vocabulary (a newer version's). When this one is built (`prepare`) and the
        other holds the same words with other counts (price or stock updates), the new one shares this one's
        symspell deletes, which are what building costs (seconds on a large catalog), and takes the new
        counts; otherwise it is a new corrector, built on first use."""
        words = {word: int(count) for word, count in vocabulary.items() if len(word) >= 2 and int(count) > 0}
        twin = SpellCorrector(vocabulary, self.max_edit)
        built = self._symspell
        current = getattr(built, "_words", None)
        if isinstance(current, dict) and words.keys() == current.keys():
            symspell = copy.copy(built)  # the deletes, shared: read-only once built
            symspell._words = words
            twin._symspell = symspell
        return twin

    def correct_word(self, word: str) -> str | None:
        """The catalog word to use instead, or None to keep the word as typed."""
        from symspellpy import Verbosity

        lowered = word.lower()
        if len(lowered) < MIN_LENGTH or lowered in PROTECTED or lowered in self.vocabulary:
            return None
        plain = lowered.replace("-", "").replace("'", "")
        if plain in self.vocabulary or (lowered.endswith("s") and lowered[:-1] in self.vocabulary):
            return None
        if is_common_english(lowered) or is_common_english(plain):
            return None
        edit = 1 if len(lowered) <= LONG_WORD else self.max_edit
        shape = skeleton(lowered)
        suggestions = [s for s in self.prepare().lookup(lowered, Verbosity.ALL, max_edit_distance=self.max_edit)
                       if s.count >= MIN_SUGGESTION_COUNT and (s.distance <= edit or (
                           len(shape) >= MIN_SKELETON and skeleton(s.term) == shape))]
        if not suggestions:
            return None
        best = max(suggestions, key=lambda s: (skeleton(s.term) == shape, s.term[:1] == lowered[:1],
                                               -s.distance, s.count))
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
