"""Image files <-> tensors: the decoding policy of the command line, usable on its own.

:func:`load_image` gives a 3 x H x W float32 tensor in [0, 1] (:func:`pil_to_tensor` the same
for an image already opened with Pillow). The policy:

- **Formats:** PNG, JPEG, WebP, BMP and TIFF only (:data:`DECODED_FORMATS`): Pillow picks a
  decoder from the file's content, and its other decoders (PostScript through Ghostscript,
  GIF, PSD, ...) are never offered a file, whatever its name. An animated PNG or WebP gives
  its first frame; a multi-page TIFF is refused (which page is meant is not clear).
- **Whole decode:** every pixel is decoded before the tensor is returned, so a truncated
  or corrupt file is an error, never a partly grey image (Pillow's
  ``LOAD_TRUNCATED_IMAGES`` stays off). A PNG whose compressed stream ends before its last
  row (Pillow would leave the rest black) is an error too.
- **PIL images** (:func:`pil_to_tensor`, ``distance(im, ...)``) meet the same policy: one opened
  from a file must be of an allowed format (a caller-opened PostScript image is refused before
  Ghostscript could run), and its size and data are checked as a file's.
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
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import ExifTags, Image, ImageFile, ImageOps, UnidentifiedImageError

if TYPE_CHECKING:  # torch is imported where pixels become tensors, so the command line checks its inputs first
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

_OPENED_FORMATS = frozenset({*DECODED_FORMATS, "MPO"})  # MPO: JPEG's multi-picture variant, opened by its plugin
_PNG_BITS = {"1": 1, "L;2": 2, "L;4": 4, "L": 8, "I;16B": 16, "RGB": 24, "RGB;16B": 48, "P;1": 1, "P;2": 2,
             "P;4": 4, "P": 8, "LA": 16, "LA;16B": 32, "RGBA": 32, "RGBA;16B": 64}
"""Bits per pixel of each raw mode Pillow's PNG plugin decodes."""
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
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
        return DecodedImage(_decode(im, path, in_place=True), mode)


def _decode(im: Image.Image, path: Path | str, *, in_place: bool) -> Tensor:
    """Decode every pixel of ``im`` (truncated or corrupt data is an :class:`ImageError`), upright,
    as a tensor; ``in_place`` rotates ``im`` itself."""
    try:
        missing = _count_png_data(im) if im.format == "PNG" and getattr(im, "tile", None) else None
        im.load()
        if missing is not None and missing():
            raise ImageError(f"{path}: truncated image data: {missing()}")
        upright = ImageOps.exif_transpose(im, in_place=in_place) or im
        return _to_tensor(upright, path)
    except (ImageError, MemoryError):
        raise
    except Exception as exc:  # Pillow's decoders raise many types (OSError, SyntaxError, zlib.error, ...)
        raise ImageError(f"{path}: truncated or corrupt image data ({exc})") from None


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
        _check_opened(im, path, max_pixels)
        yield im


def _check_opened(im: Image.Image, path: Path | str, max_pixels: int) -> None:
    """Refuse an opened image over ``max_pixels``, or a multi-page TIFF, before its pixels are decoded."""
    w, h = im.size
    if w * h > max_pixels:
        raise ImageError(
            f"{path}: {w} x {h} = {w * h:,} pixels, more than the limit of {max_pixels:,}; "
            "if you trust the file, raise the limit (max_pixels=, or --max-pixels on the command line)"
        )
    if im.format == "TIFF" and getattr(im, "is_animated", False):
        raise ImageError(f"{path}: a multi-page TIFF; which page to compare is not clear: save that page "
                         "as a file of its own")


def _count_png_data(im: Image.Image) -> Callable[[], str]:
    """Count the bytes the PNG's compressed pixel stream inflates to while Pillow decodes it (Pillow
    stops without an error where the stream ends); returns what is missing, or ``""``."""
    _, (x0, y0, x1, y1), _, rawmode = im.tile[0]
    w, h, bits = x1 - x0, y1 - y0, _PNG_BITS.get(rawmode, 0)
    passes = _ADAM7 if im.info.get("interlace") else ((0, 0, 1, 1),)
    need = sum(-(-(h - py) // dy) * (1 + -(-(-(-(w - px) // dx) * bits) // 8))
               for px, py, dx, dy in passes if w > px and h > py)
    inflate, got, read = zlib.decompressobj(), 0, im.load_read  # type: ignore[attr-defined]

    def counting_read(size: int) -> bytes:
        nonlocal got
        data = rest = read(size)
        while rest and got < need and not inflate.eof:
            got += len(inflate.decompress(rest, 1 << 16))
            rest = inflate.unconsumed_tail
        return data

    im.load_read = counting_read  # type: ignore[attr-defined]
    return lambda: (f"its compressed pixel data ends after {got:,} of the {need:,} bytes its {w} x {h} header "
                    "needs" if bits and got < need else "")


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


def pil_to_tensor(im: Image.Image, *, max_pixels: int = MAX_PIXELS) -> Tensor:
    """A PIL image as a 3 x H x W float32 tensor in [0, 1], by :func:`load_image`'s policy: one
    opened from a file must be of a format of :data:`DECODED_FORMATS` (checked before any pixel is
    decoded), at most ``max_pixels``, its data whole; then EXIF orientation, bit depth, greyscale,
    palette, transparency over white. The caller's image is not changed (it is loaded)."""
    if not isinstance(im, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(im).__name__}")
    filename = getattr(im, "filename", "")
    name = f"the PIL image of {filename}" if filename else "the PIL image"
    if isinstance(im, ImageFile.ImageFile) and type(im).format not in _OPENED_FORMATS:
        raise ImageError(f"{name}: a {type(im).format} image; only PNG, JPEG, WebP, BMP and TIFF images are decoded "
                         "here (PostScript, for one, would run Ghostscript)")
    if 0 in im.size:
        raise ImageError(f"{name} is {im.width} x {im.height} pixels: it is empty")
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, int) or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    _check_opened(im, name, max_pixels)
    return _decode(im, name, in_place=False)


def _to_tensor(im: Image.Image, path: Path | str) -> Tensor:
    """3 x H x W float32 in [0, 1] from a decoded Pillow image (bit depth, alpha, grey policies)."""
    import torch

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


def image_files(root: Path, special: list[str] | None = None) -> tuple[dict[str, Path], list[str]]:
    """Image files under ``root``, keyed by relative POSIX path, and the folders that could not be
    read (with why); the image names that are not regular files (FIFOs, devices, sockets, links to
    nothing or to one) are never opened, and appended to ``special``. Hidden names and linked
    folders are skipped; the walk keeps its own stack, so any depth the file system allows is walked."""
    out: dict[str, Path] = {}
    unreadable: list[str] = []
    stack = [(root, "")]
    while stack:
        folder, rel = stack.pop()
        try:
            with os.scandir(folder) as entries:
                listed = list(entries)
        except OSError as exc:
            unreadable.append(f"{folder}: {exc.strerror or exc}")
            continue
        for entry in listed:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), f"{rel}{entry.name}/"))
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                    if entry.is_file():
                        out[rel + entry.name] = Path(entry.path)
                    elif not entry.is_dir() and special is not None:  # a linked folder is skipped as documented
                        special.append(entry.path)
            except OSError as exc:
                unreadable.append(f"{entry.path}: {exc.strerror or exc}")
    return out, unreadable
