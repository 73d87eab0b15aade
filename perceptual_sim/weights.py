"""Models as data: a JSON card plus a safetensors file, resolved from a model string.

A model string resolves, in this order:

1. a bundled name (a card in the package's ``weights/`` folder),
2. a local path: a card ``NAME.json`` beside ``NAME.safetensors``, or a folder holding
   ``card.json`` and ``model.safetensors``,
3. ``hf-hub:ORG/NAME[@REVISION]``: ``card.json`` and ``model.safetensors`` from the
   Hugging Face Hub through ``huggingface_hub`` (which honours ``HF_HUB_OFFLINE``,
   ``HF_HOME``, ``HF_HUB_CACHE`` and ``HF_ENDPOINT``).

The tensor file's sha256 must match the card; tensors are read with safetensors only. A Hub
download that fails the check is removed from the Hugging Face cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__

if TYPE_CHECKING:  # torch is imported where tensors are read or written, not to list models
    import torch

CARD_FILE = "card.json"
TENSOR_FILE = "model.safetensors"
HUB_PREFIX = "hf-hub:"
MODES = ("spatial", "style", "meanpool")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_MODEL = "resnet6-es"
"""The bundled model used when none is named."""


class ModelNotFoundError(ValueError):
    """A model string that names no bundled model, local file or reachable Hub repo."""


class WeightsError(ValueError):
    """A tensor file that does not match its card (hash, names or shapes)."""


@dataclass(frozen=True)
class ModelCard:
    """What a model is: architecture, input normalisation, default mode and provenance.

    ``input_mean``/``input_std`` normalise images given in [0, 1]. ``layer_weights`` says
    the tensor file holds non-negative per-channel weights ``layer_weights.<l>`` (LPIPS
    "lin") used by the spatial distance.
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
        if self.default_mode not in MODES:
            raise ValueError(f"card {self.name!r}: default_mode {self.default_mode!r} not in {MODES}")

    @classmethod
    def from_json(cls, text: str, source: str = "card") -> ModelCard:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise WeightsError(f"{source} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise WeightsError(f"{source} must hold a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise WeightsError(f"{source} has unknown fields {unknown}; known fields: {sorted(names)}")
        for key in ("input_mean", "input_std"):
            if key in data:
                data[key] = tuple(data[key])
        try:
            return cls(**data)
        except TypeError as exc:
            raise WeightsError(f"{source} is missing a field: {exc}") from None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=False) + "\n"

    def one_line(self) -> str:
        """A one-line summary for listings."""
        top1 = self.training.get("val_top1")
        acc = f", top-1 {100 * top1:.1f}%" if isinstance(top1, (int, float)) else ""
        return f"{self.name}: {self.arch} {self.arch_args}, mode {self.default_mode}{acc}. {self.summary}"


def cache_root() -> Path:
    """The package's cache folder: ``$XDG_CACHE_HOME/perceptual_sim``, else ``~/.cache/perceptual_sim``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "perceptual_sim"


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place: readers (and other
    processes writing the same file) never see a partial file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _is_repo_id(repo_id: str) -> bool:
    """``ORG/NAME``: exactly one slash, both parts non-empty."""
    return repo_id.count("/") == 1 and all(repo_id.split("/"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelNotFoundError(f"cannot read model card {path}: {exc.strerror}") from None
    return ModelCard.from_json(text, source=str(path))


def resolve(
    model: str, *, cache_dir: str | os.PathLike[str] | None = None
) -> tuple[ModelCard, Path]:
    """Find the card and tensor file for a model string (see the module docstring)."""
    if not isinstance(model, str) or not model:
        raise ModelNotFoundError(f"a model must be a non-empty string, got {model!r}")
    if model in bundled_names():
        folder = bundled_dir()
        return read_card(folder / f"{model}.json"), folder / f"{model}.safetensors"
    if model.startswith(HUB_PREFIX):
        return _resolve_hub(model[len(HUB_PREFIX):], cache_dir)
    path = Path(model).expanduser()
    if path.is_dir():
        return read_card(path / CARD_FILE), path / TENSOR_FILE
    if path.is_file():
        if path.suffix == ".safetensors":
            path = path.with_suffix(".json")
        return read_card(path), path.with_suffix(".safetensors")
    known = ", ".join(bundled_names()) or "(none bundled)"
    raise ModelNotFoundError(
        f"unknown model {model!r}. Use a bundled name ({known}), a path to a card NAME.json "
        f"or a folder with {CARD_FILE} + {TENSOR_FILE}, or 'hf-hub:ORG/NAME[@REVISION]'. "
        "`perceptual-sim list` shows the bundled models."
    )


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
        _check_sha256(card, paths[TENSOR_FILE])
    except WeightsError as exc:
        for path in paths.values():
            _evict_from_hub_cache(path)
        raise WeightsError(
            f"{exc} Removed hf-hub:{spec} from the Hub cache: the next load downloads it again."
        ) from None
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
    card, tensor_path = resolve(model)
    PerceptualDistance(card).load_weights(load_tensors(card, tensor_path))
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
    """Read the tensor file after checking its sha256 against the card."""
    if not path.is_file():
        raise ModelNotFoundError(f"tensor file {path} for model {card.name!r} is missing")
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
