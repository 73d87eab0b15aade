"""The one pair-scoring engine: distances of image-file pairs, in batches, sharded under torchrun.

``perceptual-sim dirs``, the IQA lists and BAPPS (2AFC and JND) score through :func:`score_pairs`:

1. each pair's sizes are read from the file headers (no pixels decoded);
2. pairs of equal sizes are grouped (in the order first seen) and each group is cut, in order,
   into batches of at most ``batch_size`` pairs (and, with ``pixel_budget``, at most that many
   pixels of A images, and of B images);
3. in a :func:`perceptual_sim.distributed.session` each process takes its share of the batches;
4. a batch is decoded, split by decoded sizes and scored in one forward pass per size;
5. every process gets all the results back, in the order of the pairs.

``errors="raise"`` (the harnesses) stops at the first problem: pairs whose sizes differ are
refused before any work, on every process alike. ``errors="record"`` (``dirs``) gives each pair
its own outcome: a file that fails to decode, or a pair the model refuses, is recorded on that
pair (a failed batch is scored again pair by pair) and the others are scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from . import distributed
from .files import quiet
from .images import MAX_PIXELS, decode_image, image_size
from .models.archs import Mode

if TYPE_CHECKING:
    import numpy as np
    import torch
    from tqdm import tqdm

    from .metric import PerceptualDistance

Size = tuple[int, int]
SizeCheck = Callable[[Path, Path, Size, Size], "str | None"]
"""``check(a, b, size_a, size_b)``: why a pair of these (H, W) sizes cannot be scored, or None."""
ERRORS = ("raise", "record")


@dataclass
class Pair:
    """Two image files and, once scored, their distance or why they could not be scored."""

    a: Path
    b: Path
    distance: float | None = None
    error: str | None = None


def same_size(a: Path, b: Path, size_a: Size, size_b: Size) -> str | None:
    """The harnesses' rule: the two images of a pair have the same size."""
    if size_a != size_b:
        return (f"{a} is {size_a[0]} x {size_a[1]} but {b} is {size_b[0]} x {size_b[1]} (H x W); the images of a "
                "pair must have the same size: crop or resize them first")
    return None


def check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def progress(total: int, desc: str, unit: str, *, terminal_only: bool = False) -> tqdm:
    """A progress bar on stderr, shown by rank 0 only under torchrun (and only on a terminal with
    ``terminal_only``), never with ``--quiet``."""
    from tqdm import tqdm

    disable = (None if terminal_only else False) if distributed.is_main() and not quiet() else True  # None: on a tty
    return tqdm(total=total, desc=desc, unit=unit, disable=disable)


