"""The Hugging Face Hub: download a model's files, evict files that fail a check, push a model.

``hf-hub:ORG/NAME[@REVISION]`` names ``card.json`` and ``model.safetensors`` of a Hub repo, fetched
through ``huggingface_hub`` (which honours ``HF_HUB_OFFLINE``, ``HF_HOME``, ``HF_HUB_CACHE`` and
``HF_ENDPOINT``). Each file's size, as the Hub's metadata announces it, is checked before it is
downloaded (a card at most :data:`~perceptual_sim.models.card.MAX_CARD_BYTES`, the tensor file at most what
the card's architecture needs); a download is stopped where it passes that size or its deadline
(:data:`DEADLINE_ENV` seconds per file, default :data:`DEADLINE_S`; huggingface_hub's connect and read
timeouts, ``HF_HUB_ETAG_TIMEOUT`` and ``HF_HUB_DOWNLOAD_TIMEOUT``, apply too). A download that fails
any check is removed from the Hugging Face cache, so the next load downloads it again. This module
reads and writes files only: it builds no model.
"""

from __future__ import annotations

import contextvars
import importlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._version import __version__
from .card import (
    CARD_FILE,
    MAX_CARD_BYTES,
    TENSOR_FILE,
    ModelCard,
    ModelNotFoundError,
    WeightsError,
    check_tensor_file,
    max_tensor_bytes,
    read_card,
)

HUB_PREFIX = "hf-hub:"
DEADLINE_ENV = "PERCEPTUAL_SIM_HUB_DEADLINE"
DEADLINE_S = 600.0
"""Seconds one file's download (its metadata requests included) may take, unless :data:`DEADLINE_ENV` says."""


def check_repo_id(repo_id: str) -> str:
    """``repo_id`` if it looks like ``ORG/NAME`` (one slash, both parts non-empty, no revision); else ValueError."""
    if not _is_repo_id(repo_id) or "@" in repo_id:
        raise ValueError(f"the Hub repo must look like ORG/NAME, got {repo_id!r}")
    return repo_id


def _is_repo_id(repo_id: str) -> bool:
    """``ORG/NAME``: exactly one slash, both parts non-empty."""
    return repo_id.count("/") == 1 and all(repo_id.split("/"))


def download(spec: str, cache_dir: str | os.PathLike[str] | None = None) -> tuple[ModelCard, Path]:
    """Download (or find in the Hub cache) the card and tensor file of ``ORG/NAME[@REVISION]``, and check them.

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
    if not constants.HF_HUB_OFFLINE and not _cached(repo_id, revision or None, cache_dir):
        problem = _unreachable(constants.ENDPOINT)
        if problem:  # fail now, not after huggingface_hub's retries (about 25 s) end in the same error
            raise ModelNotFoundError(f"{CARD_FILE} is not in the cache and the Hub could not be reached ({problem}); "
                                     f"{sought}. {remedy}")
    paths: dict[str, Path] = {}
    card = None
    _install_guard()
    for filename in (CARD_FILE, TENSOR_FILE):
        if card is None:
            limit, why = MAX_CARD_BYTES, "a model card may hold"
        else:
            limit, why = max_tensor_bytes(card), f"architecture {card.arch!r} of its card needs at most"
        where = f"{filename} of Hub repo {repo_id!r} at revision {rev!r}"
        deadline = time.monotonic() + _deadline_s()
        token = _budget.set(_Budget(limit, deadline, where, why))
        try:
            size = _announced_size(repo_id, filename, revision or None)
            if size is not None and size > limit:
                raise WeightsError(f"{where} is {size:,} bytes (as the Hub announces it), more than the {limit:,} bytes "
                                   f"{why}: refused before downloading it")
            _budget.set(_Budget(min(limit, size) if size is not None else limit, deadline, where, why))
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
        except _Stopped as exc:
            raise exc.error from None
        except WeightsError:
            raise
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
        finally:
            _budget.reset(token)
        if card is None:
            try:
                card = read_card(paths[CARD_FILE])
            except WeightsError as exc:
                raise evict(f"{HUB_PREFIX}{spec}", paths[CARD_FILE], exc) from None
    assert card is not None
    try:
        check_tensor_file(card, paths[TENSOR_FILE])
    except WeightsError as exc:
        raise evict(f"{HUB_PREFIX}{spec}", paths[TENSOR_FILE], exc) from None
    return card, paths[TENSOR_FILE]


class _Budget:
    """What the download in progress may take: ``limit`` bytes, until ``deadline`` (monotonic)."""

    def __init__(self, limit: int, deadline: float, where: str, why: str) -> None:
        self.limit, self.deadline, self.where, self.why = limit, deadline, where, why

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise _Stopped(ModelNotFoundError(
                f"{self.where}: the download took longer than its deadline of {_deadline_s():g} s and was stopped "
                f"(set {DEADLINE_ENV} to allow more)"))

    def check_size(self, size: int) -> None:
        if size > self.limit:
            raise _Stopped(WeightsError(
                f"{self.where}: the Hub sent more than {self.limit:,} bytes (its announced size, at most the bytes "
                f"{self.why}); the download was stopped"))


_budget: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("perceptual_sim_hub_budget", default=None)


class _Stopped(Exception):
    """Raised inside huggingface_hub's HTTP client to stop a download; carries the error to report."""

    def __init__(self, error: ValueError) -> None:
        super().__init__(str(error))
        self.error = error


