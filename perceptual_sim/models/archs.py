"""A model's configuration as data: the distance modes, each backbone's argument schema and a
memory estimate.

A card's ``default_mode`` and ``arch_args`` are checked here before anything is built: the mode
(:data:`MODES`), every argument's type and bounds (:func:`check_arch_args`), and the parameters
and activations the backbone would need, estimated from the arguments alone (:func:`estimate`).
No torch: listing models reads cards without loading it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

ESTIMATE_SIZE = 256
"""Side of the image whose activations :func:`estimate` counts."""

MAX_MODEL_BYTES = 4 << 30
"""Default bound on :func:`estimate`'s bytes; ``PerceptualDistance(max_model_bytes=...)`` raises it."""

Mode = Literal["spatial", "style", "meanpool"]
"""The type of a ``mode`` argument: one of :data:`MODES`."""
MODES: tuple[Mode, ...] = ("spatial", "style", "meanpool")
"""The distances a model computes (:mod:`perceptual_sim.distances` defines each); defined here, where
cards are checked without torch."""


@dataclass(frozen=True)
class Arg:
    """One keyword argument of a backbone: type, default and inclusive bounds.

    ``kind`` is ``bool``, ``int``, ``float`` (ints accepted), ``str`` (one of ``choices``) or
    ``list`` (``length`` integers); ``low``..``high`` bound numbers and list items.
    """

    kind: type
    default: Any
    low: float = 0
    high: float = 0
    choices: tuple[str, ...] = ()
    length: int = 0

    def check(self, name: str, value: Any) -> Any:
        """``value`` if it fits, else ValueError naming ``name``."""
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {short_repr(value)}")
            return value
        if self.kind is str:
            if not isinstance(value, str) or value not in self.choices:
                raise ValueError(f"{name} must be one of {list(self.choices)}, got {short_repr(value)}")
            return value
        if self.kind is list:
            if not (isinstance(value, (list, tuple)) and len(value) == self.length
                    and all(self._number(v, int) for v in value)):
                raise ValueError(f"{name} must be a list of {self.length} integers in [{self.low:g}, {self.high:g}], "
                                 f"got {short_repr(value)}")
            return tuple(value)
        if not self._number(value, self.kind):
            what = "an integer" if self.kind is int else "a number"
            raise ValueError(f"{name} must be {what} in [{self.low:g}, {self.high:g}], got {short_repr(value)}")
        return value

    def _number(self, value: Any, kind: type) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
            return False
        return math.isfinite(value) and self.low <= value <= self.high


RESNET_BLOCKS = ("single", "basic", "bottleneck")
VIT_TOKENS = ("patch", "cls")

SCHEMAS: dict[str, dict[str, Arg]] = {
    "k22_resnet": {
        "width": Arg(float, 1.0, 1 / 64, 4),
        "layers": Arg(list, (1, 1, 1, 1), 1, 64, length=4),
        "block": Arg(str, "single", choices=RESNET_BLOCKS),
        "antialias": Arg(bool, False),
        "num_classes": Arg(int, 0, 0, 100_000),
    },
    "vit": {
        "patch_size": Arg(int, 4, 1, 64),
        "embed_dim": Arg(int, 64, 1, 4096),
        "depth": Arg(int, 4, 1, 24),
        "num_heads": Arg(int, 4, 1, 64),
        "mlp_ratio": Arg(float, 4.0, 1 / 16, 16),
        "img_size": Arg(int, 64, 1, 4096),
        "tokens": Arg(str, "patch", choices=VIT_TOKENS),
        "num_classes": Arg(int, 0, 0, 100_000),
    },
    "conv_student": {
        "widths": Arg(list, (24, 48, 96, 0), 0, 1024, length=4),
        "depths": Arg(list, (1, 2, 2, 0), 0, 16, length=4),
        "heads": Arg(list, (16, 24, 40, 0), 0, 4096, length=4),
    },
    "efficientnet_lite0": {
        "taps": Arg(int, 4, 1, 4),
    },
    "alexnet": {},
    "vgg16": {},
}
"""Architecture name -> its keyword arguments (the names of :data:`perceptual_sim.backbones.ARCHITECTURES`)."""

