"""``PerceptualDistanceMetric``: a ``torchmetrics.Metric`` (``pip install "perceptual_sim[torchmetrics]"``).

It follows torchmetrics' LPIPS (``LearnedPerceptualImagePatchSimilarity``): ``normalize=False``
takes images in [-1, 1], ``normalize=True`` in [0, 1] (uint8 images are taken as [0, 255]
either way); ``reduction`` is ``"mean"``, ``"sum"`` or ``"none"``/``None`` (per-sample scores in
the order of the ``update`` calls, process by process in rank order after a distributed sync).
Scores accumulate over ``update`` calls and are gathered across processes
(``torch.distributed``) by ``compute``. The metric's network is frozen and stays in eval mode;
the scores keep their autograd graph only when an input requires grad. For a training loss,
use :class:`perceptual_sim.PerceptualDistance` directly.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import torch
from torch import Tensor

try:
    from torchmetrics import Metric
    from torchmetrics.utilities import dim_zero_cat
except ImportError as exc:  # the optional extra is missing
    raise ImportError(
        f'perceptual_sim.torchmetrics needs torchmetrics ({exc}); install it with pip install "perceptual_sim[torchmetrics]"'
    ) from exc

from .metric import PerceptualDistance
from .models.archs import Mode
from .models.registry import DEFAULT_MODEL

REDUCTIONS = ("mean", "sum", "none", None)


class PerceptualDistanceMetric(Metric):
    """Perceptual distance accumulated over batches, synchronised across processes.

    Args:
        model: bundled name (e.g. ``lpips-alex``), local path or ``hf-hub:ORG/NAME[@REV]``;
            default :data:`perceptual_sim.DEFAULT_MODEL`.
        mode: ``spatial``, ``style`` or ``meanpool``; default: the model's.
        reduction: ``"mean"`` or ``"sum"`` over every scored pair, or ``"none"``/``None`` for the
            per-sample scores.
        normalize: False: float images in [-1, 1] (torchmetrics' default); True: in [0, 1].
        **kwargs: torchmetrics' ``Metric`` options (``sync_on_compute``, ``process_group``, ...).
    """

    is_differentiable = True
    higher_is_better = False
    full_state_update = False
    plot_lower_bound = 0.0
    scores: list[Tensor]

    def __init__(
        self,
        model: str | None = None,
        *,
        mode: Mode | None = None,
        reduction: Literal["mean", "sum", "none"] | None = "mean",
        normalize: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if not isinstance(normalize, bool):
            raise ValueError(f"normalize must be True (images in [0, 1]) or False (in [-1, 1]), got {normalize!r}")
        self.model = PerceptualDistance.from_pretrained(model or DEFAULT_MODEL, mode=mode)
        self.reduction = reduction
        self.normalize = normalize
        self._warned_range = False
        self.add_state("scores", default=[], dist_reduce_fx="cat")

    def update(self, img1: Tensor, img2: Tensor) -> None:
        """Score the matching images of two N x 3 x H x W batches and keep the N scores."""
        input_range = (0.0, 1.0) if self.normalize else (-1.0, 1.0)
        if not self.normalize and not self._warned_range and _looks_unit_range(img1, img2):
            self._warned_range = True
            warnings.warn(
                "PerceptualDistanceMetric(normalize=False) takes float images in [-1, 1], but this batch has no "
                "negative value: images in [0, 1] read as [-1, 1] give distances that are too small. If your images "
                "are in [0, 1], pass normalize=True.",
                UserWarning,
                stacklevel=2,
            )
        grad = any(isinstance(t, Tensor) and t.requires_grad for t in (img1, img2))
        with torch.set_grad_enabled(grad):
            self.scores.append(self.model(img1, img2, input_range=input_range))

    def compute(self) -> Tensor:
        """The mean or sum of every score so far, or the scores themselves (``reduction="none"``)."""
        if isinstance(self.scores, list) and not self.scores:  # a list until a distributed sync concatenates it
            raise ValueError("no images scored yet: call update(img1, img2) before compute()")
        scores = dim_zero_cat(self.scores)
        if self.reduction == "mean":
            return scores.mean()
        if self.reduction == "sum":
            return scores.sum()
        return scores


def _looks_unit_range(*images: Any) -> bool:
    """Whether these float batches hold values, none of them negative (a hint of [0, 1] images)."""
    floats = [t for t in images if isinstance(t, Tensor) and t.is_floating_point() and t.numel()]
    return bool(floats) and all(bool(t.detach().min() >= 0) for t in floats)


class PerceptualDiversityMetric(Metric):
    """Diversity of a generator's samples, input by input (the BicycleGAN / MUNIT protocol): each
    ``update`` takes K >= 2 samples of each of N inputs and keeps, per input, the mean distance
    over its K (K - 1) / 2 pairs; ``compute`` averages over every input (and every process).
    Higher is more diverse; identical samples give 0.

    Args:
        model, mode, normalize, **kwargs: as for :class:`PerceptualDistanceMetric`.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False
    plot_lower_bound = 0.0
    scores: list[Tensor]

    def __init__(self, model: str | None = None, *, mode: Mode | None = None, normalize: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(normalize, bool):
            raise ValueError(f"normalize must be True (images in [0, 1]) or False (in [-1, 1]), got {normalize!r}")
        self.model = PerceptualDistance.from_pretrained(model or DEFAULT_MODEL, mode=mode)
        self.normalize = normalize
        self.add_state("scores", default=[], dist_reduce_fx="cat")

    def update(self, samples: Tensor) -> None:
        """Samples of N inputs, N x K x 3 x H x W (or K x 3 x H x W for one input), K >= 2."""
        from .distances import squared_cdist
        from .generative import vectors

        if not isinstance(samples, Tensor) or samples.dim() not in (4, 5):
            shape = tuple(samples.shape) if isinstance(samples, Tensor) else type(samples).__name__
            raise ValueError(f"samples must be N x K x 3 x H x W (K samples of each of N inputs) or K x 3 x H x W, "
                             f"got {shape}")
        if samples.dim() == 4:
            samples = samples[None]
        n, k = samples.shape[:2]
        if k < 2:
            raise ValueError(f"diversity needs at least 2 samples per input, got K = {k} (shape {tuple(samples.shape)})")
        input_range = (0.0, 1.0) if self.normalize else (-1.0, 1.0)
        with torch.inference_mode():
            v = vectors(self.model, samples.flatten(0, 1), input_range=input_range).view(n, k, -1)
            scores = torch.stack([squared_cdist(e, e).double().sum() / (k * (k - 1)) for e in v])
        self.scores.append(scores.float().clone())

    def compute(self) -> Tensor:
        """The mean per-input diversity over every input so far."""
        if isinstance(self.scores, list) and not self.scores:
            raise ValueError("no samples yet: call update(samples) before compute()")
        return dim_zero_cat(self.scores).mean()
