"""Calibrate a model's spatial distance on the human material triplets: non-negative per-channel
weights (LPIPS "lin" style) fitted on the *selection* split only, written as a new model.

    python benchmarks/calibrate.py --model resnet6-pa --name resnet6-pa-cal --dest /tmp/cal \
        --json benchmarks/calibrate-resnet6-pa.json

The fit never sees a held-out material: it uses only the triplets whose reference and both
candidates are outside the held-out references of :func:`split_by_reference` (the held-out
part's 20 materials are unseen images, not only unseen references). Loss: logistic
cross-entropy of ``sigmoid(s * (d_a - d_b))`` against the crowd's share choosing ``b``, the
weights through a softplus (non-negative), LBFGS, features at every ``--sizes`` size together
(one set of weights for all sizes). The weights are scaled to mean 1. The JSON records the
selection / held-out agreement (x100) of the equal and calibrated weights per size; score the
written model on every yardstick with ``human_reference.py --extra`` and ``sweep``/proxy tools.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from perceptual_sim.distances import unit_normalize
from perceptual_sim.lab.evaluate.triplets import load_square, read_triplets, split_by_reference, two_afc
from perceptual_sim.metric import PerceptualDistance
from perceptual_sim.models.card import save_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "material-similarity"


@torch.inference_mode()
def channel_terms(model: PerceptualDistance, images: Path, names: list[str], pairs: list[tuple[int, int]],
                  size: int) -> torch.Tensor:
    """P x C float64 per-channel spatial terms ``mean_hw (ŷa - ŷb)²`` for each pair, at ``size`` px."""
    pixels = torch.stack([load_square(images / n, size) for n in names])
    maps: list[list[torch.Tensor]] = []
    for i in range(0, len(pixels), 32):
        maps.append([unit_normalize(f) for f in model.embed(pixels[i : i + 32]).maps])
    layers = [torch.cat(m) for m in zip(*maps)]
    rows = torch.tensor([i for i, _ in pairs])
    cols = torch.tensor([j for _, j in pairs])
    out = []
    for s in range(0, len(pairs), 256):
        r, c = rows[s : s + 256], cols[s : s + 256]
        out.append(torch.cat([(f[r] - f[c]).pow(2).mean((2, 3)) for f in layers], 1))
    return torch.cat(out).double()


def fit(x: torch.Tensor, p_b: torch.Tensor) -> torch.Tensor:
    """Non-negative weights w (mean 1) maximising the likelihood of ``p_b`` under sigmoid(s (x @ w))."""
    v = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    scale = 10 / x.abs().mean()
    opt = torch.optim.LBFGS([v], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        z = (x @ torch.nn.functional.softplus(v)) * scale
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, p_b)
        loss.backward()
        return loss

    opt.step(closure)
    w = torch.nn.functional.softplus(v.detach())
    return w / w.mean()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--name", required=True, help="name of the calibrated model")
    ap.add_argument("--dest", type=Path, required=True, help="folder for NAME.json + NAME.safetensors")
    ap.add_argument("--json", type=Path, required=True, help="where to write the fit's scores")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    model = PerceptualDistance.from_pretrained(args.model)
    if model.layer_weights is not None:
        raise SystemExit(f"error: {args.model} already has layer weights; calibrate an uncalibrated model")
    if model.card.feature_blur:
        raise SystemExit(f"error: {args.model} has a feature blur, which the fit does not model; export its "
                         "checkpoint without one (perceptual-sim train export) and calibrate that")
    t = read_triplets(DATA / "triplets_train.csv")
    held = split_by_reference(t)
    held_materials = {r for r, h in zip(t.ref, held) if h}
    fit_mask = np.array([not ({r, a, b} & held_materials) for r, a, b in zip(t.ref, t.a, t.b)])
    names, pairs, at_a, at_b = t.pairs()
    diffs = {}
    for size in args.sizes:
        terms = channel_terms(model, DATA / "renders", names, pairs, size)
        diffs[size] = terms[at_a] - terms[at_b]  # d_a - d_b per channel
    p_b = torch.tensor(t.p_b)
    mask = torch.from_numpy(fit_mask)
    w = fit(torch.cat([diffs[s][mask] for s in args.sizes]), p_b[mask].repeat(len(args.sizes)))

    def agreement(weights: torch.Tensor, size: int, part: np.ndarray) -> float:
        d = (diffs[size][torch.from_numpy(part)] @ weights).numpy()
        return 100 * float(two_afc(d, np.zeros_like(d), t.p_b[part]).mean())

    ones = torch.ones_like(w)
    scores = {str(s): {kind: {"selection": round(agreement(weights, s, ~held), 2),
                              "held_out": round(agreement(weights, s, held), 2)}
                       for kind, weights in (("equal", ones), ("calibrated", w))} for s in args.sizes}
    chans = list(model.backbone.channels)
    per_layer = list(torch.split(w.float(), chans))
    card = dataclasses.replace(
        model.card, name=args.name, layer_weights=True, sha256="", scores={},
        summary=f"{model.card.name} with per-channel spatial weights CALIBRATED ON HUMAN JUDGMENTS: the material-"
                f"appearance triplets (Lagunas et al. 2019), selection split only, {int(fit_mask.sum())} triplets "
                f"at {'/'.join(map(str, args.sizes))} px (benchmarks/calibrate.py). {model.card.summary}",
        training={**model.card.training, "calibration": {
            "data": "material-appearance triplets (Lagunas et al. 2019), selection split by reference, "
                    "held-out materials excluded", "triplets": int(fit_mask.sum()), "sizes": args.sizes,
            "weights": "non-negative per channel, mean 1", "base_model": model.card.name,
            "base_sha256": model.card.sha256}})
    state = {**model.state_dict(), **{f"layer_weights.{i}": lw for i, lw in enumerate(per_layer)}}
    args.dest.mkdir(parents=True, exist_ok=True)
    saved = save_model(card, state, args.dest / f"{args.name}.json")
    result = {"model": model.card.name, "sha256": model.card.sha256, "calibrated": args.name,
              "calibrated_path": str(args.dest / f"{args.name}.json"), "calibrated_sha256": saved.sha256,
              "fit_triplets": int(fit_mask.sum()), "held_out_triplets": int(held.sum()),
              "scores": scores, "layer_weight_means": [round(float(x.mean()), 4) for x in per_layer],
              "command": "python " + " ".join(sys.argv), "seconds": round(time.time() - t0, 1)}
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    for s in args.sizes:
        print(f"{s} px: equal {scores[str(s)]['equal']}, calibrated {scores[str(s)]['calibrated']}")
    print(f"wrote {args.dest / args.name}.json (sha256 {saved.sha256[:12]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
