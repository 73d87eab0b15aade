"""Contrast sensitivity at a viewing condition: what an observer can see of each spatial frequency.

People see fine detail near the pixel Nyquist limit far less well than detail at a few cycles per
degree (Campbell & Robson 1968), and how fine a pixel pattern is in cycles per degree depends on the
viewing condition: pixels per degree of visual angle (about 30-60 on a desktop monitor at arm's
length, as FLIP and HDR-VDP take it). :func:`csf_filter` weights each frequency of an image (along each axis) by the
Mannos & Sakrison (1974) contrast sensitivity, flat below its peak (8 cycles per degree) so that
coarse structure and colour pass unchanged, before the network sees it. With ``pixels_per_degree``
0 (off) images pass untouched.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

PEAK_CPD = 8.0
"""Frequency (cycles per degree) of the contrast sensitivity's peak; lower frequencies pass unchanged."""


def sensitivity(cpd: Tensor) -> Tensor:
    """Mannos-Sakrison contrast sensitivity relative to its peak, 1 at and below :data:`PEAK_CPD`."""
    s = 2.6 * (0.0192 + 0.114 * cpd) * torch.exp(-((0.114 * cpd) ** 1.1))
    peak = 2.6 * (0.0192 + 0.114 * PEAK_CPD) * math.exp(-((0.114 * PEAK_CPD) ** 1.1))
    return torch.where(cpd <= PEAK_CPD, torch.ones_like(s), s / peak)


def radius(pixels_per_degree: float) -> int:
    """Half-width in pixels of :func:`csf_filter`'s kernel (0 when off)."""
    return 0 if not pixels_per_degree else max(3, math.ceil(0.1 * pixels_per_degree))


@functools.lru_cache(maxsize=16)
def kernel(pixels_per_degree: float) -> Tensor:
    """The 1-D filter whose outer product with itself :func:`csf_filter` applies: along each axis its
    frequency response is :func:`sensitivity` at ``pixels_per_degree`` (sampled on 256 frequencies,
    taps cut to :func:`radius` with a Hann window, normalised to sum 1 so flat areas pass unchanged)."""
    r = radius(pixels_per_degree)
    n = 256
    f = torch.fft.fftfreq(n, dtype=torch.float64).abs()
    taps = torch.fft.ifft(sensitivity(f * pixels_per_degree).to(torch.complex128)).real
    taps = torch.cat([taps[-r:], taps[: r + 1]]) * torch.hann_window(2 * r + 3, periodic=False, dtype=torch.float64)[1:-1]
    return (taps / taps.sum()).float()


MATRIX_SIDE = 1024
"""Up to this many pixels per side, :func:`csf_filter` applies its kernel as a banded matrix product
(fastest on CPU); beyond, as a separable convolution (the same numbers, less memory)."""


@functools.lru_cache(maxsize=32)
def _band(size: int, pixels_per_degree: float) -> Tensor:
    """``size`` x ``size`` matrix applying :func:`kernel` along one axis, the border reflected."""
    k = kernel(pixels_per_degree)
    r = (len(k) - 1) // 2
    rows = torch.arange(size).repeat_interleave(2 * r + 1)
    cols = (torch.arange(size)[:, None] + torch.arange(-r, r + 1)[None]).flatten().abs()
    cols = torch.where(cols >= size, 2 * size - 2 - cols, cols).clamp(0, size - 1)
    band = torch.zeros(size, size)
    band.index_put_((rows, cols), k.repeat(size), accumulate=True)
    return band


def csf_filter(x: Tensor, pixels_per_degree: float) -> Tensor:
    """``x`` (N x C x H x W) with each spatial frequency weighted by :func:`sensitivity` at
    ``pixels_per_degree``: the separable :func:`kernel` along both axes, the border reflected;
    float32 (or the input's float dtype), differentiable."""
    if not pixels_per_degree:
        return x
    ppd = float(pixels_per_degree)
    dtype = x.dtype if x.is_floating_point() else torch.float32
    n, c, h, w = x.shape
    if max(h, w) <= MATRIX_SIDE:
        rows, cols = (_band(s, ppd).to(device=x.device, dtype=dtype) for s in (h, w))
        return rows @ x.to(dtype) @ cols.T
    k = kernel(ppd).to(device=x.device, dtype=dtype)
    r = (len(k) - 1) // 2
    y = F.pad(x.to(dtype).reshape(n * c, 1, h, w), (r, r, r, r), mode="reflect" if min(h, w) > r else "replicate")
    y = F.conv2d(F.conv2d(y, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return y.view(n, c, h, w)
