"""Psychophysics per family of models seen at several viewing conditions (``pixels_per_degree``).

    python benchmarks/csf_psych.py resnet6-pa,efficientnet-lite0 30,60,90 40 > benchmarks/distill/csf_psych.txt

Arguments: comma-separated model strings, comma-separated pixels per degree (0, no filter, is always
scored first), triplets per family. One line per model and viewing condition: the mean over families
at 64 and 256 px, then every family's score (x100).
"""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from perceptual_sim import PerceptualDistance
from perceptual_sim.lab.evaluate import psych
from perceptual_sim.lab.evaluate.metrics import NetMetric


def main() -> int:
    torch.set_num_threads(1)
    names, ppds, per_family = sys.argv[1].split(","), [0.0] + [float(p) for p in sys.argv[2].split(",")], int(sys.argv[3])
    cache: dict = {}
    for name in names:
        for ppd in ppds:
            model = PerceptualDistance.from_pretrained(name, pixels_per_degree=ppd)
            r = psych.score_metric(NetMetric(model, modes=(model.mode,)), sizes=[64, 256], per_family=per_family,
                                   cache=cache)
            fam = {s: {f: round(100 * e["scores"][str(s)][model.mode]["score"]) for f, e in r["families"].items()}
                   for s in (64, 256)}
            means = {s: round(float(np.mean(list(v.values()))), 1) for s, v in fam.items()}
            print(name, ppd, json.dumps(means), json.dumps(fam), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
