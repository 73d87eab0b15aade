"""``perceptual-sim dirs DIR_A DIR_B``: distances between the same-named images of two folders.

Pairs are scored by :func:`perceptual_sim.pairs.score_pairs`, each with its own outcome: a file
that fails, or a pair the model refuses, is reported and the rest scored. Outputs (CSV, JSON, an
HTML report) are checked before any work and written atomically, by rank 0 under torchrun.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..files import check_not_input, check_output, write_output
from .options import (
    UsageError,
    add_image_options,
    add_model_options,
    cell,
    confirm,
    error,
    load_model,
    note_grey,
    pair_problem,
    positive_int,
    provenance,
    safe,
    torch_device,
)

if TYPE_CHECKING:
    from ..metric import PerceptualDistance
    from ..pairs import Pair

PIXEL_BUDGET = 1 << 24
"""Batches hold at most this many pixels of A images (and of B images), so large images go fewer at a time."""

_LISTED = 20  # unpaired or failed files listed on stderr before "... and N more"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from ..images import IMAGE_SUFFIXES

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
    add_model_options(p)
    add_image_options(p)
    p.add_argument("--batch-size", type=positive_int, default=32,
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
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from .. import distributed
    from ..images import image_files
    from ..pairs import Pair

    for folder in (args.dir_a, args.dir_b):
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a folder")
    outputs = {flag: path for flag, path in (("--csv", args.csv), ("--json", args.json), ("--report", args.report))
               if path is not None}
    for flag, path in outputs.items():
        check_output(path, args.force, flag)
    if len({path.resolve() for path in outputs.values()}) < len(outputs):
        raise UsageError(f"{' and '.join(outputs)} must name different files")
    if args.report is not None and args.report.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"--report {args.report}: the report is an HTML page; give a file name ending in .html")
    device = torch_device(args.device)
    special: list[str] = []  # image names that are not regular files, skipped
    (files_a, unreadable_a), (files_b, unreadable_b) = image_files(args.dir_a, special), image_files(args.dir_b, special)
    check_not_input(outputs, [*files_a.values(), *files_b.values()])
    common = sorted(files_a.keys() & files_b.keys())
    only_a, only_b = sorted(files_a.keys() - files_b.keys()), sorted(files_b.keys() - files_a.keys())
    unpaired = "warning" if args.allow_unpaired else "error"
    _list_paths(f"files in {args.dir_a} only (no counterpart in {args.dir_b})", only_a, prefix=unpaired)
    _list_paths(f"files in {args.dir_b} only (no counterpart in {args.dir_a})", only_b, prefix=unpaired)
    _list_paths("folders that could not be read (their files are missing from the pairs)",
                unreadable_a + unreadable_b, prefix="error")
    _list_paths("image names that are not regular files, skipped (FIFOs, devices, sockets, links to nothing)",
                special, prefix="error")
    problems = bool(unreadable_a or unreadable_b or special or ((only_a or only_b) and not args.allow_unpaired))
    if not common:
        raise ValueError(f"no image pairs: {args.dir_a} has {len(files_a)} images, {args.dir_b} has {len(files_b)}, "
                         "and none share a relative path")
    rows = [Pair(files_a[r], files_b[r]) for r in common]
    with distributed.session(device) as device:
        model = load_model(args, device)
        _score(model, rows, batch_size=args.batch_size, resize=args.resize, max_pixels=args.max_pixels)
    failed = [r for r in rows if r.error is not None]
    status = 1 if failed or problems else 0
    if not distributed.is_main():
        return status
    _list_paths("pairs that could not be scored", [r.error for r in failed], prefix="error")
    scored = [r for r in rows if r.error is None]
    summary = _summary(scored, len(failed))
    info = provenance(model)
    if args.csv is not None:
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(["a", "b", "distance", "error", "model", "mode", "sha256"])
        for r in rows:
            dist = "" if r.distance is None else repr(r.distance)
            writer.writerow([cell(r.a), cell(r.b), dist, cell(r.error or ""), cell(info["model"]), info["mode"],
                             info["sha256"]])
        write_output(args.csv, text.getvalue(), args.force, "--csv")
        confirm(args.csv, f"{len(rows)} pairs")
    if args.json is not None:
        result = {**info, "a": safe(str(args.dir_a)), "b": safe(str(args.dir_b)), "summary": summary,
                  "pairs": [{**asdict(r), "a": safe(str(r.a)), "b": safe(str(r.b)),
                             "error": None if r.error is None else safe(r.error)} for r in rows],
                  "only_in_a": [safe(n) for n in only_a], "only_in_b": [safe(n) for n in only_b],
                  "unreadable_folders": [safe(n) for n in unreadable_a + unreadable_b]}
        write_output(args.json, json.dumps(result, indent=2, allow_nan=False) + "\n", args.force, "--json")
        confirm(args.json, f"{len(rows)} pairs")
    if args.report is not None:
        _write_report(args, model, rows, common, info, unscored=[
            (f"files in {safe(str(args.dir_a))} only", [safe(n) for n in only_a]),
            (f"files in {safe(str(args.dir_b))} only", [safe(n) for n in only_b]),
            ("folders that could not be read", [safe(n) for n in unreadable_a + unreadable_b]),
            ("names that are not regular files, skipped", [safe(n) for n in special])])
        confirm(args.report, f"{len(rows)} pairs")
    _print_summary(summary, info)
    if (only_a or only_b) and not args.allow_unpaired:
        error(f"{len(only_a) + len(only_b)} files have no counterpart (listed above); pass --allow-unpaired if "
               "that is expected", 1)
    return status


def _write_report(args: argparse.Namespace, model: PerceptualDistance, rows: list[Pair], names: list[str],
                  info: dict[str, str], unscored: list[tuple[str, list[str]]]) -> None:
    """The ``--report`` page; the pairs shown get a spatial heat map, on a shared scale and on their own;
    the files not scored are listed."""
    import torch

    from ..images import decode_image
    from ..pictures import SHOWN, Shown, write_report

    scored = sorted((r for r in rows if r.error is None), key=lambda r: r.distance)
    k = min(SHOWN, (len(scored) + 1) // 2)

    def show(row: Pair) -> Shown:
        a, b = (decode_image(p, max_pixels=args.max_pixels).pixels for p in (row.a, row.b))
        with torch.inference_mode():
            heat = model(a[None].to(model.device), b[None].to(model.device), mode="spatial", spatial=True, resize=args.resize)
        return Shown(safe(str(row.a)), safe(str(row.b)), row.distance, a, b, heat[0, 0].cpu())

    write_report(args.report, rows=[(safe(n), r.distance, r.error and safe(r.error)) for n, r in zip(names, rows)],
                 largest=[show(r) for r in scored[::-1][:k]],
                 smallest=[show(r) for r in scored[: min(SHOWN, len(scored) - k)]],
                 info={"A": safe(str(args.dir_a)), "B": safe(str(args.dir_b)), **info},
                 title=safe(f"{args.dir_a} vs {args.dir_b}"), overwrite=args.force, unscored=unscored)


def _list_paths(title: str, items: Sequence[str], prefix: str = "warning") -> None:
    from .. import distributed

    if not items or not distributed.is_main():
        return
    print(f"{prefix}: {safe(title)} ({len(items)}):", file=sys.stderr)
    for item in items[:_LISTED]:
        print(f"  {safe(item)}", file=sys.stderr)
    if len(items) > _LISTED:
        print(f"  ... and {len(items) - _LISTED} more", file=sys.stderr)


def _score(model: PerceptualDistance, rows: list[Pair], *, batch_size: int, resize: bool, max_pixels: int) -> None:
    """Fill in each row's distance or error (:func:`perceptual_sim.pairs.score_pairs`, recording failures)."""
    from .. import distributed
    from ..pairs import score_pairs

    grey = score_pairs(model, rows, batch_size=batch_size, resize=resize, max_pixels=max_pixels,
                       check=lambda a, b, size_a, size_b: pair_problem(a, b, size_a, size_b, resize, model.card.min_size),
                       pixel_budget=PIXEL_BUDGET, errors="record", terminal_only=True)
    if distributed.is_main():
        note_grey(grey)


def _summary(scored: list[Pair], failed: int) -> dict[str, Any]:
    values = [r.distance for r in scored]
    if not values:
        return {"count": 0, "failed": failed}
    lo, hi = min(scored, key=lambda r: r.distance), max(scored, key=lambda r: r.distance)
    return {"count": len(values), "failed": failed, "mean": statistics.fmean(values),
            "median": statistics.median(values), "min": lo.distance, "max": hi.distance,
            "min_file": safe(str(lo.b)), "max_file": safe(str(hi.b))}


def _print_summary(summary: dict[str, Any], info: dict[str, str]) -> None:
    print(f"pairs   {summary['count']} scored, {summary['failed']} failed")
    if summary["count"]:
        print(f"mean    {summary['mean']:.6g}")
        print(f"median  {summary['median']:.6g}")
        print(f"min     {summary['min']:.6g}  {summary['min_file']}")
        print(f"max     {summary['max']:.6g}  {summary['max_file']}")
    print(f"model   {info['model']} (mode {info['mode']}, sha256 {info['sha256'][:12]}, version {info['version']})")
