"""``distance()`` and ``load()``: the functional entry points, with a cache of loaded modules."""

from __future__ import annotations

import threading
from typing import Any

import torch
from torch import Tensor

from .distributed import parse_device
from .metric import PerceptualDistance
from .weights import DEFAULT_MODEL

_cache: dict[tuple, PerceptualDistance] = {}
_lock = threading.Lock()


def load(
    model: str | None = None,
    *,
    mode: str | None = None,
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
    **options: Any,
) -> PerceptualDistance:
    """A shared, frozen :class:`PerceptualDistance` for ``model`` on ``device`` (cached, thread-safe).

    ``device="auto"`` is CUDA when available, else the CPU.

    ``options`` go to the constructor (``precision``, ``batch_pixels``, ``validate``, ``compile``).
    """
    name = model or DEFAULT_MODEL
    device = parse_device(device) if isinstance(device, str) else torch.device(device)
    key = (name, mode, str(device), dtype, tuple(sorted(options.items())))
    with _lock:
        module = _cache.get(key)
        if module is None:
            module = PerceptualDistance.from_pretrained(name, mode=mode, **options).to(device=device, dtype=dtype)
            _cache[key] = module
    return module


def distance(x: Tensor, y: Tensor, model: str | None = None, mode: str | None = None, **kwargs: Any) -> Tensor:
    """Perceptual distance between matching images of two N x 3 x H x W batches.

    Args:
        x, y: float images in [0, 1] (or ``input_range=``), or uint8.
        model: bundled name, local path or ``hf-hub:ORG/NAME[@REV]``; default :data:`DEFAULT_MODEL`.
        mode: ``spatial``, ``style`` or ``meanpool``; default: the model's.
        **kwargs: passed to :meth:`PerceptualDistance.forward` (``input_range``, ``spatial``,
            ``per_layer``, ``grey``, ``resize``).

    Returns:
        Tensor [N] (float32), differentiable w.r.t. the inputs when they require grad.
    """
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    module = load(model, device=x.device)
    if x.requires_grad or (isinstance(y, Tensor) and y.requires_grad):
        return module(x, y, mode=mode, **kwargs)
    with torch.inference_mode():
        return module(x, y, mode=mode, **kwargs)


def clear_cache() -> None:
    """Forget every loaded module (e.g. after the weights on disk changed)."""
    with _lock:
        _cache.clear()
