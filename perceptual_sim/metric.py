"""``PerceptualDistance``: a frozen backbone, per-channel normalised features, a distance head."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import build_backbone
from .distances import MODES, embedding, layer_terms, spatial_maps, squared_cdist
from .weights import ModelCard, WeightsError, load_tensors, resolve

RANGE_TOLERANCE = 1e-3
"""Values at most this far outside the input range (floating-point noise) are clamped."""

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
PRECISIONS = {"auto": None, "float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Features:
    """Backbone features of a batch (from :meth:`PerceptualDistance.embed`)."""

    maps: list[Tensor]
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return self.maps[0].shape[0]


class PerceptualDistance(nn.Module):
    """Perceptual distance between image batches.

    The module is always in eval mode and its parameters are frozen; gradients flow to the
    inputs only. Build it with :meth:`from_pretrained` (or from a :class:`ModelCard`).

    Args:
        card: the model card (architecture, normalisation, default mode).
        mode: ``spatial``, ``style`` or ``meanpool``; default: the card's.
        precision: ``auto`` (float16/bfloat16 inputs run the backbone under autocast in their
            dtype, others in float32), ``float32``, ``bfloat16`` or ``float16`` (autocast).
            Norms, Gram matrices and sums are float32 in every case.
        batch_pixels: at most this many pixels (images x H x W) per backbone pass; larger
            batches are split into chunks, which bounds peak memory. Default: 2**18 on CPU
            (cache-sized chunks measured fastest there, see benchmarks/README.md), 2**24 on GPU.
        validate: check values (NaN/Inf, range) on every call. Turning it off avoids a
            host-device sync per call on GPU; shapes, dtypes and devices are still checked.
        compile: run the backbone through ``torch.compile``; default: the environment
            variable ``PERCEPTUAL_SIM_COMPILE=1``.
    """

    def __init__(
        self,
        card: ModelCard,
        mode: str | None = None,
        *,
        precision: str = "auto",
        batch_pixels: int | None = None,
        validate: bool = True,
        compile: bool | None = None,
    ) -> None:
        super().__init__()
        mode = mode or card.default_mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        if batch_pixels is not None and batch_pixels < 1:
            raise ValueError(f"batch_pixels must be positive, got {batch_pixels}")
        self.card = card
        self.mode = mode
        self.precision = precision
        self.batch_pixels = batch_pixels
        self.validate = validate
        self.backbone = build_backbone(card.arch, card.arch_args).to(memory_format=torch.channels_last)
        if compile is None:
            compile = os.environ.get("PERCEPTUAL_SIM_COMPILE", "") == "1"
        if compile:
            self.backbone.compile(dynamic=True)
        self.register_buffer("input_mean", torch.tensor(card.input_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_std", torch.tensor(card.input_std).view(1, 3, 1, 1), persistent=False)
        self.layer_weights = (
            nn.ParameterList([nn.Parameter(torch.ones(c)) for c in self.backbone.channels])
            if card.layer_weights
            else None
        )
        self.requires_grad_(False)
        super().train(False)

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        mode: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        **options: Any,
    ) -> PerceptualDistance:
        """Load a bundled name, a local path or ``hf-hub:ORG/NAME[@REV]`` (strict, sha256-checked).

        ``options`` are the constructor's keyword options (``precision``, ``batch_pixels``, ...).
        """
        card, path = resolve(model, cache_dir=cache_dir)
        module = cls(card, mode=mode, **options)
        module.load_weights(load_tensors(card, path))
        return module

    def load_weights(self, tensors: dict[str, Tensor]) -> None:
        """Load a state dict strictly: every tensor present, none extra, shapes equal."""
        try:
            self.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"weights do not fit model {self.card.name!r}: {exc}") from None
        if self.layer_weights is not None and any((w < 0).any() for w in self.layer_weights):
            raise WeightsError(f"model {self.card.name!r} has negative layer weights; they must be >= 0")

    def train(self, mode: bool = True) -> PerceptualDistance:
        """The metric never trains: this keeps eval mode (batch-norm statistics stay fixed)."""
        return super().train(False)

    # ----------------------------------------------------------------------------- inputs
    def prepare(
        self,
        x: Tensor,
        *,
        input_range: tuple[float, float] = (0.0, 1.0),
        grey: bool = False,
        name: str = "x",
    ) -> Tensor:
        """Check an N x 3 x H x W batch and map it to the backbone's normalised input."""
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            hint = f"; for one image use {name}.unsqueeze(0)" if x.dim() == 3 else ""
            raise ValueError(f"{name} must be N x C x H x W (4 dimensions), got shape {tuple(x.shape)}{hint}")
        device = self.input_mean.device
        if x.device != device:
            raise ValueError(
                f"{name} is on {x.device} but the model is on {device}: move one of them "
                f"(model.to({str(x.device)!r}) once, or {name}.to({str(device)!r}))"
            )
        n, c, h, w = x.shape
        if c == 1 and grey:
            x = x.expand(n, 3, h, w)
        elif c != 3:
            hint = " (pass grey=True to replicate a single grey channel)" if c == 1 else ""
            raise ValueError(f"{name} must have 3 colour channels, got {c} (shape {tuple(x.shape)}){hint}")
        if min(h, w) < self.card.min_size:
            raise ValueError(
                f"{name} is {h} x {w}; model {self.card.name!r} needs at least "
                f"{self.card.min_size} x {self.card.min_size} pixels. Upsample the images first."
            )
        lo, hi = float(input_range[0]), float(input_range[1])
        if not lo < hi:
            raise ValueError(f"input_range must be (low, high) with low < high, got {input_range}")
        if x.dtype == torch.uint8:
            x = x.float() / 255
            lo, hi = 0.0, 1.0
        elif x.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{name} has dtype {x.dtype}; use a float tensor in {input_range} or uint8 in [0, 255]")
        if n and self.validate:
            if not torch.isfinite(x).all():
                raise ValueError(f"{name} contains NaN or Inf values; the distance of such images is undefined")
            vmin, vmax = (float(v) for v in torch.aminmax(x.detach()))
            tol = RANGE_TOLERANCE * (hi - lo)
            if vmin < lo - tol or vmax > hi + tol:
                raise ValueError(_range_message(name, vmin, vmax, lo, hi))
        x = ((x.to(self.input_mean.dtype) if x.dtype == torch.float64 else x) - lo) / (hi - lo)
        x = x.clamp(0, 1)
        return (x - self.input_mean.to(x.dtype)) / self.input_std.to(x.dtype)

    def _backbone(self, x: Tensor, group: int = 1) -> list[Tensor]:
        """Tapped maps of a normalised batch, in chunks of at most ``batch_pixels`` pixels.

        Chunks hold whole groups of ``group`` consecutive images (at least one group).
        """
        amp = PRECISIONS[self.precision]
        if self.precision == "auto" and x.dtype in (torch.float16, torch.bfloat16):
            amp = x.dtype
        param_dtype = self.input_mean.dtype
        if amp is not None and param_dtype == torch.float32:
            ctx = torch.autocast(x.device.type, dtype=amp)
        else:
            ctx = contextlib.nullcontext()
            x = x.to(param_dtype)
        x = x.contiguous(memory_format=torch.channels_last)
        budget = self.batch_pixels or (1 << 18 if x.device.type == "cpu" else 1 << 24)
        step = max(1, budget // (x.shape[2] * x.shape[3]) // group) * group
        with ctx:
            chunks = [list(self.backbone(x[i : i + step])) for i in range(0, x.shape[0], step)]
        if len(chunks) == 1:
            return chunks[0]
        return [torch.cat(maps) for maps in zip(*chunks)]

    # ----------------------------------------------------------------------------- outputs
    def forward(
        self,
        x: Tensor,
        y: Tensor,
        *,
        mode: str | None = None,
        spatial: bool = False,
        per_layer: bool = False,
        input_range: tuple[float, float] = (0.0, 1.0),
        grey: bool = False,
        resize: bool = False,
    ) -> Tensor:
        """Distance between matching images of ``x`` and ``y``.

        Args:
            x, y: N x 3 x H x W batches, float in ``input_range`` (default [0, 1]) or uint8.
            mode: override the module's mode.
            spatial: return an N x 1 x H x W map (spatial mode) whose mean is the distance.
            per_layer: return the N x L per-layer terms, which sum to the distance.
            input_range: the value range of float inputs, e.g. ``(-1, 1)`` as in lpips.
            grey: accept 1-channel images (replicated to 3 channels).
            resize: resize ``y`` to ``x``'s size (bilinear, antialiased) when sizes differ.

        Returns:
            A float32 tensor of shape [N] (or the map / per-layer terms).
        """
        mode = mode or self.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if spatial and mode != "spatial":
            raise ValueError(f"spatial=True gives a map only in spatial mode, not {mode!r}")
        if spatial and per_layer:
            raise ValueError("choose spatial=True or per_layer=True, not both")
        if isinstance(x, Tensor) and isinstance(y, Tensor) and x.dim() == 4 and y.dim() == 4:
            if x.shape[0] != y.shape[0]:
                raise ValueError(f"x and y hold {x.shape[0]} and {y.shape[0]} images; pass equal batches")
            if x.shape[2:] != y.shape[2:]:
                if not resize:
                    raise ValueError(
                        f"x is {tuple(x.shape[2:])} but y is {tuple(y.shape[2:])} (H x W); pass resize=True to "
                        "resize y to x (this changes the score), or crop/resize them yourself"
                    )
                y = _resize(y, (x.shape[2], x.shape[3]))
        xa = self.prepare(x, input_range=input_range, grey=grey, name="x")
        yb = self.prepare(y, input_range=input_range, grey=grey, name="y")
        n = xa.shape[0]
        if n == 0:
            h, w = xa.shape[2:]
            shape = (0, 1, h, w) if spatial else (0, len(self.backbone.channels)) if per_layer else (0,)
            return xa.new_zeros(shape, dtype=torch.float32)
        # x_i and y_i share a backbone pass (interleaved, chunked in whole pairs), so d(x, x) is exactly 0
        feats = self._backbone(torch.stack([xa, yb], 1).flatten(0, 1), group=2)
        fa, fb = [f[0::2] for f in feats], [f[1::2] for f in feats]
        with torch.autocast(xa.device.type, enabled=False):
            weights = list(self.layer_weights) if self.layer_weights is not None else None
            terms = layer_terms(mode, fa, fb, weights)
            if per_layer:
                return terms
            if spatial:
                return _spatial_map(spatial_maps(fa, fb, weights), terms, tuple(xa.shape[2:]))
            return terms.sum(1)

    def embed(self, x: Tensor, *, input_range: tuple[float, float] = (0.0, 1.0), grey: bool = False) -> Features:
        """Backbone features of ``x``, computed once, for :meth:`pairwise` in any mode."""
        xa = self.prepare(x, input_range=input_range, grey=grey)
        return Features([f.float() for f in self._backbone(xa)], (xa.shape[2], xa.shape[3]))

    def pairwise(self, fa: Features, fb: Features, *, mode: str | None = None) -> Tensor:
        """N x M matrix of distances between every image of ``fa`` and every image of ``fb``."""
        mode = mode or self.mode
        if mode == "spatial" and fa.image_size != fb.image_size:
            raise ValueError(
                f"spatial pairwise distances need equal image sizes, got {fa.image_size} and {fb.image_size}; "
                "use mode='style' or 'meanpool', or resize the images"
            )
        weights = list(self.layer_weights) if self.layer_weights is not None else None
        with torch.autocast(fa.maps[0].device.type, enabled=False):
            ea, eb = embedding(mode, fa.maps, weights), embedding(mode, fb.maps, weights)
            out = squared_cdist(ea[0], eb[0])
            for a, b in zip(ea[1:], eb[1:]):
                out = out + squared_cdist(a, b)
        return out


def _resize(y: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear, antialiased resize that keeps the dtype (uint8 is rounded back)."""
    out = F.interpolate(y if y.is_floating_point() else y.float(), size=size, mode="bilinear",
                        align_corners=False, antialias=True)
    if y.dtype == torch.uint8:
        out = out.round().clamp(0, 255)
    return out.to(y.dtype)


def _spatial_map(maps: Sequence[Tensor], terms: Tensor, size: tuple[int, int]) -> Tensor:
    """Sum of per-layer maps upsampled (bilinear) to ``size``, each scaled so its mean is its term."""
    total = None
    for l, m in enumerate(maps):
        up = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
        scale = terms[:, l] / up.mean((1, 2, 3)).clamp_min(torch.finfo(up.dtype).tiny)
        up = up * scale.view(-1, 1, 1, 1)
        total = up if total is None else total + up
    return total


def _range_message(name: str, vmin: float, vmax: float, lo: float, hi: float) -> str:
    msg = f"{name} has values in [{vmin:.4g}, {vmax:.4g}], outside the input range [{lo:g}, {hi:g}]. "
    if vmin >= lo - 0.05 * (hi - lo) and vmax <= hi + 0.05 * (hi - lo):
        return msg + f"If that overshoot is expected (e.g. from resampling), clamp them: {name}.clamp({lo:g}, {hi:g})."
    if vmin >= -1 - 1e-3 and vmax <= 1 + 1e-3 and (lo, hi) == (0.0, 1.0):
        return msg + "Images in [-1, 1] (as lpips expects)? Pass input_range=(-1, 1)."
    if vmin >= 0 and vmax <= 255 + 1e-3:
        return msg + "Images in [0, 255]? Divide by 255, or pass a uint8 tensor."
    return msg + "Rescale the images to the input range, or pass the range they use as input_range."
