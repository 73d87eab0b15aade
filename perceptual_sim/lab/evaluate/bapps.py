"""BAPPS validation scores: 2AFC agreement per family, the Perceptual Score (PS) and JND mAP.

Layout (the BAPPS ``dataset`` folder)::

    2afc/val/<family>/{ref,p0,p1}/NNNNNN.png   judge/NNNNNN.npy  (fraction of humans who chose p1)
    jnd/val/<family>/{p0,p1}/NNNNNN.png        same/NNNNNN.npy   (fraction who judged the pair the same)

All scores are fractions in [0, 1]; the papers quote them x100. By default every patch is
first resized to 64 px as lpips' ``TwoAFCDataset`` and ``JNDDataset`` do (``load_size=64``:
torchvision's ``Resize(64)``, PIL bilinear on the 8-bit RGB image, shorter side to 64);
``load_size=None`` scores the patches at their stored size, which measures something else.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...images import load_image
from ...metric import PerceptualDistance
from ...pairs import check_batch_size, pair_distances
from .common import model_info, resolve_model

VAL_FAMILIES = ("traditional", "cnn", "superres", "deblur", "color", "frameinterp")
"""The six 2AFC validation families; PS is their unweighted mean."""

JND_FAMILIES = ("traditional", "cnn")
"""The JND validation families."""

LOAD_SIZE = 64
"""lpips' ``load_size``: the reference loaders resize every patch to this many pixels before scoring."""


