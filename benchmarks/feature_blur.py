"""A lever tried against the shift flips: blur each unit-normalised map before differencing
(spatial mode, as ST-LPIPS blurs features; the card field ``feature_blur`` does it for every stage),
Gaussian sigma in feature positions, by default 0 / 0.5 / 1.

    python benchmarks/feature_blur.py resnet6-pa=resnet6-pa w025aa=runs/r6-w025-aa-pm1:3940 \
        >> benchmarks/feature_blur.jsonl
    python benchmarks/feature_blur.py w025=runs/r6-w025-pm2-e20:7880 --sigmas 0,0.75,0.75,0.75

Each ``NAME=MODEL`` is a model string or ``RUN:STEP`` (a training checkpoint). A sigma is one
number (every stage) or one per stage, comma-separated (0 leaves a stage alone). One JSON line per
model and sigma: the LPIPS-judged proxy 2AFC and its shift flips at 1/2/3 px (and the shift
protocol they were measured on: ``reflect-diagonal`` before 0.3.1), the human triplets
(selection / held-out, 64 and 256 px) and the psych mean (50 per family), all x100.
"""

import argparse
import json
import tempfile
from pathlib import Path

import torch

from perceptual_sim.cli.options import feature_blur, format_feature_blur
from perceptual_sim.distances import blur_normalized
from perceptual_sim.lab.evaluate import psych, triplets
from perceptual_sim.lab.evaluate.metrics import NetMetric
from perceptual_sim.lab.evaluate.proxy import SHIFT_PROTOCOL, judged_proxy_set, score
from perceptual_sim.lab.train import export
from perceptual_sim.metric import Features, PerceptualDistance

MATERIALS = Path(__file__).resolve().parents[2] / "shared" / "data" / "material-similarity"
SIGMAS = (0.0, 0.5, 1.0)


class Blurred(NetMetric):
    """Spatial mode on blurred unit-normalised maps (:func:`blur_normalized`), one sigma per stage."""

    def __init__(self, model: PerceptualDistance, sigmas: list[float]) -> None:
        super().__init__(model, modes=("spatial",))
        self.sigmas = sigmas

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [blur_normalized(f, s) if s else f for f, s in zip(super().features(x), self.sigmas)]

    def matrix(self, x: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
        parts = [self.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        feats = Features([torch.cat(m) for m in zip(*parts)], (x.shape[2], x.shape[3]))
        return {"spatial": self.model.pairwise(feats, feats, mode="spatial")}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", metavar="NAME=MODEL")
    ap.add_argument("--sigmas", nargs="+", type=feature_blur, default=list(SIGMAS),
                    help="sigmas to try (default 0 0.5 1)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    models = {}
    for spec in args.models:
        name, _, src = spec.partition("=")
        if ":" in src:
            run, step = src.split(":")
            tmp = Path(tempfile.mkdtemp())
            export(Path(run), int(step), "c", tmp)
            src = str(tmp / "c.json")
        models[name] = PerceptualDistance.from_pretrained(src)
    data = judged_proxy_set(Path("/tmp/tin/val"))
    cache: dict = {}
    for name, model in models.items():
        stages = len(model.backbone.channels)
        for sigma in args.sigmas:
            if isinstance(sigma, tuple) and len(sigma) != stages:
                ap.error(f"--sigmas {format_feature_blur(sigma)}: one number or {stages} (one per stage of {name})")
            m = Blurred(model, list(sigma) if isinstance(sigma, tuple) else [sigma] * stages)
            p = score(m, data, progress=False)["spatial"]
            t = triplets.score_metric(m, MATERIALS / "triplets_train.csv", MATERIALS / "renders", sizes=[64, 256])
            ps = psych.score_metric(m, sizes=[64, 256], per_family=50, cache=cache)
            row = {"model": name, "sigma": sigma, "proxy2afc": round(100 * p["2afc"], 2),
                   "flips": [round(100 * p["shift_flips"][k], 2) for k in "123"], "shift_protocol": SHIFT_PROTOCOL,
                   **{f"{part}{s}": round(100 * t["scores"][str(s)]["spatial"][part]["score"], 2)
                      for s in (64, 256) for part in ("selection", "held_out")},
                   **{f"psych{s}": round(100 * ps["mean"][str(s)]["spatial"], 2) for s in (64, 256)}}
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
