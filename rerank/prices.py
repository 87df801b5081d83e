"""Price limits a query states ("under 2000", "below rs 500", "between $100 and $200", "over 2k"), read once
for the whole product: query understanding (engine.intent) and the reranker's price features use this parser.

A number followed by a unit ("over 6 ft", "under 10 lbs", "60 watt") is a quantity, not a price.
"""

from __future__ import annotations

import re

# words asking for the cheap end of the price range; the reranker's `wants_cheap` feature and query understanding's
# price levels (engine.intent.PRICE_LEVELS, which adds forms of its own) read the same list
CHEAP_WORDS = ("cheap", "budget", "affordable", "inexpensive", "low price", "lowest price", "economical")
_NUMBER = r"(\d[\d,]*(?:\.\d+)?(?![\d.,]\d|\d|\s*/\s*\d)\s*k?)"  # a whole number, not a fraction's top
_CURRENCY = r"(?:rs\.?|inr|₹|\$|usd|eur|€|£)?\s*"
_UNITS = (r"(?!\s*(?:years?|yrs?|y\b|months?|cm|mm|ml|l\b|kg|g\b|gb|tb|inch|in\b|in\.|inches|\"|'|w\b|watts?|%|"
          r"pcs|pieces|pack|ft\b|feet|foot|lbs?\b|pounds?|oz\b|ounces?|gal\b|gallons?|v\b|volts?|amps?\b|"
          r"sq\b|cu\b|btu|psi|hp\b|qt\b|quarts?|x\b|ply|gauge|ga\b|mah|count|ct\b))")
_AFTER = _UNITS + r"(?:\s*(?:dollars?|bucks|euros?|rupees?|usd|eur|inr|rs\b))?"  # "under 100 dollars"
_PRICE_PATTERNS = (
    ("range", re.compile(rf"\b(?:between|from)\s+{_CURRENCY}{_NUMBER}\s*(?:and|to|-)\s*{_CURRENCY}{_NUMBER}{_AFTER}")),
    ("range", re.compile(rf"(?<![\w.]){_CURRENCY}{_NUMBER}\s*(?:-|to)\s*{_CURRENCY}{_NUMBER}{_AFTER}(?![\w.])")),
    ("max", re.compile(rf"\b(?:under|below|less than|cheaper than|upto|up to|within|max|maximum|at most|not more than)"
                       rf"\s+{_CURRENCY}{_NUMBER}{_AFTER}|<=?\s*{_CURRENCY}{_NUMBER}{_AFTER}")),
    ("min", re.compile(rf"\b(?:above|over|more than|at least|min|minimum|starting|from)\s+{_CURRENCY}{_NUMBER}{_AFTER}"
                       rf"|>=?\s*{_CURRENCY}{_NUMBER}{_AFTER}")),
)


def _number(text: str) -> float:
    text = text.replace(",", "").strip()
    if text.endswith("k"):
        return float(text[:-1].strip()) * 1000
    return float(text)


def parse_price(text: str) -> tuple[float | None, float | None, str]:
    """(floor, ceiling, text without the price phrase) of a query; (None, None, text) when it states none."""
    lowered = text.lower()
    low = high = None
    for kind, pattern in _PRICE_PATTERNS:
        match = pattern.search(lowered)
        if not match:
            continue
        numbers = [_number(g) for g in match.groups() if g]
        if kind == "range" and len(numbers) == 2:
            low, high = min(numbers), max(numbers)
        elif kind == "max" and high is None:
            high = numbers[0]
        elif kind == "min" and low is None:
            low = numbers[0]
        else:
            continue
        lowered = lowered[:match.start()] + " " + lowered[match.end():]
        text = text[:match.start()] + " " + text[match.end():]
    text = re.sub(r"\s+", " ", re.sub(r"\b(?:for|rs\.?|inr|price|priced|budget)\s*$", "", text.strip(), flags=re.I))
    return low, high, text.strip()