# The LPIPS trunks, up to their last tap: ("conv", out channels, kernel, stride, padding) or ("pool", k, s, p).
CLASSIC_LAYERS: dict[str, tuple[tuple[Any, ...], ...]] = {
    "alexnet": (("conv", 64, 11, 4, 2), ("pool", 3, 2, 0), ("conv", 192, 5, 1, 2), ("pool", 3, 2, 0),
                ("conv", 384, 3, 1, 1), ("conv", 256, 3, 1, 1), ("conv", 256, 3, 1, 1)),
    "vgg16": tuple(
        layer
        for block, (out, n) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)))
        for layer in ((("pool", 2, 2, 0),) if block else ()) + (("conv", out, 3, 1, 1),) * n
    ),
}


def check_arch_args(arch: Any, args: Any) -> dict[str, Any]:
    """Check ``args`` against the schema of ``arch``; return them with the defaults filled in.

    Raises ValueError naming the argument (``arch_args.NAME``), what it must be and what it is.
    """
    if not isinstance(arch, str) or arch not in SCHEMAS:
        raise ValueError(f"unknown architecture {short_repr(arch)}; known architectures: {', '.join(sorted(SCHEMAS))}")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ValueError(f"arch_args must be an object of {arch} arguments, got {short_repr(args)}")
    schema = SCHEMAS[arch]
    unknown = sorted(map(str, set(args) - set(schema)))
    if unknown:
        raise ValueError(f"arch_args.{unknown[0]} is not an argument of architecture {arch!r} "
                         f"(its arguments: {', '.join(schema) or 'none'})")
    full = {name: spec.check(f"arch_args.{name}", args.get(name, spec.default)) for name, spec in schema.items()}
    if arch == "vit":
        if full["embed_dim"] % full["num_heads"]:
            raise ValueError(f"arch_args.embed_dim ({full['embed_dim']}) must be a multiple of "
                             f"arch_args.num_heads ({full['num_heads']})")
        if full["img_size"] < full["patch_size"]:
            raise ValueError(f"arch_args.img_size ({full['img_size']}) must be at least "
                             f"arch_args.patch_size ({full['patch_size']})")
    if arch == "conv_student":
        stages = student_stages(full)
        if not stages:
            raise ValueError("arch_args.depths must start with at least one conv (depths[0] >= 1)")
        for i, (w, _, h) in enumerate(stages):
            if w < 1 or h < 1:
                raise ValueError(f"stage {i} has convs (arch_args.depths[{i}] > 0), so arch_args.widths[{i}] and "
                                 f"arch_args.heads[{i}] must be at least 1, got {w} and {h}")
    return full


def student_stages(args: dict[str, Any]) -> list[tuple[int, int, int]]:
    """(width, depth, head channels) of a ``conv_student``'s stages: those before the first depth of 0."""
    out = []
    for w, d, h in zip(args["widths"], args["depths"], args["heads"]):
        if d == 0:
            break
        out.append((w, d, h))
    return out


def tap_count(arch: str, args: dict[str, Any]) -> int:
    """How many maps the backbone taps (a ResNet's stages, an LPIPS trunk's ReLUs, a ViT's blocks),
    from checked arguments."""
    if arch == "conv_student":
        return len(student_stages(args))
    if arch == "efficientnet_lite0":
        return args["taps"]
    return args["depth"] if arch == "vit" else {"k22_resnet": 4, "alexnet": 5, "vgg16": 5}[arch]


def estimate(arch: str, args: dict[str, Any]) -> tuple[int, int, int]:
    """(bytes, parameters, activations) a backbone needs, from checked arguments alone.

    ``activations`` counts the elements of every layer's output (attention matrices included)
    for one :data:`ESTIMATE_SIZE` x :data:`ESTIMATE_SIZE` image; ``bytes`` is 4 x (parameters +
    activations), as float32.
    """
    if arch == "k22_resnet":
        params, acts = _resnet(args)
    elif arch == "vit":
        params, acts = _vit(args)
    elif arch == "conv_student":
        params, acts = _student(args)
    elif arch == "efficientnet_lite0":
        params, acts = _efficientnet_lite0(args)
    else:
        params, acts = _classic(CLASSIC_LAYERS[arch])
    return 4 * (params + acts), params, acts


