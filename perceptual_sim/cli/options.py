"""What the commands share: their options and argument types, and how notes and errors are printed.

Imports nothing heavy: ``--help`` and ``list`` run without torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..files import STDOUT, quiet
from ..models.archs import MODES
from ..models.registry import DEFAULT_MODEL

if TYPE_CHECKING:
    import torch

    from ..metric import PerceptualDistance


class UsageError(Exception):
    """A bad argument or combination of arguments, found before any work (exit code 2)."""


# ----------------------------------------------------------------------------- printing
def error(message: str, code: int, *, every_rank: bool = True) -> int:
    """Print ``error: message``; under torchrun other ranks than 0 name themselves, or stay quiet. Returns ``code``."""
    from .. import distributed

    if not distributed.is_main():
        if not every_rank:
            return code
        message = f"rank {distributed.rank()}: {message}"
    print(f"error: {safe(message)}", file=sys.stderr)
    return code


def note(message: str) -> None:
    print(f"note: {safe(message)}", file=sys.stderr)


def confirm(path: Path | str, what: str = "") -> None:
    """Say on stderr what a command wrote (``wrote scores.csv (10 pairs)``): not for ``-``, nor with ``--quiet``."""
    if not quiet() and str(path) != STDOUT:
        print(f"wrote {safe(str(path))}" + (f" ({what})" if what else ""), file=sys.stderr)


def note_grey(paths: Sequence[Path]) -> None:
    if paths:
        more = f" (and {len(paths) - 1} more)" if len(paths) > 1 else ""
        note(f"greyscale image {paths[0]}{more}: its channel is replicated to RGB")


def safe(text: str) -> str:
    """``text`` fit for a terminal, CSV or JSON, on one line: a byte of a file name that was not
    UTF-8 shows as ``\\xNN``; control, format and line-break characters as ``\\xNN`` / ``\\uNNNN``."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if ch.isprintable():
            out.append(ch)
        elif 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
            out.append(f"\\x{code - 0xDC00:02x}")
        else:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def cell(text: object) -> str:
    """A CSV text cell: :func:`safe`, and a leading ``'`` where a spreadsheet would read a formula."""
    value = safe(str(text))
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


def provenance(model: PerceptualDistance) -> dict[str, str | float | tuple[float, ...]]:
    """What a result was computed with: model, mode, weights sha256, feature blur, viewing condition, version."""
    return {"model": model.card.name, "mode": model.mode, "sha256": model.card.sha256,
            "feature_blur": model.card.feature_blur, "pixels_per_degree": model.pixels_per_degree, "version": __version__}


# ----------------------------------------------------------------------------- argument types
def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def feature_blur(text: str) -> float | tuple[float, ...]:
    """A card's ``feature_blur``: one number, or comma-separated numbers (one per stage)."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or comma-separated numbers, got {text!r}") from None
    return values[0] if len(values) == 1 else values


def format_feature_blur(blur: float | tuple[float, ...]) -> str:
    """The text :func:`feature_blur` reads back: ``0.5`` or ``0,0.75,0.75,0.75``."""
    return ",".join(f"{v:g}" for v in (blur if isinstance(blur, tuple) else (blur,)))


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1): a point in a run, as a share of its steps."""
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"expected a fraction of the run, 0 <= F < 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f'expected a JSON object such as \'{{"width": 0.5}}\', got {text!r}')
    return value


def model_name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a bundled name, a path or hf-hub:ORG/NAME, got an empty string")
    return text


# ----------------------------------------------------------------------------- shared options
def add_model_options(p: argparse.ArgumentParser, *, mode: bool = True) -> None:
    """``--model``, ``--mode`` (unless ``mode`` is False) and ``--device``."""
    p.add_argument("--model", type=model_name, default=None,
                   help=f"bundled name, path to a card .json or model folder, or hf-hub:ORG/NAME[@REV] "
                        f"(default {DEFAULT_MODEL})")
    if mode:
        p.add_argument("--mode", choices=MODES, default=None, help="distance (default: the model's)")
    p.add_argument("--device", default="auto",
                   help="torch device: auto (CUDA when available, else CPU), cpu, cuda, cuda:1, ... (default auto)")
    p.add_argument("--pixels-per-degree", type=non_negative_float, default=None, metavar="PPD",
                   help="viewing condition: pixels per degree of visual angle at which the images are seen; detail "
                        "finer than people resolve there counts less (0 = off; default: the model card's)")


def load_model(args: argparse.Namespace, device: torch.device, mode: str | None = None) -> PerceptualDistance:
    """The model that :func:`add_model_options`' arguments name, on ``device`` (``mode`` overrides ``--mode``)."""
    from ..api import load

    options = {} if args.pixels_per_degree is None else {"pixels_per_degree": args.pixels_per_degree}
    return load(args.model, mode=mode or getattr(args, "mode", None), device=device, **options)


def add_image_options(p: argparse.ArgumentParser) -> None:
    """``--resize`` and ``--max-pixels``."""
    from ..images import MAX_PIXELS

    p.add_argument("--resize", action="store_true",
                   help="resize B to A's size when they differ (bilinear, antialiased; this changes the score)")
    p.add_argument("--max-pixels", type=positive_int, default=MAX_PIXELS,
                   help=f"refuse images with more pixels than this (default {MAX_PIXELS:,})")


def add_batch_size(p: argparse.ArgumentParser, default: int, unit: str) -> None:
    p.add_argument("--batch-size", type=positive_int, default=default,
                   help=f"{unit} per forward pass (default {default})")


def torch_device(name: str) -> torch.device:
    """The torch device ``--device`` names (a usage error when it names none here)."""
    from ..api import parse_device

    try:
        return parse_device(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def pair_problem(a: Path, b: Path, size_a: tuple[int, int], size_b: tuple[int, int],
                 resize: bool, min_size: int) -> str | None:
    """Why an image pair of these (H, W) sizes cannot be scored by ``compare`` or ``dirs``, or None."""
    if size_a != size_b and not resize:
        return (f"{a} is {size_a[0]} x {size_a[1]} but {b} is {size_b[0]} x {size_b[1]} (H x W): sizes differ. "
                "Pass --resize to resize B to A (this changes the score), or crop or resize them yourself")
    for path, (h, w) in ((a, size_a), (b, size_b)):
        if min(h, w) < min_size:
            return f"{path} is {h} x {w}; the model needs at least {min_size} x {min_size} pixels"
    return None
