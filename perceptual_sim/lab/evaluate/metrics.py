"""Metrics as the benchmark harnesses see them: features once per image, distances per mode.

:class:`NetMetric` wraps a :class:`~perceptual_sim.metric.PerceptualDistance` and scores all
its modes from one backbone pass; :class:`L2Metric` and :class:`SSIMMetric` are the pixel
baselines. Anything with ``name``, ``features`` and ``compare`` can be scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from ...distances import MODES
from ...metric import Features, PerceptualDistance


class ProxyMetric(Protocol):
    """What the harnesses need of a metric: features once per image, distances per mode."""

    name: str

    def features(self, x: Tensor) -> Any: ...

    def compare(self, fa: Any, fb: Any) -> dict[str, Tensor]: ...


class NetMetric:
    """A :class:`PerceptualDistance` scored in several modes from one backbone pass."""

    def __init__(self, model: PerceptualDistance, name: str | None = None, modes: Sequence[str] = MODES) -> None:
        self.model, self.modes = model, tuple(modes)
        self.name = name or model.card.name

    def features(self, x: Tensor) -> list[Tensor]:
        return self.model.embed(x.to(self.model.device)).maps

    def compare(self, fa: list[Tensor], fb: list[Tensor]) -> dict[str, Tensor]:
        return {m: self.model.compare(fa, fb, mode=m).cpu() for m in self.modes}

    def matrix(self, x: Tensor, batch_size: int) -> dict[str, Tensor]:
        """{mode: N x N distances between all images of ``x``}, features computed once
        (:meth:`PerceptualDistance.pairwise`)."""
        parts = [self.model.embed(x[i : i + batch_size].to(self.model.device))
                 for i in range(0, len(x), batch_size)]
        feats = Features([torch.cat(maps) for maps in zip(*(p.maps for p in parts))], parts[0].image_size)
        return {m: self.model.pairwise(feats, feats, mode=m).cpu() for m in self.modes}


class L2Metric:
    """Mean squared pixel difference."""

    name = "L2"

    def features(self, x: Tensor) -> Tensor:
        return x.float() / 255 if x.dtype == torch.uint8 else x.float()

    def compare(self, fa: Tensor, fb: Tensor) -> dict[str, Tensor]:
        return {"pixel": (fa - fb).pow(2).mean((1, 2, 3))}


class SSIMMetric(L2Metric):
    """1 - SSIM (Gaussian window 11, sigma 1.5, on each RGB channel, averaged)."""

    name = "SSIM"

    def compare(self, fa: Tensor, fb: Tensor) -> dict[str, Tensor]:
        return {"pixel": 1 - ssim(fa, fb)}


def ssim(a: Tensor, b: Tensor, data_range: float = 1.0) -> Tensor:
    """Mean SSIM per image (Wang et al. 2004; 'valid' Gaussian filtering)."""
    t = torch.arange(11, dtype=torch.float32) - 5
    k = torch.exp(-0.5 * (t / 1.5) ** 2)
    k = (k / k.sum())
    win = (k[:, None] * k[None]).view(1, 1, 11, 11).repeat(a.shape[1], 1, 1, 1)
    c = a.shape[1]

    def filt(z: Tensor) -> Tensor:
        return F.conv2d(z, win, groups=c)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_a, mu_b = filt(a), filt(b)
    saa = filt(a * a) - mu_a**2
    sbb = filt(b * b) - mu_b**2
    sab = filt(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return s.mean((1, 2, 3))
