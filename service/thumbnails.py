"""Product thumbnails for the workbench: JPEGs scaled down once and kept in a small cache, and a
generated placeholder (a grey square with a picture outline, PNG) for products without a readable photo."""

from __future__ import annotations

import io
import os
from functools import lru_cache

from shoplens.indexers.images import within_limits

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
    try:
        with within_limits(path, path) as image:
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale
            picture = image.convert("RGB")
    except (OSError, ValueError, SyntaxError):  # ImageError (over the pixel limit) is a ValueError
        return None
    picture.thumbnail((size, size))
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=82, optimize=True)
    return buffer.getvalue()


PLACEHOLDER_HEADER = "X-ShopLens-Placeholder"  # on a placeholder: why ("no-image" or "unreadable-image")


@lru_cache(maxsize=len(THUMBNAIL_SIZES))
def placeholder_png(size: int) -> bytes:
    """A size x size PNG for a product without a photo: light grey, a framed landscape outline in the middle."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (size, size), (241, 243, 245))
    draw = ImageDraw.Draw(picture)
    ink, line = (176, 182, 190), max(1, size // 64)
    left, top, right, bottom = size * 0.3, size * 0.34, size * 0.7, size * 0.66
    draw.rectangle((left, top, right, bottom), outline=ink, width=line)
    sun = size * 0.035
    draw.ellipse((size * 0.58 - sun, size * 0.42 - sun, size * 0.58 + sun, size * 0.42 + sun), fill=ink)
    draw.polygon([(left + line, bottom - line), (size * 0.44, size * 0.47), (size * 0.53, size * 0.57),
                  (size * 0.58, size * 0.52), (right - line, bottom - line)], fill=ink)
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()
