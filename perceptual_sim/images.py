"""Image files <-> tensors: the decoding policy of the command line, usable on its own.

:func:`load_image` gives a 3 x H x W float32 tensor in [0, 1] (:func:`pil_to_tensor` the same
for an image already opened with Pillow). The policy:

- **Formats:** PNG, JPEG, WebP, BMP and TIFF only (:data:`DECODED_FORMATS`): Pillow picks a
  decoder from the file's content, and its other decoders (PostScript through Ghostscript,
  GIF, PSD, ...) are never offered a file, whatever its name. An animated or multi-page file
  gives its first frame.
- **Whole decode:** every pixel is decoded before the tensor is returned, so a truncated
  or corrupt file is an error, never a partly grey image (Pillow's
  ``LOAD_TRUNCATED_IMAGES`` stays off).
- **Orientation:** the EXIF orientation tag is applied, as image viewers do: the tensor
  is upright.
- **Bit depth:** 8-bit channels are divided by 255. 16-bit greyscale (Pillow modes
  ``I;16*`` and ``I``) keeps its precision: divided by 65535 (values outside
  [0, 65535] are an error). Pillow has no 16-bit colour mode: it reads 16-bit colour
  PNG/TIFF files as 8 bits per channel (an error below 1/255). 32-bit float greyscale
  (mode ``F``) must already lie in [0, 1].
- **Greyscale** (modes ``1``, ``L``, ``LA``, ``I;16*``, ``I``, ``F``) is replicated to 3
  channels; :attr:`DecodedImage.grey` says it was.
- **Palette** images are expanded to RGB; **CMYK** and YCbCr are converted to RGB with
  Pillow's formulas. Embedded ICC profiles are not applied: values are used as stored
  (normally sRGB).
- **Transparency** (an alpha channel, or palette / colour-key transparency) is
  composited over a white background, as a browser shows the image on a white page.
- **Size:** an image of more than ``max_pixels`` pixels (default :data:`MAX_PIXELS`) is
  refused before its pixels are decoded. A zero-size image is refused as unreadable
  (Pillow does not open one). Pillow's own
  decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) also applies.

Every problem with a file raises :class:`ImageError`, a ``ValueError`` whose message
names the file and what is wrong.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from torch import Tensor

MAX_PIXELS = 64_000_000
"""Default limit on width x height (a 64-megapixel image is 768 MB as float32 RGB)."""

DECODED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "TIFF")
"""The Pillow formats files are decoded as (JPEG includes its multi-picture variant, MPO)."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
"""File name endings treated as images when scanning folders (``dirs``, training data, proxy and
psychophysics images; compared in lower case)."""

GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
"""Pillow modes of single-channel (greyscale) images, with or without alpha."""

_WIDE_INT_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
_TRANSPOSED_ORIENTATIONS = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height


class ImageError(ValueError):
    """A file that cannot be used as an image: missing, not an image, corrupt, or too large."""


@dataclass(frozen=True)
class DecodedImage:
    """An image file decoded by :func:`decode_image`."""

    pixels: Tensor
    """3 x H x W float32 in [0, 1], upright."""
    mode: str
    """The file's Pillow mode before conversion, e.g. ``RGB``, ``L``, ``I;16``, ``RGBA``, ``P``."""

    @property
    def grey(self) -> bool:
        """Whether the file held one channel (replicated to the 3 of :attr:`pixels`)."""
        return self.mode in GREY_MODES


def load_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> Tensor:
    """An image file as a 3 x H x W float32 tensor in [0, 1] (policy: see the module docstring).

    Raises:
        ImageError: the file is missing, not an image, truncated or corrupt, of zero size,
            or larger than ``max_pixels``.
    """
    return decode_image(path, max_pixels=max_pixels).pixels


