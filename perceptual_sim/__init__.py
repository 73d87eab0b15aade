"""perceptual_sim: perceptual image distances from mid-accuracy networks.

>>> from perceptual_sim import distance
>>> d = distance(x, y)            # N x 3 x H x W in [0, 1] -> tensor [N]

The public names are imported on first use, so that ``import perceptual_sim`` (and the
command line's ``--version``, ``--help`` and ``list``) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

_EXPORTS = {
    "DEFAULT_MODEL": "models.registry",
    "Features": "metric",
    "ModelCard": "models.card",
    "ModelNotFoundError": "models.card",
    "PerceptualDistance": "metric",
    "WeightsError": "models.card",
    "clear_cache": "api",
    "distance": "api",
    "list_models": "models.registry",
    "load": "api",
    "load_image": "images",
}

__all__ = [
    "DEFAULT_MODEL",
    "Features",
    "ModelCard",
    "ModelNotFoundError",
    "PerceptualDistance",
    "WeightsError",
    "__version__",
    "clear_cache",
    "distance",
    "list_models",
    "load",
    "load_image",
]

if TYPE_CHECKING:
    from .api import clear_cache, distance, load
    from .images import load_image
    from .metric import Features, PerceptualDistance
    from .models.card import ModelCard, ModelNotFoundError, WeightsError
    from .models.registry import DEFAULT_MODEL, list_models


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'perceptual_sim' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
