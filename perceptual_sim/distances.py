"""Pure tensor functions: the three K22 distances over lists of feature maps.

For layer l with raw map y (N x C x h x w) and its unit-normalised version
``ŷ = y / sqrt(Σ_c y² + eps)`` (epsilon inside the square root, so gradients stay finite):

* spatial:  ``mean_hw Σ_c w_c (ŷ0 - ŷ1)²``  (LPIPS; ``w_c = 1`` without layer weights)
* style:    ``||G0 - G1||_F² / C²`` with ``G = ŷ ŷᵀ / (h w)`` (Gram of the normalised map;
  the ``1/(h w)`` makes it independent of image size)
* meanpool: ``||norm(mean_hw y0) - norm(mean_hw y1)||² / C``

A model whose card sets ``feature_blur`` (sigma in feature positions, one for every layer or one
per layer) compares, in spatial mode, ``blur(ŷ)`` instead of ``y`` on the layers it blurs (:func:`blur_normalized`, as ST-LPIPS blurs features): small shifts of
the image then move the maps less.

The distance is the sum over layers. Each term equals ``||e(y0) - e(y1)||²`` for a per-mode
embedding ``e`` (:func:`embedding`), which is how N x M matrices are computed
(:func:`squared_cdist`). Everything here returns float32 whatever the input dtype. The names of
the modes, :data:`MODES`, come from :mod:`perceptual_sim.models.archs`, where cards are checked without torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .models.archs import MODES

EPS = 1e-10
CANCELLATION_GUARD = 1 / 16
"""Fraction of ``|a - m|² + |b - m|²`` below which :func:`squared_cdist` recomputes an entry."""
DIRECT_SHARE = 1 / 32
""":func:`squared_cdist` recomputes entries directly while they are at most this share of their
rows (a direct entry costs about as much as 30 entries of a matmul on CPU); else the rows."""


def unit_normalize(f: Tensor, dim: int = 1, eps: float = EPS) -> Tensor:
    """Divide by the L2 norm over ``dim``; ``eps`` sits inside the square root."""
    f = f.float()
    return f * torch.rsqrt(f.pow(2).sum(dim, keepdim=True) + eps)


def blur_radius(sigma: float) -> int:
    """Half-width, in feature positions, of the Gaussian kernel of :func:`blur_normalized`."""
    return max(1, round(2 * sigma))


def blur_normalized(f: Tensor, sigma: float) -> Tensor:
    """``ŷ`` blurred by a Gaussian of ``sigma`` positions (separable, :func:`blur_radius` taps each
    side, border replicated), float32. The spatial distance normalises the result again."""
    r = blur_radius(sigma)
    t = torch.arange(-r, r + 1, dtype=torch.float32, device=f.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    y = unit_normalize(f)
    c = y.shape[1]
    y = F.pad(y, (r, r, r, r), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def gram_sum(f: Tensor) -> Tensor:
    """N x C x C sum over positions of ``ŷ ŷᵀ`` (the unit-normalised map's outer products)."""
    n, c, h, w = f.shape
    flat = unit_normalize(f).reshape(n, c, h * w)
    return torch.bmm(flat, flat.transpose(1, 2))


def gram(f: Tensor) -> Tensor:
    """N x C x C channel cross-correlation of the unit-normalised map, divided by h*w."""
    return gram_sum(f) / (f.shape[2] * f.shape[3])


# ----------------------------------------------------------------------------- the modes
# Each mode: its term for one layer (N values from two N x C x h x w maps) and the embedding e
# (N x D) with term(a, b) = ||e(a) - e(b)||². Layer weights (N x C channel weights) weight the
# channels of the spatial mode; the other modes ignore them.


def spatial_map(a: Tensor, b: Tensor, weight: Tensor | None = None) -> Tensor:
    """N x 1 x h x w map of ``Σ_c w_c (ŷa - ŷb)²``; its mean is the spatial term."""
    diff = (unit_normalize(a) - unit_normalize(b)).pow(2)
    if weight is not None:
        diff = diff * weight.float().view(1, -1, 1, 1)
    return diff.sum(1, keepdim=True)


def _spatial_term(a: Tensor, b: Tensor, weight: Tensor | None) -> Tensor:
    return spatial_map(a, b, weight).mean((1, 2, 3))


def _spatial_embedding(f: Tensor, weight: Tensor | None) -> Tensor:
    n, _, h, w = f.shape
    e = unit_normalize(f)
    if weight is not None:
        e = e * weight.float().clamp_min(0).sqrt().view(1, -1, 1, 1)
    return e.reshape(n, -1) / (h * w) ** 0.5


def style_term(ga: Tensor, gb: Tensor) -> Tensor:
    """``||Ga - Gb||_F² / C²`` for N x C x C Gram matrices."""
    return (ga - gb).pow(2).sum((1, 2)) / ga.shape[1] ** 2


def _style_term(a: Tensor, b: Tensor, weight: Tensor | None) -> Tensor:
    return style_term(gram(a), gram(b))


def _style_embedding(f: Tensor, weight: Tensor | None) -> Tensor:
    return gram(f).reshape(f.shape[0], -1) / f.shape[1]


def meanpool_term(ma: Tensor, mb: Tensor) -> Tensor:
    """``||norm(ma) - norm(mb)||² / C`` for N x C spatial means of raw features."""
    return (unit_normalize(ma) - unit_normalize(mb)).pow(2).sum(1) / ma.shape[1]


def _meanpool_term(a: Tensor, b: Tensor, weight: Tensor | None) -> Tensor:
    return meanpool_term(a.float().mean((2, 3)), b.float().mean((2, 3)))


def _meanpool_embedding(f: Tensor, weight: Tensor | None) -> Tensor:
    return unit_normalize(f.float().mean((2, 3))) / f.shape[1] ** 0.5


_Term = Callable[[Tensor, Tensor, "Tensor | None"], Tensor]
_Embedding = Callable[[Tensor, "Tensor | None"], Tensor]
_MODES: dict[str, tuple[_Term, _Embedding]] = {
    "spatial": (_spatial_term, _spatial_embedding),
    "style": (_style_term, _style_embedding),
    "meanpool": (_meanpool_term, _meanpool_embedding),
}
assert tuple(_MODES) == MODES


def _mode(mode: str) -> tuple[_Term, _Embedding]:
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return _MODES[mode]


def _weights(weights: Sequence[Tensor] | None, layers: int) -> Sequence[Tensor | None]:
    return [None] * layers if weights is None else weights


# ----------------------------------------------------------------------------- over layers
def spatial_maps(fa: Sequence[Tensor], fb: Sequence[Tensor], weights: Sequence[Tensor] | None = None) -> list[Tensor]:
    """Per-layer N x 1 x h x w maps of ``Σ_c w_c (ŷa - ŷb)²``."""
    return [spatial_map(a, b, w) for a, b, w in zip(fa, fb, _weights(weights, len(fa)))]


def layer_terms(mode: str, fa: Sequence[Tensor], fb: Sequence[Tensor], weights: Sequence[Tensor] | None = None) -> Tensor:
    """N x L per-layer distance terms for ``mode``; sum over dim 1 for the distance."""
    term, _ = _mode(mode)
    return torch.stack([term(a, b, w) for a, b, w in zip(fa, fb, _weights(weights, len(fa)))], 1)


def embedding(mode: str, feats: Sequence[Tensor], weights: Sequence[Tensor] | None = None) -> list[Tensor]:
    """Per-layer N x D_l vectors e with ``term_l(a, b) = ||e_l(a) - e_l(b)||²``."""
    _, embed = _mode(mode)
    return [embed(f, w) for f, w in zip(feats, _weights(weights, len(feats)))]


# ----------------------------------------------------------------------------- in tiles
def _channel_sum(f: Tensor) -> Tensor:
    return f.float().sum((2, 3))


_SUMMED: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor, Tensor], Tensor]]] = {
    "style": (gram_sum, style_term),
    "meanpool": (_channel_sum, meanpool_term),
}
"""The modes whose term is a function of means over positions: the sum over one map's positions, and
the term of two means (:func:`gram` and the channel mean of the untiled terms)."""


