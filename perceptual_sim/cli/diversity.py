"""``perceptual-sim diversity DIR``: how different a generator's samples are from each other."""

from __future__ import annotations

import argparse
from typing import Any

from .options import add_image_options, add_model_options, load_model, positive_int, safe, torch_device
from .results import add_outputs, check_outputs, fail_code, folder, list_failed, model_line, write_csv, write_json


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "diversity", description="Mean pairwise distance among the images of DIR (higher: more diverse), with a "
        "95% bootstrap interval. When DIR has sub-folders, each holds the samples of one input (the BicycleGAN / "
        "MUNIT protocol): all pairs within each input, averaged per input, then over inputs; otherwise all pairs "
        "among all images. Each image is embedded once. Files that fail are listed and left out (exit code 1).")
    p.add_argument("dir", type=folder, metavar="DIR", help="the samples (one sub-folder per input, or flat)")
    p.add_argument("--all-pairs", action="store_true", help="all pairs among every image, even with sub-folders")
    add_model_options(p)
    add_image_options(p)
    p.add_argument("--batch-size", type=positive_int, default=64, help="images per forward pass (default 64)")
    p.add_argument("--resamples", type=positive_int, default=1000, help="bootstrap resamples (default 1000)")
    add_outputs(p, "write a row per input: input, images, diversity")
    p.add_argument("--force", action="store_true", help="overwrite existing --csv / --json files")
    p.set_defaults(func=run, resize=False)
    return p


def run(args: argparse.Namespace) -> int:
    from ..generative import diversity

    check_outputs(args, ("--csv", "--json"))
    device = torch_device(args.device)
    r = diversity(args.dir, grouped=False if args.all_pairs else None, model=load_model(args, device), mode=args.mode,
                  device=device, batch_size=args.batch_size, resamples=args.resamples, max_pixels=args.max_pixels,
                  errors="record")
    list_failed(r.failed)
    write_csv(args.csv, ["input", "diversity"], [[k, v] for k, v in r.groups.items()] or [[".", r.mean]], r.info,
              args.force)
    write_json(args.json, {**r.info, "dir": safe(str(args.dir)), "diversity": r.mean, "interval": list(r.interval),
                           "protocol": r.protocol, "images": r.images, "pairs": r.pairs,
                           "groups": {safe(k): v for k, v in r.groups.items()},
                           "failed": [{"file": safe(f), "error": safe(e)} for f, e in r.failed]}, args.force)
    print(f"diversity {r.mean:.6g} (95% interval {r.interval[0]:.6g} to {r.interval[1]:.6g})")
    print(f"images  {r.images} ({r.pairs} pairs{f', {len(r.groups)} inputs' if r.groups else ''}), "
          f"{len(r.failed)} failed")
    print(f"protocol {r.protocol}")
    model_line(r.info)
    return fail_code(r.failed)