def two_afc_score(d0: np.ndarray, d1: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-triplet agreement ``(d0<d1)*(1-p) + (d1<d0)*p + 0.5*(d0==d1)``; p = fraction choosing p1."""
    d0, d1, p = (np.asarray(a, dtype=np.float64) for a in (d0, d1, p))
    if not d0.shape == d1.shape == p.shape:
        raise ValueError(f"d0, d1 and p must have one shape, got {d0.shape}, {d1.shape} and {p.shape}")
    if not (np.isfinite(d0).all() and np.isfinite(d1).all()):
        raise ValueError("distances must be finite")
    if not ((p >= 0) & (p <= 1)).all():
        raise ValueError("p (the fraction of humans who chose p1) must lie in [0, 1]")
    return (d0 < d1) * (1 - p) + (d1 < d0) * p + 0.5 * (d0 == d1)


def voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """VOC average precision (area under the monotone precision envelope), as lpips' ``voc_ap``."""
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def jnd_map(d: np.ndarray, same: np.ndarray) -> float:
    """JND mAP as in lpips: pairs by ascending distance (stable sort), ``same`` as soft true positives."""
    d, same = np.asarray(d, dtype=np.float64).ravel(), np.asarray(same, dtype=np.float64).ravel()
    if d.shape != same.shape or d.size == 0:
        raise ValueError(f"d and same must be non-empty and of one length, got {d.size} and {same.size}")
    if not np.isfinite(d).all():
        raise ValueError("distances must be finite")
    if not ((same >= 0) & (same <= 1)).all():
        raise ValueError("same (the fraction of humans who judged a pair the same) must lie in [0, 1]")
    if same.sum() == 0:
        raise ValueError("no pair was judged the same by anyone, so JND mAP is undefined")
    s = same[np.argsort(d, kind="stable")]
    tp = np.cumsum(s)
    fp = np.cumsum(1 - s)
    return voc_ap(tp / s.sum(), tp / (tp + fp))


def read_judgement(path: Path) -> float:
    """The single value of a ``judge``/``same`` .npy file (no pickles), checked to lie in [0, 1]."""
    arr = np.load(path, allow_pickle=False)
    if arr.size != 1:
        raise ValueError(f"{path} holds {arr.size} values (shape {arr.shape}); a BAPPS judgement holds one")
    value = float(arr.reshape(-1)[0])
    if not 0 <= value <= 1:
        raise ValueError(f"{path} holds {value}; a BAPPS judgement is a fraction in [0, 1]")
    return value


def _family_files(folder: Path, image_dirs: Sequence[str], judge_dir: str) -> tuple[list[list[Path]], np.ndarray]:
    """Image paths per sub-folder and the judgements of one family, checked to be complete."""
    first = folder / image_dirs[0]
    if not first.is_dir():
        raise ValueError(f"{folder} has no {image_dirs[0]}/ folder; expected {', '.join(image_dirs)} and {judge_dir}/")
    ids = sorted(p.stem for p in first.glob("*.png"))
    if not ids:
        raise ValueError(f"{first} holds no .png images; is the BAPPS download complete?")
    paths = [[folder / sub / f"{i}.png" for i in ids] for sub in image_dirs]
    judges = [folder / judge_dir / f"{i}.npy" for i in ids]
    for p in (q for group in (*paths, judges) for q in group):
        if not p.is_file():
            raise ValueError(f"{p} is missing (every {image_dirs[0]}/ image needs its counterparts); is the BAPPS download complete?")
    return paths, np.array([read_judgement(p) for p in judges])


def load_patch(path: Path, load_size: int | None = LOAD_SIZE) -> torch.Tensor:
    """A BAPPS patch as 3 x H x W in [0, 1], resized as lpips' loaders do unless ``load_size`` is None:
    torchvision's ``Resize(load_size)`` (shorter side to ``load_size``, PIL bilinear) on the 8-bit RGB image."""
    image = load_image(path)
    if load_size is None or min(image.shape[1:]) == load_size:
        return image
    from PIL import Image
    from torchvision.transforms.functional import InterpolationMode, resize

    rgb = Image.fromarray((image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())
    small = np.asarray(resize(rgb, load_size, interpolation=InterpolationMode.BILINEAR))
    return torch.from_numpy(small.copy()).permute(2, 0, 1).float() / 255


def _two_afc_distances(
    module: PerceptualDistance, refs: list[Path], p0s: list[Path], p1s: list[Path], *,
    mode: str | None, batch_size: int, desc: str, load_size: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """d(ref, p0) and d(ref, p1), both from one forward pass per batch of ``batch_size`` triplets (so
    equal patches tie exactly): each batch is its k (ref, p0) pairs then its k (ref, p1) pairs,
    scored as one batch of 2k pairs by :func:`perceptual_sim.pairs.pair_distances`.
    """
    starts = range(0, len(refs), batch_size)
    pairs = [pair for s in starts for p in (p0s, p1s) for pair in zip(refs[s : s + batch_size], p[s : s + batch_size])]
    d = pair_distances(module, pairs, mode=mode, batch_size=2 * batch_size, desc=desc,
                       load=partial(load_patch, load_size=load_size))
    blocks = [d[2 * s : 2 * s + 2 * min(batch_size, len(refs) - s)] for s in starts]
    d0 = np.concatenate([np.empty(0), *(b[: len(b) // 2] for b in blocks)])
    d1 = np.concatenate([np.empty(0), *(b[len(b) // 2 :] for b in blocks)])
    return d0, d1


def score_bapps(
    model: PerceptualDistance | str | None,
    root: Path,
    *,
    mode: str | None = None,
    batch_size: int = 64,
    families: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    load_size: int | None = LOAD_SIZE,
) -> dict[str, Any]:
    """2AFC per family, PS and JND mAP of ``model`` on the BAPPS validation set under ``root``.

    Args:
        model: a module (used on its own device) or a model string (loaded on ``device``;
            None: the default model).
        root: the BAPPS ``dataset`` folder, holding ``2afc/`` and/or ``jnd/``.
        mode: distance mode; default: the model's.
        batch_size: triplets (2AFC) or pairs (JND) per forward pass.
        families: the validation families to score (default: all six).
        device: where a model string is loaded.
        load_size: resize every patch to this size first, as lpips' loaders do (default 64);
            None scores the patches at their stored size.

    Returns:
        A JSON-ready dict: model name, sha256, mode, package version, ``load_size``; ``2afc`` (per family
        ``score`` and ``n``), ``ps`` (mean over ``ps_families``; ``ps_partial`` when fewer
        than the six), ``missing_2afc``; ``jnd`` (per family ``map`` and ``n``),
        ``missing_jnd``. Absent families are listed as missing, never scored as zero.
    """
    root = Path(root)
    check_batch_size(batch_size)
    if load_size is not None and (isinstance(load_size, bool) or not isinstance(load_size, int) or load_size < 1):
        raise ValueError(f"load_size must be a positive integer or None (the stored size), got {load_size!r}")
    wanted = list(VAL_FAMILIES) if families is None else list(dict.fromkeys(families))
    unknown = [f for f in wanted if f not in VAL_FAMILIES]
    if unknown or not wanted:
        raise ValueError(f"families must be a non-empty subset of {VAL_FAMILIES}, got {list(families or [])}")
    afc_dir, jnd_dir = root / "2afc" / "val", root / "jnd" / "val"
    if not (afc_dir.is_dir() or jnd_dir.is_dir()):
        raise ValueError(
            f"{root} holds neither 2afc/val/ nor jnd/val/; pass the BAPPS dataset folder "
            "(the one that contains 2afc/ and jnd/)"
        )
    wanted_jnd = [f for f in JND_FAMILIES if f in wanted]
    # Check every family's files before computing anything.
    afc_files = {f: _family_files(afc_dir / f, ("ref", "p0", "p1"), "judge") for f in wanted if (afc_dir / f).is_dir()}
    jnd_files = {f: _family_files(jnd_dir / f, ("p0", "p1"), "same") for f in wanted_jnd if (jnd_dir / f).is_dir()}
    if not afc_files and not jnd_files:
        raise ValueError(f"none of the families {wanted} is under {afc_dir} or {jnd_dir}")
    module = resolve_model(model, mode, device)

    afc: dict[str, dict[str, float | int]] = {}
    for fam, ((refs, p0s, p1s), p) in afc_files.items():
        d0, d1 = _two_afc_distances(module, refs, p0s, p1s, mode=mode, batch_size=batch_size, desc=f"2afc/{fam}",
                                    load_size=load_size)
        afc[fam] = {"score": float(two_afc_score(d0, d1, p).mean()), "n": len(p)}
    jnd: dict[str, dict[str, float | int]] = {}
    for fam, ((p0s, p1s), same) in jnd_files.items():
        d = pair_distances(module, list(zip(p0s, p1s)), mode=mode, batch_size=batch_size, desc=f"jnd/{fam}",
                           load=partial(load_patch, load_size=load_size))
        jnd[fam] = {"map": jnd_map(d, same), "n": len(same)}
    return {
        "benchmark": "bapps",
        **model_info(module, mode),
        "root": str(root),
        "load_size": load_size,
        "2afc": afc,
        "ps": float(np.mean([v["score"] for v in afc.values()])) if afc else None,
        "ps_families": list(afc),
        "ps_partial": len(afc) < len(VAL_FAMILIES),
        "missing_2afc": [f for f in wanted if f not in afc],
        "jnd": jnd,
        "missing_jnd": [f for f in wanted_jnd if f not in jnd],
    }


def format_bapps(result: dict[str, Any]) -> str:
    """A short plain-text summary of :func:`score_bapps`'s result (scores x100)."""
    size = result["load_size"]
    lines = [f"model {result['model']} (sha256 {result['sha256'][:12]}), mode {result['mode']}, patches "
             + (f"resized to {size} px (lpips' protocol)" if size else "at their stored size")]
    if result["2afc"]:
        lines.append("2AFC (x100):")
        lines += [f"  {fam:<12} {100 * v['score']:6.2f}  n={v['n']}" for fam, v in result["2afc"].items()]
        label = "PS (partial: " + ", ".join(result["ps_families"]) + ")" if result["ps_partial"] else "PS"
        lines.append(f"  {label}: {100 * result['ps']:.2f}")
    if result["missing_2afc"]:
        lines.append("  missing 2AFC families (not counted): " + ", ".join(result["missing_2afc"]))
    if result["jnd"]:
        lines.append("JND mAP (x100):")
        lines += [f"  {fam:<12} {100 * v['map']:6.2f}  n={v['n']}" for fam, v in result["jnd"].items()]
    if result["missing_jnd"]:
        lines.append("  missing JND families: " + ", ".join(result["missing_jnd"]))
    return "\n".join(lines)
