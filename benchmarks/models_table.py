"""The README's "Models" table, human yardsticks first: agreement with the human material
triplets (held-out part) and the psychophysics mean at 64 and 256 px in the default mode, then
parameters, FLOPs per image pair, top-1, the LPIPS-judged proxy (a regression check) and the
largest share of proxy decisions a 1-3 px shift flips in any mode (the shift constraint), read
from each bundled model's card.

    python benchmarks/models_table.py
"""

from __future__ import annotations

from functools import partial

import torch
from speed import count_flops  # benchmarks/speed.py, beside this script

from perceptual_sim import PerceptualDistance, list_models
from perceptual_sim.convert import REFERENCES


def gflops(model: PerceptualDistance, size: int) -> float:
    """GFLOPs (2 x multiply-adds) of one image pair at size x size, backbone and head."""
    x = torch.rand(1, 3, size, size)
    with torch.inference_mode():
        return count_flops(partial(model, x, x.flip(3))) / 1e9


def main() -> int:
    print("| model | human held-out @64 | @256 | psych @64 | @256 | params | GFLOPs/pair @64 | @256 | "
          "Tiny-ImageNet val top-1 | epoch | default mode | proxy 2AFC | worst shift flips |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for card in list_models():
        if card.name in REFERENCES:  # the bundled lpips-alex: a reference, not a model trained here
            continue
        m = PerceptualDistance.from_pretrained(card.name)
        params = sum(p.numel() for p in m.parameters())
        top1 = card.training.get("val_top1")
        mode = card.default_mode
        human = card.scores.get("human_triplets", {}).get(mode, {})
        psych = card.scores.get("psych", {}).get(mode, {})
        proxy = card.scores.get("proxy", {}).get(mode, {})
        flips = [v for scores in card.scores.get("proxy", {}).values() for k, v in scores.items() if k.startswith("flips_")]
        cells = [f"{100 * human[f'human_held_out_{s}']:.1f}" if f"human_held_out_{s}" in human else "-" for s in (64, 256)]
        cells += [f"{100 * psych[f'psych_{s}']:.1f}" if f"psych_{s}" in psych else "-" for s in (64, 256)]
        print(f"| `{card.name}` | {' | '.join(cells)} | {params / 1e6:.2f} M | {gflops(m, 64):.3f} | "
              f"{gflops(m, 256):.2f} | {'-' if top1 is None else f'{100 * top1:.1f}%'} | "
              f"{card.training.get('epoch', 0):.2f} | {mode} | "
              f"{'-' if '2afc' not in proxy else round(100 * proxy['2afc'], 1)} | "
              f"{f'{100 * max(flips):.2f}%' if flips else '-'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
