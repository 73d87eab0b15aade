"""Deterministic image distortions with five severity levels, in the spirit of BAPPS "traditional".

Each distortion maps a float batch N x 3 x H x W in [0, 1] to one of the same shape, given a
severity level 1..5 and a ``torch.Generator`` (so noise patterns are reproducible).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

LEVELS = (1, 2, 3, 4, 5)


def _noise(x: Tensor, level: int, g: torch.Generator) -> Tensor:
    sigma = (0.02, 0.04, 0.07, 0.1, 0.15)[level - 1]
    return x + sigma * torch.randn(x.shape, generator=g)


def _blur(x: Tensor, level: int, g: torch.Generator) -> Tensor:
    return gaussian_blur(x, (0.5, 0.8, 1.2, 1.7, 2.3)[level - 1])


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur (radius ceil(3 sigma), reflect padding)."""
    r = int(np.ceil(3 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _jpeg(x: Tensor, level: int, g: torch.Generator) -> Tensor:
    return jpeg(x, (60, 40, 25, 15, 8)[level - 1])


def jpeg(x: Tensor, quality: int) -> Tensor:
    """Each image through PIL's JPEG encoder and decoder at ``quality``."""
    out = []
    for img in x:
        arr = (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
        buf.seek(0)
        with Image.open(buf) as im:
            out.append(torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1).float() / 255)
    return torch.stack(out)


def _colour(x: Tensor, level: int, g: torch.Generator) -> Tensor:
    """Desaturation plus a random per-channel colour cast."""
    amount = (0.04, 0.08, 0.12, 0.17, 0.23)[level - 1]
    grey = x.mean(1, keepdim=True)
    desat = grey + (x - grey) * (1 - 2 * amount)
    direction = torch.randn(x.shape[0], 3, 1, 1, generator=g)
    direction = direction / direction.norm(dim=1, keepdim=True)
    return desat + amount * direction


def _contrast(x: Tensor, level: int, g: torch.Generator) -> Tensor:
    """Contrast change (reduced or increased at random) with a brightness offset."""
    amount = (0.12, 0.22, 0.33, 0.45, 0.6)[level - 1]
    sign = torch.where(torch.rand(x.shape[0], 1, 1, 1, generator=g) < 0.5, -1.0, 1.0)
    mean = x.mean((1, 2, 3), keepdim=True)
    return mean + (x - mean) * (1 + sign * amount) + 0.3 * amount * sign.neg()


def _warp(x: Tensor, level: int, g: torch.Generator) -> Tensor:
    """Smooth random displacement field with a maximum of about ``level``-dependent pixels."""
    pixels = (0.4, 0.8, 1.3, 1.9, 2.6)[level - 1]
    n, _, h, w = x.shape
    coarse = torch.randn(n, 2, 4, 4, generator=g)
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    field = field / field.abs().amax((1, 2, 3), keepdim=True).clamp_min(1e-6) * pixels
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    grid = torch.stack([xs, ys], -1)[None] + field * torch.tensor([2 / (w - 1), 2 / (h - 1)])
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)


DISTORTIONS: dict[str, Callable[[Tensor, int, torch.Generator], Tensor]] = {
    "noise": _noise,
    "blur": _blur,
    "jpeg": _jpeg,
    "colour": _colour,
    "contrast": _contrast,
    "warp": _warp,
}


def distort(x: Tensor, kind: str, level: int, g: torch.Generator) -> Tensor:
    """Apply distortion ``kind`` at ``level`` (1..5); the result is clamped to [0, 1]."""
    if kind not in DISTORTIONS:
        raise ValueError(f"unknown distortion {kind!r}; known: {sorted(DISTORTIONS)}")
    if level not in LEVELS:
        raise ValueError(f"level must be 1..5, got {level}")
    return DISTORTIONS[kind](x, level, g).clamp(0, 1)
