"""Errors a user can cause.

Every error a user can fix is a `ShopLensError` whose message says what to do.
The CLI prints the message on one line and exits non-zero; it never shows a
traceback for these.
"""


class ShopLensError(Exception):
    """Base class: a user-facing error with a one-line, actionable message."""

    exit_code = 2


class CatalogError(ShopLensError):
    """The catalog (or a delta file) cannot be read or has bad rows in strict mode."""


class IndexNotFoundError(ShopLensError):
    """No index at the given location."""


class IndexLockedError(ShopLensError):
    """Another process is writing to the index."""


class ConcurrentWriteError(IndexLockedError):
    """The version a write was based on is no longer current; nothing was committed."""


class IndexCorruptError(ShopLensError):
    """An index directory is damaged or stores disagree."""


class ModelMismatchError(ShopLensError):
    """The encoder asked for differs from the one the index was built with."""


class ModelLoadError(ShopLensError):
    """An encoder model or its weights cannot be loaded."""


class QueryError(ShopLensError):
    """The query itself is unusable (empty text, missing image, bad option)."""


class FilterError(QueryError):
    """A --filter expression cannot be parsed or names an unknown field."""


class ConfigError(ShopLensError):
    """An option value or backend name is not valid."""


class RankerError(ShopLensError):
    """A reranker model cannot be trained, loaded or applied."""


class EventsError(ShopLensError):
    """A behaviour events file cannot be read, or has bad lines in strict mode."""


class JudgmentsError(ShopLensError):
    """A judgments, qrels or topics file cannot be used."""


class ImageError(ShopLensError, ValueError):
    """An image file cannot be used: not a regular file, too large, too many pixels, or not an image."""


def one_line(text: str) -> str:
    """`text` as one printable line: a newline, another control character or a lone surrogate (from an
    argument that is not UTF-8) is shown escaped, as Python writes it, so a user's value echoed in a message
    can neither break the line nor garble the terminal."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
