"""The ``perceptual-sim`` command line: :func:`main`, with the one error policy of every command.

``perceptual-sim A B`` is short for ``perceptual-sim compare A B``: a first argument that is not a
command is taken as an image. Each command is a module of this package, registered in
:data:`SUBCOMMANDS` with a one-line summary; its ``add_parser(subparsers)`` adds its parser and sets
``func`` (a function of the parsed arguments returning the exit code) on each leaf parser. Only
the command that runs has its module imported and its parser built, and torch is imported by the
commands that need it: ``--version``, ``--help`` and ``list`` answer without it. The options that
commands share, and the printing of notes and errors, are in :mod:`perceptual_sim.cli.options`. The lab's
commands (``train``, ``eval``) live in :mod:`perceptual_sim.lab.cli` and share this policy.

Every command takes ``--quiet`` (no progress bar, no ``wrote ...`` lines), and those that compute
take ``--threads N|auto`` (torch's CPU threads; ``auto``: the idle cores, see :func:`auto_threads`);
``train run`` and ``train distill`` keep their own ``--threads``. An output named ``-`` (``--csv -``,
``--json -``) goes to stdout, and the command's own prints then go to stderr.

Exit codes: 0 success, 1 a failure while working (an unreadable image, an unknown model, a pair
that could not be scored), 2 a usage error found before any work, 130 interrupted. Errors are
printed on stderr as ``error: ...``, never as a traceback; a command names itself in them by
setting ``context`` (``error: eval bapps: ...``). Under torchrun, usage errors are printed by rank 0
only, other errors by every rank, naming it.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NoReturn

from .._version import __version__
from ..files import QUIET_ENV, STDOUT, OutputError, dash_stream
from .options import UsageError, error

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "compare": ("distance between two images (the default: `perceptual-sim A B`)", ".compare"),
    "dirs": ("distances between same-named images of two folders", ".dirs"),
    "diversity": ("mean pairwise distance among a generator's samples (per input, or all pairs)", ".diversity"),
    "nearest": ("each generated image's nearest training images (memorisation check)", ".nearest"),
    "systems": ("which system's outputs are closer to the references (paired, with intervals)", ".systems"),
    "video": ("per-frame distances and tLPIPS flicker between two videos or frame folders", ".video"),
    "list": ("the models bundled with the package, and those `download` fetches", ".listing"),
    "download": ("fetch and verify a model (an LPIPS reference, or a Hub model for offline use)", ".download"),
    "push": ("upload a model (card + safetensors) to a Hugging Face Hub repo", ".push"),
    "train": ("train a backbone at 64 x 64; list and export its checkpoints", "..lab.cli.train"),
    "eval": ("score a model on a benchmark (BAPPS, IQA lists, offline proxies)", "..lab.cli.evaluate"),
}
"""Command name -> (its summary for ``--help``, the module that holds it, relative to this package). ``list``
lives in ``.listing``: an imported submodule becomes a name here, and would hide the builtin. ``train`` and
``eval`` are the lab's (:mod:`perceptual_sim.lab.cli`): named here, imported only when they run."""

