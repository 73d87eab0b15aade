"""Files: the cache folder, sha256 of a file, atomic writes, and the checks on an output file made before any work.

No torch, no model: everything above uses these.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from collections.abc import Iterable
from contextvars import ContextVar
from pathlib import Path
from typing import TextIO

STDOUT = "-"
"""The output name that means standard output (``--csv -``, ``--json -``)."""

QUIET_ENV = "PERCEPTUAL_SIM_QUIET"
"""Set to 1 (``--quiet``): no progress bars, no ``wrote ...`` lines; errors and warnings still print."""

dash_stream: ContextVar[TextIO | None] = ContextVar("dash_stream", default=None)
"""Where an output named ``-`` goes (the command line sets it to the real stdout while it sends its
own prints to stderr); None: ``sys.stdout``."""


class OutputError(ValueError):
    """An output file that cannot be written: it exists, is a folder, or its folder is missing or read-only.

    Found before any work (the command line's exit code 2).
    """


def cache_root() -> Path:
    """The package's cache folder: ``$XDG_CACHE_HOME/perceptual_sim``, else ``~/.cache/perceptual_sim``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "perceptual_sim"


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_atomic(path: Path, data: bytes, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file moved into place: readers (and other
    processes writing the same file) never see a partial file, and an interrupted write leaves
    none. The temporary file has an unpredictable name and is created exclusively (a link planted
    beside ``path`` is never followed). Without ``overwrite``, a file that exists by then is kept:
    FileExistsError."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)  # O_CREAT | O_EXCL
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(f.fileno(), 0o666 & ~umask)  # as open() would create it; mkstemp gives 0600
            f.write(data)
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path, follow_symlinks=False)  # fails if the name exists, even as a dangling link
    finally:
        tmp.unlink(missing_ok=True)


def check_output(path: Path | None, force: bool, flag: str) -> None:
    """Refuse, before any work, an output that exists (a file, folder or link, even a dangling
    one; a file or link only with ``force``) or whose folder is missing or not writable.

    Raises :class:`OutputError` naming the option ``flag`` (e.g. ``--json``) that gave the path.
    """
    if path is None or str(path) == STDOUT:
        return
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a folder; give a file name")
    if os.path.lexists(path) and not force:
        what = "is a link to nothing" if not path.exists() else "exists"
        raise OutputError(f"{flag} {path} {what}; choose another file or pass --force to replace it")
    if not path.parent.is_dir():
        raise OutputError(f"the folder of {flag} {path} does not exist; create it first")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {path}: cannot write in its folder {path.parent}")


def check_not_input(outputs: dict[str, Path], inputs: Iterable[Path]) -> None:
    """Refuse, before any work, an output (``flag -> path``) that names one of the run's input files
    (the same folder entry, links to the folder followed): even ``--force`` never replaces an input."""
    entries = {_entry(path): flag for flag, path in outputs.items()}
    for path in inputs:
        flag = entries.get(_entry(path))
        if flag is not None:
            raise OutputError(f"{flag} {outputs[flag]} is one of this run's inputs ({path}); writing it would replace "
                              "that image, even with --force: choose another file")


def _entry(path: Path) -> tuple[str, str]:
    """A folder entry, named by its folder's real path and its name."""
    return os.path.realpath(path.parent), path.name


def quiet() -> bool:
    """Whether ``--quiet`` (:data:`QUIET_ENV`) is in force."""
    return os.environ.get(QUIET_ENV, "") not in ("", "0")


def write_output(path: Path, text: str, force: bool, flag: str) -> None:
    """Write an output checked by :func:`check_output` atomically: readers and an interrupted run
    never see a half file. A file created meanwhile is kept unless ``force``: FileExistsError.
    ``-`` (:data:`STDOUT`) writes to standard output (:data:`dash_stream`)."""
    if str(path) == STDOUT:
        stream = dash_stream.get() or sys.stdout
        stream.write(text)
        stream.flush()
        return
    try:
        write_atomic(path, text.encode("utf-8"), overwrite=force)
    except FileExistsError:
        raise FileExistsError(f"{flag} {path} was created by something else while this run worked; it is kept "
                              "(pass --force to replace it)") from None
