"""The image guard: regular files only, a byte cap, a pixel cap read from the header, streaming hashes."""

import hashlib
import os

import pytest

from shoplens.common.errors import ImageError
from shoplens.indexers.images import MAX_ASPECT, MAX_IMAGE_PIXELS, MIN_SIDE, file_digest, open_image
from shoplens.indexers.writer import image_digest
from tests.fuzzing import png_header
from tests.helpers import SAMPLE, bounded

PHOTO = SAMPLE.parent / "images" / "1528.jpg"


def test_a_photo_opens_and_hashes_like_its_bytes():
    assert open_image(PHOTO).mode == "RGB"
    assert file_digest(PHOTO) == hashlib.sha1(PHOTO.read_bytes()).hexdigest()


@pytest.mark.parametrize("size", [(15000, 15000), (10000, 10000), (7000, 7000)])
def test_too_many_pixels_is_refused_before_decoding(tmp_path, size):
    assert size[0] * size[1] > MAX_IMAGE_PIXELS
    path = png_header(tmp_path / "big.png", *size)
    with pytest.raises(ImageError, match="pixels"):
        open_image(path)


def test_pipes_devices_and_directories_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero", tmp_path):
        with bounded(10):
            with pytest.raises(ImageError, match="not a regular file"):
                open_image(path)
            digest, problem = image_digest(str(path))
        assert digest is None and "not a regular file" in problem


def test_not_an_image_is_an_image_error(tmp_path):
    path = tmp_path / "x.jpg"
    path.write_text("hello")
    with pytest.raises(ImageError, match="not an image"):
        open_image(path)


@pytest.mark.parametrize("size", [(20000, 1), (1, 300), (5000, 49)])
def test_a_strip_is_refused_before_decoding(tmp_path, size):
    """A 20000x1 image passed every check, then the encoders' resize to 224 px made it 0 pixels high: a
    ValueError traceback from `search --image`, and from `index`, whose whole run failed on one product's
    photo. A side more than MAX_ASPECT times the other is now an ImageError, read from the header."""
    from PIL import Image

    path = tmp_path / "strip.png"
    Image.new("RGB", size, (200, 30, 30)).save(path)
    with pytest.raises(ImageError, match=r"a strip rather than a photo .* crop it"):
        open_image(path)
    Image.new("RGB", (MAX_ASPECT * MIN_SIDE, MIN_SIDE)).save(path)  # at the limits: opens
    assert open_image(path).size == (MAX_ASPECT * MIN_SIDE, MIN_SIDE)


@pytest.mark.parametrize("size", [(1, 1), (15, 400), (8, 8)])
def test_an_image_too_small_to_show_a_product_is_refused(tmp_path, size):
    """A 1x1 spacer (a shop's placeholder for a product without a photo) was encoded like a photo: every
    placeholder product sat at one point of the image space, and a 1x1 query photo was answered with exit 0.
    A side under MIN_SIDE pixels is now an ImageError, read from the header (the product is indexed from its text)."""
    from PIL import Image

    path = tmp_path / "spacer.gif"
    Image.new("RGB", size).save(path)
    with pytest.raises(ImageError, match=rf"is {size[0]}x{size[1]} pixels, too small to show a product .* at least "
                                         f"{MIN_SIDE} pixels on each side"):
        open_image(path)
    Image.new("RGB", (MIN_SIDE, MIN_SIDE)).save(path)
    assert open_image(path).size == (MIN_SIDE, MIN_SIDE)


HEIC = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 200
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"/>'


@pytest.mark.parametrize("data, kind", [(HEIC, "a HEIC/HEIF photo (an iPhone's default format)"),
                                        (SVG, "an SVG drawing")])
def test_a_heic_photo_or_an_svg_says_what_it_is(tmp_path, data, kind):
    """An iPhone's HEIC photo was "not an image PIL can read" / "not an image (unreadable as JPEG, PNG, WebP...)",
    which reads as a damaged file; the format is now named, with what to save it as."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(data)
    with pytest.raises(ImageError, match=rf"is {kind.replace('(', '[(]').replace(')', '[)]')}, which ShopLens "
                                         "cannot read; save it as JPEG or PNG"):
        open_image(path)
    path.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 100)  # an MP4 is still just not an image
    with pytest.raises(ImageError, match="is not an image PIL can read"):
        open_image(path)