def tiled_terms(
    mode: str, tiles: Iterable[tuple[bool, Sequence[Tensor], Sequence[Tensor]]],
    weights: Sequence[Tensor] | None = None,
) -> tuple[Tensor, list[Tensor]]:
    """N x L per-layer terms of pairs compared tile by tile, and in spatial mode their per-layer maps.

    ``tiles`` yields, row by row, ``(new_row, fa, fb)``: one tile's per-layer maps cut to its interior
    (the interiors cover each position of the image once), and whether the tile starts a row. Spatial
    maps are stitched and each term is its map's mean; the Gram sums (style) and channel sums
    (meanpool) add up over the tiles, then each term is formed as :func:`layer_terms` forms it. Each
    tile is reduced as it comes, so one tile's features are held at a time.
    """
    _mode(mode)
    summed = _SUMMED.get(mode)  # None: spatial
    rows: list[list[list[Tensor]]] = []  # spatial: [tile row][tile][layer] maps
    sums: list[list[Tensor | int]] = []  # style / meanpool: per layer, [sum over a's positions, b's, positions]
    for new_row, fa, fb in tiles:
        with torch.autocast(fa[0].device.type, enabled=False):
            if summed is None:
                rows += [[]] if new_row else []
                rows[-1].append(spatial_maps(fa, fb, weights))
            else:
                part = [[summed[0](a), summed[0](b), a.shape[2] * a.shape[3]] for a, b in zip(fa, fb)]
                sums = [[s + p for s, p in zip(acc, new)] for acc, new in zip(sums, part)] if sums else part
    if summed is None:
        with torch.autocast(rows[0][0][0].device.type, enabled=False):
            maps = [torch.cat([torch.cat([tile[layer] for tile in row], 3) for row in rows], 2)
                    for layer in range(len(rows[0][0]))]
            return torch.stack([m.mean((1, 2, 3)) for m in maps], 1), maps
    with torch.autocast(sums[0][0].device.type, enabled=False):
        return torch.stack([summed[1](a / k, b / k) for a, b, k in sums], 1), []