def resnet_widths(width: float) -> tuple[int, tuple[int, ...]]:
    """Stem and stage channels (before a block's expansion) of a K22 ResNet of this width."""
    return max(1, round(64 * width)), tuple(max(1, round(c * width)) for c in (64, 128, 256, 512))


def _resnet(args: dict[str, Any]) -> tuple[int, int]:
    stem, planes = resnet_widths(args["width"])
    block = args["block"]
    e = 4 if block == "bottleneck" else 1
    side = ESTIMATE_SIZE // 2
    params = 3 * stem * 49 + 2 * stem
    acts = 3 * stem * side**2 + stem * (side // 2) ** 2  # conv, BN, ReLU; max-pool
    if args["antialias"]:  # the blurred image, the stride-1 max-pool, a blurred input per strided stage
        acts += 3 * ESTIMATE_SIZE**2 + stem * side**2 + sum(c * ((side // 2) >> i) ** 2 for i, c in enumerate(planes[:3]))
    side //= 2
    cin = stem
    for p, n, stride in zip(planes, args["layers"], (1, 2, 2, 2)):  # closed form: no loop over n
        side //= stride
        if block == "single":
            first, rest, act = cin * p * 9 + 2 * p, p * e * p * 9 + 2 * p, 4 * p
        elif block == "basic":
            first, rest, act = cin * p * 9 + p * p * 9 + 4 * p, p * e * p * 9 + p * p * 9 + 4 * p, 7 * p
        else:
            tail = p * p * 9 + p * p * e + 4 * p + 2 * p * e
            first, rest, act = cin * p + tail, p * e * p + tail, 6 * p + 4 * p * e
        params += first + (n - 1) * rest
        acts += n * act * side**2
        if stride != 1 or cin != p * e:  # the first block's 1 x 1 projection shortcut + BN
            params += cin * p * e + 2 * p * e
            acts += 2 * p * e * side**2
        cin = p * e
    return params + args["num_classes"] * (cin + 1), acts


def _student(args: dict[str, Any]) -> tuple[int, int]:
    params, acts, side, cin = 0, 0, ESTIMATE_SIZE, 3
    for w, d, h in student_stages(args):
        side = (side + 1) // 2
        params += cin * w * 9 + (d - 1) * w * w * 9 + 2 * d * w + w * h + h  # convs, batch norms, head
        acts += (3 * d * w + h) * side**2  # conv, BN, ReLU per conv; the head
        cin = w
    return params, acts


# EfficientNet-Lite0 up to each tap: parameters, and activation elements per input pixel (counted
# by forward hooks on the leaf modules of timm's tf_efficientnet_lite0, 64 px input).
_LITE0 = ((1_824, 76.0), (15_792, 260.5), (55_504, 333.2), (700_768, 444.4))


def _efficientnet_lite0(args: dict[str, Any]) -> tuple[int, int]:
    params, per_pixel = _LITE0[args["taps"] - 1]
    return params, int(per_pixel * ESTIMATE_SIZE**2)


def _vit(args: dict[str, Any]) -> tuple[int, int]:
    d, p, depth = args["embed_dim"], args["patch_size"], args["depth"]
    hidden = int(d * args["mlp_ratio"])
    block = 4 * d + 3 * d * d + 3 * d + d * d + d + d * hidden + hidden + hidden * d + d  # norms, qkv, proj, mlp
    params = 3 * p * p * d + d + d + ((args["img_size"] // p) ** 2 + 1) * d + depth * block + 2 * d
    if args["num_classes"]:
        params += args["num_classes"] * (d + 1)
    t = (ESTIMATE_SIZE // p) ** 2 + 1
    return params, 2 * t * d + depth * (9 * t * d + 2 * t * hidden + 2 * args["num_heads"] * t * t)


def _classic(layers: tuple[tuple[Any, ...], ...]) -> tuple[int, int]:
    params, acts, side, c = 0, 0, ESTIMATE_SIZE, 3
    for layer in layers:
        if layer[0] == "conv":
            _, out, k, s, p = layer
            params += c * out * k * k + out
            c = out
        else:
            _, k, s, p = layer
        side = (side + 2 * p - k) // s + 1
        acts += c * side * side * (2 if layer[0] == "conv" else 1)  # conv + ReLU, or pool
    return params, acts


def short_repr(value: Any) -> str:
    """``repr(value)``, cut to 60 characters (a hostile card can hold a huge value)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
