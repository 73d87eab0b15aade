"""What a model is: its card (:class:`ModelCard`, checked on construction) and the card +
safetensors files on disk.

A model is a JSON card beside a safetensors file: ``NAME.json`` + ``NAME.safetensors``, or a folder
holding ``card.json`` + ``model.safetensors``. Cards are checked against a schema before anything is
built; the tensor file's sha256 must match the card; tensors are read with safetensors only.
Finding a model from a model string is :mod:`perceptual_sim.models.registry`'s job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import stat
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..files import sha256_file
from .archs import MODES, SCHEMAS, check_arch_args, estimate, short_repr, tap_count

if TYPE_CHECKING:  # torch is imported where tensors are read or written, not to list models
    import torch

CARD_FILE = "card.json"
TENSOR_FILE = "model.safetensors"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_FEATURE_BLUR = 4.0
MAX_PIXELS_PER_DEGREE = 1000.0
"""Bound on a card's ``pixels_per_degree`` (a 4K screen at 3 m is about 300)."""
"""The widest feature blur (Gaussian sigma, feature positions) a card may ask for."""
MAX_CARD_BYTES = 1 << 20
"""A model card larger than this is refused unread."""
MAX_JSON_DEPTH = 32
"""How deeply a card's JSON may nest (objects and arrays)."""


class ModelNotFoundError(ValueError):
    """A model string that names no bundled model, local file or reachable Hub repo."""


class WeightsError(ValueError):
    """A model card or tensor file that fails a check: schema, hash, tensor names, shapes, dtypes or values."""


