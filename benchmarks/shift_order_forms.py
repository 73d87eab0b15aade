"""Which form of a shift-order training term tracks the shift flips that the selection gates on?

For each card (without a card blur, so that the network's distance is the one training sees), the shift
protocol on 256 Tiny-ImageNet training images (:func:`perceptual_sim.lab.train.shift_order_distances`, four
draws) gives ``d_a, d_b`` (two distortions' distances from the reference) and ``d_a', d_b'`` (both distortions
moved 1-3 px). Candidate terms, each a mean over triplets:

- ``squared``: ``((d_b' - d_a') - (d_b - d_a))²``;
- ``squared_over_scale``: the same divided by ``mean(d_a + d_b)²``;
- ``log``: the squared change of ``log(d_b + 0.01) - log(d_a + 0.01)``;
- ``hard``: the share of decisions ``sign(d_b - d_a)`` the shift changes;
- ``soft_T``: :func:`~perceptual_sim.lab.train.soft_flips` (the training term) at temperature ``T``.

The Spearman correlation of each with the card's 2,000-triplet flips (the maximum over 1-3 px, read from
``benchmarks/distill/scores.jsonl``) says which one a network should be trained to lower.

    python benchmarks/shift_order_forms.py --cards /work/kept/cards/*.json --out benchmarks/distill/shift_order_forms.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

from perceptual_sim import __version__
from perceptual_sim.images import decode_square
from perceptual_sim.lab.train import shift_order_distances, soft_flips
from perceptual_sim.metric import PerceptualDistance

TEMPERATURES = (0.1, 0.3, 1.0)


def forms(d_a: torch.Tensor, d_b: torch.Tensor, s_a: torch.Tensor, s_b: torch.Tensor) -> dict[str, float]:
    dd, ds = d_b - d_a, s_b - s_a
    e = 0.01
    out = {"squared": (ds - dd).pow(2).mean().item(),
           "squared_over_scale": ((ds - dd).pow(2).mean() / (d_a + d_b).mean().pow(2)).item(),
           "log": (((s_b + e).log() - (s_a + e).log()) - ((d_b + e).log() - (d_a + e).log())).pow(2).mean().item(),
           "hard": (ds.sign() != dd.sign()).double().mean().item()}
    for t in TEMPERATURES:
        out[f"soft_{t:g}"] = soft_flips(d_a, d_b, s_a, s_b, t).item()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cards", nargs="+", type=Path, required=True, help="card files; those with a card blur "
                    "(-fb in the name) or without 2,000-triplet flips in scores.jsonl are skipped")
    ap.add_argument("--images", type=Path, default=Path("/tmp/tin/train"))
    ap.add_argument("--scores", type=Path, default=Path("benchmarks/distill/scores.jsonl"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/distill/shift_order_forms.json"))
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    flips = {}
    for line in args.scores.read_text().splitlines():
        row = json.loads(line)
        if row.get("flips"):
            flips[row["key"]] = max(row["flips"].values())
    files = sorted(args.images.rglob("*.JPEG"))[::300][:256]
    raw = torch.from_numpy(np.stack([decode_square(f, 64) for f in files])).permute(0, 3, 1, 2).float() / 255
    rows = []
    for card in sorted(args.cards):
        if "-fb" in card.stem or card.stem not in flips:
            continue
        model = PerceptualDistance.from_pretrained(str(card))
        net = model.backbone.eval()
        with torch.no_grad():
            draws = [shift_order_distances(net, raw, torch.Generator().manual_seed(s), model.pixels_per_degree)
                     for s in range(4)]
        d = [torch.cat([draw[i] for draw in draws]) for i in range(4)]
        rows.append({"card": card.stem, "flips_2k": flips[card.stem], **forms(*d)})
        print(card.stem, {k: round(v, 5) for k, v in rows[-1].items() if k != "card"}, flush=True)
    names = [k for k in rows[0] if k not in ("card", "flips_2k")]
    target = [r["flips_2k"] for r in rows]
    spearman = {k: round(float(spearmanr(target, [r[k] for r in rows]).statistic), 3) for k in names}
    print("Spearman with the 2,000-triplet flips:", spearman)
    args.out.write_text(json.dumps({"cards": len(rows), "images": len(files), "draws": 4, "spearman": spearman,
                                    "rows": rows, "package_version": __version__, "date": time.strftime("%Y-%m-%d")},
                                   indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
