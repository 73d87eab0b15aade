"""Benchmark harnesses: BAPPS (2AFC, PS, JND) and full-reference IQA correlations.

:func:`add_eval_parser` registers the ``eval bapps`` and ``eval iqa`` command-line subcommands.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

from ..distances import MODES
from .bapps import VAL_FAMILIES, format_bapps, jnd_map, score_bapps, two_afc_score
from .common import check_output, write_json
from .iqa import correlations, format_iqa, score_iqa

__all__ = ["add_eval_parser", "correlations", "jnd_map", "score_bapps", "score_iqa", "two_afc_score"]


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``eval bapps`` and ``eval iqa`` on ``subparsers`` (from ``add_subparsers()``).

    Each leaf parser sets ``func``: call ``args.func(args)`` to run it; it prints a summary
    to stdout, errors to stderr, and returns the exit code (0, or 2 on a usage/data error).
    Returns the ``eval`` parser.
    """
    ev = subparsers.add_parser("eval", help="score a model on a benchmark (BAPPS, IQA lists)",
                               description="Score a model on a benchmark.")
    sub = ev.add_subparsers(dest="eval_command", metavar="{bapps,iqa}", required=True)

    bp = sub.add_parser("bapps", help="2AFC per family, PS and JND mAP on the BAPPS validation set",
                        description="2AFC per family, Perceptual Score and JND mAP on BAPPS val "
                                    "(scores printed x100; the JSON holds fractions in [0, 1]).")
    bp.add_argument("--root", type=Path, required=True, help="the BAPPS dataset folder (holding 2afc/ and jnd/)")
    bp.add_argument("--families", nargs="+", choices=VAL_FAMILIES, default=None, metavar="FAMILY",
                    help=f"validation families to score, of {', '.join(VAL_FAMILIES)} (default: all six)")
    _common_args(bp, batch_size=64, unit="triplets (2AFC) or pairs (JND)")
    bp.set_defaults(func=_run_bapps)

    iq = sub.add_parser("iqa", help="SRCC, KRCC, PLCC against subjective scores from a CSV list",
                        description="SRCC, KRCC and PLCC (after a logistic fit) of predicted quality against "
                                    "subjective scores, overall and per distortion type. Needs scipy.")
    iq.add_argument("--list", type=Path, required=True, dest="list_file",
                    help="CSV with header dis_img_path,dis_type,ref_img_path,score")
    iq.add_argument("--root", type=Path, required=True, help="folder the list's paths are relative to")
    iq.add_argument("--scores", choices=("mos", "dmos"), default="mos",
                    help="mos: higher = better (quality = -distance); dmos: higher = worse (quality = distance)")
    iq.add_argument("--logistic", type=int, choices=(4, 5), default=5, help="parameters of the logistic fit before PLCC")
    _common_args(iq, batch_size=32, unit="image pairs")
    iq.set_defaults(func=_run_iqa)
    return ev


def _common_args(p: argparse.ArgumentParser, *, batch_size: int, unit: str) -> None:
    p.add_argument("--model", default=None, help="bundled name, local path or hf-hub:ORG/NAME[@REV] (default: the default model)")
    p.add_argument("--mode", choices=MODES, default=None, help="distance mode (default: the model's)")
    p.add_argument("--batch-size", type=int, default=batch_size, help=f"{unit} per forward pass (default {batch_size})")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cuda (default cpu)")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON to this file")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")


def _run(name: str, args: argparse.Namespace, score: Callable[[], dict[str, Any]],
         fmt: Callable[[dict[str, Any]], str]) -> int:
    try:
        check_output(args.json, args.force)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result = score()
        if args.json is not None:
            write_json(result, args.json, force=args.force)
    except (ValueError, OSError, ImportError) as exc:
        print(f"error: eval {name}: {exc}", file=sys.stderr)
        return 1
    print(fmt(result))
    if args.json is not None:
        print(f"wrote {args.json}")
    return 0


def _run_bapps(args: argparse.Namespace) -> int:
    return _run("bapps", args, lambda: score_bapps(
        args.model, args.root, mode=args.mode, batch_size=args.batch_size, families=args.families, device=args.device),
        format_bapps)


def _run_iqa(args: argparse.Namespace) -> int:
    return _run("iqa", args, lambda: score_iqa(
        args.model, args.list_file, args.root, mode=args.mode, scores=args.scores, logistic=args.logistic,
        batch_size=args.batch_size, device=args.device), format_iqa)
