"""Inputs found by benchmarks/fuzz_images.py (minimised): each once escaped load_image as a bare ValueError.
PPM and SGI files are now refused before any decoder sees them."""

from __future__ import annotations

import re

import pytest

from perceptual_sim.images import ImageError, image_size, load_image

pytestmark = pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")

FOUND = {
    "png-truncated-ihdr": b"\x89PNG\r\n\x1a\n\x00\x00\x00\tIHDR\x00\x00\n\x00\x00\x00\x0c\x08\x02",
    "ppm-eof-in-header": b"P6",
    "ppm-token-too-long": b"P6\t\xffI*X\xff\xd8\xff\xe0\x00\x10J",
    "ppm-bad-integer": b"P6\t\x02",
    "sgi-unsupported-mode": b"\x01\xda.\x01\x00\x00\x00\x00\x00\x00P\x13",
    "bigtiff-unseekable-frame": b"II+\x00\x00\x00\x00$\x05\x00\x00\x00\x01S\xa9\x80",
    "tiff-invalid-dimensions": b"II*\x00\x08\x00\x00\x00\n\x00\x00\x01\x04\x00\x01\x00\x00\x00\x05\x00\x00\x00"
                               b"\x01\x01\x05\x00\x01\x00\x00\x00\x06\x00\x00\x00",
}


REFUSED_FORMATS = {"ppm-eof-in-header", "ppm-token-too-long", "ppm-bad-integer", "sgi-unsupported-mode"}
"""Formats no longer offered to Pillow (only PNG, JPEG, WebP, BMP and TIFF are decoded)."""


@pytest.mark.parametrize("name", FOUND)
@pytest.mark.parametrize("read", [load_image, image_size])
def test_damaged_headers_raise_image_error(tmp_path, name, read):
    path = tmp_path / name
    path.write_bytes(FOUND[name])
    why = "not an image in a format decoded here" if name in REFUSED_FORMATS else "truncated or corrupt image header ("
    with pytest.raises(ImageError, match=re.escape(f"{path}: {why}")):
        read(path)
