"""Agreement with human 2AFC similarity judgments: triplets (reference, a, b) over a folder of images.

A CSV row says how many people found ``a`` or ``b`` more like the reference. Two forms are read:

* the material-similarity form (Lagunas et al. 2019): ``reference, majority_closer, other,
  votes_closer, votes_other`` (``a`` = majority_closer, ``b`` = other; other columns ignored);
* the generic form: ``ref, a, b`` and either ``p_b`` (fraction of people who chose ``b``) or
  ``votes_a, votes_b``.

A triplet scores by the BAPPS 2AFC rule, ``(d_a < d_b)(1 - p_b) + (d_b < d_a) p_b + 0.5 (d_a = d_b)``;
the score is the mean x100. The crowd ceiling is the mean of ``max(p_b, 1 - p_b)`` (a metric that
always sides with the majority). Confidence intervals come from a bootstrap over reference
images (triplets sharing a reference are not independent); the same resamples are used for
every metric (fixed seed), so :func:`paired_difference` gives the interval of a difference.

The triplets are split by reference image into a fixed selection part and a held-out part
(:func:`split_by_reference`: the references with the smallest salted sha256 are held out), so
choices made on one part can be checked on the other. Images are resized to each evaluation
size: shorter side to N (bilinear, antialiased), then the central N x N crop.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Sequence
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
from ...images import load_image
from ...metric import PerceptualDistance
from ...pairs import check_batch_size, progress
from .common import resolve_model
from .metrics import NetMetric, ProxyMetric

HELD_OUT_FRACTION = 0.2
SPLIT_SALT = "perceptual_sim/triplets-split-v1"
BOOTSTRAP = 1000
PARTS = ("all", "selection", "held_out")
MATRIX_IMAGES = 2000
"""Up to this many distinct images, a model's distances come from one N x N matrix per mode."""


@dataclass(frozen=True)
class Triplets:
    """Human 2AFC judgments: ``p_b[i]`` is the fraction of people who found ``b[i]`` closer to ``ref[i]``."""

    ref: list[str]
    a: list[str]
    b: list[str]
    p_b: np.ndarray

    def __len__(self) -> int:
        return len(self.ref)

    @property
    def ceiling(self) -> float:
        """The crowd's own agreement, mean of max(p_b, 1 - p_b)."""
        return float(np.maximum(self.p_b, 1 - self.p_b).mean())

    def subset(self, mask: np.ndarray) -> Triplets:
        idx = np.flatnonzero(mask)
        return Triplets([self.ref[i] for i in idx], [self.a[i] for i in idx], [self.b[i] for i in idx], self.p_b[idx])

    def pairs(self) -> tuple[list[str], list[tuple[int, int]], np.ndarray, np.ndarray]:
        """``(names, pairs, at_a, at_b)``: every image (sorted), each (reference, candidate) pair once
        as indices into ``names``, and the position in ``pairs`` of each triplet's (ref, a) and (ref, b)."""
        names = sorted(set(self.ref) | set(self.a) | set(self.b))
        index = {n: i for i, n in enumerate(names)}
        pairs = sorted({(index[r], index[o]) for r, a, b in zip(self.ref, self.a, self.b) for o in (a, b)})
        where = {pair: k for k, pair in enumerate(pairs)}
        at_a = np.array([where[index[r], index[a]] for r, a in zip(self.ref, self.a)], dtype=np.int64)
        at_b = np.array([where[index[r], index[b]] for r, b in zip(self.ref, self.b)], dtype=np.int64)
        return names, pairs, at_a, at_b