_TOP_LEVEL_FLAGS = ("-h", "--help", "--version")
_UNTHREADED = ("list", "download", "push")
"""Commands that compute nothing with torch: no ``--threads``."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors read ``error: ...`` followed by the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}\n{self.format_usage()}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Our own max_pixels limit replaces Pillow's DecompressionBombWarning for large images.
    warnings.filterwarnings("ignore", message="Image size .* could be decompression bomb", module="PIL")
    if argv and argv[0] not in SUBCOMMANDS and argv[0] not in _TOP_LEVEL_FLAGS:
        near = difflib.get_close_matches(argv[0], SUBCOMMANDS, n=1, cutoff=0.75)
        if near and not os.path.exists(argv[0]):
            return error(f"{argv[0]!r} is neither a command nor a file; did you mean {near[0]!r}?", 2)
        argv = ["compare", *argv]
    context = ""
    try:
        parser = build_parser(argv[0] if argv and argv[0] in SUBCOMMANDS else None)
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help, --version, or a usage error already printed
            return exc.code if isinstance(exc.code, int) else 2
        func = getattr(args, "func", None)
        if func is None:
            parser.print_help(sys.stderr)
            return 2
        context = getattr(args, "context", "")
        with _settings(args):
            return func(args)
    except (UsageError, OutputError, FileExistsError) as exc:  # the same on every process of a launch
        return error(str(exc), 2, every_rank=False)
    except BrokenPipeError:  # the reader stopped early (`perceptual-sim list | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush does not fail again
        return 0
    except KeyboardInterrupt as exc:  # a command may say how to carry on: KeyboardInterrupt("run ... again")
        return error("; ".join(["interrupted", *map(str, exc.args)]), 130)
    except _cuda_out_of_memory():
        return error("out of GPU memory; lower --batch-size or use --device cpu", 1)
    except (ValueError, OSError, ImportError) as exc:  # ImageError, ModelNotFoundError, WeightsError, ...
        return error(f"{context}: {exc}" if context else str(exc), 1)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command, or with ``command`` only (so only its module is imported)."""
    parser = _Parser(
        prog="perceptual-sim",
        description="Perceptual image distances. `perceptual-sim A B` (short for `perceptual-sim compare A B`) "
        "prints the distance between two images.",
        epilog="`perceptual-sim COMMAND --help` describes a command. Exit codes: 0 ok, 1 failure, 2 usage error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name, (summary, module) in SUBCOMMANDS.items():
        if command is None:  # the listing of `--help`; a command's own parser is built when it runs
            subparsers.add_parser(name, help=summary)
        elif command == name:
            importlib.import_module(module, __name__).add_parser(subparsers)
            for leaf in _leaves(subparsers.choices[name]):
                _add_common_options(leaf, threads=name not in _UNTHREADED)
    return parser


def _leaves(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """The parsers below ``parser`` that run something (those without sub-commands of their own)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield parser
    for action in subs:
        for child in dict.fromkeys(action.choices.values()):
            yield from _leaves(child)


def _add_common_options(p: argparse.ArgumentParser, *, threads: bool) -> None:
    """``--quiet``, and ``--threads`` (unless the command has its own)."""
    if "--quiet" not in p._option_string_actions:
        p.add_argument("--quiet", action="store_true",
                       help="no progress bar and no 'wrote ...' lines (errors and warnings still print)")
    if threads and "--threads" not in p._option_string_actions:
        p.add_argument("--threads", type=_threads, default="auto", metavar="N|auto",
                       help="torch CPU threads (default auto: torch's count, or OMP_NUM_THREADS, lowered to the cores "
                            "idle now; on a busy machine 1 is often much faster)")


def _threads(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or auto, got {text!r}")
    return value


def auto_threads() -> int:
    """``--threads auto``: torch's default count (the usable cores, or ``OMP_NUM_THREADS``) lowered to the
    cores idle now (the usable cores less the one-minute load average), at least 1. Other jobs on the cores
    make torch's default oversubscribe them, which is several times slower than fewer threads."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        wanted = int(os.environ.get("OMP_NUM_THREADS", "")) or cores
    except ValueError:
        wanted = cores
    try:
        idle = cores - os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average (Windows)
        idle = cores
    return max(1, min(wanted, round(idle)))


@contextlib.contextmanager
def _settings(args: argparse.Namespace) -> Iterator[None]:
    """``--threads``, ``--quiet`` and outputs named ``-`` in force while the command runs; then undone."""
    saved_env = {k: os.environ.get(k) for k in (QUIET_ENV, "OMP_NUM_THREADS")}
    torch = sys.modules.get("torch")
    saved_threads = torch.get_num_threads() if torch is not None else None
    dashes = [f"--{name}" for name in ("csv", "json") if getattr(args, name, None) == Path(STDOUT)]
    if len(dashes) > 1:
        raise UsageError(f"{' and '.join(dashes)} both name stdout (-); send one of them to a file")
    token = dash_stream.set(sys.stdout)
    try:
        if getattr(args, "quiet", False):
            os.environ[QUIET_ENV] = "1"
        threads = getattr(args, "threads", None)
        if threads is not None:
            count = auto_threads() if threads == "auto" else threads
            if torch is not None:
                torch.set_num_threads(count)
            else:  # read when torch is imported, after the checks on the inputs
                os.environ["OMP_NUM_THREADS"] = str(count)
        with contextlib.redirect_stdout(sys.stderr) if dashes else contextlib.nullcontext():
            yield
    finally:
        dash_stream.reset(token)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        torch = sys.modules.get("torch")
        if torch is not None and saved_threads is not None:
            torch.set_num_threads(saved_threads)




def _cuda_out_of_memory() -> type[BaseException] | tuple[()]:
    """torch's CUDA out-of-memory error, or nothing to catch when torch was never imported."""
    torch = sys.modules.get("torch")
    return torch.cuda.OutOfMemoryError if torch is not None else ()
