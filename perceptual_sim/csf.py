"""Contrast sensitivity at a viewing condition: what an observer can see of each spatial frequency.

People see fine detail near the pixel Nyquist limit far less well than detail at a few cycles per
degree (Campbell & Robson 1968), and how fine a pixel pattern is in cycles per degree depends on the
viewing condition: pixels per degree of visual angle (about 30-60 on a desktop monitor at arm's
length, as FLIP and HDR-VDP take it). :func:`csf_filter` weights each frequency of an image by the
Mannos & Sakrison (1974) contrast sensitivity, flat below its peak (8 cycles per degree) so that
coarse structure and colour pass unchanged, before the network sees it. With ``pixels_per_degree``
0 (off) images pass untouched.
"""

from __future__ import annotations

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


def margin(pixels_per_degree: float) -> int:
    """Pixels of reflected border :func:`csf_filter` adds before filtering (and the reach it adds to tiles)."""
    return 0 if not pixels_per_degree else max(4, math.ceil(0.2 * pixels_per_degree))


def csf_filter(x: Tensor, pixels_per_degree: float) -> Tensor:
    """``x`` (N x C x H x W) with each spatial frequency weighted by :func:`sensitivity` at
    ``pixels_per_degree``: filtered in the Fourier domain after a reflected border of
    :func:`margin` pixels (so the image does not wrap around), float32, differentiable."""
    if not pixels_per_degree:
        return x
    dtype = x.dtype
    m = margin(pixels_per_degree)
    h, w = x.shape[-2:]
    y = F.pad(x.float(), (m, m, m, m), mode="reflect" if min(h, w) > m else "replicate")
    hh, ww = y.shape[-2:]
    fy = torch.fft.fftfreq(hh, device=x.device).view(hh, 1)
    fx = torch.fft.rfftfreq(ww, device=x.device).view(1, -1)
    weight = sensitivity((fy**2 + fx**2).sqrt() * pixels_per_degree)
    y = torch.fft.irfft2(torch.fft.rfft2(y) * weight, s=(hh, ww))
    return y[..., m : m + h, m : m + w].to(dtype)
