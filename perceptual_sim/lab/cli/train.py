"""``perceptual-sim train run|distill|export|list``: train a classifier that becomes a metric
(:mod:`perceptual_sim.lab.train`), or distil a teacher's feature maps into a student (:mod:`perceptual_sim.lab.distill`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ...cli.options import (
    UsageError,
    feature_blur,
    fraction,
    json_object,
    non_negative_float,
    positive_float,
    positive_int,
)
from ...files import cache_root
from ...models.archs import MODES


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    from ...backbones import ARCHITECTURES
    from ..distill import DistillRecipe
    from ..train import MAX_SHIFT, Recipe

    defaults = Recipe(data="")  # the training defaults shown in `train run --help`
    trainable = sorted(name for name, cls in ARCHITECTURES.items() if hasattr(cls, "classify"))
    t = subparsers.add_parser("train", description="Train classifiers that become metrics (see perceptual_sim.lab.train).")
    sub = t.add_subparsers(title="commands", metavar="{run,distill,export,list}", required=True)

    r = sub.add_parser("run", help="train, or resume, a run",
                       description="Train a classifier on DATA/train, validating on DATA/val, with dense "
                                   "checkpoints early on. Re-run the same command to resume.")
    r.add_argument("--data", type=Path, required=True, help="folder holding train/ and val/ class folders")
    r.add_argument("--out", type=Path, required=True, help="the run's folder (checkpoints, log.csv)")
    r.add_argument("--arch", choices=trainable, default=defaults.arch,
                   help=f"backbone architecture (default {defaults.arch})")
    r.add_argument("--arch-args", type=json_object, default={}, metavar="JSON",
                   help='architecture arguments, e.g. \'{"width": 0.5}\'')
    r.add_argument("--epochs", type=positive_float, default=defaults.epochs, help=f"default {defaults.epochs:g}")
    r.add_argument("--batch-size", type=positive_int, default=defaults.batch_size,
                   help=f"default {defaults.batch_size}")
    r.add_argument("--lr", type=positive_float, default=defaults.lr,
                   help=f"peak learning rate (default {defaults.lr:g})")
    r.add_argument("--weight-decay", type=non_negative_float, default=defaults.weight_decay,
                   help=f"default {defaults.weight_decay:g}")
    r.add_argument("--warmup-epochs", type=non_negative_float, default=defaults.warmup_epochs,
                   help=f"linear warm-up (default {defaults.warmup_epochs:g})")
    r.add_argument("--schedule", choices=("cosine", "step"), default=defaults.schedule,
                   help=f"decay after warm-up (default {defaults.schedule})")
    r.add_argument("--optimizer", choices=("sgd", "adamw"), default=defaults.optimizer,
                   help=f"default {defaults.optimizer}")
    r.add_argument("--seed", type=int, default=defaults.seed, help=f"default {defaults.seed}")
    r.add_argument("--photometric", type=non_negative_float, default=defaults.photometric,
                   help="strength of random global photometric augmentation (gamma, saturation, colour balance, "
                        f"contrast, brightness); 0 = crop and flip only, 1 = the standard ranges (default {defaults.photometric:g})")
    r.add_argument("--shift-consistency", type=non_negative_float, default=defaults.shift_consistency, metavar="W",
                   help="add W x the spatial distance between each image and itself moved 1-3 px to the loss (on a "
                        "quarter of each batch), so that fewer decisions flip under small shifts; the log shows the term, "
                        f"checkpoints record the classification loss alone (default {defaults.shift_consistency:g}, off)")
    r.add_argument("--shift-min", type=int, choices=range(1, MAX_SHIFT + 1), default=defaults.shift_min, metavar="PX",
                   help=f"the shift-consistency term moves images by PX to {MAX_SHIFT} px, so that a larger value asks "
                        f"only for the larger shifts, which flip more decisions (default {defaults.shift_min}: 1-{MAX_SHIFT} px)")
    r.add_argument("--shift-blur", type=feature_blur, default=defaults.shift_blur, metavar="SIGMA",
                   help="the shift-consistency term compares the maps blurred by a Gaussian of SIGMA positions, or of "
                        "one sigma per tapped map (comma-separated: 0,0,0.75,0.75), as a card's feature blur does "
                        f"(export with the same --feature-blur; default {defaults.shift_blur:g}, off)")
    r.add_argument("--shift-blur-from", type=fraction, default=defaults.shift_blur_from, metavar="F",
                   help="--shift-blur applies only from this fraction of the run on (before it the term compares the maps "
                        f"as they are), so its invariance is asked for late, at small rates (default {defaults.shift_blur_from:g}: throughout)")
    r.add_argument("--shift-order", type=non_negative_float, default=defaults.shift_order, metavar="W",
                   help="add W x the share of decisions 'which of two distortions of an image is farther from it' "
                        "that a 1-3 px shift of both changes, made soft (on an eighth of each batch); W ramps in from 0 "
                        f"over the run (default {defaults.shift_order:g}, off)")
    r.add_argument("--photometric-consistency", type=non_negative_float, default=defaults.photometric_consistency,
                   metavar="W", help="add W x the spatial distance between each image and itself under a random global "
                                     "photometric change at strength 1 (on a quarter of each batch), so that tone and "
                                     f"white-balance changes look small (default {defaults.photometric_consistency:g}, off)")
    r.add_argument("--teacher", default=defaults.teacher, metavar="MODEL",
                   help="a metric (bundled name, card path or hf-hub:ORG/NAME) whose distances --teacher-weight matches")
    r.add_argument("--teacher-weight", type=non_negative_float, default=defaults.teacher_weight, metavar="W",
                   help="add W x the squared log-ratio of the network's spatial distance to the teacher's, between a "
                        "quarter of each batch and the same images distorted, re-toned, shifted, or other images "
                        f"(default {defaults.teacher_weight:g}, off)")
    r.add_argument("--pixels-per-degree", type=non_negative_float, default=defaults.pixels_per_degree, metavar="PPD",
                   help="train and validate on the images as seen at this viewing condition (contrast sensitivity); "
                        "the exported card carries it (default 0: as they are)")
    r.add_argument("--cache", type=Path, default=None,
                   help="folder for decoded datasets (default $XDG_CACHE_HOME/perceptual_sim/datasets)")
    r.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    r.set_defaults(func=run)

    dd = DistillRecipe(data="")
    d = sub.add_parser("distill", help="distil EfficientNet-Lite0's feature maps into a small student, or resume",
                       description="Train a conv_student on the images of DATA/train so that its unit-normalised maps "
                                   "match EfficientNet-Lite0's at strides 2, 4, 8 (and 16), the metric's own spatial term "
                                   "as the loss. Needs `perceptual-sim download efficientnet-lite0` once. Re-run the same "
                                   "command to resume.")
    d.add_argument("--data", type=Path, required=True, help="folder holding train/ and val/ image folders")
    d.add_argument("--out", type=Path, required=True, help="the run's folder (checkpoints, log.csv)")
    d.add_argument("--arch-args", type=json_object, default={}, metavar="JSON",
                   help='conv_student arguments, e.g. \'{"widths": [16, 32, 64, 0], "depths": [1, 1, 1, 0], '
                        '"heads": [16, 24, 40, 0]}\' (heads: the teacher\'s channels at each stride, 16 / 24 / 40 / 112)')
    d.add_argument("--steps", type=positive_int, default=dd.steps, help=f"default {dd.steps}")
    d.add_argument("--batch-size", type=positive_int, default=dd.batch_size, help=f"default {dd.batch_size}")
    d.add_argument("--lr", type=positive_float, default=dd.lr, help=f"AdamW peak learning rate (default {dd.lr:g})")
    d.add_argument("--seed", type=int, default=dd.seed, help=f"default {dd.seed}")
    d.add_argument("--photometric", type=non_negative_float, default=dd.photometric,
                   help=f"strength of the global photometric augmentation (default {dd.photometric:g})")
    d.add_argument("--distort", type=non_negative_float, default=dd.distort,
                   help=f"share of images given noise or blur (default {dd.distort:g})")
    d.add_argument("--shift-consistency", type=non_negative_float, default=dd.shift_consistency, metavar="W",
                   help=f"as for `train run` (default {dd.shift_consistency:g})")
    d.add_argument("--teacher-pixels-per-degree", type=non_negative_float, default=dd.teacher_pixels_per_degree,
                   metavar="PPD", help="the teacher sees the images at this viewing condition (contrast sensitivity), "
                                       "the student as they are, so it learns it and runs unfiltered (default 0: none)")
    d.add_argument("--feature-blur", type=feature_blur, default=dd.feature_blur, metavar="SIGMA",
                   help="compare the maps blurred by SIGMA positions, or S1,S2,... one per matched stride, as the "
                        "exported card then does (default 0)")
    d.add_argument("--cache", type=Path, default=None,
                   help="folder for decoded datasets (default $XDG_CACHE_HOME/perceptual_sim/datasets)")
    d.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads (default: torch's)")
    d.set_defaults(func=distill_run)

    e = sub.add_parser("export", help="write a checkpoint as a model (card + safetensors)",
                       description="Export checkpoint STEP of RUN as a metric model DEST/NAME.json + .safetensors.")
    e.add_argument("run", type=Path, metavar="RUN", help="the run's folder")
    e.add_argument("--step", type=int, required=True, help="checkpoint step (see `train list RUN`)")
    e.add_argument("--name", required=True, help="model name")
    e.add_argument("--dest", type=Path, required=True, help="folder to write NAME.json and NAME.safetensors in")
    e.add_argument("--mode", choices=MODES, default="spatial", help="the model's default distance (default spatial)")
    e.add_argument("--feature-blur", type=feature_blur, default=0.0, metavar="SIGMA",
                   help="blur the normalised maps the spatial distance compares by a Gaussian of SIGMA feature "
                        "positions, or S1,S2,... one per tapped stage (0 leaves a stage alone), so that fewer "
                        "decisions flip under small shifts (default 0, none)")
    e.add_argument("--summary", default="", help="one sentence for `perceptual-sim list`")
    e.add_argument("--force", action="store_true", help="overwrite an existing model of that name")
    e.set_defaults(func=export_checkpoint)

    ls = sub.add_parser("list", help="the checkpoints of a run", description="Table of a run's checkpoints.")
    ls.add_argument("run", type=Path, metavar="RUN", help="the run's folder")
    ls.set_defaults(func=list_checkpoints)
    return t


def run(args: argparse.Namespace) -> int:
    if not args.data.is_dir():
        raise UsageError(f"--data {args.data} is not a folder")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a folder")
    from ..train import Recipe, train

    if args.teacher_weight > 0 and not args.teacher:
        raise UsageError("--teacher-weight needs --teacher MODEL (a bundled name or a card path)")
    teacher = str(Path(args.teacher).resolve()) if args.teacher and Path(args.teacher).is_file() else args.teacher
    recipe = Recipe(
        data=str(args.data.resolve()), arch=args.arch, arch_args=args.arch_args, epochs=args.epochs,
        batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs,
        schedule=args.schedule, seed=args.seed, optimizer=args.optimizer,
        photometric=args.photometric, shift_consistency=args.shift_consistency,
        shift_blur=args.shift_blur, shift_blur_from=args.shift_blur_from, shift_min=args.shift_min, shift_order=args.shift_order,
        photometric_consistency=args.photometric_consistency,
        teacher=teacher, teacher_weight=args.teacher_weight, pixels_per_degree=args.pixels_per_degree)
    cache = args.cache or cache_root() / "datasets"
    try:
        out = train(recipe, args.out, cache=cache, threads=args.threads)
    except KeyboardInterrupt:
        raise KeyboardInterrupt("run the same command again to resume from the last checkpoint") from None
    print(f"finished {out}; `perceptual-sim train list {out}` shows the checkpoints, "
          f"`perceptual-sim train export {out} --step S --name NAME --dest DIR` exports one")
    return 0


def distill_run(args: argparse.Namespace) -> int:
    if not args.data.is_dir():
        raise UsageError(f"--data {args.data} is not a folder")
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a folder")
    from ..distill import DistillRecipe, distill, student_strides

    try:
        strides = student_strides(args.arch_args)
    except ValueError as exc:
        raise UsageError(f"--arch-args: {exc}") from None
    blur = args.feature_blur
    if isinstance(blur, tuple) and len(blur) != len(strides):
        raise UsageError(f"--feature-blur has {len(blur)} values; the student matches {len(strides)} strides "
                         f"({', '.join(map(str, strides))}): give one per stride, or one for all")
    if min(blur if isinstance(blur, tuple) else (blur,)) < 0:
        raise UsageError("--feature-blur must not be negative")
    recipe = DistillRecipe(data=str(args.data.resolve()), arch_args=args.arch_args, steps=args.steps,
                           batch_size=args.batch_size, lr=args.lr, seed=args.seed, photometric=args.photometric,
                           distort=args.distort, shift_consistency=args.shift_consistency,
                           teacher_pixels_per_degree=args.teacher_pixels_per_degree,
                           feature_blur=blur)
    try:
        out = distill(recipe, args.out, cache=args.cache or cache_root() / "datasets", threads=args.threads)
    except KeyboardInterrupt:
        raise KeyboardInterrupt("run the same command again to resume from the last checkpoint") from None
    print(f"finished {out}; `perceptual-sim train export {out} --step S --name NAME --dest DIR` exports a checkpoint")
    return 0


def _distilled(run: Path) -> bool:
    import json

    return "steps" in json.loads((run / "recipe.json").read_text())  # a distillation counts steps, training epochs


def _check_run(run: Path) -> None:
    if not (run / "recipe.json").is_file():
        raise UsageError(f"{run} is not a training run (it has no recipe.json)")


def export_checkpoint(args: argparse.Namespace) -> int:
    _check_run(args.run)
    if _distilled(args.run):
        if args.mode != "spatial" or args.feature_blur:
            raise UsageError("a distilled student is exported in spatial mode with the feature blur it was trained "
                             "with (its recipe's); leave out --mode and --feature-blur")
        from ..distill import export as export_student

        card = export_student(args.run, args.step, args.name, args.dest, summary=args.summary, overwrite=args.force)
    else:
        from ..train import export

        card = export(args.run, args.step, args.name, args.dest, default_mode=args.mode,
                      feature_blur=args.feature_blur, summary=args.summary, overwrite=args.force)
    path = args.dest if args.dest.suffix == ".json" else args.dest / f"{args.name}.json"
    print(f"wrote {path} and {path.with_suffix('.safetensors').name} (sha256 {card.sha256}); "
          f"use it with --model {path}")
    return 0


def list_checkpoints(args: argparse.Namespace) -> int:
    _check_run(args.run)
    from ..train import checkpoints

    records = checkpoints(args.run)
    if not records:
        print(f"no checkpoints in {args.run} yet")
        return 0
    if _distilled(args.run):
        print(f"{'step':>8} {'fidelity':>9} {'train loss':>10}  time   (fidelity: distance to the teacher's maps on val images)")
        for r in records:
            print(f"{r['step']:>8} {r['fidelity']:>9.4f} {r['train_loss']:>10.4f}  {r['time']}")
        return 0
    print(f"{'step':>8} {'epoch':>7} {'val top-1':>9} {'val loss':>9} {'train loss':>10}  time")
    for r in records:
        print(f"{r['step']:>8} {r['epoch']:>7.3f} {100 * r['val_top1']:>8.2f}% {r['val_loss']:>9.4f} "
              f"{r['train_loss']:>10.4f}  {r['time']}")
    return 0
