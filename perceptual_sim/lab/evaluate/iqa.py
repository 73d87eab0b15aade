"""Full-reference IQA correlations (SRCC, KRCC, PLCC after a logistic fit) from a CSV list.

The list has a header row with the columns ``dis_img_path,dis_type,ref_img_path,score``
(paths relative to the root folder). Correlations are between the *predicted quality* and
the subjective score, oriented so that a good metric scores positive:

* ``scores="mos"`` (higher = better quality): predicted quality = -distance;
* ``scores="dmos"`` (higher = worse quality): predicted quality = distance.

Needs scipy (``pip install 'perceptual-sim[eval]'``).
"""

from __future__ import annotations

import csv
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from ...metric import PerceptualDistance
from ...pairs import pair_distances
from .common import finite_or_none, model_info, resolve_model

SCORE_KINDS = ("mos", "dmos")
LOGISTICS = (4, 5)
COLUMNS = ("dis_img_path", "dis_type", "ref_img_path", "score")


@dataclass(frozen=True)
class IQAItem:
    """One row of an IQA list: a distorted image, its distortion type, its reference, its score."""

    dis: Path
    dis_type: str
    ref: Path
    score: float


def _scipy() -> tuple[ModuleType, ModuleType]:
    """scipy.stats and scipy.optimize, or an ImportError that says how to install them."""
    try:
        from scipy import optimize, stats
    except ImportError:
        raise ImportError(
            "IQA correlations need scipy, which is not installed: pip install 'perceptual-sim[eval]'"
        ) from None
    return stats, optimize


