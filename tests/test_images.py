"""images.py: every format and policy of load_image, and its errors."""

from __future__ import annotations

import io
import os
import re
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from perceptual_sim.images import ImageError, decode_image, image_size, load_image

H, W = 24, 32  # not square, so that a transposition shows


@pytest.fixture(scope="module")
def rgb() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def smooth() -> np.ndarray:
    """A gradient image: lossy codecs keep it within a few levels."""
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([x * 255 // (W - 1), y * 255 // (H - 1), np.full_like(x, 128)], -1).astype(np.uint8)


def _as_hwc(t: torch.Tensor) -> np.ndarray:
    assert t.dtype == torch.float32 and t.shape[0] == 3
    return t.permute(1, 2, 0).numpy()


@pytest.mark.parametrize("ext, options", [("png", {}), ("bmp", {}), ("tif", {}), ("webp", {"lossless": True})])
def test_lossless_formats_are_exact(tmp_path, rgb, ext, options):
    path = tmp_path / f"img.{ext}"
    Image.fromarray(rgb).save(path, **options)
    img = decode_image(path)
    assert img.mode == "RGB" and not img.grey
    np.testing.assert_array_equal(_as_hwc(img.pixels), rgb.astype(np.float32) / 255)
    assert image_size(path) == (H, W)


def test_jpeg(tmp_path, smooth):
    path = tmp_path / "img.jpg"
    Image.fromarray(smooth).save(path, quality=95)
    out = _as_hwc(load_image(path))
    assert out.shape == (H, W, 3) and 0 <= out.min() and out.max() <= 1
    assert np.abs(out - smooth / 255).mean() < 0.02


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16bit_grey_keeps_its_precision(tmp_path, ext):
    values = np.arange(H * W, dtype=np.uint16).reshape(H, W) * 80 + 1  # not multiples of 257
    path = tmp_path / f"g16.{ext}"
    Image.fromarray(values).save(path)
    img = decode_image(path)
    assert img.mode.startswith("I;16") and img.grey
    expected = values.astype(np.float32) / 65535
    for c in range(3):
        np.testing.assert_allclose(img.pixels[c].numpy(), expected, rtol=0, atol=1e-7)


def _chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk with its CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png16(path: Path, pixels: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one)."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[i].astype(">u2").tobytes() for i in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw))
                     + _chunk(b"IEND", b""))


def test_16bit_colour_is_read_to_within_one_8bit_step(tmp_path):
    values = np.random.default_rng(1).integers(0, 65536, (H, W, 3), dtype=np.uint16)
    _png16(tmp_path / "c16.png", values)
    out = _as_hwc(load_image(tmp_path / "c16.png"))
    assert np.abs(out - values / 65535).max() < 1 / 255


def test_32bit_images(tmp_path):
    Image.fromarray(np.full((H, W), 0.25, np.float32)).save(tmp_path / "f.tif")
    assert torch.equal(load_image(tmp_path / "f.tif"), torch.full((3, H, W), 0.25))
    Image.fromarray(np.full((H, W), 2.0, np.float32)).save(tmp_path / "f2.tif")
    with pytest.raises(ImageError, match=r"f2\.tif: floating-point image with values outside \[0, 1\]"):
        load_image(tmp_path / "f2.tif")
    Image.fromarray(np.full((H, W), 70000, np.int32)).save(tmp_path / "i.tif")
    with pytest.raises(ImageError, match="only 8- and 16-bit"):
        load_image(tmp_path / "i.tif")


@pytest.mark.parametrize("mode", ["L", "1"])
def test_grey_is_replicated(tmp_path, rgb, mode):
    im = Image.fromarray(rgb).convert(mode)
    im.save(tmp_path / "g.png")
    img = decode_image(tmp_path / "g.png")
    assert img.grey and img.pixels.shape == (3, H, W)
    expected = np.asarray(im.convert("L"), np.float32) / 255
    for c in range(3):
        np.testing.assert_array_equal(img.pixels[c].numpy(), expected)


def test_palette_becomes_rgb(tmp_path, rgb):
    im = Image.fromarray(rgb).quantize(16)
    im.save(tmp_path / "p.png")
    img = decode_image(tmp_path / "p.png")
    assert img.mode == "P" and not img.grey
    np.testing.assert_array_equal(_as_hwc(img.pixels), np.asarray(im.convert("RGB"), np.float32) / 255)


def test_alpha_is_composited_over_white(tmp_path):
    pixels = np.zeros((H, W, 4), np.uint8)
    pixels[..., 0] = 200  # red 200, green 0, blue 0
    pixels[:, : W // 2, 3] = 0  # left half transparent
    pixels[:, W // 2 :, 3] = 255  # right half opaque
    pixels[0, 0, 3] = 128
    Image.fromarray(pixels, "RGBA").save(tmp_path / "a.png")
    out = _as_hwc(load_image(tmp_path / "a.png"))
    np.testing.assert_array_equal(out[1, 1], [1, 1, 1])
    np.testing.assert_allclose(out[1, -1], [200 / 255, 0, 0], atol=1e-7)
    a = 128 / 255
    np.testing.assert_allclose(out[0, 0], [200 / 255 * a + 1 - a, 1 - a, 1 - a], atol=1e-6)


def test_grey_alpha_and_palette_transparency(tmp_path):
    Image.new("LA", (W, H), (100, 0)).save(tmp_path / "la.png")
    img = decode_image(tmp_path / "la.png")
    assert img.grey and torch.equal(img.pixels, torch.ones(3, H, W))

    im = Image.new("P", (W, H), 1)
    im.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    im.putpixel((0, 0), 0)
    im.save(tmp_path / "pt.png", transparency=0)
    out = _as_hwc(load_image(tmp_path / "pt.png"))
    np.testing.assert_array_equal(out[0, 0], [1, 1, 1])  # the transparent index
    np.testing.assert_allclose(out[1, 1], np.array([10, 20, 30]) / 255, atol=1e-7)


def test_cmyk_jpeg_becomes_rgb(tmp_path, smooth):
    Image.fromarray(smooth).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    img = decode_image(tmp_path / "c.jpg")
    assert img.mode == "CMYK"
    assert np.abs(_as_hwc(img.pixels) - smooth / 255).mean() < 0.03


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((H, W, 3), np.uint8)
    pixels[:8, :8] = (255, 0, 0)  # red block at the stored top-left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rot.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    out = _as_hwc(load_image(path))
    assert out.shape == (W, H, 3)
    assert image_size(path) == (W, H)
    assert out[:8, -8:, 0].mean() > 0.9 and out[:8, -8:, 1].mean() < 0.1  # now at the top-right
    assert out[:8, :8, 0].mean() < 0.1


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_truncated_file_is_an_error(tmp_path, ext):
    path = tmp_path / f"t.{ext}"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert image_size(path) == (64, 96)  # the header is intact ...
    with pytest.raises(ImageError, match=rf"t\.{ext}: truncated or corrupt image data"):  # ... the pixels are not
        load_image(path)
    path.write_bytes(data[:40])
    with pytest.raises(ImageError, match=rf"t\.{ext}: (truncated or corrupt|not an image)"):
        load_image(path)


@pytest.mark.parametrize(
    "content, message",
    [
        (bytes(np.random.default_rng(2).integers(0, 256, 500, dtype=np.uint8)), "not an image"),
        (b"", r"empty file \(0 bytes\)"),
        (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 0, 4, 8, 2, 0, 0, 0)), "zero width or height"),
    ],
    ids=["random-bytes", "empty", "zero-size"],
)
def test_unreadable_files(tmp_path, content, message):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message) as info:
        load_image(path)
    assert str(path) in str(info.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="nope.png: no such file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_too_many_pixels(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "big.png")
    limit = H * W - 1
    for read in (load_image, image_size):
        message = rf"big\.png: 32 x 24 = 768 pixels, more than the limit of {limit}.*max_pixels"
        with pytest.raises(ImageError, match=message):
            read(tmp_path / "big.png", max_pixels=limit)
    assert load_image(tmp_path / "big.png", max_pixels=H * W).shape == (3, H, W)
    with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
        load_image(tmp_path / "big.png", max_pixels=0)


EPS = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\n"
       b"newpath 0 0 moveto 16 16 lineto stroke\nshowpage\n%%EOF\n")  # hand-written: no Ghostscript needed
