"""The "Bundled models" table of docs/models.md, human yardsticks first: agreement with the human
material triplets (out-of-fold over five folds of materials) and the psychophysics mean with its
weakest family at 64 and 256 px in the default mode, from each bundled model's card; then the
viewing condition, parameters, FLOPs per image pair (the contrast-sensitivity filter included),
top-1, the LPIPS-judged proxy (a regression check) and the largest share of proxy decisions a
1-3 px shift flips in any mode (the shift constraint), from ``benchmarks/proxy_reference.json``.

    python benchmarks/models_table.py
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import torch
from speed import count_flops  # benchmarks/speed.py, beside this script

from perceptual_sim import PerceptualDistance, list_models
from perceptual_sim.convert import REFERENCES

PROXY = Path(__file__).with_name("proxy_reference.json")


def gflops(model: PerceptualDistance, size: int) -> float:
    """GFLOPs (2 x multiply-adds) of one image pair at size x size, backbone and head."""
    x = torch.rand(1, 3, size, size)
    with torch.inference_mode():
        return count_flops(partial(model, x, x.flip(3))) / 1e9


def worst_flips(name: str) -> float | None:
    """Largest shift-flip share of ``name`` over its modes and 1-3 px, in its latest proxy_reference.json row."""
    rows = [r for r in json.loads(PROXY.read_text())["rows"] if r["metric"] == name]
    if not rows:
        return None
    return max(v for mode in rows[-1]["scores"].values() for v in mode["shift_flips"].values())


def main() -> int:
    print("| model | triplets @64 | @256 | psych @64 | @256 | weakest family @64 / @256 | viewing | params | "
          "GFLOPs/pair @64 | @256 | Tiny-ImageNet val top-1 | epoch | default mode | proxy 2AFC | worst shift flips |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for card in list_models():
        if card.name in REFERENCES:  # the bundled lpips-alex: a reference, not a model trained here
            continue
        m = PerceptualDistance.from_pretrained(card.name)
        params = sum(p.numel() for p in m.parameters())
        top1 = card.training.get("val_top1")
        triplets, psych = card.scores.get("material_triplets", {}), card.scores.get("psych", {})
        cells = [f"{100 * triplets[f'out_of_fold_{s}']:.1f}" if f"out_of_fold_{s}" in triplets else "-" for s in (64, 256)]
        cells += [f"{100 * sum(psych[s].values()) / len(psych[s]):.1f}" if psych.get(s) else "-" for s in ("64", "256")]
        weakest = [min(psych[s].items(), key=lambda kv: kv[1]) for s in ("64", "256") if psych.get(s)]
        cells.append(" / ".join(f"{k} {100 * v:.0f}" for k, v in weakest) or "-")
        blur = card.feature_blur
        cells.append(f"{card.pixels_per_degree:g} ppd" + (f", blur {blur}" if blur else ""))
        flips = worst_flips(card.name)
        print(f"| `{card.name}` | {' | '.join(cells)} | {params / 1e6:.2f} M | {gflops(m, 64):.3f} | "
              f"{gflops(m, 256):.2f} | {'-' if top1 is None else f'{100 * top1:.1f}%'} | "
              f"{card.training.get('epoch', 0):.2f} | {card.default_mode} | "
              f"{round(100 * card.scores['proxy']['2afc'], 1) if '2afc' in card.scores.get('proxy', {}) else '-'} | "
              f"{'-' if flips is None else f'{100 * flips:.2f}%'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
