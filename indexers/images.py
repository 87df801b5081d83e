"""Opening image files safely: product images at index time, query photos, thumbnails.

Limits (documented in the README): only regular files are opened (never a pipe,
a device such as /dev/zero, or a directory), at most MAX_IMAGE_BYTES are read,
and an image may have at most MAX_IMAGE_PIXELS pixels and at least MIN_SIDE on
each side, checked from its header before anything is decoded (a decompression bomb is refused, not decoded).
Content hashes are computed while reading, in chunks.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import warnings
from pathlib import Path

from shoplens.common.errors import ImageError

MAX_IMAGE_BYTES = 50 * 2 ** 20  # 50 MiB
MAX_IMAGE_PIXELS = 40_000_000  # e.g. 8000 x 5000
MAX_ASPECT = 100  # longest side / shortest side; the encoders' resize to 224 px made a 1:500 strip 0 pixels high
MIN_SIDE = 16  # pixels; below it an image shows no product (a 1x1 spacer or placeholder, an icon)
CHUNK = 1 << 20


def read_image_bytes(path: str | Path) -> bytes:
    """The bytes of an image file: a regular file of at most MAX_IMAGE_BYTES, or ImageError/OSError."""
    with _open_regular(path) as handle:
        data = handle.read(MAX_IMAGE_BYTES + 1)
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageError(f"image {path} is larger than {MAX_IMAGE_BYTES // 2 ** 20} MiB")
    return data


def file_digest(path: str | Path) -> str:
    """SHA-1 of an image file's content, read in chunks (the same value as hashing its bytes at once)."""
    digest = hashlib.sha1()
    read = 0
    with _open_regular(path) as handle:
        while chunk := handle.read(CHUNK):
            read += len(chunk)
            if read > MAX_IMAGE_BYTES:
                raise ImageError(f"image {path} is larger than {MAX_IMAGE_BYTES // 2 ** 20} MiB")
            digest.update(chunk)
    return digest.hexdigest()


def not_found_reason(path: str) -> str:
    """Why a product image could not be found: an image URL is named as such (nothing is downloaded)."""
    if "://" in path:
        return "an image URL: ShopLens reads images from files and downloads nothing; give a local path"
    return "image file not found"


def open_image(path: str | Path):
    """Decode an image file as RGB within the limits; ImageError (a ValueError) or OSError otherwise."""
    from PIL import Image

    data = read_image_bytes(path)
    try:
        with within_limits(io.BytesIO(data), path) as image:
            image.load()
            return image.convert("RGB")
    except Image.UnidentifiedImageError:
        raise ImageError(f"{path} is not an image PIL can read (use JPEG, PNG or WebP)") from None
    except (SyntaxError, EOFError, MemoryError) as exc:  # PIL's errors for damaged files
        raise ImageError(f"image {path} is damaged: {exc}") from None


@contextlib.contextmanager
def within_limits(source, name: str | Path):
    """PIL's image of `source` (a path or a file object), opened from its header with nothing decoded, once its
    width x height is within MAX_IMAGE_PIXELS; ImageError when it is not. PIL's own decompression-bomb
    warning (from 89 megapixels, printed on stderr) and error become that ImageError: one message, ours.
    Every opening of a photo goes through here: products at index time, query photos, uploads, thumbnails."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(source) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise ImageError(f"image {name} has {width}x{height} pixels; the limit is "
                                     f"{MAX_IMAGE_PIXELS:,} pixels (use a smaller photo)")
                if max(width, height) > MAX_ASPECT * min(width, height):  # resized to fit, a side became 0 pixels
                    raise ImageError(f"image {name} is {width}x{height} pixels, a strip rather than a photo (one "
                                     f"side more than {MAX_ASPECT} times the other); crop it or use another photo")
                if min(width, height) < MIN_SIDE:  # a shop's 1x1 placeholder was encoded as a photo like any other
                    raise ImageError(f"image {name} is {width}x{height} pixels, too small to show a product (a "
                                     f"spacer or placeholder?); use a photo at least {MIN_SIDE} pixels on each side")
                yield image
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageError(f"image {name} has more than {MAX_IMAGE_PIXELS:,} pixels (use a smaller photo)") from None
        except Image.UnidentifiedImageError:
            kind = _known_unreadable(source)  # "not an image" sent an iPhone photo's owner looking for damage
            if kind:
                raise ImageError(f"image {name} is {kind}, which ShopLens cannot read; save it as JPEG or PNG") from None
            raise


HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")


def _known_unreadable(source) -> str | None:
    """What a file PIL cannot open is, when it is a common picture format (a path or a file object): a HEIC/HEIF
    photo (a box `ftyp` of a HEIF brand) or an SVG drawing (XML text naming <svg)."""
    try:
        if hasattr(source, "seek"):
            source.seek(0)
            head = source.read(512)
        else:
            with _open_regular(source) as handle:
                head = handle.read(512)
    except (OSError, ValueError):
        return None
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return "a HEIC/HEIF photo (an iPhone's default format)"
    if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith((b"<svg", b"<?xml")) and b"<svg" in head:
        return "an SVG drawing"
    return None


def _open_regular(path: str | Path):
    """Open for reading without blocking on a pipe, and only if it is a regular file."""
    fd = os.open(str(path), os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ImageError(f"{path} is not a regular file (a pipe, device or directory); use an image file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
