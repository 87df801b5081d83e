"""Product thumbnails for the workbench: JPEGs scaled down once and kept in a small cache."""

from __future__ import annotations

import io
import os
from functools import lru_cache

THUMBNAIL_SIZES = (64, 128, 256, 512)


def thumbnail_jpeg(path: str, size: int) -> bytes | None:
    """The image at `path` fitted into size x size pixels, as JPEG bytes (None when it cannot be read)."""
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError:
        return None
    return _thumbnail(path, size, stamp)


@lru_cache(maxsize=2048)
def _thumbnail(path: str, size: int, stamp: int) -> bytes | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale
            picture = image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    picture.thumbnail((size, size))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=82, optimize=True)
    return buffer.getvalue()