def squared_cdist(a: Tensor, b: Tensor) -> Tensor:
    """N x M float32 squared Euclidean distances between the rows of ``a`` and ``b``.

    One float32 matmul after centring both sets on their common mean ``m``. Entries below
    :data:`CANCELLATION_GUARD` of ``|a_i - m|² + |b_j - m|²``, where cancellation could cost
    accuracy, are recomputed: directly as ``Σ (a_i - b_j)²`` when few, else their rows with a
    float64 matmul (see :data:`DIRECT_SHARE`). With float64 inputs, or when a reduced-precision
    float32 matmul (TF32, bfloat16) is enabled, the matmul is float64. Autocast does not apply.
    """
    with torch.autocast(a.device.type, enabled=False):
        dtype = torch.promote_types(torch.promote_types(a.dtype, b.dtype), torch.float32)
        if dtype == torch.float32 and not _ieee_float32_matmul():
            dtype = torch.float64
        a, b = a.to(dtype), b.to(dtype)
        d, scale = _gram_cdist(a, b)
        if dtype == torch.float64:
            return d.float()
        rows, cols = torch.nonzero(d < CANCELLATION_GUARD * scale, as_tuple=True)
        if rows.numel() == 0:
            return d
        busy = torch.unique(rows)
        if rows.numel() > DIRECT_SHARE * busy.numel() * b.shape[0]:
            return d.index_copy(0, busy, _gram_cdist(a[busy].double(), b.double())[0].float())
        step = max(1, (1 << 20) // max(1, a.shape[1]))  # about 4 MB of differences at a time
        exact = torch.cat([(a[rows[s : s + step]] - b[cols[s : s + step]]).pow(2).sum(1)
                           for s in range(0, rows.numel(), step)])
        return d.index_put((rows, cols), exact)


def _gram_cdist(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Squared distances through one matmul of the centred sets, and ``|a_i - m|² + |b_j - m|²``."""
    centre = (a.sum(0) + b.sum(0)) / max(1, a.shape[0] + b.shape[0])
    a, b = a - centre, b - centre
    scale = a.pow(2).sum(1)[:, None] + b.pow(2).sum(1)[None]
    return (scale - 2 * a @ b.T).clamp_min(0), scale


def _ieee_float32_matmul() -> bool:
    """Whether float32 matmuls run in full float32 (no TF32 or bfloat16 shortcuts)."""
    try:
        return torch.get_float32_matmul_precision() == "highest"
    except RuntimeError:  # legacy and new precision settings mixed: assume reduced
        return False
