"""The README's "Models" table: parameters, FLOPs per image pair, top-1 and proxy scores of
every bundled model (read from its card).

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
    print("| model | params | GFLOPs/pair @64 | @256 | Tiny-ImageNet val top-1 | epoch | default mode | "
          "proxy 2AFC (spatial / style / meanpool) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for card in list_models():
        if card.name in REFERENCES:  # the bundled lpips-alex: a reference, not a model trained here
            continue
        m = PerceptualDistance.from_pretrained(card.name)
        params = sum(p.numel() for p in m.parameters())
        top1 = card.training.get("val_top1")
        proxy = card.scores.get("proxy", {})
        cells = " / ".join(f"{100 * proxy[k]['2afc']:.1f}" if k in proxy else "-" for k in ("spatial", "style", "meanpool"))
        print(f"| `{card.name}` | {params / 1e6:.2f} M | {gflops(m, 64):.3f} | {gflops(m, 256):.2f} | "
              f"{'-' if top1 is None else f'{100 * top1:.1f}%'} | {card.training.get('epoch', 0):.2f} | "
              f"{card.default_mode} | {cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
