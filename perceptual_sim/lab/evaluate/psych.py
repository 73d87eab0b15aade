"""Psychophysics whose human answer vision science has settled, as 2AFC triplets.

Each family builds triplets (reference, a, b) from natural photographs where people judge
``a`` the closer of the two; a metric scores 1 when ``d(ref, a) < d(ref, b)``, 0 when it
prefers ``b`` and 0.5 on a tie (the two distances within :data:`TIE_RTOL` of each other).
Most families give ``a`` and ``b`` exactly the same mean squared error, so L2 ties on every
triplet and scores 50 by construction: what is left is what a metric knows beyond MSE.

The triplets are generated deterministically from a seed at each size, from random crops
(random scale and flip) of scikit-image's sample photographs, or of a folder of images.
Scores are fractions in [0, 1]; the mean is the unweighted mean over families.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ... import distributed
from ..._version import __version__
from ...distances import MODES
from ...images import IMAGE_SUFFIXES, load_image
from ...metric import PerceptualDistance
from ...pairs import check_batch_size, progress
from .common import resolve_model
from .distortions import distort, gaussian_blur, jpeg
from .metrics import NetMetric, ProxyMetric

TIE_RTOL = 1e-4
"""Distances within this fraction of the larger one count as a tie (equal-MSE pairs differ by rounding)."""

SKIMAGE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "ihc.png", "motorcycle_left.png",
                  "motorcycle_right.png", "rocket.jpg", "camera.png", "brick.png", "grass.png", "gravel.png", "coins.png")
"""scikit-image sample photographs used by default (the last five are greyscale, replicated)."""

LUMA = (0.299, 0.587, 0.114)


# ----------------------------------------------------------------------------------- helpers
def _mse(ref: Tensor, x: Tensor) -> Tensor:
    return (x.double() - ref.double()).pow(2).mean((1, 2, 3))


def match_mse(ref: Tensor, delta: Tensor, target: Tensor, *, t_max: float = 64.0) -> Tensor:
    """``clamp(ref + t * delta, 0, 1)`` per image, with ``t`` chosen so that its MSE to ``ref``
    equals ``target`` (relative error below 1e-10; the MSE grows with t): a bracket from the
    unclipped solution, then Illinois false-position steps."""
    n = ref.shape[0]
    r, d = ref.double(), delta.double()
    target = target.double()

    def err(t: Tensor) -> Tensor:
        return (r + t.view(n, 1, 1, 1) * d).clamp(0, 1).sub(r).pow(2).mean((1, 2, 3)) - target

    if (err(torch.full((n,), t_max, dtype=torch.float64)) < 0).any():
        raise ValueError("match_mse: the distortion cannot reach the target MSE within t_max")
    t0 = (target / d.pow(2).mean((1, 2, 3)).clamp_min(1e-30)).sqrt().clamp(max=t_max)
    f0 = err(t0)
    a, fa = torch.where(f0 < 0, t0, torch.zeros_like(t0)), torch.where(f0 < 0, f0, -target)
    b, fb = torch.where(f0 < 0, t0, t0), f0.clone()
    while (fb < 0).any():  # clipping held the MSE back: widen the bracket
        grow = fb < 0
        a, fa = torch.where(grow, b, a), torch.where(grow, fb, fa)
        b = torch.where(grow, (b * 2).clamp(max=t_max), b)
        fb = torch.where(grow, err(b), fb)
    side = torch.zeros(n)
    for _ in range(200):
        done = (fa.abs() <= 1e-11 * target) | (fb.abs() <= 1e-11 * target)
        if done.all():
            break
        c = b - fb * (b - a) / (fb - fa)
        fc = err(c)
        right = fc > 0  # c replaces b
        fa = torch.where(right & (side == 1), fa / 2, fa)
        fb = torch.where(~right & (side == -1), fb / 2, fb)
        b, fb = torch.where(right, c, b), torch.where(right, fc, fb)
        a, fa = torch.where(right, a, c), torch.where(right, fa, fc)
        side = torch.where(right, 1.0, -1.0)
    t = torch.where(fa.abs() <= fb.abs(), a, b)
    return (r + t.view(n, 1, 1, 1) * d).clamp(0, 1).float()


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _sign(g: torch.Generator, n: int) -> Tensor:
    return torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)


def band_noise(shape: Sequence[int], lo: float, hi: float, g: torch.Generator) -> Tensor:
    """Gaussian noise band-limited to radial frequencies in [lo, hi) cycles/pixel, unit RMS per image."""
    n, c, h, w = shape
    white = torch.randn((n, c, h, w), generator=g)
    fy = torch.fft.fftfreq(h).view(h, 1)
    fx = torch.fft.rfftfreq(w).view(1, -1)
    r = (fy**2 + fx**2).sqrt()
    band = ((r >= lo) & (r < hi)).float()
    out = torch.fft.irfft2(torch.fft.rfft2(white) * band, s=(h, w))
    return out / out.pow(2).mean((1, 2, 3), keepdim=True).sqrt().clamp_min(1e-12)


def _luma(x: Tensor) -> Tensor:
    return (x * torch.tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)


def _crop(big: Tensor, size: int, dy: int = 0, dx: int = 0) -> Tensor:
    m = (big.shape[2] - size) // 2
    return big[..., m + dy : m + dy + size, m + dx : m + dx + size]


def _white_noise(x: Tensor, g: torch.Generator) -> Tensor:
    return torch.randn(x.shape, generator=g)


def _impulse(x: Tensor, g: torch.Generator) -> Tensor:
    """Salt-and-pepper noise on 5% of the pixels (all channels of a pixel together)."""
    n, _, h, w = x.shape
    hit = torch.rand((n, 1, h, w), generator=g) < 0.05
    salt = (torch.rand((n, 1, h, w), generator=g) < 0.5).float()
    return torch.where(hit, salt.expand_as(x), x)


def _region(values: Tensor, top: bool, share: float = 0.25) -> Tensor:
    """N x 1 x H x W mask of the ``share`` of pixels with the highest (``top``) or lowest values."""
    flat = values.flatten(1)
    k = max(1, round(share * flat.shape[1]))
    idx = flat.topk(k, dim=1, largest=top).indices
    return torch.zeros_like(flat).scatter_(1, idx, 1.0).view_as(values)


def _local_std(luma: Tensor, size: int) -> Tensor:
    k = max(3, size // 32 * 2 + 1)
    pad = k // 2
    p = F.pad(luma, (pad, pad, pad, pad), mode="reflect")
    mean = F.avg_pool2d(p, k, stride=1)
    sq = F.avg_pool2d(p * p, k, stride=1)
    return (sq - mean**2).clamp_min(0).sqrt()


# ----------------------------------------------------------------------------------- families
Builder = Callable[[Tensor, int, torch.Generator], tuple[Tensor, Tensor, Tensor, list[str]]]
"""(big crops N x 3 x S' x S', size S, generator) -> (ref, a, b, variant per triplet), a judged closer."""


def _equal_mse_photometric(big: Tensor, size: int, g: torch.Generator):
    ref = _crop(big, size)
    n = ref.shape[0]
    kinds = torch.randint(0, 2, (n,), generator=g)
    s = _sign(g, n).view(n, 1, 1, 1)
    shift = ref + s * _uniform(g, n, 0.06, 0.1).view(n, 1, 1, 1)
    mean = ref.mean((1, 2, 3), keepdim=True)
    stretch = mean + (ref - mean) * (1 + s * _uniform(g, n, 0.2, 0.35).view(n, 1, 1, 1))
    a = torch.where((kinds == 0).view(n, 1, 1, 1), shift, stretch).clamp(0, 1)
    damage = torch.randint(0, 4, (n,), generator=g)
    b0 = torch.stack([
        _white_noise(ref[i : i + 1], g)[0] * 0.1 if k == 0 else
        (_impulse(ref[i : i + 1], g)[0] - ref[i]) if k == 1 else
        (gaussian_blur(ref[i : i + 1], 1.5 * size / 64)[0] - ref[i]) if k == 2 else
        (jpeg(ref[i : i + 1], 5)[0] - ref[i])
        for i, k in enumerate(damage.tolist())])
    b = match_mse(ref, b0, _mse(ref, a))
    names = [f"{('mean shift', 'contrast stretch')[k]} vs {('noise', 'impulse noise', 'blur', 'JPEG')[d]}"
             for k, d in zip(kinds.tolist(), damage.tolist())]
    return ref, a, b, names


def _contrast_masking(big: Tensor, size: int, g: torch.Generator):
    ref = _crop(big, size)
    n = ref.shape[0]
    activity = _local_std(_luma(ref), size)
    noise_a, noise_b = _white_noise(ref, g), _white_noise(ref, g)
    a = (ref + _uniform(g, n, 0.04, 0.08).view(n, 1, 1, 1) * noise_a * _region(activity, True)).clamp(0, 1)
    b = match_mse(ref, noise_b * _region(activity, False), _mse(ref, a))
    return ref, a, b, ["noise on busy vs flat regions"] * n


def _srgb_to_linear(x: Tensor) -> Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(y: Tensor) -> Tensor:
    y = y.clamp(0, 1)
    return torch.where(y <= 0.0031308, 12.92 * y, 1.055 * y.clamp_min(1e-12) ** (1 / 2.4) - 0.055)


def _luminance_masking(big: Tensor, size: int, g: torch.Generator):
    ref = _crop(big, size)
    n = ref.shape[0]
    lum = _luma(ref)
    lin = _srgb_to_linear(ref)
    amp = _uniform(g, n, 0.02, 0.04).view(n, 1, 1, 1)  # linear-light noise amplitude
    grey_a, grey_b = torch.randn((n, 1, size, size), generator=g), torch.randn((n, 1, size, size), generator=g)
    a = _linear_to_srgb(lin + amp * grey_a * _region(lum, True))
    b = _linear_to_srgb(lin + amp * grey_b * _region(lum, False))
    return ref, a, b, ["same linear-light noise on bright vs dark regions"] * n


def _contrast_sensitivity(big: Tensor, size: int, g: torch.Generator):
    ref = _crop(big, size)
    n = ref.shape[0]
    high = band_noise((n, 1, size, size), 0.35, 0.5, g).expand(n, 3, size, size)
    mid = band_noise((n, 1, size, size), 0.06, 0.12, g).expand(n, 3, size, size)
    a = (ref + _uniform(g, n, 0.03, 0.06).view(n, 1, 1, 1) * high).clamp(0, 1)
    b = match_mse(ref, mid, _mse(ref, a))
    return ref, a, b, ["luminance noise at 0.35-0.5 vs 0.06-0.12 cycles/px"] * n


def _chromatic_noise(big: Tensor, size: int, g: torch.Generator):
    ref = _crop(big, size)
    n = ref.shape[0]
    w = torch.tensor(LUMA)
    rg = torch.tensor([w[1], -w[0], 0.0])
    by = torch.tensor([-w[2] / (w[0] + w[1]), -w[2] / (w[0] + w[1]), 1.0])
    rg, by = rg / rg.norm(), by / by.norm()
    n1, n2 = band_noise((n, 1, size, size), 0.15, 0.5, g), band_noise((n, 1, size, size), 0.15, 0.5, g)
    chroma = n1 * rg.view(1, 3, 1, 1) + n2 * by.view(1, 3, 1, 1)
    lum = band_noise((n, 1, size, size), 0.15, 0.5, g).expand(n, 3, size, size)
    a = (ref + _uniform(g, n, 0.04, 0.08).view(n, 1, 1, 1) * chroma).clamp(0, 1)
    b = match_mse(ref, lum, _mse(ref, a))
    return ref, a, b, ["isoluminant chromatic vs luminance noise"] * n


def _geometry(big: Tensor, size: int, g: torch.Generator):
    ref = _crop(big, size)
    n = ref.shape[0]
    kinds = torch.randint(0, 3, (n,), generator=g).tolist()
    outs, names = [], []
    for i, k in enumerate(kinds):
        if k == 0:
            px = max(1, round(size / 128))
            dy, dx = (px, 0) if torch.rand(1, generator=g).item() < 0.5 else (0, px)
            outs.append(_crop(big[i : i + 1], size, dy, dx)[0])
            names.append(f"{px} px translation vs noise")
        else:
            if k == 1:
                angle = math.radians(float(_uniform(g, 1, 1.0, 2.0)) * float(_sign(g, 1)))
                scale = 1.0
                names.append("1-2 degree rotation vs noise")
            else:
                angle, scale = 0.0, 1 + float(_uniform(g, 1, 0.02, 0.04)) * float(_sign(g, 1))
                names.append("2-4% rescaling vs noise")
            cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
            theta = torch.tensor([[cos, -sin, 0.0], [sin, cos, 0.0]]).unsqueeze(0)
            moved = F.grid_sample(big[i : i + 1], F.affine_grid(theta, list(big[i : i + 1].shape), align_corners=False),
                                  mode="bicubic", padding_mode="reflection", align_corners=False)
            outs.append(_crop(moved, size)[0].clamp(0, 1))
    a = torch.stack(outs)
    b = match_mse(ref, _white_noise(ref, g), _mse(ref, a))
    return ref, a, b, names


def _tone(big: Tensor, size: int, g: torch.Generator):
    ref = _crop(big, size)
    n = ref.shape[0]
    kinds = torch.randint(0, 2, (n,), generator=g)
    gamma = torch.exp(_sign(g, n) * _uniform(g, n, 0.15, 0.25)).view(n, 1, 1, 1)
    warm = _sign(g, n).view(n, 1) * _uniform(g, n, 0.05, 0.09).view(n, 1)
    gains = torch.cat([1 + warm, torch.ones(n, 1), 1 - warm], 1).view(n, 3, 1, 1)
    a = torch.where((kinds == 0).view(n, 1, 1, 1), ref.clamp(0, 1) ** gamma, ref * gains).clamp(0, 1)
    b = match_mse(ref, _white_noise(ref, g), _mse(ref, a))
    return ref, a, b, [("gamma 0.78-0.86 or 1.16-1.28", "white balance +-5-9%")[k] + " vs noise"
                       for k in kinds.tolist()]


MONO_KINDS = ("noise", "blur", "jpeg", "colour", "contrast", "warp")


def _monotonicity(big: Tensor, size: int, g: torch.Generator):
    ref = _crop(big, size)
    n = ref.shape[0]
    outs_a, outs_b, names = [], [], []
    for i in range(n):
        kind = MONO_KINDS[int(torch.randint(0, len(MONO_KINDS), (1,), generator=g))]
        lo = int(torch.randint(1, 4, (1,), generator=g))
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=g))
        outs_a.append(distort(ref[i : i + 1], kind, lo, torch.Generator().manual_seed(seed))[0])
        outs_b.append(distort(ref[i : i + 1], kind, lo + 2, torch.Generator().manual_seed(seed))[0])
        names.append(f"{kind} level {lo} vs {lo + 2}")
    return ref, torch.stack(outs_a), torch.stack(outs_b), names


@dataclass(frozen=True)
class Family:
    """A psychophysical test: how ``a`` and ``b`` differ, the human answer, and its source."""

    name: str
    human: str
    citation: str
    equal_mse: bool
    build: Builder


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("equal-mse-photometric",
           "a mean shift or contrast stretch looks far closer than noise, impulse noise, blur or JPEG of equal MSE",
           "Wang & Bovik, Mean squared error: love it or leave it?, IEEE Signal Processing Magazine 2009 (Fig. 2)",
           True, _equal_mse_photometric),
    Family("contrast-masking",
           "noise is less visible on busy, high-contrast regions than on flat ones (same noise energy)",
           "Legge & Foley, Contrast masking in human vision, JOSA 1980", True, _contrast_masking),
    Family("luminance-masking",
           "the same linear-light noise is less visible on bright regions than on dark ones",
           "Weber's law; e.g. Wandell, Foundations of Vision 1995, ch. 7", False, _luminance_masking),
    Family("contrast-sensitivity",
           "noise near the pixel Nyquist limit is less visible than noise at a few cycles per degree (equal MSE)",
           "Campbell & Robson, Application of Fourier analysis to the visibility of gratings, J. Physiol. 1968",
           True, _contrast_sensitivity),
    Family("chromatic-noise",
           "fine isoluminant colour noise is less visible than luminance noise of equal MSE",
           "Mullen, The contrast sensitivity of human colour vision to red-green and blue-yellow chromatic "
           "gratings, J. Physiol. 1985", True, _chromatic_noise),
    Family("geometry-vs-noise",
           "a small translation, rotation or rescaling looks closer than noise of equal MSE",
           "Wang & Simoncelli, Translation insensitive image similarity in complex wavelet domain, ICASSP 2005; "
           "Wang & Bovik 2009", True, _geometry),
    Family("tone-vs-noise",
           "a gamma or white-balance change looks closer than noise of equal MSE",
           "Wang & Bovik 2009; colour constancy: Foster, Color constancy, Vision Research 2011", True, _tone),
    Family("monotonicity",
           "a weaker distortion looks closer than a stronger one of the same kind and pattern",
           "by construction (any observer)", False, _monotonicity),
)}


# ----------------------------------------------------------------------------------- sources
@functools.lru_cache(maxsize=1)
def skimage_photos() -> tuple[Tensor, ...]:
    """scikit-image's sample photographs (:data:`SKIMAGE_PHOTOS`) as 3 x H x W float tensors."""
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise ImportError("the psychophysics suite's default images come from scikit-image: "
                          "pip install 'perceptual-sim[eval]' (or pass a folder of photographs)")
    folder = Path(spec.origin).parent / "data"
    return tuple(load_image(folder / name) for name in SKIMAGE_PHOTOS)


