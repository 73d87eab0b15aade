"""Choose the checkpoint of each training run that scores best on the offline proxies and
export it into ``weights/`` (card + safetensors), with its proxy scores in the card.

    python benchmarks/select_models.py --sweep benchmarks/sweep/sweep.csv \
        --pick resnet6-es=/work/runs/resnet6-w1 --pick resnet6-w025=/work/runs/resnet6-w025

The criterion is the reference-judge 2AFC of the best mode; the card's default mode is that
mode. Ties go to the earlier checkpoint. ``--pick NAME=RUN1,RUN2`` chooses across several runs.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

from perceptual_sim.train import export

SUMMARIES = {
    "k22_resnet": "K22 ResNet-6 (width {width}) trained on Tiny-ImageNet at 64 px, stopped at epoch {epoch:.2f} "
                  "({top1:.1f}% val top-1), chosen by the offline proxies",
    "vit": "Narrow ViT (patch {patch_size}, dim {embed_dim}, {depth} blocks) trained on Tiny-ImageNet at 64 px, "
           "stopped at epoch {epoch:.2f} ({top1:.1f}% val top-1), chosen by the offline proxies",
}


def best_checkpoint(rows: list[dict[str, str]]) -> tuple[str, int, str, dict[str, dict[str, float]]]:
    """(run, step, best mode, {mode: scores}) of the checkpoint whose best mode has the highest 2AFC."""
    by_step: dict[tuple[str, int], dict[str, dict[str, float]]] = defaultdict(dict)
    for r in rows:
        by_step[r["run"], int(r["step"])][r["mode"]] = {
            k: float(r[k]) for k in ("2afc", "flips_1", "flips_2", "flips_3", "monotonicity")}
    key = max(sorted(by_step, key=lambda k: k[1]), key=lambda k: max(v["2afc"] for v in by_step[k].values()))
    modes = by_step[key]
    return key[0], key[1], max(modes, key=lambda m: modes[m]["2afc"]), modes


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sweep", type=Path, required=True)
    ap.add_argument("--pick", action="append", required=True, metavar="NAME=RUN")
    ap.add_argument("--dest", type=Path, default=Path(__file__).resolve().parent.parent / "weights")
    args = ap.parse_args()
    with open(args.sweep) as f:
        rows = list(csv.DictReader(f))
    for pick in args.pick:
        name, _, runs = pick.partition("=")
        paths = {Path(run).name: Path(run) for run in runs.split(",")}
        mine = [r for r in rows if r["run"] in paths]
        if not mine:
            raise SystemExit(f"error: no rows for runs {sorted(paths)} in {args.sweep}")
        run, step, mode, scores = best_checkpoint(mine)
        run_path = paths[run]
        row = next(r for r in mine if r["run"] == run and int(r["step"]) == step)
        recipe = json.loads((run_path / "recipe.json").read_text())
        fmt = {"width": 1.0, **recipe["arch_args"], "epoch": float(row["epoch"]), "top1": 100 * float(row["val_top1"])}
        summary = SUMMARIES[recipe["arch"]].format(**fmt)
        card = export(run_path, step, name, args.dest, default_mode=mode, summary=summary, overwrite=True,
                      data="Tiny-ImageNet, 202-class copy (101,000 train images, 64 x 64; val 10,100)",
                      scores={"proxy": scores, "proxy_protocol": "perceptual-sim eval proxy: 2000 Tiny-ImageNet val "
                              "triplets judged by LPIPS-Alex-lin and LPIPS-VGG-lin, seed 0 (benchmarks/README.md)"})
        print(f"{name}: {run_path.name} step {step} (epoch {float(row['epoch']):.2f}, top-1 "
              f"{100 * float(row['val_top1']):.1f}%), mode {mode}, 2AFC {100 * scores[mode]['2afc']:.2f}, "
              f"sha256 {card.sha256[:12]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
