"""Levers of the distance head, measured on the human material triplets without retraining:
which tapped layers are summed, and the scale at which the image is fed to the backbone.

    python benchmarks/human_levers.py --model resnet6-es --out benchmarks/human_levers.json

For each size (64, 256) and mode: every non-empty subset of layers, and input scale factors
(the image resized by the factor before the backbone; several factors sum their terms, an
image pyramid). Scores are the selection and held-out agreements x100. Choices made from this
table must be made on the selection column.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from perceptual_sim.distances import MODES
from perceptual_sim.lab.evaluate.metrics import NetMetric
from perceptual_sim.lab.evaluate.triplets import read_triplets, split_by_reference, triplet_distances, two_afc
from perceptual_sim.metric import PerceptualDistance

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "material-similarity"


class Levers(NetMetric):
    """Per-layer terms of every mode, on the image resized by each factor (summed over factors)."""

    matrix = None  # per-layer terms come from compare(), pair by pair

    def __init__(self, model: PerceptualDistance, factors: tuple[float, ...]) -> None:
        super().__init__(model)
        self.factors = factors

    def features(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        return [self.model.embed(x if f == 1 else F.interpolate(x, scale_factor=f, mode="bilinear",
                                                                  align_corners=False, antialias=f < 1).clamp(0, 1)).maps
                for f in self.factors]

    def compare(self, fa, fb) -> dict[str, torch.Tensor]:
        out = {}
        for mode in MODES:
            terms = sum(self.model.compare(a, b, mode=mode, per_layer=True) for a, b in zip(fa, fb))
            for k in range(terms.shape[1]):
                out[f"{mode}:{k}"] = terms[:, k]
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = PerceptualDistance.from_pretrained(args.model)
    t = read_triplets(DATA / "triplets_train.csv")
    held = split_by_reference(t)
    result = {"model": model.card.name, "sha256": model.card.sha256, "command": "python " + " ".join(sys.argv),
              "layers": {}, "scales": {}}
    layers = len(model.backbone.channels)
    plans = {64: [(1,), (2,), (4,), (1, 2)], 256: [(1,), (0.5,), (1, 0.5)]}
    for size, factor_sets in plans.items():
        for factors in factor_sets:
            d = triplet_distances(Levers(model, factors), t, DATA / "renders", size)
            for mode in MODES:
                for r in range(1, layers + 1):
                    for subset in itertools.combinations(range(layers), r):
                        if factors != (1,) and subset != tuple(range(layers)):
                            continue
                        d_a = sum(d[f"{mode}:{k}"][0] for k in subset)
                        d_b = sum(d[f"{mode}:{k}"][1] for k in subset)
                        s = two_afc(d_a, d_b, t.p_b)
                        cell = {"selection": round(100 * float(s[~held].mean()), 2),
                                "held_out": round(100 * float(s[held].mean()), 2)}
                        if factors == (1,):
                            result["layers"][f"{size} {mode} {list(subset)}"] = cell
                        if subset == tuple(range(layers)):
                            result["scales"][f"{size} {mode} x{list(factors)}"] = cell
            print(f"{size}px x{factors} done", file=sys.stderr, flush=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    best = sorted(result["layers"].items(), key=lambda kv: -kv[1]["selection"])[:5]
    for key, cell in best:
        print(f"layers {key}: selection {cell['selection']:.2f}, held-out {cell['held_out']:.2f}")
    for key, cell in result["scales"].items():
        print(f"scale {key}: selection {cell['selection']:.2f}, held-out {cell['held_out']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
