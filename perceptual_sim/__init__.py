"""perceptual_sim: perceptual image distances from mid-accuracy networks.

>>> from perceptual_sim import distance
>>> d = distance(x, y)            # N x 3 x H x W in [0, 1] -> tensor [N]
"""

__version__ = "0.1.0"

from .api import DEFAULT_MODEL, clear_cache, distance, load
from .metric import Features, PerceptualDistance
from .weights import ModelCard, ModelNotFoundError, WeightsError, list_models

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
]
