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


def _cached(build):
    """``functools.lru_cache`` for the filter's constant tensors, built outside inference mode (a tensor
    made under ``torch.inference_mode`` could not be used where autograd records, as in a loss)."""

    @functools.lru_cache(maxsize=32)
    def wrapper(*args):
        with torch.inference_mode(False):
            return build(*args)

    return functools.wraps(build)(wrapper)


@_cached
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


BLOCK = 32
"""Output pixels per matrix product along an axis: each block of outputs reads ``BLOCK + 2 r`` inputs
(views of the reflected image, no copies), so work and memory grow linearly with the side."""


@_cached
def _block_matrix(pixels_per_degree: float) -> Tensor:
    """(BLOCK + 2 r) x BLOCK matrix: a block of inputs (r pixels of context each side) to its outputs."""
    k = kernel(pixels_per_degree)
    r = (len(k) - 1) // 2
    offset = torch.arange(BLOCK + 2 * r)[:, None] - torch.arange(BLOCK)[None]
    return torch.where((offset >= 0) & (offset <= 2 * r), k[offset.clamp(0, 2 * r)], torch.zeros(()))


def _reflected(x: Tensor, r: int) -> Tensor:
    """``x`` with ``r`` pixels reflected about the border pixel on each side of both axes. A side
    shorter than ``r`` still works: indices that leave the image after one reflection stop at its border."""
    if r < min(x.shape[-2:]):
        return F.pad(x, (r, r, r, r), mode="reflect")
    for dim in (-1, -2):
        size = x.shape[dim]
        idx = torch.arange(-r, size + r, device=x.device).abs()
        x = x.index_select(dim, torch.where(idx >= size, 2 * size - 2 - idx, idx).clamp(0, size - 1))
    return x


def _blocks(padded: Tensor, dim: int, m: Tensor) -> Tensor:
    """``m`` applied along ``dim`` (-1 or -2) of ``padded`` (``r`` pixels of context each side), one
    block of :data:`BLOCK` outputs at a time: one matrix product per block, on a view."""
    r = (m.shape[0] - m.shape[1]) // 2
    size = padded.shape[dim] - 2 * r
    out = []
    for start in range(0, size, BLOCK):
        n = min(BLOCK, size - start)
        part, block = padded.narrow(dim, start, n + 2 * r), m[: n + 2 * r, :n]
        out.append(part @ block if dim == -1 else block.T @ part)
    return torch.cat(out, dim)


CHUNK_VALUES = 2**20
"""Values (images x channels x pixels) filtered at a time: a batch is split into chunks of whole
images this large so that each chunk's passes stay in the CPU's cache (batch 32 at 256 px: chunks of
5 images, 20% faster for ``resnet6-pa-w025``'s whole distance than one pass over the batch)."""


def csf_filter(x: Tensor, pixels_per_degree: float) -> Tensor:
    """``x`` (N x C x H x W) with each spatial frequency weighted by :func:`sensitivity` at
    ``pixels_per_degree``: the separable :func:`kernel` along both axes, the border reflected;
    float32 (or the input's float dtype), differentiable."""
    if not pixels_per_degree:
        return x
    ppd = float(pixels_per_degree)
    x = x if x.is_floating_point() else x.float()
    m = _block_matrix(ppd).to(device=x.device, dtype=x.dtype)
    r = radius(ppd)
    per_chunk = max(1, CHUNK_VALUES // max(1, x.shape[1:].numel()))
    parts = [_blocks(_blocks(_reflected(part, r), -1, m), -2, m) for part in x.split(per_chunk)]
    return parts[0] if len(parts) == 1 else torch.cat(parts)
