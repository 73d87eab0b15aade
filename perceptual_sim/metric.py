"""``PerceptualDistance``: a frozen backbone, per-channel normalised features, a distance head."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import Tiling, build_backbone
from .csf import csf_filter
from .distances import (
    MODES,
    blur_normalized,
    blur_radius,
    embedding,
    layer_terms,
    spatial_maps,
    squared_cdist,
    tiled_terms,
)
from .models.archs import ESTIMATE_SIZE, MAX_MODEL_BYTES, Mode, check_arch_args, estimate
from .models.card import MAX_PIXELS_PER_DEGREE, ModelCard, WeightsError, load_tensors
from .models.registry import load

RANGE_TOLERANCE = 1e-3
"""Values at most this far outside the input range (floating-point noise) are clamped."""

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
PRECISIONS = {"auto": None, "float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}
REDUCTIONS = ("none", "mean", "sum")
OUT_OF_RANGE = ("error", "clamp")
Precision = Literal["auto", "float32", "bfloat16", "float16"]
"""The type of ``precision``: a key of :data:`PRECISIONS`."""
Reduction = Literal["none", "mean", "sum"]
"""The type of ``reduction``: one of :data:`REDUCTIONS`."""
OutOfRange = Literal["error", "clamp"]
"""The type of ``out_of_range``: one of :data:`OUT_OF_RANGE`."""


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
    inputs only. Build it with :meth:`from_pretrained` (a model string) or :meth:`from_card` (a
    card and its tensors); the constructor alone gives random weights.

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
        max_model_bytes: refuse, before building it, a card whose architecture arguments ask for
            more memory than this (float32 parameters plus the activations of one 256 x 256
            image, estimated from the arguments). Default: the environment variable
            ``PERCEPTUAL_SIM_MAX_MODEL_BYTES``, else 4 GiB. Raise it for a card you trust.
        pixels_per_degree: the viewing condition (pixels per degree of visual angle) at which images
            are seen: each spatial frequency is weighted by human contrast sensitivity there before
            the backbone (:mod:`perceptual_sim.csf`), so detail too fine to see counts less. 0 turns
            it off; default: the card's.

    A pair larger than ``batch_pixels`` is evaluated in tiles with a halo covering the
    backbone's receptive field (not ViTs: their attention is global), so peak memory follows
    ``batch_pixels`` while the distance equals the untiled one to float tolerance.
    """

    def __init__(
        self,
        card: ModelCard,
        mode: Mode | None = None,
        *,
        precision: Precision = "auto",
        batch_pixels: int | None = None,
        validate: bool = True,
        compile: bool | None = None,
        max_model_bytes: int | None = None,
        pixels_per_degree: float | None = None,
    ) -> None:
        super().__init__()
        mode = mode or card.default_mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        if batch_pixels is not None and batch_pixels < 1:
            raise ValueError(f"batch_pixels must be positive, got {batch_pixels}")
        if max_model_bytes is None:
            max_model_bytes = _env_bytes("PERCEPTUAL_SIM_MAX_MODEL_BYTES", MAX_MODEL_BYTES)
        need, params, acts = estimate(card.arch, check_arch_args(card.arch, card.arch_args))
        if need > max_model_bytes:
            raise ValueError(
                f"model {card.name!r} would need about {need / 2**30:.3g} GiB ({params:,} parameters and "
                f"{acts:,} activations for one {ESTIMATE_SIZE} x {ESTIMATE_SIZE} image, float32), more than "
                f"max_model_bytes={max_model_bytes:,}: its card's arch_args {card.arch_args} ask for that. "
                "If you trust the card, pass a larger max_model_bytes (or set PERCEPTUAL_SIM_MAX_MODEL_BYTES, "
                "which the command line reads)."
            )
        self.card = card
        self.mode = mode
        self.precision = precision
        self.batch_pixels = batch_pixels
        self.validate = validate
        if pixels_per_degree is None:
            pixels_per_degree = card.pixels_per_degree
        if not (isinstance(pixels_per_degree, (int, float)) and 0 <= pixels_per_degree <= MAX_PIXELS_PER_DEGREE):
            raise ValueError(f"pixels_per_degree must be a number in [0, {MAX_PIXELS_PER_DEGREE:g}] (0 for none), "
                             f"got {pixels_per_degree!r}")
        self.pixels_per_degree = float(pixels_per_degree)
        """The viewing condition images are seen at (:mod:`perceptual_sim.csf`); 0: none."""
        self.weights_path: Path | None = None
        """The tensor file the weights came from (:meth:`from_pretrained`, :meth:`from_card`), else None."""
        self.backbone = build_backbone(card.arch, card.arch_args).to(memory_format=torch.channels_last)
        blur = card.feature_blur  # the card checked a per-stage tuple's length against the architecture
        self._blurs = blur if isinstance(blur, tuple) else (blur,) * len(self.backbone.channels)
        tiling: Tiling | None = getattr(self.backbone, "tiling", None)
        if tiling is not None and any(self._blurs):  # each blur reaches blur_radius positions of its stage further
            reach = max(blur_radius(s) * stride for s, stride in zip(self._blurs, tiling.strides) if s)
            tiling = Tiling.from_reach(tiling.strides, tiling.halo + reach)
        self._tiling = tiling  # how pairs too large for one pass are split (None: never, as for ViTs)
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
        mode: Mode | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        device: str | torch.device | None = None,
        **options: Any,
    ) -> PerceptualDistance:
        """Load a bundled name, a local path or ``hf-hub:ORG/NAME[@REV]`` (strict, sha256-checked).

        ``device``: where the built module goes (``"cuda"``, ``"cpu"``, a :class:`torch.device`, or
        ``"auto"``: CUDA when available); default the CPU. Afterwards it moves with ``.to()``.
        ``options`` are the constructor's keyword options (``precision``, ``batch_pixels``, ...).
        Hub files that fail a check are removed from the Hugging Face cache.
        """
        module = load(model, lambda card, path: cls.from_card(card, path, mode=mode, **options), cache_dir=cache_dir)
        if device is None:
            return module
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            target = torch.device(device)
        except (RuntimeError, TypeError):
            raise ValueError(f"device={device!r} is not a torch device (try 'cpu', 'cuda' or 'auto')") from None
        if target.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: CUDA is not available here (torch {torch.__version__}); use 'cpu'")
        return module.to(target)

    @classmethod
    def from_card(
        cls, card: ModelCard, tensors: str | os.PathLike[str] | Mapping[str, Tensor], *, mode: Mode | None = None,
        **options: Any,
    ) -> PerceptualDistance:
        """Build the module of ``card``, then load its weights strictly (:meth:`load_weights`).

        ``tensors``: the tensor file (its size bounded by the card's architecture and its sha256
        checked against the card before the module is built; it becomes :attr:`weights_path`), or
        the tensors themselves.
        """
        if isinstance(tensors, (str, os.PathLike)):
            path = Path(tensors)
            state = load_tensors(card, path)
            module = cls(card, mode=mode, **options)
            module.load_weights(state, source=str(path))
            module.weights_path = path
        else:
            module = cls(card, mode=mode, **options)
            module.load_weights(tensors)
        return module

    @property
    def device(self) -> torch.device:
        """The device the module's buffers and parameters are on."""
        return self.input_mean.device

    def load_weights(self, tensors: Mapping[str, Tensor], source: str = "weights") -> None:
        """Load a state dict strictly: every tensor present, none extra, shapes equal, float
        tensors finite and of a float dtype, others of the module's dtype. ``source`` names the
        tensors' file in errors."""
        expected = self.state_dict()
        for key, t in tensors.items():
            want = expected.get(key)
            if want is None:
                continue  # load_state_dict names it
            if t.dtype not in FLOAT_DTYPES if want.is_floating_point() else t.dtype != want.dtype:
                kind = "a float dtype (float32, float16, bfloat16 or float64)" if want.is_floating_point() else want.dtype
                raise WeightsError(f"{source}: tensor {key!r} has dtype {t.dtype}, expected {kind}. "
                                   "The file is damaged or not written for this card; re-download or re-export it.")
            if t.is_floating_point() and not torch.isfinite(t).all():
                raise WeightsError(f"{source}: tensor {key!r} holds NaN or infinite values; a model's weights "
                                   "must be finite. Re-download the model or export another checkpoint.")
        try:
            self.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"{source}: weights do not fit model {self.card.name!r}: {exc}") from None
        if self.layer_weights is not None and any((w < 0).any() for w in self.layer_weights):
            raise WeightsError(f"{source}: model {self.card.name!r} has negative layer weights; they must be >= 0")

    def _mode(self, mode: str | None) -> str:
        """``mode``, or the module's when None; ValueError unless it is one of :data:`MODES`."""
        mode = mode or self.mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        return mode

    def _weights(self) -> list[Tensor] | None:
        """The per-layer channel weights (LPIPS "lin"), or None."""
        return list(self.layer_weights) if self.layer_weights is not None else None

    def _mode_maps(self, mode: str, maps: Sequence[Tensor]) -> Sequence[Tensor]:
        """The maps ``mode`` compares: in spatial mode, each stage the card's ``feature_blur`` blurs
        as its blurred normalised map; otherwise ``maps`` as they are."""
        if mode != "spatial" or not any(self._blurs):
            return maps
        with torch.autocast(maps[0].device.type, enabled=False):
            return [blur_normalized(m, s) if s else m for m, s in zip(maps, self._blurs)]

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
        return self._normalise(*self._check(x, input_range=input_range, grey=grey, name=name, out_of_range="error"))

    def _check(
        self, x: Tensor, *, input_range: tuple[float, float], grey: bool, name: str, out_of_range: str
    ) -> tuple[Tensor, float, float]:
        """``x`` checked (grey replicated as a view), and the range ``(lo, hi)`` its values are in.

        Values outside the range raise unless ``out_of_range="clamp"``; NaN and Inf always raise
        (both checks only with ``validate``).
        """
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            hint = f"; for one image use {name}.unsqueeze(0)" if x.dim() == 3 else ""
            raise ValueError(f"{name} must be N x C x H x W (4 dimensions), got shape {tuple(x.shape)}{hint}")
        device = self.device
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
            if w in (1, 3) and c > 4:
                hint = (f": it looks channels-last (N x H x W x {w}); permute it to N x {w} x H x W with "
                        f"{name}.permute(0, 3, 1, 2)")
            raise ValueError(f"{name} must have 3 colour channels, got {c} (shape {tuple(x.shape)}){hint}")
        if min(h, w) < self.card.min_size:
            raise ValueError(
                f"{name} is {h} x {w}; model {self.card.name!r} needs at least "
                f"{self.card.min_size} x {self.card.min_size} pixels. Upsample the images first."
            )
        lo, hi = float(input_range[0]), float(input_range[1])
        if not lo < hi:
            raise ValueError(f"input_range must be (low, high) with low < high, got {input_range}")
        if out_of_range not in OUT_OF_RANGE:
            raise ValueError(f"out_of_range must be one of {OUT_OF_RANGE}, got {out_of_range!r}")
        if x.dtype == torch.uint8:
            return self._seen(x), 0.0, 255.0
        if x.dtype not in FLOAT_DTYPES:
            raise ValueError(f"{name} has dtype {x.dtype}; use a float tensor in {input_range} or uint8 in [0, 255]")
        if n and self.validate:
            vmin, vmax = (float(v) for v in torch.aminmax(x.detach()))  # NaN propagates to both
            if not (math.isfinite(vmin) and math.isfinite(vmax)):
                raise ValueError(f"{name} contains NaN or Inf values; the distance of such images is undefined")
            tol = RANGE_TOLERANCE * (hi - lo)
            if out_of_range == "error" and (vmin < lo - tol or vmax > hi + tol):
                raise ValueError(_range_message(name, vmin, vmax, lo, hi))
        return self._seen(x), lo, hi

    def _seen(self, x: Tensor) -> Tensor:
        """``x`` as an observer at :attr:`pixels_per_degree` sees it (:func:`csf_filter`; unchanged at 0)."""
        if not self.pixels_per_degree:
            return x
        return csf_filter(x, self.pixels_per_degree)

    def _normalise(self, x: Tensor, lo: float, hi: float) -> Tensor:
        """Map values in [lo, hi] to the backbone's input: clamped to the range (gradients pass
        the clamp unchanged), then normalised with the card's mean and std."""
        if x.dtype in (torch.uint8, torch.float64):
            x = x.to(self.input_mean.dtype)
        if (lo, hi) != (0.0, 1.0):
            x = (x - lo) / (hi - lo)
        x = _StraightThroughClamp.apply(x) if x.requires_grad else x.clamp(0, 1)
        scale = self.input_std.to(x.dtype).reciprocal()
        return torch.addcmul(-self.input_mean.to(x.dtype) * scale, x, scale)  # (x - mean) / std in one pass

    def _budget(self, device: torch.device) -> int:
        return self.batch_pixels or (1 << 18 if device.type == "cpu" else 1 << 24)

    def _backbone(self, x: Tensor, group: int = 1) -> list[Tensor]:
        """Tapped maps of a normalised batch, in chunks of at most ``batch_pixels`` pixels.

        Chunks hold whole groups of ``group`` consecutive images (at least one group).
        """
        chunks = list(self._chunks(x, group))
        if len(chunks) == 1:
            return chunks[0]
        return [torch.cat(maps) for maps in zip(*chunks)]

    def _chunks(self, x: Tensor, group: int = 1) -> Iterator[list[Tensor]]:
        """The tapped maps of :meth:`_backbone`, one chunk of at most ``batch_pixels`` pixels at a time."""
        amp = PRECISIONS[self.precision]
        if self.precision == "auto" and x.dtype in (torch.float16, torch.bfloat16):
            amp = x.dtype
        param_dtype = self.input_mean.dtype
        autocast = amp is not None and param_dtype == torch.float32
        if not autocast:
            x = x.to(param_dtype)
        step = max(1, self._budget(x.device) // (x.shape[2] * x.shape[3]) // group) * group
        for i in range(0, x.shape[0], step):
            chunk = x[i : i + step].contiguous(memory_format=torch.channels_last)
            with torch.autocast(x.device.type, dtype=amp) if autocast else contextlib.nullcontext():
                maps = list(self.backbone(chunk))
            yield maps

    # ----------------------------------------------------------------------------- outputs
    def forward(
        self,
        x: Tensor,
        y: Tensor,
        *,
        mode: Mode | None = None,
        spatial: bool = False,
        per_layer: bool = False,
        input_range: tuple[float, float] = (0.0, 1.0),
        grey: bool = False,
        resize: bool = False,
        reduction: Reduction = "none",
        out_of_range: OutOfRange = "error",
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
            reduction: ``none`` (the N distances), ``mean`` or ``sum`` (a scalar, e.g. a loss).
            out_of_range: ``error`` (evaluation: values outside the range raise) or ``clamp``
                (optimisation: they are clamped, and gradients pass the clamp unchanged).

        Returns:
            A float32 tensor of shape [N] (or the map / per-layer terms, or a scalar).

        Raises:
            ValueError: bad inputs, or (with ``validate``) a distance that is NaN or infinite.
        """
        mode = self._mode(mode)
        if spatial and mode != "spatial":
            raise ValueError(f"spatial=True gives a map only in spatial mode, not {mode!r}")
        if spatial and per_layer:
            raise ValueError("choose spatial=True or per_layer=True, not both")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if reduction != "none" and (spatial or per_layer):
            raise ValueError("reduction applies to the N distances; with spatial=True or per_layer=True "
                             "reduce the output yourself")
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
        options = {"input_range": input_range, "grey": grey, "out_of_range": out_of_range}
        xc, lo, hi = self._check(x, name="x", **options)
        yc, lo_y, hi_y = self._check(y, name="y", **options)
        n, _, h, w = xc.shape
        if n == 0:
            if reduction == "mean":
                raise ValueError("reduction='mean' of an empty batch is undefined; pass at least one pair")
            shape = (0, 1, h, w) if spatial else (0, len(self.backbone.channels)) if per_layer else (0,)
            out = xc.new_zeros(shape, dtype=torch.float32)
            return out.sum() if reduction == "sum" else out
        if self._tiling is not None and 2 * h * w > self._budget(xc.device):
            terms, maps = self._tiled(xc, yc, (lo, hi), (lo_y, hi_y), mode, self._weights(), self._tiling)
        else:
            # x_i and y_i share a backbone pass (interleaved, chunked in whole pairs), so d(x, x) is exactly 0
            # chunk by chunk (x_i and y_i in one backbone pass, so d(x, x) is exactly 0): the inputs are
            # normalised and the terms formed per chunk, so the whole batch's maps are never held at once
            k = max(1, self._budget(xc.device) // (2 * h * w))
            parts, map_parts = [], []
            for i in range(0, n, k):
                pair = torch.cat([self._normalise(xc[i : i + k], lo, hi), self._normalise(yc[i : i + k], lo_y, hi_y)])
                feats = self._backbone(pair, group=len(pair))  # one pass: the chunk was sized to the budget
                m = len(pair) // 2
                fa, fb = (self._mode_maps(mode, [f[j * m : (j + 1) * m] for f in feats]) for j in (0, 1))
                with torch.autocast(xc.device.type, enabled=False):
                    parts.append(layer_terms(mode, fa, fb, self._weights()))
                    if spatial:
                        map_parts.append(spatial_maps(fa, fb, self._weights()))
            terms = torch.cat(parts)
            maps = [torch.cat(layer) for layer in zip(*map_parts)] if spatial else None
        with torch.autocast(xc.device.type, enabled=False):
            out = terms if per_layer else _spatial_map(maps, terms, (h, w)) if spatial else terms.sum(1)
        if self.validate:
            self._check_finite(out)
        return out.mean() if reduction == "mean" else out.sum() if reduction == "sum" else out

    def _check_finite(self, out: Tensor, what: str = "pairs") -> None:
        """Raise if any pair's result (or row of ``what``) is NaN or infinite (finite inputs made the model overflow)."""
        bad = ~torch.isfinite(out.detach().reshape(out.shape[0], -1)).all(1)
        if bad.any():
            pairs = bad.nonzero().flatten().tolist()
            listed = ", ".join(map(str, pairs[:10])) + (", ..." if len(pairs) > 10 else "")
            raise ValueError(
                f"the distance is NaN or infinite for {len(pairs)} of {out.shape[0]} {what} (index {listed}): "
                f"model {self.card.name!r} overflowed (precision {self.precision}) on finite inputs. With float16, "
                "use precision='float32'; otherwise the model's weights do not work on these images."
            )

    def _tiled(
        self, x: Tensor, y: Tensor, range_x: tuple[float, float], range_y: tuple[float, float], mode: str,
        weights: list[Tensor] | None, tiling: Tiling,
    ) -> tuple[Tensor, list[Tensor]]:
        """Per-layer terms (N x L) and spatial maps of pairs too large for one pass, tile by tile
        (:func:`~perceptual_sim.distances.tiled_terms` over :meth:`_tiles`)."""
        side = max(tiling.align, (math.isqrt(self._budget(x.device) // 2) - 2 * tiling.halo) // tiling.align
                   * tiling.align)
        pairs = [tiled_terms(mode, self._tiles(x[i : i + 1], y[i : i + 1], range_x, range_y, mode, tiling, side),
                             weights) for i in range(x.shape[0])]
        return torch.cat([terms for terms, _ in pairs]), [torch.cat(layer) for layer in zip(*(m for _, m in pairs))]

    def _tiles(
        self, x: Tensor, y: Tensor, range_x: tuple[float, float], range_y: tuple[float, float], mode: str,
        tiling: Tiling, side: int,
    ) -> Iterator[tuple[bool, list[Tensor], list[Tensor]]]:
        """The tiles of one pair, row by row: ``(new_row, fa, fb)``, the maps ``mode`` compares, cut to the
        tile's interior.

        Tiles start at multiples of ``tiling.align`` and carry ``tiling.halo`` pixels of context on
        each side, so the feature positions each tile keeps (those of its interior) equal the
        whole image's.
        """
        _, _, h, w = x.shape
        halo = tiling.halo
        for y0 in range(0, h, side):
            y1 = min(h, y0 + side)
            for x0 in range(0, w, side):
                x1 = min(w, x0 + side)
                t0, t1, u0, u1 = max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo)
                pair = torch.cat([self._normalise(x[:, :, t0:t1, u0:u1], *range_x),
                                  self._normalise(y[:, :, t0:t1, u0:u1], *range_y)])
                kept = []
                for f, s in zip(self._mode_maps(mode, self._backbone(pair, group=2)), tiling.strides):
                    r1 = y1 // s - t0 // s if y1 < h else f.shape[2]
                    c1 = x1 // s - u0 // s if x1 < w else f.shape[3]
                    kept.append(f[:, :, y0 // s - t0 // s : r1, x0 // s - u0 // s : c1])
                yield x0 == 0, [f[:1] for f in kept], [f[1:] for f in kept]

    def embed(self, x: Tensor, *, input_range: tuple[float, float] = (0.0, 1.0), grey: bool = False) -> Features:
        """Backbone features of ``x``, computed once, for :meth:`pairwise` in any mode."""
        xa = self.prepare(x, input_range=input_range, grey=grey)
        return Features([f.float() for f in self._backbone(xa)], (xa.shape[2], xa.shape[3]))

    def compare(
        self, fa: Features | Sequence[Tensor], fb: Features | Sequence[Tensor], *, mode: Mode | None = None,
        per_layer: bool = False,
    ) -> Tensor:
        """Distances between matching images of two feature batches (from :meth:`embed`, or its
        ``maps``): float32 [N], or the N x L per-layer terms with ``per_layer``. This is where a mode
        and the layer weights meet the features; :meth:`forward` uses it too."""
        mode = self._mode(mode)
        ma, mb = (self._mode_maps(mode, f.maps if isinstance(f, Features) else f) for f in (fa, fb))
        with torch.autocast(ma[0].device.type, enabled=False):
            terms = layer_terms(mode, ma, mb, self._weights())
        return terms if per_layer else terms.sum(1)

    def pairwise(self, fa: Features, fb: Features, *, mode: Mode | None = None) -> Tensor:
        """N x M matrix of distances between every image of ``fa`` and every image of ``fb``."""
        mode = self._mode(mode)
        if mode == "spatial" and fa.image_size != fb.image_size:
            raise ValueError(
                f"spatial pairwise distances need equal image sizes, got {fa.image_size} and {fb.image_size}; "
                "use mode='style' or 'meanpool', or resize the images"
            )
        weights = self._weights()
        with torch.autocast(fa.maps[0].device.type, enabled=False):
            ea, eb = (embedding(mode, self._mode_maps(mode, f.maps), weights) for f in (fa, fb))
            out = squared_cdist(ea[0], eb[0])
            for a, b in zip(ea[1:], eb[1:]):
                out = out + squared_cdist(a, b)
        if self.validate:
            self._check_finite(out, "rows")
        return out


def _env_bytes(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name}={text!r}: expected a positive number of bytes, e.g. {8 << 30} for 8 GiB")
    return value


class _StraightThroughClamp(torch.autograd.Function):
    """Clamp to [0, 1] forward; pass the gradient through unchanged (also at and beyond 0 and 1)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return grad


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
    loss = " Optimising the images (a loss)? Pass out_of_range='clamp': clamped, with gradients passed through."
    if vmin >= lo - 0.05 * (hi - lo) and vmax <= hi + 0.05 * (hi - lo):
        return msg + f"If that overshoot is expected (e.g. from resampling), clamp them: {name}.clamp({lo:g}, {hi:g})." + loss
    if vmin >= -1 - 1e-3 and vmax <= 1 + 1e-3 and (lo, hi) == (0.0, 1.0):
        return msg + "Images in [-1, 1] (as lpips expects)? Pass input_range=(-1, 1)."
    if vmin >= 0 and 2 < vmax <= 255 + 1e-3:
        return msg + "Images in [0, 255]? Divide by 255, or pass a uint8 tensor."
    return msg + "Rescale the images to the input range, or pass the range they use as input_range." + loss