_spawned: list[str] = []
sys.addaudithook(lambda event, args: _spawned.append(event) if event in ("subprocess.Popen", "os.system") else None)


def _saved(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["EPS", "GIF", "ICO", "PPM"])
def test_only_the_listed_formats_are_decoded_whatever_the_name(tmp_path, fmt):
    path = tmp_path / "photo.png"
    path.write_bytes(EPS if fmt == "EPS" else _saved(fmt))
    with Image.open(path) as im:
        assert im.format == fmt  # Pillow on its own picks this decoder from the content (Ghostscript for EPS)
    _spawned.clear()
    for read in (load_image, image_size):
        with pytest.raises(ImageError, match=re.escape(f"{path}: not an image in a format decoded here (PNG, JPEG, "
                                                       "WebP, BMP or TIFF; others such as GIF or PostScript are "
                                                       "refused whatever the file's name)")):
            read(path)
    assert _spawned == [], "a decoder started a process"
    assert decode_image(_write(tmp_path / "real.png", _saved("PNG"))).pixels.shape == (3, 16, 16)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_fifo_is_not_read(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # opening it would wait for a writer forever
    for read in (load_image, image_size):
        with pytest.raises(ImageError, match=re.escape(f"{fifo}: not a regular file (a FIFO, device or socket)")):
            read(fifo)