def decode_image(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> DecodedImage:
    """Like :func:`load_image`, but also tells the file's original mode (e.g. greyscale)."""
    path = Path(path)
    with _open(path, max_pixels) as im:
        mode = im.mode
        try:
            im.load()
            ImageOps.exif_transpose(im, in_place=True)
            pixels = _to_tensor(im, path)
        except (ImageError, MemoryError):
            raise
        except Exception as exc:  # Pillow's decoders raise many types (OSError, SyntaxError, ...)
            raise ImageError(f"{path}: truncated or corrupt image data ({exc})") from None
    return DecodedImage(pixels, mode)


def image_size(path: str | os.PathLike[str], *, max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(height, width) of the upright image, read from the file header without decoding pixels.

    Raises the same :class:`ImageError` as :func:`load_image` except for damage after the header.
    An EXIF orientation stored after the pixels (possible in PNG) is not seen here.
    """
    path = Path(path)
    with _open(path, max_pixels) as im:
        try:
            # The base method reads the header's EXIF only; PngImageFile.getexif would decode the pixels.
            orientation = Image.Image.getexif(im).get(ExifTags.Base.Orientation, 1)
        except Exception as exc:  # a damaged EXIF block raises whatever its parser hits
            raise ImageError(f"{path}: corrupt EXIF metadata ({exc})") from None
    w, h = im.size
    return (w, h) if orientation in _TRANSPOSED_ORIENTATIONS else (h, w)


@contextmanager
def _open(path: Path, max_pixels: int) -> Iterator[Image.Image]:
    """Open ``path`` lazily (header only) after the checks common to every reader."""
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder, not an image file")
    if not path.is_file():
        raise ImageError(f"{path}: not a regular file (a FIFO, device or socket), not an image file")
    try:
        if path.stat().st_size == 0:
            raise ImageError(f"{path}: empty file (0 bytes)")
        im = Image.open(path, formats=DECODED_FORMATS)
    except UnidentifiedImageError:
        raise ImageError(
            f"{path}: not an image in a format decoded here (PNG, JPEG, WebP, BMP or TIFF; others such as "
            "GIF or PostScript are refused whatever the file's name), or a damaged header, or zero width or height"
        ) from None
    except Image.DecompressionBombError as exc:
        raise ImageError(
            f"{path}: {exc} Pillow refuses images over twice PIL.Image.MAX_IMAGE_PIXELS; raise that "
            "(and max_pixels) only for files you trust"
        ) from None
    except OSError as exc:
        if exc.errno is not None:  # the file system's error, e.g. no permission
            raise ImageError(f"{path}: cannot read the file ({exc.strerror})") from None
        raise ImageError(f"{path}: truncated or corrupt image header ({exc})") from None
    except ImageError:
        raise
    except Exception as exc:  # format plugins raise ValueError and others on a damaged header
        raise ImageError(f"{path}: truncated or corrupt image header ({exc})") from None
    with im:
        w, h = im.size
        if w * h > max_pixels:
            raise ImageError(
                f"{path}: {w} x {h} = {w * h:,} pixels, more than the limit of {max_pixels:,}; "
                "if you trust the file, raise the limit (max_pixels=, or --max-pixels on the command line)"
            )
        yield im


def decode_square(path: str | os.PathLike[str], size: int, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An image file as RGB uint8 ``size x size x 3``: shorter side resized (bicubic), then the centre crop.

    The decoding of training data and of the proxies' images: the file checks and formats of
    :func:`load_image`, then Pillow's ``convert("RGB")`` as stored (no EXIF rotation; an alpha
    channel is dropped, not composited), as the bundled models were trained.
    """
    with _open(Path(path), max_pixels) as im:
        im = im.convert("RGB")
        if im.size != (size, size):
            s = size / min(im.size)
            im = im.resize((max(size, round(im.width * s)), max(size, round(im.height * s))), Image.BICUBIC)
            left, top = (im.width - size) // 2, (im.height - size) // 2
            im = im.crop((left, top, left + size, top + size))
        return np.asarray(im)


def pil_to_tensor(im: Image.Image) -> Tensor:
    """A PIL image as a 3 x H x W float32 tensor in [0, 1], by :func:`load_image`'s policy (EXIF
    orientation, bit depth, greyscale, palette, transparency over white)."""
    if not isinstance(im, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(im).__name__}")
    if 0 in im.size:
        raise ImageError(f"the PIL image is {im.width} x {im.height} pixels: it is empty")
    return _to_tensor(ImageOps.exif_transpose(im), "the PIL image")


def _to_tensor(im: Image.Image, path: Path | str) -> Tensor:
    """3 x H x W float32 in [0, 1] from a decoded Pillow image (bit depth, alpha, grey policies)."""
    if im.mode in _WIDE_INT_MODES:
        arr = np.asarray(im).astype(np.int64)
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 65535:
            raise ImageError(
                f"{path}: integer image with values in [{lo}, {hi}]; only 8- and 16-bit images are supported"
            )
        grey = torch.from_numpy(arr.astype(np.float32) / 65535)
    elif im.mode == "F":
        grey = torch.from_numpy(np.array(im, dtype=np.float32))
        if not torch.isfinite(grey).all() or grey.min() < 0 or grey.max() > 1:
            raise ImageError(
                f"{path}: floating-point image with values outside [0, 1] "
                f"([{float(grey.min()):.4g}, {float(grey.max()):.4g}]); convert it to 8 or 16 bits"
            )
    elif im.mode in _ALPHA_MODES or "transparency" in im.info:
        rgba = torch.from_numpy(np.array(im.convert("RGBA"), dtype=np.float32) / 255)
        alpha = rgba[..., 3:]
        rgb = rgba[..., :3] * alpha + (1 - alpha)  # over white
        return rgb.permute(2, 0, 1).contiguous()
    elif im.mode in GREY_MODES:
        grey = torch.from_numpy(np.array(im.convert("L"), dtype=np.float32) / 255)
    else:
        rgb8 = torch.from_numpy(np.array(im.convert("RGB")))
        return rgb8.permute(2, 0, 1).to(torch.float32, memory_format=torch.contiguous_format).div_(255)
    return grey.unsqueeze(0).repeat(3, 1, 1)
