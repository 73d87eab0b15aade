"""A lever tried against the shift flips: blur each unit-normalised map before differencing
(spatial mode, as ST-LPIPS blurs features), Gaussian sigma 0 / 0.5 / 1 feature positions.

    python benchmarks/feature_blur.py resnet6-pa=resnet6-pa w025aa=runs/r6-w025-aa-pm1:3940 \
        >> benchmarks/feature_blur.jsonl

Each ``NAME=MODEL`` is a model string or ``RUN:STEP`` (a training checkpoint). One JSON line per
model and sigma: the LPIPS-judged proxy 2AFC and its shift flips at 1/2/3 px (and the shift
protocol they were measured on: ``reflect-diagonal`` before 0.3.1), the human triplets
(selection / held-out, 64 and 256 px) and the psych mean (50 per family), all x100.
"""

import json
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from perceptual_sim.distances import unit_normalize
from perceptual_sim.evaluate import psych, triplets
from perceptual_sim.evaluate.metrics import NetMetric
from perceptual_sim.evaluate.proxy import SHIFT_PROTOCOL, judged_proxy_set, score
from perceptual_sim.metric import Features, PerceptualDistance
from perceptual_sim.train import export

MATERIALS = Path(__file__).resolve().parents[2] / "shared" / "data" / "material-similarity"
SIGMAS = (0, 0.5, 1.0)


def gauss(sigma: float) -> tuple[torch.Tensor, int]:
    r = max(1, round(2 * sigma))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum(), r


class Blurred(NetMetric):
    """Spatial mode on Gaussian-blurred unit-normalised maps (normalised again by the distance)."""

    def __init__(self, model: PerceptualDistance, sigma: float) -> None:
        super().__init__(model, modes=("spatial",))
        self.sigma = sigma

    def _blur(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.sigma == 0:
            return maps
        k, r = gauss(self.sigma)
        out = []
        for f in maps:
            y = unit_normalize(f)
            c = y.shape[1]
            y = F.pad(y, (r, r, r, r), mode="replicate")
            y = F.conv2d(y, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
            out.append(F.conv2d(y, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c))
        return out

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self._blur(super().features(x))

    def matrix(self, x: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
        parts = [self.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        feats = Features([torch.cat(m) for m in zip(*parts)], (x.shape[2], x.shape[3]))
        return {"spatial": self.model.pairwise(feats, feats, mode="spatial")}

def main() -> int:
    torch.set_num_threads(1)
    models = {}
    for spec in sys.argv[1:]:
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
        for sigma in SIGMAS:
            m = Blurred(model, sigma)
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