def read_list(list_file: Path, root: Path) -> list[IQAItem]:
    """Parse an IQA list; every image must exist under ``root`` and every score be a finite number."""
    items = []
    with open(list_file, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [c.strip() for c in reader.fieldnames or []]
        if any(c not in header for c in COLUMNS):
            raise ValueError(
                f"{list_file} must start with a header row naming the columns {','.join(COLUMNS)}; "
                f"got {','.join(header) or '(empty file)'}"
            )
        reader.fieldnames = header
        for row in reader:
            where = f"line {reader.line_num} of {list_file}"
            try:
                score = float(row["score"])
            except (TypeError, ValueError):
                raise ValueError(f"{where}: score {row['score']!r} is not a number") from None
            if not np.isfinite(score):
                raise ValueError(f"{where}: score {score} is not finite")
            paths = []
            for key in ("dis_img_path", "ref_img_path"):
                rel = (row[key] or "").strip()
                if not rel:
                    raise ValueError(f"{where}: {key} is empty")
                if not (root / rel).is_file():
                    raise FileNotFoundError(f"{where}: {key} {rel!r} is not a file under {root}")
                paths.append(root / rel)
            items.append(IQAItem(paths[0], (row["dis_type"] or "").strip(), paths[1], score))
    if not items:
        raise ValueError(f"{list_file} has a header but no rows")
    return items


def srcc(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation."""
    return float(_scipy()[0].spearmanr(x, y)[0])


def krcc(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall rank correlation (tau-b)."""
    return float(_scipy()[0].kendalltau(x, y)[0])


def plcc(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson linear correlation."""
    return float(_scipy()[0].pearsonr(x, y)[0])


def logistic5(x: np.ndarray, b1: float, b2: float, b3: float, b4: float, b5: float) -> np.ndarray:
    """VQEG 5-parameter logistic ``b1*(0.5 - 1/(1+exp(b2*(x-b3)))) + b4*x + b5``."""
    return b1 * (0.5 - 1 / (1 + np.exp(b2 * (x - b3)))) + b4 * x + b5


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """4-parameter logistic ``(b1-b2)/(1+exp(-(x-b3)/|b4|)) + b2``."""
    return (b1 - b2) / (1 + np.exp(-(x - b3) / np.abs(b4))) + b2


def fit_logistic(x: np.ndarray, y: np.ndarray, params: int = 5) -> np.ndarray:
    """Fit the 4- or 5-parameter logistic from ``x`` to ``y``; return the fitted values at ``x``.

    ``x`` is standardised first (the same family of curves, better conditioned); the initial
    guess is an increasing curve spanning ``y``. Raises RuntimeError when the fit fails.
    """
    if params not in LOGISTICS:
        raise ValueError(f"params must be 4 or 5, got {params!r}")
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.size <= params:
        raise RuntimeError(f"{x.size} points are too few for a {params}-parameter fit")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise RuntimeError("the predictions or the scores are all equal")
    z = (x - x.mean()) / x.std()
    func: Callable[..., np.ndarray]
    if params == 5:
        func, p0 = logistic5, [np.ptp(y), 1.0, 0.0, 0.0, y.mean()]
    else:
        func, p0 = logistic4, [y.max(), y.min(), 0.0, 1.0]
    optimize = _scipy()[1]
    with warnings.catch_warnings(), np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", optimize.OptimizeWarning)
        try:
            popt, _ = optimize.curve_fit(func, z, y, p0=p0, maxfev=20000)
        except (RuntimeError, ValueError) as exc:
            raise RuntimeError(f"the logistic fit did not converge: {exc}") from None
        fitted = func(z, *popt)
    if not np.isfinite(fitted).all() or np.ptp(fitted) == 0:
        raise RuntimeError("the fitted curve is constant or not finite")
    return fitted


def correlations(quality: np.ndarray, scores: np.ndarray, *, logistic: int = 5) -> dict[str, Any]:
    """SRCC, KRCC and PLCC (after the logistic fit) of predicted ``quality`` against ``scores``.

    Returns ``n``, ``srcc``, ``krcc``, ``plcc`` (None where undefined, e.g. constant input),
    ``plcc_fitted`` (False when the fit failed: then PLCC is of the raw values) and
    ``fit_error`` (why it failed, else None).
    """
    quality, scores = np.asarray(quality, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    out: dict[str, Any] = {"n": int(quality.size)}
    if quality.size < 3 or np.ptp(quality) == 0 or np.ptp(scores) == 0:
        reason = "fewer than 3 items" if quality.size < 3 else "the predictions or the scores are all equal"
        return {**out, "srcc": None, "krcc": None, "plcc": None, "plcc_fitted": False, "fit_error": reason}
    out["srcc"] = finite_or_none(srcc(quality, scores))
    out["krcc"] = finite_or_none(krcc(quality, scores))
    try:
        out["plcc"] = finite_or_none(plcc(fit_logistic(quality, scores, logistic), scores))
        out["plcc_fitted"], out["fit_error"] = True, None
    except RuntimeError as exc:
        out["plcc"] = finite_or_none(plcc(quality, scores))
        out["plcc_fitted"], out["fit_error"] = False, str(exc)
    return out


def score_iqa(
    model: PerceptualDistance | str | None,
    list_file: Path,
    root: Path,
    *,
    mode: str | None = None,
    scores: str = "mos",
    logistic: int = 5,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Correlations of ``model``'s distances with the subjective scores of an IQA list.

    Args:
        model: a module (used on its own device) or a model string (loaded on ``device``;
            None: the default model).
        list_file: CSV list with columns ``dis_img_path,dis_type,ref_img_path,score``.
        root: the folder the list's paths are relative to.
        mode: distance mode; default: the model's.
        scores: ``mos`` (higher = better) or ``dmos`` (higher = worse); sets the sign so that
            a good metric has positive correlations.
        logistic: 4 or 5 parameters for the logistic fit before PLCC.
        batch_size: image pairs per forward pass (pairs of equal size are batched together).
        device: where a model string is loaded.

    Returns:
        A JSON-ready dict: model name, sha256, mode, package version, ``overall`` and
        ``per_type`` (per distortion type) correlations as in :func:`correlations`.
    """
    if scores not in SCORE_KINDS:
        raise ValueError(f"scores must be 'mos' (higher = better) or 'dmos' (higher = worse), got {scores!r}")
    if logistic not in LOGISTICS:
        raise ValueError(f"logistic must be 4 or 5 (parameters of the fit), got {logistic!r}")
    _scipy()  # fail before computing any distance
    list_file, root = Path(list_file), Path(root)
    items = read_list(list_file, root)
    module = resolve_model(model, mode, device)
    d = pair_distances(module, [(it.ref, it.dis) for it in items], mode=mode, batch_size=batch_size, desc="iqa")
    quality = -d if scores == "mos" else d
    subjective = np.array([it.score for it in items])
    types = np.array([it.dis_type for it in items])
    return {
        "benchmark": "iqa",
        **model_info(module, mode),
        "list": str(list_file),
        "root": str(root),
        "scores": scores,
        "quality": "-distance" if scores == "mos" else "distance",
        "logistic": logistic,
        "overall": correlations(quality, subjective, logistic=logistic),
        "per_type": {
            t: correlations(quality[types == t], subjective[types == t], logistic=logistic)
            for t in dict.fromkeys(types.tolist())
        },
    }


def format_iqa(result: dict[str, Any]) -> str:
    """A short plain-text summary of :func:`score_iqa`'s result."""
    def row(name: str, c: dict[str, Any]) -> str:
        vals = [f"{c[k]:7.4f}" if c[k] is not None else "      -" for k in ("srcc", "krcc", "plcc")]
        note = f"{result['logistic']}-param fit" if c["plcc_fitted"] else f"no fit: {c['fit_error']}"
        return f"  {name:<16} {c['n']:6d} {' '.join(vals)}  ({note})"

    lines = [
        (f"model {result['model']} (sha256 {result['sha256'][:12]}), mode {result['mode']}; "
         f"scores {result['scores']}, correlations of {result['quality']} (higher = better)"),
        f"  {'type':<16} {'n':>6} {'SRCC':>7} {'KRCC':>7} {'PLCC':>7}",
        row("all", result["overall"]),
    ]
    lines += [row(t, c) for t, c in result["per_type"].items()]
    return "\n".join(lines)