def score_pairs(
    model: PerceptualDistance,
    pairs: Sequence[Pair],
    *,
    batch_size: int,
    mode: Mode | None = None,
    resize: bool = False,
    check: SizeCheck = same_size,
    load: Callable[[Path], torch.Tensor] | None = None,
    max_pixels: int = MAX_PIXELS,
    pixel_budget: int | None = None,
    errors: str = "raise",
    desc: str = "scoring",
    unit: str = "pair",
    terminal_only: bool = False,
) -> list[Path]:
    """Fill in each pair's ``distance`` (or, with ``errors="record"``, its ``error``); see the module docstring.

    Args:
        model: scores on its own device, in ``mode`` (default: the model's), with ``resize``
            (B resized to A's size when they differ).
        check: why a pair of given sizes cannot be scored (:func:`same_size` by default): with
            ``errors="raise"`` applied to the header sizes of every pair before any work, and with
            ``"record"`` to the decoded sizes.
        load: a file to 3 x H x W pixels (e.g. resizing as a benchmark prescribes); default
            :func:`perceptual_sim.images.decode_image` with ``max_pixels``.
        pixel_budget: at most this many pixels of A images (and of B images) per batch.

    Returns:
        The greyscale images among the decoded files (replicated to RGB; with the default ``load``),
        in the order they were decoded.
    """
    import torch

    check_batch_size(batch_size)
    if errors not in ERRORS:
        raise ValueError(f"errors must be one of {ERRORS}, got {errors!r}")
    groups: dict[tuple[Size, Size], list[Pair]] = {}
    for pair in pairs:
        try:
            sizes = image_size(pair.a, max_pixels=max_pixels), image_size(pair.b, max_pixels=max_pixels)
        except Exception as exc:  # ImageError, and whatever else a header parser can raise
            if errors == "raise":
                raise
            pair.error = _why(pair, exc)
            continue
        if errors == "raise":
            problem = check(pair.a, pair.b, *sizes)
            if problem:
                raise ValueError(problem)
        groups.setdefault(sizes, []).append(pair)
    batches = []
    for (size_a, size_b), members in groups.items():
        step = batch_size
        if pixel_budget is not None:
            step = max(1, min(batch_size, pixel_budget // max(size_a[0] * size_a[1], size_b[0] * size_b[1])))
        batches += [members[start : start + step] for start in range(0, len(members), step)]
    mine = distributed.shard(batches)
    results = []
    with progress(sum(map(len, mine)), desc, unit, terminal_only=terminal_only) as bar, torch.inference_mode():
        for batch in mine:
            grey: list[Path] = []
            _score_batch(model, batch, mode=mode, resize=resize, check=check, load=load, max_pixels=max_pixels,
                         record=errors == "record", grey=grey)
            results.append(([(p.distance, p.error) for p in batch], grey))
            bar.update(len(batch))
    grey = []
    for batch, (outcomes, found) in zip(batches, distributed.gather(results)):
        for pair, (distance, error) in zip(batch, outcomes):
            pair.distance, pair.error = distance, error
        grey += found
    return grey


def pair_distances(
    model: PerceptualDistance,
    pairs: Sequence[tuple[Path, Path]],
    *,
    batch_size: int,
    mode: Mode | None = None,
    load: Callable[[Path], torch.Tensor] | None = None,
    desc: str = "scoring",
) -> np.ndarray:
    """:func:`score_pairs` with ``errors="raise"`` on (A, B) paths: the distances as a float64 array, in order."""
    import numpy as np

    scored = [Pair(a, b) for a, b in pairs]
    score_pairs(model, scored, batch_size=batch_size, mode=mode, load=load, desc=desc)
    return np.array([p.distance for p in scored], dtype=np.float64)


def _why(pair: Pair, exc: BaseException) -> str:
    """A decoding failure as recorded on its pair: the ImageError's message, or the exception named."""
    return str(exc) if isinstance(exc, ValueError) else f"{pair.a} / {pair.b}: {type(exc).__name__}: {exc}"


def _score_batch(model: PerceptualDistance, batch: list[Pair], *, mode: str | None, resize: bool, check: SizeCheck,
                 load: Callable[[Path], torch.Tensor] | None, max_pixels: int, record: bool, grey: list[Path]) -> None:
    """Decode, check and score ``batch``, one forward pass per decoded size. Recording, a failure (of
    the decoder, or of the model on a pass: a size it refuses, a distance that is not finite) is
    recorded on the pairs it concerns: a failed pass is scored again pair by pair."""
    passes: dict[tuple[torch.Size, torch.Size], list[tuple[Pair, torch.Tensor, torch.Tensor]]] = {}
    for pair in batch:
        try:
            (a, grey_a), (b, grey_b) = _decode(pair.a, load, max_pixels), _decode(pair.b, load, max_pixels)
        except Exception as exc:  # ImageError, and whatever else a decoder can raise (MemoryError, ...)
            if not record:
                raise
            pair.error = _why(pair, exc)
            continue
        pair.error = check(pair.a, pair.b, tuple(a.shape[1:]), tuple(b.shape[1:]))
        if pair.error is not None:
            if not record:
                raise ValueError(pair.error)
            continue
        grey.extend(p for p, g in ((pair.a, grey_a), (pair.b, grey_b)) if g)
        passes.setdefault((a.shape, b.shape), []).append((pair, a, b))
    for items in passes.values():
        if not record:
            _forward(model, items, mode, resize)
            continue
        try:
            _forward(model, items, mode, resize)
        except Exception:
            for item in items:
                try:
                    _forward(model, [item], mode, resize)
                except Exception as exc:  # the model's ValueError, or torch's errors on this pair
                    why = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
                    item[0].error = f"{item[0].a} / {item[0].b}: {why}"


def _decode(path: Path, load: Callable[[Path], torch.Tensor] | None, max_pixels: int) -> tuple[torch.Tensor, bool]:
    """A file's 3 x H x W pixels, and whether it was greyscale."""
    if load is not None:
        return load(path), False
    image = decode_image(path, max_pixels=max_pixels)
    return image.pixels, image.grey


def _forward(model: PerceptualDistance, items: list[tuple[Pair, torch.Tensor, torch.Tensor]], mode: str | None,
             resize: bool) -> None:
    import torch

    x = torch.stack([a for _, a, _ in items]).to(model.device)
    y = torch.stack([b for _, _, b in items]).to(model.device)
    for (pair, _, _), distance in zip(items, model(x, y, mode=mode, resize=resize).double().cpu().tolist()):
        pair.distance = distance
