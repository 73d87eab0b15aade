"""Evaluating generative models: diversity, nearest training images (memorisation), system against
system, and video (per-frame distance and tLPIPS flicker).

Every function computes each image's features once (:meth:`PerceptualDistance.embed`) and compares
them as vectors: in every mode the distance of two images is the squared Euclidean distance of
their vectors (:func:`vectors`; what :meth:`PerceptualDistance.pairwise` computes), so N images
cost N backbone passes, whatever the number of pairs. Image files are decoded by the command
line's policy (:func:`perceptual_sim.images.decode_image`); with ``errors="record"`` a file that
fails is listed in the result's ``failed`` and the others are used, with ``errors="raise"`` (the
default) it raises its :class:`~perceptual_sim.images.ImageError`. In spatial mode the images of
one set must share a size (their vectors have a length set by it); the other modes take any sizes.

Outputs carry :func:`provenance`: model, mode, weights sha256, feature blur, package version.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import torch
from torch import Tensor

from ._version import __version__
from .distances import embedding, squared_cdist
from .images import IMAGE_SUFFIXES, MAX_PIXELS, decode_image
from .models.archs import Mode
from .pairs import progress

if TYPE_CHECKING:
    from .metric import PerceptualDistance

Images = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]
"""A folder (searched recursively; hidden names skipped) or a list of image files."""

BOOTSTRAP = 1000
"""Bootstrap resamples for the intervals (95%, percentile)."""
LEVEL = 0.95
CHUNK = 4096
"""Training images embedded and compared at a time by :func:`nearest`."""
PCA_DIMS = 256
"""Dimensions of the vectors FAISS searches (a PCA of the exact vectors)."""


# ----------------------------------------------------------------------------- shared pieces
def provenance(model: PerceptualDistance, mode: Mode | None = None) -> dict[str, Any]:
    """What a result was computed with: model, mode, weights sha256, feature blur, package version."""
    return {"model": model.card.name, "mode": mode or model.mode, "sha256": model.card.sha256,
            "feature_blur": model.card.feature_blur, "version": __version__}


def vectors(model: PerceptualDistance, x: Tensor, mode: Mode | None = None, *,
            input_range: tuple[float, float] = (0.0, 1.0)) -> Tensor:
    """N x D float32 vectors of a batch whose squared Euclidean distances are the ``mode`` distances
    (``model.pairwise(model.embed(a), model.embed(b))`` equals their squared distances)."""
    mode = model._mode(mode)
    maps = model._mode_maps(mode, model.embed(x, input_range=input_range).maps)
    with torch.autocast(x.device.type, enabled=False):
        return torch.cat(embedding(mode, maps, model._weights()), 1)


def bootstrap_interval(values: Sequence[float] | np.ndarray, *, resamples: int = BOOTSTRAP,
                       seed: int = 0) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of ``values`` (resampled with replacement)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        raise ValueError("no values to bootstrap")
    if v.size == 1 or resamples < 1:
        return float(v.mean()), float(v.mean())
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 256):  # bounded memory: 256 resamples at a time
        n = min(256, resamples - start)
        means[start : start + n] = v[rng.integers(0, v.size, (n, v.size))].mean(1)
    lo, hi = np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
    return float(lo), float(hi)


def image_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``folder`` at any depth, in order of relative path; hidden names and
    linked folders skipped. ValueError when it is not a folder, holds none, or has unreadable parts."""
    from .images import image_files as walk

    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder")
    found, unreadable = walk(root)
    if unreadable:
        raise ValueError(f"{root}: cannot read {unreadable[0]}" + (f" (and {len(unreadable) - 1} more)"
                                                                    if len(unreadable) > 1 else ""))
    if not found:
        raise ValueError(f"{root} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return [found[k] for k in sorted(found, key=_natural)]


def _natural(name: str) -> list[Any]:
    """Sort key: digits compare as numbers (frame2 before frame10)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _paths(images: Images, name: str) -> list[Path]:
    if isinstance(images, (str, os.PathLike)):
        return image_files(images)
    if isinstance(images, Tensor) or not isinstance(images, Sequence):
        raise TypeError(f"{name} must be a folder or a list of image files, got {type(images).__name__}")
    paths = [Path(p) for p in images]
    if not paths:
        raise ValueError(f"{name} is an empty list of images")
    return paths


def _model(model: str | PerceptualDistance | None, mode: str | None, device: str | torch.device) -> PerceptualDistance:
    from .api import load
    from .metric import PerceptualDistance

    if isinstance(model, PerceptualDistance):
        model._mode(mode)
        return model
    return load(model, mode=mode, device=device)


@dataclass
class _Embedded:
    """Vectors of the files that decoded, their positions in the input list, and the failures."""

    vectors: Tensor
    index: list[int]
    failed: list[tuple[Path, str]] = field(default_factory=list)
    size: tuple[int, int] | None = None


def _stream(model: PerceptualDistance, mode: str, paths: Sequence[Path], *, batch_size: int, max_pixels: int,
            errors: str, size: tuple[int, int] | None = None, desc: str = "embedding",
            ) -> Iterator[_Embedded]:
    """Vectors of ``paths`` in batches of at most ``batch_size`` files (with a progress bar).

    In spatial mode each image must have ``size`` (default: the first decoded image's); a file that
    fails to decode, or has another size, raises or (``errors="record"``) is listed in ``failed``."""
    if errors not in ("raise", "record"):
        raise ValueError(f"errors must be 'raise' or 'record', got {errors!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    with progress(len(paths), desc, "image", terminal_only=True) as bar, torch.inference_mode():
        for start in range(0, len(paths), batch_size):
            out = _Embedded(torch.empty(0), [], [], size)
            by_size: dict[tuple[int, int], list[tuple[int, Tensor]]] = {}
            for i in range(start, min(len(paths), start + batch_size)):
                try:
                    pixels = decode_image(paths[i], max_pixels=max_pixels).pixels
                    hw = (pixels.shape[1], pixels.shape[2])
                    if min(hw) < model.card.min_size:
                        raise ValueError(f"{paths[i]} is {hw[0]} x {hw[1]}; model {model.card.name} needs at least "
                                         f"{model.card.min_size} x {model.card.min_size} pixels")
                    if mode == "spatial":
                        size = size or hw
                        if hw != size:
                            raise ValueError(
                                f"{paths[i]} is {hw[0]} x {hw[1]} but the other images are {size[0]} x {size[1]} "
                                "(H x W); the spatial mode compares images of one size: resize them, or use "
                                "--mode meanpool or --mode style (any sizes)")
                except Exception as exc:
                    if errors == "raise":
                        raise
                    why = str(exc) if isinstance(exc, ValueError) else f"{paths[i]}: {type(exc).__name__}: {exc}"
                    out.failed.append((paths[i], why))
                    continue
                by_size.setdefault(hw, []).append((i, pixels))
            parts = []
            for items in by_size.values():
                parts.append(vectors(model, torch.stack([p for _, p in items]).to(model.device), mode))
                out.index += [i for i, _ in items]
            order = np.argsort(out.index, kind="stable")
            out.index = [out.index[j] for j in order]
            out.size = size
            dim = parts[0].shape[1] if parts else 0
            out.vectors = torch.cat(parts)[torch.from_numpy(order)] if parts else torch.empty(0, dim)
            bar.update(min(len(paths), start + batch_size) - start)
            yield out


def _embed_all(model: PerceptualDistance, mode: str, paths: Sequence[Path], **options: Any) -> _Embedded:
    chunks = list(_stream(model, mode, paths, **options))
    parts = [c.vectors for c in chunks if len(c.index)]
    dims = {p.shape[1] for p in parts}
    if len(dims) > 1:  # meanpool and style vectors do not depend on the size
        raise AssertionError(f"vector lengths differ: {dims}")
    return _Embedded(torch.cat(parts) if parts else torch.empty(0, 0), [i for c in chunks for i in c.index],
                     [f for c in chunks for f in c.failed], chunks[-1].size if chunks else None)


def _rows_sq(a: Tensor, b: Tensor) -> Tensor:
    """Squared distances of matching rows, float64 (exactly 0 for equal rows); 2**22 values at a time."""
    step = max(1, (1 << 22) // max(1, a.shape[1]))
    return torch.cat([(a[s : s + step].double() - b[s : s + step].double()).pow(2).sum(1)
                      for s in range(0, len(a), step)]) if len(a) else torch.zeros(0, dtype=torch.float64)


# ----------------------------------------------------------------------------- diversity
@dataclass(frozen=True)
class Diversity:
    """Result of :func:`diversity`: higher means more diverse (0 when all images are identical)."""

    mean: float
    interval: tuple[float, float]
    protocol: str
    images: int
    pairs: int
    groups: dict[str, float]
    """Per input (grouped protocol): its mean pairwise distance; empty for all pairs."""
    failed: list[tuple[str, str]]
    info: dict[str, Any]


def diversity(
    images: Images | Tensor | Sequence[Tensor],
    *,
    grouped: bool | None = None,
    model: str | PerceptualDistance | None = None,
    mode: Mode | None = None,
    device: str | torch.device = "auto",
    batch_size: int = 64,
    resamples: int = BOOTSTRAP,
    seed: int = 0,
    max_pixels: int = MAX_PIXELS,
    errors: str = "raise",
) -> Diversity:
    """Mean pairwise distance among images, with a 95% bootstrap interval.

    Args:
        images: a folder, a list of files, an N x 3 x H x W tensor (all pairs), or a list of
            K x 3 x H x W tensors (one per input: the grouped protocol).
        grouped: for a folder: each sub-folder holds the samples of one input (the BicycleGAN /
            MUNIT protocol: all pairs within each input, averaged per input, then over inputs;
            the interval resamples inputs). Default: grouped when the folder has sub-folders.
            Otherwise all pairs among all images, the interval resampling images (each image's
            mean distance to the others).
    """
    model = _model(model, mode, device)
    mode = model._mode(mode)
    failed: list[tuple[str, str]] = []
    if isinstance(images, Tensor) or (isinstance(images, Sequence) and images and isinstance(images[0], Tensor)):
        batches = [images] if isinstance(images, Tensor) else list(images)
        if grouped is not None and grouped != (not isinstance(images, Tensor)):
            raise ValueError("grouped applies to folders; pass a list of tensors (one per input) for groups")
        with torch.inference_mode():
            sets = {str(i): vectors(model, b.to(model.device), mode) for i, b in enumerate(batches)}
        grouped = not isinstance(images, Tensor)
    else:
        paths = _paths(images, "images")
        root = Path(images) if isinstance(images, (str, os.PathLike)) else None
        names = [str(p.relative_to(root).parent) if root else "." for p in paths]
        if grouped is None:
            grouped = root is not None and any(n != "." for n in names)
        if grouped:
            if root is None:
                raise ValueError("grouped=True needs a folder with one sub-folder per input")
            loose = [p for p, n in zip(paths, names) if n == "."]
            if loose:
                raise ValueError(f"{root} has sub-folders (one per input) and also images at its top, e.g. {loose[0]}; "
                                 "move those into a sub-folder, or pass grouped=False (--all-pairs) for all pairs")
        emb = _embed_all(model, mode, paths, batch_size=batch_size, max_pixels=max_pixels, errors=errors,
                         desc="diversity")
        failed = [(str(p), why) for p, why in emb.failed]
        sets = {}
        keys = [names[i] if grouped else "." for i in emb.index]
        for key in dict.fromkeys(keys):
            sets[key] = emb.vectors[[j for j, k in enumerate(keys) if k == key]]
    sizes = {k: len(v) for k, v in sets.items()}
    small = [k for k, n in sizes.items() if n < 2]
    if small:
        what = f"input {small[0]!r} has {sizes[small[0]]} image" if grouped else f"there are {sizes[small[0]]} images"
        raise ValueError(f"diversity needs at least 2 images per {'input' if grouped else 'set'}: {what}"
                         + (" that could be read" if failed else ""))
    if grouped:
        per = {k: _mean_pairwise(v)[0] for k, v in sets.items()}
        values = np.array(list(per.values()))
        pairs = sum(n * (n - 1) // 2 for n in sizes.values())
        protocol = (f"grouped: all pairs among the samples of each input, averaged per input, then over "
                    f"{len(per)} inputs; interval: bootstrap over inputs ({resamples} resamples, 95%)")
        mean = float(values.mean())
    else:
        v = sets["." if "." in sets else next(iter(sets))]
        mean, per_image = _mean_pairwise(v)
        values, per = per_image, {}
        pairs = len(v) * (len(v) - 1) // 2
        protocol = (f"all pairs among {len(v)} images; interval: bootstrap over images of each image's mean "
                    f"distance to the others ({resamples} resamples, 95%)")
    return Diversity(mean, bootstrap_interval(values, resamples=resamples, seed=seed), protocol + "; higher is "
                     "more diverse", sum(sizes.values()), pairs, per, failed, provenance(model, mode))


def _mean_pairwise(v: Tensor) -> tuple[float, np.ndarray]:
    """Mean distance over the n(n-1)/2 pairs of rows, and each row's mean distance to the others
    (blocks of rows at a time: memory n x block)."""
    n = len(v)
    sums = np.zeros(n)
    step = max(1, (1 << 24) // max(1, n))
    for s in range(0, n, step):
        d = squared_cdist(v[s : s + step], v).double()
        idx = torch.arange(s, min(n, s + step))
        d[idx - s, idx] = 0.0
        sums[s : s + len(idx)] = d.sum(1).numpy()
    return float(sums.sum() / (n * (n - 1))), sums / (n - 1)


# ----------------------------------------------------------------------------- nearest neighbours
@dataclass(frozen=True)
class Nearest:
    """Result of :func:`nearest`: for generated image ``generated[i]``, its k nearest training images
    ``training[indices[i, j]]`` at ``distances[i, j]`` (ascending)."""

    generated: list[Path]
    training: list[Path]
    indices: np.ndarray
    distances: np.ndarray
    index: str
    memory_bound: int
    """Bytes of vectors and distance blocks held at once (images and the model not counted)."""
    failed: list[tuple[str, str]]
    info: dict[str, Any]


def nearest(
    generated: Images,
    training: Images,
    *,
    k: int = 5,
    model: str | PerceptualDistance | None = None,
    mode: Mode | None = None,
    device: str | torch.device = "auto",
    batch_size: int = 64,
    index: str = "exact",
    candidates: int | None = None,
    chunk: int = CHUNK,
    max_pixels: int = MAX_PIXELS,
    errors: str = "raise",
) -> Nearest:
    """The ``k`` nearest training images of each generated image (memorisation check).

    ``index="exact"`` compares every pair: training images are embedded ``chunk`` at a time and
    the running k best kept, so memory is about ``4 D (G + chunk) + 8 G (chunk + k)`` bytes for G
    generated images of vector length D. ``index="faiss"`` (``pip install "perceptual-sim[nearest]"``)
    retrieves ``candidates`` (default ``max(4 k, 20)``) per image from a FAISS index of
    PCA-reduced vectors (:data:`PCA_DIMS`), then re-ranks them by their exact distances (a second
    pass over the candidate training images): memory about
    ``4 D (G + chunk + 2 CHUNK) + 4 M PCA_DIMS + 16 G candidates`` for M training images.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if index not in ("exact", "faiss"):
        raise ValueError(f"index must be 'exact' or 'faiss', got {index!r}")
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")
    if index == "faiss":
        faiss = _faiss()
    gen, train = _paths(generated, "generated"), _paths(training, "training")
    if k > len(train):
        raise ValueError(f"k={k} but there are {len(train)} training images; ask for at most that many")
    model = _model(model, mode, device)
    mode = model._mode(mode)
    options = {"batch_size": batch_size, "max_pixels": max_pixels, "errors": errors}
    q = _embed_all(model, mode, gen, desc="generated", **options)
    if not q.index:
        raise ValueError("no generated image could be read")
    failed = [(str(p), why) for p, why in q.failed]
    g, dim = q.vectors.shape
    best_d = torch.full((g, k), float("inf"), dtype=torch.float64)
    best_i = torch.full((g, k), -1, dtype=torch.long)
    chunk = min(chunk, len(train))
    stream = {"batch_size": chunk, "max_pixels": max_pixels, "errors": errors, "size": q.size}
    if index == "exact":
        bound = 4 * dim * (g + chunk) + 8 * g * (chunk + k)
        for part in _stream(model, mode, train, desc="training", **stream):
            failed += [(str(p), why) for p, why in part.failed]
            if not part.index:
                continue
            # the chunk's k best by the matmul, their distances recomputed directly (float64, 0 for copies)
            top = squared_cdist(q.vectors, part.vectors).topk(min(k, len(part.index)), 1, largest=False).indices
            rows = torch.arange(g).repeat_interleave(top.shape[1])
            d = _rows_sq(q.vectors[rows], part.vectors[top.flatten()]).view(g, -1)
            ids = torch.tensor(part.index)[top]
            best_d, pos = torch.cat([best_d, d], 1).topk(k, 1, largest=False, sorted=True)
            best_i = torch.cat([best_i, ids], 1).gather(1, pos)
    else:
        c = candidates or max(4 * k, 20)
        reduced, basis, centre, keep = [], None, None, []
        for part in _stream(model, mode, train, desc="training (index)", **stream):
            failed += [(str(p), why) for p, why in part.failed]
            if not part.index:
                continue
            if basis is None:  # PCA of the generated vectors and the first training chunk
                sample = torch.cat([q.vectors[:: max(1, g // CHUNK)][:CHUNK], part.vectors[:CHUNK]])
                centre = sample.mean(0)
                dims = min(PCA_DIMS, dim, len(sample))
                basis = torch.linalg.svd(sample - centre, full_matrices=False)[2][:dims].T.contiguous() \
                    if len(sample) <= dims * 4 else torch.pca_lowrank(sample - centre, q=dims, center=False, niter=3)[2]
            reduced.append(((part.vectors - centre) @ basis).numpy())
            keep += part.index
        if not keep:
            raise ValueError("no training image could be read")
        bound = 4 * dim * (g + chunk + min(g, CHUNK) + min(chunk, CHUNK)) + 4 * len(keep) * basis.shape[1] + 16 * g * c
        kept = np.array(keep)
        search = faiss.IndexFlatL2(basis.shape[1])
        search.add(np.ascontiguousarray(np.concatenate(reduced), dtype=np.float32))
        c = min(c, len(keep))
        _, found = search.search(np.ascontiguousarray(((q.vectors - centre) @ basis).numpy(), dtype=np.float32), c)
        cand = torch.from_numpy(kept[found])  # G x c positions in ``train``
        exact = torch.full((g, c), float("inf"), dtype=torch.float64)
        need = sorted(set(cand.flatten().tolist()))
        slot = torch.full((len(train),), -1, dtype=torch.long)
        for part in _stream(model, mode, [train[i] for i in need], desc="training (re-rank)", **stream):
            if not part.index:
                continue
            ids = torch.tensor([need[i] for i in part.index])
            slot[ids] = torch.arange(len(ids))
            rows, cols = (slot[cand] >= 0).nonzero(as_tuple=True)
            step = max(1, (1 << 22) // dim)
            for s in range(0, len(rows), step):
                r, col = rows[s : s + step], cols[s : s + step]
                exact[r, col] = _rows_sq(q.vectors[r], part.vectors[slot[cand[r, col]]])
            slot[ids] = -1
        best_d, pos = exact.topk(min(k, c), 1, largest=False, sorted=True)
        best_i = cand.gather(1, pos)
    if int((best_i < 0).sum()):
        raise ValueError(f"fewer than k={k} training images could be read")
    return Nearest([gen[i] for i in q.index], train, best_i.numpy(), best_d.numpy(), index, bound, failed,
                   provenance(model, mode))


def _faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(f'index="faiss" needs FAISS ({exc}); install it with pip install "perceptual-sim[nearest]"'
                          ) from None
    faiss.omp_set_num_threads(torch.get_num_threads())
    return faiss


def recall_at_k(exact: np.ndarray, approx: np.ndarray) -> float:
    """Share of the exact k nearest (G x k indices) found among the approximate ones."""
    return float(np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(exact.tolist(), approx.tolist())]))


# ----------------------------------------------------------------------------- system against system
@dataclass(frozen=True)
class Systems:
    """Result of :func:`compare_systems`: ``distances[i, s]`` between reference ``names[i]`` and
    system ``systems[s]``'s image of that name (lower is closer to the reference)."""

    systems: list[str]
    names: list[str]
    distances: np.ndarray
    means: dict[str, float]
    comparisons: list[dict[str, Any]]
    """Per pair of systems (a, b): mean of d_a - d_b with its interval, and the share of images each wins."""
    failed: list[tuple[str, str]]
    info: dict[str, Any]


def compare_systems(
    reference: str | os.PathLike[str],
    systems: Sequence[str | os.PathLike[str]],
    *,
    names: Sequence[str] | None = None,
    model: str | PerceptualDistance | None = None,
    mode: Mode | None = None,
    device: str | torch.device = "auto",
    batch_size: int = 64,
    resamples: int = BOOTSTRAP,
    seed: int = 0,
    max_pixels: int = MAX_PIXELS,
    errors: str = "raise",
) -> Systems:
    """Which system's outputs are closer to the references: the images at the same relative path
    in ``reference`` and every folder of ``systems`` (reference features computed once).

    For each pair of systems (a, b): the paired difference of mean distances ``d_a - d_b``
    (negative: a is closer) with a 95% bootstrap interval over images, and the share of images
    where each is closer (ties apart). Images missing from a system are a ValueError.
    """
    if len(systems) < 1:
        raise ValueError("give at least one system folder to compare with the references")
    labels = list(names) if names is not None else [Path(s).name or str(s) for s in systems]
    if len(labels) != len(systems) or len(set(labels)) != len(labels):
        raise ValueError(f"systems need distinct names, got {labels}; pass names=[...] (--names on the command line)")
    ref = _relative(reference)
    sets = [_relative(s) for s in systems]
    for label, folder, files in zip(labels, systems, sets):
        missing = sorted(ref.keys() - files.keys())
        if missing:
            raise ValueError(f"system {label} ({folder}) has no image for {len(missing)} references, e.g. {missing[0]}; "
                             "each system needs an image at every reference's relative path")
    common = sorted(ref, key=_natural)
    model = _model(model, mode, device)
    mode = model._mode(mode)
    options = {"batch_size": batch_size, "max_pixels": max_pixels, "errors": errors}
    r = _embed_all(model, mode, [ref[n] for n in common], desc="references", **options)
    failed = [(str(p), why) for p, why in r.failed]
    dist = np.full((len(common), len(systems)), np.nan)
    for s, files in enumerate(sets):
        e = _embed_all(model, mode, [files[n] for n in common], desc=labels[s], size=r.size, **options)
        failed += [(str(p), why) for p, why in e.failed]
        pos = {i: j for j, i in enumerate(r.index)}
        both = [(pos[i], j) for j, i in enumerate(e.index) if i in pos]
        if both:
            ri, ei = (list(t) for t in zip(*both))
            dist[[r.index[i] for i in ri], s] = _rows_sq(r.vectors[ri], e.vectors[ei]).numpy()
    ok = ~np.isnan(dist).any(1)
    if not ok.any():
        raise ValueError("no reference image could be compared with every system")
    d = dist[ok]
    comparisons = []
    for a in range(len(labels)):
        for b in range(a + 1, len(labels)):
            diff = d[:, a] - d[:, b]
            comparisons.append({
                "a": labels[a], "b": labels[b], "difference": float(diff.mean()),
                "interval": list(bootstrap_interval(diff, resamples=resamples, seed=seed)),
                "a_wins": float(np.mean(diff < 0)), "b_wins": float(np.mean(diff > 0)), "ties": float(np.mean(diff == 0)),
                "images": len(diff)})
    return Systems(labels, common, dist, {lab: float(d[:, s].mean()) for s, lab in enumerate(labels)},
                   comparisons, failed, provenance(model, mode))


def _relative(folder: str | os.PathLike[str]) -> dict[str, Path]:
    root = Path(folder)
    return {p.relative_to(root).as_posix(): p for p in image_files(root)}


# ----------------------------------------------------------------------------- video
@dataclass(frozen=True)
class Video:
    """Result of :func:`video`: ``distances[t]`` between frame t of A and of B; ``flicker_a[t]`` /
    ``flicker_b[t]`` between frames t and t + 1 of A / B; ``tlpips`` the mean of
    ``|flicker_b - flicker_a|`` (0 when B changes from frame to frame as A does)."""

    frames: int
    distances: np.ndarray
    mean: float
    worst: list[tuple[int, float]]
    flicker_a: np.ndarray
    flicker_b: np.ndarray
    tlpips: float
    info: dict[str, Any]


WORST = 5


def video(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    *,
    model: str | PerceptualDistance | None = None,
    mode: Mode | None = None,
    device: str | torch.device = "auto",
    batch_size: int = 32,
    max_pixels: int = MAX_PIXELS,
) -> Video:
    """Per-frame distances between two videos (files, decoded by PyAV: ``pip install
    "perceptual-sim[video]"``) or two folders of frames (in natural order of name), their mean and
    worst frames, and tLPIPS flicker. Frames are embedded once, ``batch_size`` at a time; frame
    counts or sizes that differ are a ValueError."""
    model = _model(model, mode, device)
    mode = model._mode(mode)
    counts = [_frame_count(s) for s in (a, b)]
    if None not in counts and counts[0] != counts[1]:
        raise ValueError(f"{a} has {counts[0]} frames but {b} has {counts[1]}; the videos must have as many frames")
    total = counts[0] or counts[1] or 0
    dists: list[float] = []
    fa: list[float] = []
    fb: list[float] = []
    last: tuple[Tensor, Tensor] | None = None
    with progress(total, "video", "frame", terminal_only=True) as bar, torch.inference_mode():
        for ba, bb in _zip_frames(_frames(a, max_pixels), _frames(b, max_pixels), a, b, batch_size):
            if ba.shape[1:] != bb.shape[1:]:
                raise ValueError(f"frames of {a} are {ba.shape[2]} x {ba.shape[3]} but those of {b} are "
                                 f"{bb.shape[2]} x {bb.shape[3]} (H x W); resize one video to the other's size")
            va, vb = (vectors(model, x.to(model.device), mode) for x in (ba, bb))
            dists += _rows_sq(va, vb).tolist()
            if last is not None:
                va, vb = torch.cat([last[0], va]), torch.cat([last[1], vb])
            fa += _rows_sq(va[1:], va[:-1]).tolist()
            fb += _rows_sq(vb[1:], vb[:-1]).tolist()
            last = (va[-1:], vb[-1:])
            bar.update(len(ba))
    if not dists:
        raise ValueError(f"{a} and {b} hold no frames")
    d, flick_a, flick_b = np.array(dists), np.array(fa), np.array(fb)
    worst = sorted(range(len(d)), key=lambda t: -d[t])[:WORST]
    return Video(len(d), d, float(d.mean()), [(t, float(d[t])) for t in worst], flick_a, flick_b,
                 float(np.abs(flick_b - flick_a).mean()) if len(flick_a) else 0.0, provenance(model, mode))


def _frame_count(source: str | os.PathLike[str]) -> int | None:
    path = Path(source)
    if path.is_dir():
        return len(image_files(path))
    if not path.is_file():
        raise ValueError(f"{path}: no such video file or frame folder")
    return None


def _frames(source: str | os.PathLike[str], max_pixels: int) -> Iterator[Tensor]:
    """3 x H x W float frames in [0, 1]: a folder's images in natural order, or a video's frames (PyAV)."""
    path = Path(source)
    if path.is_dir():
        for p in image_files(path):
            yield decode_image(p, max_pixels=max_pixels).pixels
        return
    try:
        import av
    except ImportError as exc:
        raise ImportError(f"reading the video {path} needs PyAV ({exc}); install it with "
                          'pip install "perceptual-sim[video]", or pass folders of frames') from None
    try:
        container = av.open(str(path))
    except Exception as exc:
        raise ValueError(f"{path}: not a video PyAV can read ({exc})") from None
    with container:
        if not container.streams.video:
            raise ValueError(f"{path}: has no video stream")
        try:
            for frame in container.decode(video=0):
                if frame.width * frame.height > max_pixels:
                    raise ValueError(f"{path}: frames of {frame.width} x {frame.height} pixels, more than the limit "
                                     f"of {max_pixels:,}; raise --max-pixels if you trust the file")
                yield torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1).float().div_(255)
        except ValueError:
            raise
        except Exception as exc:  # av.error.* on damaged data
            raise ValueError(f"{path}: damaged video data ({type(exc).__name__}: {exc})") from None


def _zip_frames(fa: Iterator[Tensor], fb: Iterator[Tensor], a: Any, b: Any, n: int) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches of ``n`` frame pairs; ValueError when one source ends before the other."""
    done = False
    count = 0
    while not done:
        xa: list[Tensor] = []
        xb: list[Tensor] = []
        while len(xa) < n:
            x, y = next(fa, None), next(fb, None)
            if x is None or y is None:
                if (x is None) != (y is None):
                    short, other = (a, b) if x is None else (b, a)
                    raise ValueError(f"{short} ends after {count} frames but {other} has more; the videos must have "
                                     "as many frames")
                done = True
                break
            if x.shape != xa[0].shape if xa else False:
                raise ValueError(f"{a}: frame {count} is {x.shape[1]} x {x.shape[2]}, unlike the frames before it")
            if y.shape != xb[0].shape if xb else False:
                raise ValueError(f"{b}: frame {count} is {y.shape[1]} x {y.shape[2]}, unlike the frames before it")
            xa.append(x)
            xb.append(y)
            count += 1
        if xa:
            yield torch.stack(xa), torch.stack(xb)

