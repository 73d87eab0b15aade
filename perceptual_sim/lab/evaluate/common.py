"""What the benchmark harnesses share: the model to score with, and what every results file records."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..._version import __version__
from ...api import load
from ...distances import MODES
from ...metric import PerceptualDistance


def resolve_model(
    model: PerceptualDistance | str | None, mode: str | None, device: str | torch.device
) -> PerceptualDistance:
    """The module to score with: ``model`` itself, or the model string loaded on ``device``."""
    if mode is not None and mode not in MODES:
        raise ValueError(f"mode must be one of {MODES} or None (the model's default), got {mode!r}")
    if isinstance(model, PerceptualDistance):
        return model
    if model is not None and not isinstance(model, str):
        raise TypeError(f"model must be a PerceptualDistance or a model string, got {type(model).__name__}")
    return load(model, device=device)


def model_info(module: PerceptualDistance, mode: str | None) -> dict[str, Any]:
    """What every results file records: model name, weights sha256, feature blur, mode and package version."""
    return {
        "model": module.card.name,
        "sha256": module.card.sha256,
        "feature_blur": module.card.feature_blur,
        "mode": mode or module.mode,
        "package_version": __version__,
    }


def finite_or_none(value: float) -> float | None:
    """``value`` as a float, or None when it is NaN or infinite (JSON has no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None