@dataclass(frozen=True)
class ModelCard:
    """What a model is: architecture, input normalisation, default mode and provenance.

    ``input_mean``/``input_std`` normalise images given in [0, 1]. ``layer_weights`` says
    the tensor file holds non-negative per-channel weights ``layer_weights.<l>`` (LPIPS
    "lin") used by the spatial distance. ``feature_blur`` (sigma in feature positions, 0 = none;
    one number for every tapped stage, or one per stage) blurs the normalised maps the spatial
    distance compares (:func:`~perceptual_sim.distances.blur_normalized`). ``pixels_per_degree`` (0 = off)
    weights the images' spatial frequencies by human contrast sensitivity at that viewing condition
    before the backbone (:func:`~perceptual_sim.csf.csf_filter`).

    Every field is checked on construction (types, lengths, finite numbers, bounds; ``arch_args``
    against :mod:`perceptual_sim.models.archs`): a bad one raises :class:`WeightsError` naming it.
    """

    name: str
    arch: str
    arch_args: dict[str, Any] = field(default_factory=dict)
    input_mean: tuple[float, float, float] = IMAGENET_MEAN
    input_std: tuple[float, float, float] = IMAGENET_STD
    default_mode: str = "spatial"
    layer_weights: bool = False
    feature_blur: float | tuple[float, ...] = 0.0
    pixels_per_degree: float = 0.0
    min_size: int = 16
    sha256: str = ""
    summary: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    license: str = ""
    package_version: str = __version__

    def __post_init__(self) -> None:
        for name, limit in _TEXT_FIELDS.items():
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > limit:
                raise WeightsError(f"field {name!r} must be a string of at most {limit:,} characters, "
                                   f"got {short_repr(value)}")
        if not self.name or any(unicodedata.category(ch)[0] in "CZ" and ch != " " for ch in self.name):
            raise WeightsError(f"field 'name' must be a non-empty name without control characters or line breaks, "
                               f"got {self.name!r}")
        if self.sha256 and not re.fullmatch("[0-9a-f]{64}", self.sha256):
            raise WeightsError(f"field 'sha256' must be 64 lowercase hex digits, got {short_repr(self.sha256)}")
        if not isinstance(self.arch, str) or self.arch not in SCHEMAS:
            raise WeightsError(f"field 'arch' must be one of {sorted(SCHEMAS)}, got {short_repr(self.arch)}")
        for name in ("arch_args", "training", "scores"):
            _check_json_value(getattr(self, name), name, obj=True)
        try:
            arch_args = check_arch_args(self.arch, self.arch_args)
        except ValueError as exc:
            raise WeightsError(str(exc)) from None
        for name, (low, high) in (("input_mean", (-10, 10)), ("input_std", (1e-3, 1e3))):
            value = getattr(self, name)
            if not (isinstance(value, (list, tuple)) and len(value) == 3
                    and all(_is_number(v) and low <= v <= high for v in value)):
                raise WeightsError(f"field {name!r} must be 3 numbers (R, G, B) in [{low:g}, {high:g}], "
                                   f"got {short_repr(value)}")
            object.__setattr__(self, name, tuple(float(v) for v in value))
        if self.default_mode not in MODES:
            raise WeightsError(f"field 'default_mode' must be one of {list(MODES)}, got {short_repr(self.default_mode)}")
        if not isinstance(self.layer_weights, bool):
            raise WeightsError(f"field 'layer_weights' must be true or false, got {short_repr(self.layer_weights)}")
        blur = self.feature_blur
        per_stage = isinstance(blur, (list, tuple))
        sigmas = blur if per_stage else [blur]
        if not (1 <= len(sigmas) <= 64 and all(_is_number(v) and 0 <= v <= MAX_FEATURE_BLUR for v in sigmas)):
            raise WeightsError(f"field 'feature_blur' must be a number in [0, {MAX_FEATURE_BLUR}] (Gaussian sigma in "
                               f"feature positions, 0 for none) or a list of them, one per tapped stage, got "
                               f"{short_repr(blur)}")
        taps = tap_count(self.arch, arch_args)
        if per_stage and len(blur) != taps:
            raise WeightsError(f"field 'feature_blur' has {len(blur)} sigmas, but architecture {self.arch!r} with these "
                               f"arch_args taps {taps} maps; give one sigma per tapped map or a single number")
        object.__setattr__(self, "feature_blur", tuple(map(float, blur)) if per_stage else float(blur))
        if not (_is_number(self.pixels_per_degree) and 0 <= self.pixels_per_degree <= MAX_PIXELS_PER_DEGREE):
            raise WeightsError(f"field 'pixels_per_degree' must be a number in [0, {MAX_PIXELS_PER_DEGREE}] (the viewing "
                               f"condition of the contrast sensitivity, 0 for none), got {short_repr(self.pixels_per_degree)}")
        object.__setattr__(self, "pixels_per_degree", float(self.pixels_per_degree))
        if isinstance(self.min_size, bool) or not isinstance(self.min_size, int) or not 1 <= self.min_size <= 4096:
            raise WeightsError(f"field 'min_size' must be an integer in [1, 4096], got {short_repr(self.min_size)}")

    @classmethod
    def from_json(cls, text: str, source: str = "card") -> ModelCard:
        """Parse and check a card; errors name ``source`` (the file) and the field."""
        remedy = "The card is damaged or not a perceptual_sim card: re-download or re-export the model."
        try:
            data = json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
        except RecursionError:
            raise WeightsError(f"{source}: JSON nested too deeply (a card nests at most {MAX_JSON_DEPTH} "
                               f"levels). {remedy}") from None
        except json.JSONDecodeError as exc:
            raise WeightsError(f"{source} is not valid JSON: {exc}") from None
        except ValueError as exc:  # NaN / Infinity, a repeated key, an integer too long to read
            raise WeightsError(f"{source}: {exc}. {remedy}") from None
        if not isinstance(data, dict):
            raise WeightsError(f"{source} must hold a JSON object, got {type(data).__name__}. {remedy}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise WeightsError(f"{source} has unknown fields {short_repr(unknown)}; known fields: {sorted(names)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise WeightsError(f"{source} is missing a field: {exc}") from None
        except WeightsError as exc:
            raise WeightsError(f"{source}: {exc}. {remedy}") from None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=False) + "\n"

    def one_line(self) -> str:
        """A one-line summary for listings."""
        top1 = self.training.get("val_top1")
        acc = f", top-1 {100 * top1:.1f}%" if isinstance(top1, (int, float)) else ""
        return f"{self.name}: {self.arch} {self.arch_args}, mode {self.default_mode}{acc}. {self.summary}"


_TEXT_FIELDS = {"name": 200, "sha256": 64, "summary": 10_000, "license": 10_000, "package_version": 100}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number a card may hold (numbers must be finite)")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        repeated = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError(f"key {short_repr(repeated)} appears twice in one object")
    return out


def _check_json_value(value: Any, name: str, *, obj: bool) -> None:
    """Raise WeightsError unless ``value`` is plain JSON data (an object if ``obj``), at most
    :data:`MAX_JSON_DEPTH` deep, every number finite. Iterative: no recursion limit applies."""
    if obj and not isinstance(value, dict):
        raise WeightsError(f"field {name!r} must be a JSON object, got {short_repr(value)}")
    stack = [(value, name, 0)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, (dict, list, tuple)):
            if depth >= MAX_JSON_DEPTH:
                raise WeightsError(f"field {name!r} nests deeper than {MAX_JSON_DEPTH} levels (at {short_repr(where)})")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, sub in pairs:
                if isinstance(item, dict) and not isinstance(key, str):
                    raise WeightsError(f"{where} has a key that is not a string: {short_repr(key)}")
                stack.append((sub, f"{where}.{key}" if isinstance(item, dict) else f"{where}[{key}]", depth + 1))
        elif isinstance(item, float) and not math.isfinite(item):
            raise WeightsError(f"{short_repr(where)} must be a finite number, got {item}")
        elif item is not None and not isinstance(item, (str, int, float, bool)):
            raise WeightsError(f"{short_repr(where)} holds a {type(item).__name__}, not JSON data")


def read_card(path: Path) -> ModelCard:
    """Read and check a card: a regular file (never a FIFO or device) of at most :data:`MAX_CARD_BYTES`."""
    path = Path(path)
    check_regular(path, "model card")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO swapped in cannot block
        with os.fdopen(fd, "rb") as f:
            check_regular(path, "model card", os.fstat(f.fileno()))
            data = f.read(MAX_CARD_BYTES + 1)
    except OSError as exc:
        raise ModelNotFoundError(f"cannot read model card {path}: {exc.strerror}") from None
    if len(data) > MAX_CARD_BYTES:
        raise WeightsError(f"{path}: larger than {MAX_CARD_BYTES:,} bytes, too large for a model card")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WeightsError(f"{path}: a model card is UTF-8 JSON text, but byte {exc.start} is not UTF-8") from None
    return ModelCard.from_json(text, source=str(path))


def check_regular(path: Path, what: str, st: os.stat_result | None = None) -> None:
    """Raise unless ``path`` (links followed) is a regular file: never read a FIFO, device or socket."""
    if st is None:
        try:
            st = os.stat(path)
        except OSError as exc:
            raise ModelNotFoundError(f"cannot read {what} {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a folder" if stat.S_ISDIR(st.st_mode) else "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a socket or special file")
        raise WeightsError(f"{path}: the {what} is {kind}, not a regular file; point the model at its files")


_PSEUDO_FILE_SYSTEMS = ("/proc", "/sys")
"""Where files are made up by the kernel (their sizes are not their contents): never read as models."""


def max_tensor_bytes(card: ModelCard) -> int:
    """The largest tensor file the card's architecture can need: its parameters and as many
    buffers, all float64, plus 1 MiB for the header. A larger file is refused unread."""
    _, params, _ = estimate(card.arch, check_arch_args(card.arch, card.arch_args))
    return 16 * params + (1 << 20)


def check_tensor_file(card: ModelCard, path: Path) -> None:
    """Raise unless ``path`` is a regular file, not on a pseudo-file system (``/proc``, ``/sys``), of
    at most :func:`max_tensor_bytes`, whose sha256 is the card's. The size is checked before a byte is
    read; every error names the file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO swapped in cannot block
    except FileNotFoundError:
        raise ModelNotFoundError(f"tensor file {path} for model {card.name!r} is missing") from None
    except OSError as exc:
        raise WeightsError(f"cannot read tensor file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        check_regular(Path(path), "tensor file", st)
        if any(os.path.isdir(root) and os.stat(root).st_dev == st.st_dev for root in _PSEUDO_FILE_SYSTEMS):
            raise WeightsError(f"{path}: the tensor file is on a pseudo-file system ({'/'.join(_PSEUDO_FILE_SYSTEMS)}), "
                               "not a model's file")
        limit = max_tensor_bytes(card)
        if not 0 < st.st_size <= limit:
            raise WeightsError(f"{path}: the tensor file is {st.st_size:,} bytes, but architecture {card.arch!r} "
                               f"with the card's arch_args needs at most {limit:,}" + (" (it is empty)" if not st.st_size else "")
                               + ": the file is not this card's")
        h = hashlib.sha256()
        try:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        except OSError as exc:
            raise WeightsError(f"cannot read tensor file {path}: {exc.strerror}") from None
    _check_digest(card, path, h.hexdigest())


def _check_digest(card: ModelCard, path: Path, digest: str) -> None:
    """Raise :class:`WeightsError` unless ``digest``, the tensor file's sha256, is the card's."""
    if digest != card.sha256:
        raise WeightsError(
            f"tensor file {path} has sha256 {digest}, but the card of {card.name!r} says "
            f"{card.sha256 or '(none)'}: the file is corrupt, truncated or not the one the card "
            "describes. Re-download it or re-export the model."
        )


def load_tensors(card: ModelCard, path: Path) -> dict[str, torch.Tensor]:
    """Read the tensor file after :func:`check_tensor_file` (regular, size bounded, sha256 the card's)."""
    check_tensor_file(card, path)
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types
        raise WeightsError(f"cannot read {path} as safetensors: {exc}") from None


def save_model(
    card: ModelCard,
    tensors: Mapping[str, torch.Tensor],
    card_path: Path,
    *,
    overwrite: bool = False,
) -> ModelCard:
    """Write ``tensors`` beside ``card_path`` (same stem, .safetensors) and the card with its sha256.

    A folder path writes ``card.json`` + ``model.safetensors`` in it.
    Returns the card as written. Refuses to replace existing files unless ``overwrite``.
    """
    card_path = Path(card_path)
    if card_path.suffix != ".json":
        card_path.mkdir(parents=True, exist_ok=True)
        card_path = card_path / CARD_FILE
        tensor_path = card_path.parent / TENSOR_FILE
    else:
        card_path.parent.mkdir(parents=True, exist_ok=True)
        tensor_path = card_path.with_suffix(".safetensors")
    for p in (card_path, tensor_path):
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} exists; choose another name or pass overwrite=True (--force)")
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tensor_path))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tensor_path, 0o666 & ~umask)  # safetensors writes 0600; models are meant to be shared
    card = dataclasses.replace(card, sha256=sha256_file(tensor_path), package_version=__version__)
    card_path.write_text(card.to_json(), encoding="utf-8")
    return card
