"""Shift flips on a larger proxy set drawn with another seed, to check a model against the 5% bar beyond
the noise of the 2,000 triplets that ``distill_sweep.py`` and ``proxy_reference.py`` use (a standard
error of about 0.5 points at 5%): 10,000 Tiny-ImageNet val triplets, seed 1, the same crop protocol.
One JSON line per model and mode (flips at 1, 2 and 3 px with their standard errors).

    python benchmarks/shift_check.py --models resnet6-pa /tmp/q/cards/CANDIDATE.json --out benchmarks/distill/shift_check.jsonl

Flips need no judges (a decision is compared with itself on shifted crops), so the set is not judged.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from perceptual_sim import __version__
from perceptual_sim.lab.evaluate.metrics import MODES, NetMetric
from perceptual_sim.lab.evaluate.proxy import SHIFT_PROTOCOL, make_proxy_set, shift_flips, triplet_distances
from perceptual_sim.metric import PerceptualDistance


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", required=True, help="model names or card files")
    ap.add_argument("--images", type=Path, default=Path("/tmp/tin/val"))
    ap.add_argument("--triplets", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/distill/shift_check.jsonl"))
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = make_proxy_set(args.images, triplets=args.triplets, mono_images=100, seed=args.seed)
    for name in args.models:
        model = PerceptualDistance.from_pretrained(name)
        by_mode = triplet_distances(NetMetric(model, modes=args.modes), data)
        with open(args.out, "a") as f:
            for mode, by_view in by_mode.items():
                flips = shift_flips(by_view)
                row = {"model": model.card.name, "sha256": model.card.sha256, "feature_blur": model.card.feature_blur,
                       "mode": mode, "triplets": len(data.ref), "seed": args.seed, "shift_protocol": SHIFT_PROTOCOL,
                       "flips": {k: round(v, 5) for k, v in flips.items()},
                       "stderr": {k: round(math.sqrt(v * (1 - v) / len(data.ref)), 5) for k, v in flips.items()},
                       "package_version": __version__, "date": time.strftime("%Y-%m-%d")}
                f.write(json.dumps(row) + "\n")
                print(f"{model.card.name:45s} {mode:9s} " + "  ".join(f"{k} px {100 * v:.2f}%" for k, v in flips.items()),
                      flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
