"""``perceptual-sim compare A B`` (also ``perceptual-sim A B``): the distance between two images, and its heat map."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..files import check_not_input, check_output, quiet
from .options import (
    UsageError,
    add_image_options,
    add_model_options,
    load_model,
    note,
    note_grey,
    pair_problem,
    positive_float,
    provenance,
    safe,
    torch_device,
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "compare", description="Print the perceptual distance between images A and B.")
    p.add_argument("a", type=Path, metavar="A", help="reference image")
    p.add_argument("b", type=Path, metavar="B", help="image compared with A")
    add_model_options(p)
    add_image_options(p)
    p.add_argument("--json", action="store_true",
                   help="print a JSON object: distance, model, mode, sha256 (of the weights), version, a, b "
                        "(and the heat map's file and scale)")
    p.add_argument("--map", type=Path, metavar="OUT.png",
                   help="also write a heat map of where they differ, A's size, with a colour bar below it "
                        "(spatial mode; the distance is the map's mean)")
    p.add_argument("--map-max", type=positive_float, default=None, metavar="V",
                   help="the value shown as the top colour of --map (default: the map's maximum); fix it to "
                        "compare the maps of different pairs")
    p.add_argument("--overlay", action="store_true", help="draw the --map colours half-transparent over image A")
    p.add_argument("--force", action="store_true", help="overwrite an existing --map file")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    for path in (args.a, args.b):  # before torch is imported (seconds): a mistyped name is said at once
        if not path.exists():
            raise ValueError(f"{path}: no such file")
        if path.is_dir():
            raise ValueError(f"{path}: is a folder, not an image file")
    mode = args.mode
    for flag, value in (("--map-max", args.map_max), ("--overlay", args.overlay)):
        if value not in (None, False) and args.map is None:
            raise UsageError(f"{flag} draws the heat map: add --map OUT.png")
    if args.map is not None:
        if mode not in (None, "spatial"):
            raise UsageError(f"--map needs the spatial mode, not --mode {mode}; drop --mode or use --mode spatial")
        if args.map.suffix.lower() != ".png":
            raise UsageError(f"--map {args.map}: the heat map is a PNG; give a file name ending in .png")
        check_output(args.map, args.force, "--map")
        check_not_input({"--map": args.map}, [args.a, args.b])
        mode = "spatial"
    import torch

    from ..images import decode_image
    from ..pictures import save_heatmap

    model = load_model(args, torch_device(args.device), mode)
    if args.map is not None and model.card.default_mode != "spatial" and args.mode is None:
        note(f"--map uses the spatial mode (model {model.card.name} defaults to {model.card.default_mode})")
    a, b = (decode_image(p, max_pixels=args.max_pixels) for p in (args.a, args.b))
    note_grey([p for p, img in ((args.a, a), (args.b, b)) if img.grey])
    problem = pair_problem(args.a, args.b, tuple(a.pixels.shape[1:]), tuple(b.pixels.shape[1:]),
                           args.resize, model.card.min_size)
    if problem:
        raise ValueError(problem)
    x, y = a.pixels.unsqueeze(0).to(model.device), b.pixels.unsqueeze(0).to(model.device)
    with torch.inference_mode():
        if args.map is None:
            dist = float(model(x, y, resize=args.resize)[0])
        else:
            heat = model(x, y, spatial=True, resize=args.resize)[0, 0]
            dist = float(heat.double().mean())
    result = {"distance": dist, **provenance(model), "a": safe(str(args.a)), "b": safe(str(args.b))}
    if args.map is not None:
        under = a.pixels if args.overlay else None
        top = save_heatmap(heat, args.map, vmax=args.map_max, under=under, overwrite=args.force)
        result["map"] = {"file": safe(str(args.map)), "max": top, "overlay": args.overlay}
        if not quiet():
            print(f"wrote {safe(str(args.map))} (map {heat.shape[1]} x {heat.shape[0]} px, colour bar from black 0 to yellow "
                  f"{top:.4g})", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
    else:
        print(f"{dist:.6g} ({result['model']}, {result['mode']})")
    return 0
