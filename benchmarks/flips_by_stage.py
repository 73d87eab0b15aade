"""Where do a card's shift flips come from: which tapped map, and does a per-stage feature blur remove them?

On the 2,000-triplet proxy (the crop protocol that ``distill_sweep.py``'s flips use), each card's network
gives its features once. The flips at 1, 2 and 3 px are then counted for the spatial distance of each tapped
map alone and of all maps but one (``per_layer`` terms, the card's own blur), and for the sum over all maps
under each ``--blurs`` configuration (one sigma per tapped map, in that map's positions, as a card's
``feature_blur``; the same weights).

    python benchmarks/flips_by_stage.py --cards /work/kept/cards/w05-ppd60-pc05-sc05-sf1-train-s7880.json \
        --out benchmarks/distill/flips_by_stage.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from perceptual_sim import __version__
from perceptual_sim.cli.options import feature_blur, format_feature_blur
from perceptual_sim.lab.evaluate.proxy import judged_proxy_set, shift_flips, triplet_distances
from perceptual_sim.metric import PerceptualDistance
from perceptual_sim.models.card import WeightsError

BLURS = ("0", "0.75", "1", "1.5", "1.5,0.75,0.75,0.75", "2,1,0.75,0.75", "0.75,0.75,1.5,1.5", "3,1.5,1,0.75")


class StageMetric:
    """Features from ``model``; distances per tapped map and per blur configuration (each a copy of the
    card with that ``feature_blur``, comparing the same features)."""

    def __init__(self, model: PerceptualDistance, blurs: list[float | tuple[float, ...]]) -> None:
        self.model, self.name = model, model.card.name
        self.variants = {format_feature_blur(b): PerceptualDistance.from_card(
            dataclasses.replace(model.card, feature_blur=b), model.weights_path).eval() for b in blurs}

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.model.embed(x).maps

    def compare(self, fa: list[torch.Tensor], fb: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        terms = self.model.compare(fa, fb, mode="spatial", per_layer=True)
        out = {f"only map {i}": terms[:, i] for i in range(terms.shape[1])}
        out.update({f"all but map {i}": terms.sum(1) - terms[:, i] for i in range(terms.shape[1])})
        out.update({f"blur {k}": v.compare(fa, fb, mode="spatial") for k, v in self.variants.items()})
        return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cards", nargs="+", required=True, help="model strings: card paths or bundled names")
    ap.add_argument("--blurs", nargs="+", type=feature_blur, default=[feature_blur(b) for b in BLURS],
                    help="per-stage sigmas, comma-separated (one number: every map)")
    ap.add_argument("--images", type=Path, default=Path("/tmp/tin/val"), help="natural images for the proxy")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/distill/flips_by_stage.json"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    proxy = judged_proxy_set(args.images)
    rows = []
    for card in args.cards:
        model = PerceptualDistance.from_pretrained(card).eval()
        try:  # the card checks each blur (range, one sigma per tapped map)
            metric = StageMetric(model, args.blurs)
        except WeightsError as exc:
            ap.error(f"--blurs: {exc}")
        views = triplet_distances(metric, proxy, progress=False)
        flips = {distance: {k: round(v, 5) for k, v in shift_flips(by_view).items()}
                 for distance, by_view in views.items()}
        rows.append({"card": model.card.name, "feature_blur": model.card.feature_blur, "flips": flips})
        for distance, f in flips.items():
            print(f"{model.card.name} {distance:28s} " + " ".join(f"{k} px {100 * v:.2f}%" for k, v in f.items()), flush=True)
    args.out.write_text(json.dumps({"rows": rows, "triplets": len(proxy.p), "package_version": __version__,
                                    "date": time.strftime("%Y-%m-%d")}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