def read_triplets(path: str | Path) -> Triplets:
    """Read a CSV of human triplet judgments (either form; see the module docstring)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in reader.fieldnames or []]
            reader.fieldnames = header
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"cannot read triplets CSV {path}: {exc}") from None
    cols = set(header)
    if {"reference", "majority_closer", "other", "votes_closer", "votes_other"} <= cols:
        keys, votes = ("reference", "majority_closer", "other"), ("votes_closer", "votes_other")
        share = None
    elif {"ref", "a", "b"} <= cols and ("p_b" in cols or {"votes_a", "votes_b"} <= cols):
        keys = ("ref", "a", "b")
        share, votes = ("p_b", None) if "p_b" in cols else (None, ("votes_a", "votes_b"))
    else:
        raise ValueError(
            f"{path} has columns {header}; expected reference,majority_closer,other,votes_closer,votes_other "
            "or ref,a,b with p_b (fraction choosing b) or votes_a,votes_b"
        )
    if not rows:
        raise ValueError(f"{path} holds no triplets (only a header)")
    ref, a, b, p = [], [], [], []
    for line, row in enumerate(rows, start=2):
        names = [(row.get(k) or "").strip() for k in keys]
        if not all(names):
            raise ValueError(f"{path}, line {line}: empty image name in columns {keys}")
        try:
            if share is not None:
                value = float(row[share])
            else:
                va, vb = float(row[votes[0]]), float(row[votes[1]])
                if not (va >= 0 and vb >= 0 and va + vb > 0):
                    raise ValueError(f"votes must be non-negative with a positive sum, got {va} and {vb}")
                value = vb / (va + vb)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}, line {line}: {exc}") from None
        if not 0 <= value <= 1:
            raise ValueError(f"{path}, line {line}: the fraction choosing b must lie in [0, 1], got {value}")
        ref.append(names[0])
        a.append(names[1])
        b.append(names[2])
        p.append(value)
    return Triplets(ref, a, b, np.asarray(p, dtype=np.float64))


def split_by_reference(triplets: Triplets, held_out: float = HELD_OUT_FRACTION) -> np.ndarray:
    """Boolean mask of the held-out triplets: those whose reference is among the
    ``ceil(held_out * references)`` references with the smallest salted sha256 of their name."""
    refs = sorted(set(triplets.ref))
    key = sorted(refs, key=lambda r: hashlib.sha256(f"{SPLIT_SALT}/{r}".encode()).hexdigest())
    chosen = set(key[: math.ceil(held_out * len(refs))])
    return np.array([r in chosen for r in triplets.ref], dtype=bool)


def load_square(path: Path, size: int) -> Tensor:
    """3 x size x size float image in [0, 1]: shorter side resized to ``size``, central crop."""
    x = load_image(path).float()[None]
    h, w = x.shape[2:]
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=True)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[0, :, top : top + size, left : left + size].clamp(0, 1)


def two_afc(d_a: np.ndarray, d_b: np.ndarray, p_b: np.ndarray) -> np.ndarray:
    """Per-triplet BAPPS 2AFC agreement (p_b = fraction of people who chose b)."""
    return (d_a < d_b) * (1 - p_b) + (d_b < d_a) * p_b + 0.5 * (d_a == d_b)


def bootstrap_interval(values: np.ndarray, groups: Sequence[str], *, reps: int = BOOTSTRAP, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean of ``values`` under resampling of whole groups."""
    names, inverse = np.unique(np.asarray(groups), return_inverse=True)
    sums = np.bincount(inverse, weights=np.asarray(values, dtype=np.float64), minlength=len(names))
    counts = np.bincount(inverse, minlength=len(names)).astype(np.float64)
    idx = np.random.default_rng(seed).integers(0, len(names), size=(reps, len(names)))
    means = sums[idx].sum(1) / counts[idx].sum(1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def paired_difference(scores_a: np.ndarray, scores_b: np.ndarray, groups: Sequence[str], **kwargs: Any) -> dict[str, float]:
    """Mean of ``scores_a - scores_b`` (per-triplet agreements) with its bootstrap interval."""
    diff = np.asarray(scores_a, dtype=np.float64) - np.asarray(scores_b, dtype=np.float64)
    lo, hi = bootstrap_interval(diff, groups, **kwargs)
    return {"difference": float(diff.mean()), "ci": [lo, hi]}


@torch.inference_mode()
def triplet_distances(metric: ProxyMetric, triplets: Triplets, images: Path, size: int, *,
                      batch_size: int = 64, desc: str = "triplets") -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{mode: (d_a, d_b)} for every triplet at ``size`` px; each image's features are computed once.

    A metric with a ``matrix`` method (:class:`NetMetric`) over at most :data:`MATRIX_IMAGES` images gives every distance from
    one N x N matrix per mode (each process computes it whole); otherwise pairs are compared in
    batches, and in a :func:`distributed.session` each process scores a share of them.
    """
    check_batch_size(batch_size)
    names, pairs, at_a, at_b = triplets.pairs()
    missing = [n for n in names if not (Path(images) / n).is_file()]
    if missing:
        raise ValueError(f"{len(missing)} image(s) named in the triplets are not in {images}, e.g. {missing[:3]}")
    pixels = torch.stack([load_square(Path(images) / n, size) for n in names])
    if getattr(metric, "matrix", None) is not None and len(names) <= MATRIX_IMAGES:  # one N x N matrix per mode
        rows, cols = torch.tensor([i for i, _ in pairs]), torch.tensor([j for _, j in pairs])
        gathered = [{m: d[rows, cols].double().numpy() for m, d in metric.matrix(pixels, batch_size).items()}]
    else:
        feats = [metric.features(pixels[i : i + batch_size]) for i in range(0, len(names), batch_size)]
        batches = [pairs[i : i + batch_size] for i in range(0, len(pairs), batch_size)]
        mine = distributed.shard(batches)
        results = []
        with progress(sum(map(len, mine)), desc, "pair") as bar:
            for batch in mine:
                fa = _take(feats, [i for i, _ in batch], batch_size)
                fb = _take(feats, [j for _, j in batch], batch_size)
                results.append({m: v.double().cpu().numpy() for m, v in metric.compare(fa, fb).items()})
                bar.update(len(batch))
        gathered = distributed.gather(results)
    out = {}
    for mode in gathered[0]:
        d = np.concatenate([g[mode] for g in gathered])
        if not np.isfinite(d).all():
            raise ValueError(f"{metric.name} gave non-finite distances in mode {mode!r} at {size} px")
        out[mode] = (d[at_a], d[at_b])
    return out


def _take(feats: list[Any], rows: list[int], batch_size: int) -> Any:
    """Rows of features stored in chunks of ``batch_size`` (tensors or nested lists of tensors)."""
    return _stack([_index(feats[r // batch_size], r % batch_size) for r in rows])


def _index(f: Any, i: int) -> Any:
    return f[i] if isinstance(f, Tensor) else [_index(t, i) for t in f]


def _stack(items: list[Any]) -> Any:
    return torch.stack(items) if isinstance(items[0], Tensor) else [_stack(list(p)) for p in zip(*items)]


def agreement(triplets: Triplets, d_a: np.ndarray, d_b: np.ndarray, held_out: np.ndarray, *,
              seed: int = 0) -> dict[str, dict[str, Any]]:
    """Score, bootstrap interval and crowd ceiling on each part (all, selection, held_out)."""
    per = two_afc(d_a, d_b, triplets.p_b)
    out = {}
    for part, mask in zip(PARTS, (np.ones(len(per), bool), ~held_out, held_out)):
        if not mask.any():
            continue
        groups = [r for r, m in zip(triplets.ref, mask) if m]
        lo, hi = bootstrap_interval(per[mask], groups, seed=seed)
        out[part] = {"score": float(per[mask].mean()), "ci": [lo, hi], "triplets": int(mask.sum()),
                     "ceiling": float(np.maximum(triplets.p_b[mask], 1 - triplets.p_b[mask]).mean())}
    return out


def score_triplets(
    model: PerceptualDistance | str | None,
    csv_path: str | Path,
    images: str | Path,
    *,
    sizes: Sequence[int] = (64,),
    mode: str | None = None,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    held_out: float = HELD_OUT_FRACTION,
) -> dict[str, Any]:
    """Agreement of ``model`` with the human judgments in ``csv_path`` at each size, every mode
    (or only ``mode``), on all triplets and on the selection and held-out parts. Fractions in [0, 1]."""
    module = resolve_model(model, mode, device)
    return score_metric(NetMetric(module, modes=(mode,) if mode else MODES),
                        csv_path, images, sizes=sizes, batch_size=batch_size, held_out=held_out,
                        info={"model": module.card.name, "sha256": module.card.sha256,
                              "feature_blur": module.card.feature_blur})


def score_metric(metric: ProxyMetric, csv_path: str | Path, images: str | Path, *, sizes: Sequence[int] = (64,),
                 batch_size: int = 64, held_out: float = HELD_OUT_FRACTION,
                 info: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`score_triplets` for any metric with ``features``/``compare`` (pixel baselines included)."""
    sizes = list(sizes)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 8 for s in sizes):
        raise ValueError(f"sizes must be integers of at least 8 pixels, got {sizes}")
    if not 0 < held_out < 1:
        raise ValueError(f"held_out must be a fraction in (0, 1), got {held_out}")
    if not Path(images).is_dir():
        raise ValueError(f"--images {images} is not a folder")
    triplets = read_triplets(csv_path)
    mask = split_by_reference(triplets, held_out)
    scores: dict[str, dict[str, Any]] = {}
    for size in sizes:
        d = triplet_distances(metric, triplets, Path(images), size, batch_size=batch_size,
                              desc=f"{metric.name} {size}px")
        scores[str(size)] = {mode: agreement(triplets, d_a, d_b, mask) for mode, (d_a, d_b) in d.items()}
    return {
        "benchmark": "triplets", **(info or {"model": metric.name}), "package_version": __version__,
        "csv": str(csv_path), "images": str(images), "triplets": len(triplets),
        "references": len(set(triplets.ref)), "held_out_references": sorted({r for r, m in zip(triplets.ref, mask) if m}),
        "resize": "shorter side to N (bilinear, antialiased), central N x N crop",
        "bootstrap": f"{BOOTSTRAP} resamples of reference images, 95% percentile interval, seed 0",
        "scores": scores,
    }


def format_triplets(result: dict[str, Any]) -> str:
    """A short table of a :func:`score_triplets` result (x100, with 95% intervals)."""
    lines = [(f"{result['model']} on {result['triplets']} human triplets ({result['references']} references, "
             f"{len(result['held_out_references'])} held out); 2AFC x100 [95% CI]"),
             "size  mode       all                    selection              held-out"]
    for size, by_mode in result["scores"].items():
        for mode, parts in by_mode.items():
            cells = [f"{100 * parts[p]['score']:5.2f} [{100 * parts[p]['ci'][0]:5.2f}, {100 * parts[p]['ci'][1]:5.2f}]"
                     if p in parts else "-" for p in PARTS]
            lines.append(f"{size:>4}  {mode:<9}  " + "   ".join(f"{c:<20}" for c in cells))
    first = next(iter(next(iter(result["scores"].values())).values()))
    lines.append("crowd ceiling: " + ", ".join(f"{p} {100 * first[p]['ceiling']:.2f}" for p in PARTS if p in first))
    return "\n".join(lines)