def _deadline_s() -> float:
    text = os.environ.get(DEADLINE_ENV, "").strip()
    try:
        value = float(text) if text else DEADLINE_S
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ValueError(f"{DEADLINE_ENV}={text!r}: expected a positive number of seconds")
    return value


PROBE_S = 5.0
"""Seconds to wait for a TCP connection to the Hub before a download with nothing cached is given up."""
_PROXY_ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _cached(repo_id: str, revision: str | None, cache_dir: str | os.PathLike[str] | None) -> bool:
    """Whether the card of ``repo_id`` at ``revision`` is in the Hugging Face cache."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, CARD_FILE, cache_dir=cache_dir, revision=revision)
    return isinstance(found, str)


def _unreachable(endpoint: str) -> str | None:
    """Why no TCP connection to ``endpoint``'s host opens within :data:`PROBE_S`, or None when one does
    (or a proxy is configured: the proxy, not this probe, decides)."""
    import socket
    from urllib.parse import urlsplit

    if any(os.environ.get(name) for name in _PROXY_ENV):
        return None
    url = urlsplit(endpoint)
    try:
        host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    except ValueError:  # a port that is not a number: huggingface_hub reports it
        return None
    if not host:
        return None
    try:
        with socket.create_connection((host, port), timeout=PROBE_S):
            return None
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"


def _announced_size(repo_id: str, filename: str, revision: str | None) -> int | None:
    """The file's size from the Hub's metadata; None offline, or when the Hub does not say
    (``hf_hub_download`` then reports the failure, or finds the file in the cache)."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url

    if constants.HF_HUB_OFFLINE:
        return None
    try:
        return get_hf_file_metadata(hf_hub_url(repo_id, filename, revision=revision),
                                    library_name="perceptual_sim", library_version=__version__).size
    except _Stopped:
        raise
    except Exception:  # network and HTTP errors: hf_hub_download meets them again and says what they are
        return None


def _install_guard() -> None:
    """Make huggingface_hub's HTTP client enforce the budget of the download in progress (size and
    deadline, checked on every chunk received), unless the user gave it a client factory of their own."""
    from huggingface_hub.utils import _http

    if getattr(_http, "_GLOBAL_CLIENT_FACTORY", None) is not getattr(_http, "default_client_factory", None):
        return  # already installed, or the user's own factory (then only the announced sizes are checked)

    def factory() -> Any:
        client = _http.default_client_factory()
        stream_type = importlib.import_module(type(client).__module__.split(".")[0]).SyncByteStream
        client._transport = _Guard(client._transport, stream_type)
        client._mounts = {k: v and _Guard(v, stream_type) for k, v in client._mounts.items()}
        return client

    _http.set_client_factory(factory)


class _Guard:
    """An HTTP transport that applies the current :class:`_Budget` to the requests and bodies it passes on."""

    def __init__(self, inner: Any, stream_type: type) -> None:
        self.inner, self.stream_type = inner, stream_type

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def handle_request(self, request: Any) -> Any:
        budget = _budget.get()
        if budget is None:
            return self.inner.handle_request(request)
        budget.check_time()
        response = self.inner.handle_request(request)
        length = response.headers.get("Content-Length", "")
        if request.method == "GET" and response.status_code == 200:
            if length.isdigit():
                budget.check_size(int(length))
            stream = response.stream

            class Counted(self.stream_type):  # type: ignore[misc, name-defined]
                def __iter__(self) -> Iterator[bytes]:
                    received = 0
                    for chunk in stream:
                        received += len(chunk)
                        budget.check_size(received)
                        budget.check_time()
                        yield chunk

                def close(self) -> None:
                    stream.close()

            response.stream = Counted()
        return response


def evict(model: str, tensor_path: Path, exc: Exception) -> WeightsError:
    """Remove the files of Hub model ``model`` (its tensor file and the card beside it) from the
    Hugging Face cache after ``exc``, so that the next load downloads them again; the error to raise."""
    for path in (tensor_path.parent / CARD_FILE, tensor_path):
        _evict_from_hub_cache(path)
    return WeightsError(f"{exc} Removed {model} from the Hub cache: the next load downloads it again.")


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


def push(
    card: ModelCard, tensor_path: Path, repo_id: str, *, revision: str | None = None, private: bool | None = None,
    message: str | None = None,
) -> str:
    """Upload a model's card, tensor file and a Hub README to the Hub repo ``ORG/NAME``.

    Check the files first (``PerceptualDistance.from_pretrained`` does: sha256 and a strict load);
    this uploads what it is given. The repo is created if it does not exist. The token is
    huggingface_hub's (``HF_TOKEN`` or ``hf auth login``). Returns the commit id;
    ``hf-hub:ORG/NAME@<commit>`` then loads exactly what was uploaded.
    """
    check_repo_id(repo_id)
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