def folder_photos(folder: Path, limit: int = 2000) -> list[Tensor]:
    """Up to ``limit`` images of a folder (sorted by path) as 3 x H x W float tensors."""
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise ValueError(f"no images under {folder} (looked for {sorted(IMAGE_SUFFIXES)})")
    return [load_image(p) for p in files]


def random_crops(photos: Sequence[Tensor], n: int, size: int, rng: np.random.Generator) -> Tensor:
    """``n`` crops of (1 + 2 * 8%) * size px: random photo, scale (shorter side 1-2.5 crops, never
    more than the photo holds), position and horizontal flip; low-contrast crops are redrawn."""
    big = size + 2 * math.ceil(0.08 * size)
    out = []
    while len(out) < n:
        photo = photos[int(rng.integers(len(photos)))]
        h, w = photo.shape[1:]
        short = min(h, w)
        top_scale = max(1.0, min(2.5, short / big))
        scale = big * float(rng.uniform(1.0, top_scale)) / short
        nh, nw = max(big, round(h * scale)), max(big, round(w * scale))
        img = F.interpolate(photo[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)[0]
        y, x = int(rng.integers(nh - big + 1)), int(rng.integers(nw - big + 1))
        crop = img[:, y : y + big, x : x + big].clamp(0, 1)
        if rng.random() < 0.5:
            crop = crop.flip(2)
        lum = _luma(crop[None])
        if lum.std() < 0.06 or not 0.15 < float(lum.mean()) < 0.85:
            continue
        out.append(crop)
    return torch.stack(out)


def build_family(family: Family, photos: Sequence[Tensor], size: int, count: int, *, seed: int = 0,
                 chunk: int = 50) -> list[tuple[Tensor, Tensor, Tensor, list[str]]]:
    """The family's triplets at ``size``, in chunks whose content depends only on the seed."""
    return [_chunk(family, photos, size, min(chunk, count - start), seed, start // chunk)
            for start in range(0, count, chunk)]


def _chunk(family: Family, photos: Sequence[Tensor], size: int, n: int, seed: int, index: int):
    key = int.from_bytes(hashlib.sha256(f"{seed}/{family.name}/{size}/{index}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(key)
    g = torch.Generator().manual_seed(key & (2**63 - 1))
    return family.build(random_crops(photos, n, size, rng), size, g)


# ----------------------------------------------------------------------------------- scoring
def decisions(d_a: Tensor, d_b: Tensor) -> Tensor:
    """1 where a is closer, 0 where b is, 0.5 on a tie (within :data:`TIE_RTOL`)."""
    d_a, d_b = d_a.double(), d_b.double()
    tie = (d_a - d_b).abs() <= TIE_RTOL * torch.maximum(d_a.abs(), d_b.abs())
    return torch.where(tie, 0.5, (d_a < d_b).double())


@torch.inference_mode()
def score_metric(metric: ProxyMetric, *, sizes: Sequence[int] = (64, 256), per_family: int = 200, seed: int = 0,
                 families: Sequence[str] | None = None, photos: Sequence[Tensor] | None = None,
                 batch_size: int = 50, info: dict[str, Any] | None = None,
                 cache: dict[tuple[Any, ...], Any] | None = None) -> dict[str, Any]:
    """Per-family and mean agreement with the settled human answers, per size and mode.

    ``cache``: a dict that keeps the generated triplets between calls (to score several metrics
    on the same photos without generating them again; about 2 GB at 100 per family).
    """
    check_batch_size(batch_size)
    chosen = list(families or FAMILIES)
    unknown = sorted(set(chosen) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown psychophysics families {unknown}; known: {sorted(FAMILIES)}")
    sizes = list(sizes)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 32 for s in sizes):
        raise ValueError(f"sizes must be integers of at least 32 pixels, got {sizes}")
    if per_family < 1:
        raise ValueError(f"per_family must be at least 1, got {per_family}")
    photos = photos if photos is not None else skimage_photos()
    jobs = [(name, size, start) for size in sizes for name in chosen for start in range(0, per_family, batch_size)]
    mine = distributed.shard(jobs)
    results = []
    with progress(len(mine), f"{metric.name} psych", "chunk") as bar:
        for name, size, start in mine:
            key = (name, size, min(batch_size, per_family - start), seed, start // batch_size, id(photos[0]))
            if cache is not None and key in cache:
                ref, a, b, variants = cache[key]
            else:
                ref, a, b, variants = _chunk(FAMILIES[name], photos, size, key[2], seed, key[4])
                if cache is not None:
                    cache[key] = (ref, a, b, variants)
            fr = metric.features(ref)
            da, db = metric.compare(fr, metric.features(a)), metric.compare(fr, metric.features(b))
            results.append(({m: decisions(da[m].cpu(), db[m].cpu()) for m in da}, variants))
            bar.update(1)
    gathered = distributed.gather(results)
    scores: dict[str, Any] = {}
    for name in chosen:
        fam = FAMILIES[name]
        entry: dict[str, Any] = {"human": fam.human, "citation": fam.citation, "equal_mse": fam.equal_mse,
                                 "scores": {}}
        for size in sizes:
            parts = [r for job, r in zip(jobs, gathered) if job[:2] == (name, size)]
            variants = [v for _, vs in parts for v in vs]
            by_mode = {}
            for mode in parts[0][0]:
                dec = torch.cat([p[0][mode] for p in parts]).numpy()
                by_variant = {v: float(dec[[i for i, x in enumerate(variants) if x == v]].mean())
                              for v in sorted(set(variants))}
                by_mode[mode] = {"score": float(dec.mean()), "by_variant": by_variant}
            entry["scores"][str(size)] = by_mode
        scores[name] = entry
    modes = list(next(iter(scores.values()))["scores"][str(sizes[0])])
    mean = {str(size): {m: float(np.mean([scores[f]["scores"][str(size)][m]["score"] for f in chosen]))
                        for m in modes} for size in sizes}
    return {"benchmark": "psych", **(info or {"model": metric.name}), "package_version": __version__,
            "sizes": sizes, "per_family": per_family, "seed": seed, "families": scores, "mean": mean,
            "tie_rtol": TIE_RTOL}


def score_psych(model: PerceptualDistance | str | None, *, mode: str | None = None, sizes: Sequence[int] = (64, 256),
                per_family: int = 200, seed: int = 0, families: Sequence[str] | None = None,
                images: str | Path | None = None, batch_size: int = 50,
                device: str | torch.device = "cpu") -> dict[str, Any]:
    """:func:`score_metric` for a model (every mode, or only ``mode``), on scikit-image's photos
    or the images of a folder."""
    module = resolve_model(model, mode, device)
    photos = folder_photos(Path(images)) if images is not None else None
    return score_metric(NetMetric(module, modes=(mode,) if mode else MODES), sizes=sizes,
                        per_family=per_family, seed=seed, families=families, photos=photos, batch_size=batch_size,
                        info={"model": module.card.name, "sha256": module.card.sha256,
                              "feature_blur": module.card.feature_blur, "mode": mode or "all",
                              "images": str(images) if images is not None else "scikit-image sample photos"})


def format_psych(result: dict[str, Any]) -> str:
    """Per-family table of a :func:`score_psych` result (x100)."""
    sizes = [str(s) for s in result["sizes"]]
    modes = list(result["mean"][sizes[0]])
    cols = [f"{m}@{s}" for s in sizes for m in modes]
    lines = [(f"{result['model']}: psychophysics, {result['per_family']} triplets per family and size "
             "(x100; 50 = chance, L2 = 50 on equal-MSE families)"),
             f"{'family':<24}" + "".join(f"{c:>16}" for c in cols)]
    for name, fam in result["families"].items():
        lines.append(f"{name:<24}" + "".join(f"{100 * fam['scores'][s][m]['score']:16.1f}" for s in sizes for m in modes))
    lines.append(f"{'mean':<24}" + "".join(f"{100 * result['mean'][s][m]:16.1f}" for s in sizes for m in modes))
    return "\n".join(lines)
