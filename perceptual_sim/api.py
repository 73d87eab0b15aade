"""``distance()`` and ``load()``: the functional entry points, with a cache of loaded modules, and the
parsing of device names (``auto``: CUDA when available)."""

from __future__ import annotations

import os
import threading
from typing import Any, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .images import load_image, pil_to_tensor
from .metric import PerceptualDistance
from .models.archs import Mode
from .models.registry import DEFAULT_MODEL

ImageInput = Union[Tensor, str, "os.PathLike[str]", Image.Image, np.ndarray]
"""What :func:`distance` takes: a batch tensor, or one image as a file path, PIL image or H x W x 3 array."""

DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")
"""Device types a model can run on (``meta`` and the like hold no data)."""


def parse_device(name: str) -> torch.device:
    """A torch device from its name (``auto``: CUDA when available, else CPU); ValueError when it is
    not one or CUDA is missing."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"--device {name!r} is not a torch device (try cpu or cuda)") from None
    if device.type not in DEVICE_TYPES:
        raise ValueError(f"--device {name!r} is a {device.type} device, which holds no data to compute on; use auto, "
                         f"cpu or cuda[:N] (devices of type {', '.join(DEVICE_TYPES)} work)")
    if device.type == "cpu" and device.index not in (None, 0):
        raise ValueError(f"--device {name}: there is one CPU device here (cpu, or cpu:0)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: CUDA is not available here (torch {torch.__version__}); use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name}: there are {torch.cuda.device_count()} CUDA devices here (cuda:0, ...)")
    backend = getattr(torch.backends, "mps", None) if device.type == "mps" else getattr(torch, "xpu", None)
    if device.type in ("mps", "xpu") and not (backend is not None and backend.is_available()):
        raise ValueError(f"--device {name}: {device.type} is not available here; use --device cpu")
    return device


_cache: dict[tuple, PerceptualDistance] = {}
_lock = threading.Lock()


def load(
    model: str | None = None,
    *,
    mode: Mode | None = None,
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
    **options: Any,
) -> PerceptualDistance:
    """A shared, frozen :class:`PerceptualDistance` for ``model`` on ``device`` (cached, thread-safe).

    ``device="auto"`` is CUDA when available, else the CPU.

    ``options`` go to the constructor (``precision``, ``batch_pixels``, ``validate``, ``compile``).
    """
    name = DEFAULT_MODEL if model is None else model  # "" is an error, not the default
    device = parse_device(device if isinstance(device, str) else str(device))
    key = (name, mode, str(device), dtype, tuple(sorted(options.items())))
    with _lock:
        module = _cache.get(key)
        if module is None:
            module = PerceptualDistance.from_pretrained(name, mode=mode, **options).to(device=device, dtype=dtype)
            _cache[key] = module
    return module


def distance(
    x: ImageInput, y: ImageInput, model: str | None = None, mode: Mode | None = None, **kwargs: Any
) -> Tensor:
    """Perceptual distance between matching images of two N x 3 x H x W batches.

    Args:
        x, y: tensors, float in [0, 1] (or ``input_range=``) or uint8; or one image each: a file
            path or a PIL image (decoded by the command line's policy, see :func:`load_image`), or
            an H x W x 3 numpy array (uint8, or float in [0, 1]). These go to the device of a
            tensor argument, else to ``auto`` (CUDA when available).
        model: bundled name, local path or ``hf-hub:ORG/NAME[@REV]``; default :data:`DEFAULT_MODEL`.
        mode: ``spatial``, ``style`` or ``meanpool``; default: the model's.
        **kwargs: passed to :meth:`PerceptualDistance.forward` (``input_range``, ``spatial``,
            ``per_layer``, ``grey``, ``resize``, and for a loss ``reduction="mean"`` with
            ``out_of_range="clamp"``).

    Returns:
        Tensor [N] (float32; a scalar with a reduction), differentiable w.r.t. the inputs when they
        require grad.
    """
    tensors = [a for a in (x, y) if isinstance(a, Tensor)]
    module = load(model, device=tensors[0].device if tensors else "auto")
    device = module.device
    x, y = (a if isinstance(a, Tensor) else _as_batch(a, name).to(device) for a, name in ((x, "x"), (y, "y")))
    if x.requires_grad or y.requires_grad:
        return module(x, y, mode=mode, **kwargs)
    with torch.inference_mode():
        return module(x, y, mode=mode, **kwargs)


def _as_batch(image: Any, name: str) -> Tensor:
    """A 1 x 3 x H x W batch from a file path, a PIL image or an H x W x 3 numpy array."""
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)[None]
    if isinstance(image, Image.Image):
        return pil_to_tensor(image)[None]
    if isinstance(image, np.ndarray):
        if image.ndim == 4 and image.shape[-1] == 3:
            raise ValueError(f"{name} is an N x H x W x 3 array {image.shape}; pass a batch tensor in N x 3 x H x W "
                             f"order: torch.from_numpy({name}).permute(0, 3, 1, 2)")
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"{name} is a numpy array of shape {image.shape}; one image must be H x W x 3 "
                             f"(for 3 x H x W pass torch.from_numpy({name})[None])")
        if image.dtype != np.uint8 and not np.issubdtype(image.dtype, np.floating):
            raise ValueError(f"{name} is a numpy array of dtype {image.dtype}; use uint8, or floats in [0, 1]")
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]
    raise TypeError(f"{name} must be a torch.Tensor, a file path, a PIL image or an H x W x 3 numpy array, "
                    f"got {type(image).__name__}")


def clear_cache() -> None:
    """Forget every loaded module (e.g. after the weights on disk changed)."""
    with _lock:
        _cache.clear()
