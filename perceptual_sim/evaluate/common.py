"""Shared pieces of the benchmark harnesses: model loading, image loading, batching, results files."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from .. import distributed
from .._version import __version__
from ..api import load
from ..distances import MODES
from ..images import image_size, load_image
from ..metric import PerceptualDistance


def resolve_model(
    model: PerceptualDistance | str | None, mode: str | None, device: str | torch.device
) -> PerceptualDistance:
    """The module to score with: ``model`` itself, or the model string loaded on ``device``."""
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {MODES} or None (the model's default), got {mode!r}")
    if isinstance(model, PerceptualDistance):
        return model
    if model is not None and not isinstance(model, str):
        raise TypeError(f"model must be a PerceptualDistance or a model string, got {type(model).__name__}")
    return load(model, device=device)


def model_info(module: PerceptualDistance, mode: str | None) -> dict[str, Any]:
    """What every results file records: model name, weights sha256, mode and package version."""
    return {
        "model": module.card.name,
        "sha256": module.card.sha256,
        "mode": mode or module.mode,
        "package_version": __version__,
    }


def pair_distances(
    module: PerceptualDistance,
    pairs: Sequence[tuple[Path, Path]],
    *,
    mode: str | None,
    batch_size: int,
    desc: str,
    load: Callable[[Path], torch.Tensor] = load_image,
) -> np.ndarray:
    """Distance of every (first, second) image pair, in batches of equal-size images.

    The two images of a pair must have the same size; pairs of different sizes go to
    different batches. ``load`` reads an image file (e.g. resizing it the same way for all). In a :func:`distributed.session` each process scores a share of the
    batches. Returns a float64 array in the order of ``pairs``.
    """
    check_batch_size(batch_size)
    sizes = []
    for a, b in pairs:
        sa, sb = image_size(a), image_size(b)
        if sa != sb:
            raise ValueError(
                f"{a} is {sa[0]} x {sa[1]} but {b} is {sb[0]} x {sb[1]} (H x W); the images of a pair "
                "must have the same size: crop or resize them first"
            )
        sizes.append(sa)
    order = sorted(range(len(pairs)), key=lambda i: sizes[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and sizes[batches[-1][0]] == sizes[i]:
            batches[-1].append(i)
        else:
            batches.append([i])
    mine = distributed.shard(batches)
    device = module.input_mean.device
    results = []
    with progress(sum(map(len, mine)), desc, "pair") as bar, torch.inference_mode():
        for idx in mine:
            x = torch.stack([load(pairs[i][0]) for i in idx]).to(device)
            y = torch.stack([load(pairs[i][1]) for i in idx]).to(device)
            results.append(module(x, y, mode=mode).double().cpu().numpy())
            bar.update(len(idx))
    out = np.empty(len(pairs), dtype=np.float64)
    for idx, values in zip(batches, distributed.gather(results)):
        out[idx] = values
    return out


def progress(total: int, desc: str, unit: str) -> tqdm:
    """A progress bar, shown by rank 0 only under torchrun."""
    return tqdm(total=total, desc=desc, unit=unit, disable=not distributed.is_main())


def check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def check_output(path: Path | None, force: bool) -> None:
    """Refuse, before any work, a results file that exists (unless ``force``) or has no folder."""
    if path is None:
        return
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists; choose another --json file or pass --force to overwrite it")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {path.parent} of the --json file does not exist; create it first")


def finite_or_none(value: float) -> float | None:
    """``value`` as a float, or None when it is NaN or infinite (JSON has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


def write_json(result: dict[str, Any], path: Path, *, force: bool = False) -> None:
    """Write a results dict as indented JSON, refusing to replace a file unless ``force``."""
    check_output(path, force)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
