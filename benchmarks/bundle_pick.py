"""Bundle select_students.py's pick for a name: the chosen candidate's exported card and tensors become
``weights/NAME.{json,safetensors}``, stamped with its scores (material triplets on all materials and
out-of-fold, psychophysics per family, proxy 2AFC and shift flips, from ``distill/scores.jsonl``).

    python benchmarks/bundle_pick.py --pick resnet6-pa --card /tmp/q/cards/CANDIDATE.json

The card must be the selection's ``final`` candidate for the pick (its name and sha256 are checked
against the scores), as ``perceptual-sim train export`` wrote it.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
from pathlib import Path

from perceptual_sim import __version__
from perceptual_sim.models.card import ModelCard, load_tensors, save_model

HERE = Path(__file__).parent
DATA = "Tiny-ImageNet, 202-class copy (101,000 train images, 64 x 64; val 10,100)"


def pooled(per_ref: dict[str, list[float]]) -> float:
    return round(sum(v[0] for v in per_ref.values()) / sum(v[1] for v in per_ref.values()), 5)


def summary(card: ModelCard) -> str:
    t, r = card.training, card.training["recipe"]
    width = r.get("arch_args", {}).get("width", 1)
    fb = card.feature_blur
    if isinstance(fb, tuple):
        blur = f", feature blur {', '.join(f'{b:g}' for b in fb)} per stage" if any(fb) else ""
    else:
        blur = f", feature blur {fb:g}" if fb else ""
    return (f"K22 ResNet-6 (width {width}) trained on Tiny-ImageNet at 64 px as seen at {r['pixels_per_degree']:g} "
            f"pixels per degree, photometric augmentation {r['photometric']:g}, shift consistency "
            f"{r['shift_consistency']:g}, stopped at epoch {t['epoch']:.2f} of {r['epochs']:g} "
            f"({100 * t['val_top1']:.1f}% val top-1); seen at {card.pixels_per_degree:g} pixels per degree "
            f"(contrast sensitivity){blur}; chosen by agreement with people, cross-validated over materials")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pick", required=True, help="the bundled name, a key of the selection's picks")
    ap.add_argument("--card", type=Path, required=True, help="the final candidate's exported card")
    ap.add_argument("--selection", type=Path, default=HERE / "distill" / "selection.json")
    ap.add_argument("--scores", type=Path, default=HERE / "distill" / "scores.jsonl")
    ap.add_argument("--dest", type=Path, default=HERE.parent / "weights")
    args = ap.parse_args()

    pick = json.loads(args.selection.read_text())["picks"][args.pick]
    card = ModelCard.from_json(args.card.read_text(), source=str(args.card))
    if card.name != pick["final"]:
        sys.exit(f"{args.card} is {card.name!r}; the selection's final pick for {args.pick} is {pick['final']!r}")
    rows = [json.loads(line) for line in args.scores.read_text().splitlines()]
    row = next((r for r in rows if r["key"] == card.name), None)
    if row is None or row["sha256"] != card.sha256:
        sys.exit(f"no row of {args.scores} scores {card.name} with sha256 {card.sha256}")
    scores = {
        "material_triplets": {
            **{f"all_{s}": pooled(row["triplets"][s]) for s in ("64", "256")},
            **{f"out_of_fold_{s}": round(pick["oof"][s], 5) for s in ("64", "256")},
        },
        "psych": row["psych"],
        "proxy": {"2afc": row["proxy_2afc"], **{f"flips_{k}": v for k, v in row["flips"].items()}},
        "mode": row["mode"],
        "protocol": "benchmarks/distill_sweep.py (material-appearance 2AFC, Lagunas et al. 2019, 22,801 triplets, "
                    "all 100 materials and out-of-fold over 5 folds of materials by benchmarks/select_students.py; "
                    "psych: perceptual-sim eval psych families, 100 per family; proxy: 2,000 Tiny-ImageNet val "
                    "triplets judged by LPIPS-Alex and -VGG, flips under a 1-3 px shift, crop protocol), "
                    f"package {__version__}, {datetime.date.today().isoformat()}",
    }
    training = {**card.training, "data": DATA, "recipe": {**card.training["recipe"], "data": DATA}}
    out = dataclasses.replace(card, name=args.pick, training=training, scores=scores)
    out = dataclasses.replace(out, summary=summary(out))
    tensors = load_tensors(card, args.card.with_suffix(".safetensors"))
    written = save_model(out, tensors, args.dest / f"{args.pick}.json", overwrite=True)
    print(f"wrote {args.dest / args.pick}.json and .safetensors (sha256 {written.sha256}): {written.summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
