"""Ranking distillation (an experiment of issue 24; it did not help): fine-tune a bundled model so that,
for two changes of one image, it prefers the one its teacher prefers.

    python benchmarks/rank_distill.py --init resnet6-pa --out runs/rk-r1 --steps 3000 --lr 1e-4
    python benchmarks/distill_sweep.py --refs runs/rk-r1/rk-r1-s100.json ... --threads 1

Each step takes 32 Tiny-ImageNet train images ``x`` (zoom crop and flip as in ``train distill``) and two
changes ``a``, ``b`` of each (a noise or blur from :func:`perceptual_sim.lab.distill.distort`, or, for a
quarter, a global photometric change). The teacher (``efficientnet-lite0`` at its card's 60 pixels per
degree) gives ``d_t(x, a)`` and ``d_t(x, b)``; the loss is the cross-entropy between the student's
preference ``sigmoid(log(d_s(x, a) / d_s(x, b)) / tau)`` and the teacher's, plus ``--shift-consistency``
times the shift term of ``train run`` and ``--keep`` times the spatial distance between the student's
maps of ``x`` and the initial model's (to hold what the initial model knew). The student is the initial
model's card with ``pixels_per_degree`` 0 (it has to learn the viewing condition) and its other fields
kept; its batch norm stays in eval mode. Every 100 steps it is written as ``OUT/NAME-sSTEP.json``, a card
that ``distill_sweep.py --refs`` scores.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from perceptual_sim.distances import layer_terms
from perceptual_sim.files import cache_root
from perceptual_sim.lab.distill import distort, zoom_crop
from perceptual_sim.lab.train import load_dataset, photometric, shift_loss, to_unit
from perceptual_sim.metric import PerceptualDistance
from perceptual_sim.models.card import save_model


def distances(model: PerceptualDistance, x: torch.Tensor, changed: list[torch.Tensor]) -> list[torch.Tensor]:
    """The model's spatial distance between ``x`` and each batch of ``changed`` (one pass for ``x``)."""
    fx = model._mode_maps("spatial", model.backbone(model.prepare(x)))
    return [layer_terms("spatial", fx, model._mode_maps("spatial", model.backbone(model.prepare(y)))).sum(1)
            for y in changed]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init", default="resnet6-pa", help="the model to fine-tune")
    ap.add_argument("--teacher", default="efficientnet-lite0")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, default=Path("/tmp/tin"))
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--tau", type=float, default=0.1)
    ap.add_argument("--shift-consistency", type=float, default=0.15)
    ap.add_argument("--keep", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    student = PerceptualDistance.from_pretrained(args.init, pixels_per_degree=0.0)
    first = PerceptualDistance.from_pretrained(args.init, pixels_per_degree=0.0) if args.keep else None
    student.backbone.requires_grad_(True)
    teacher = PerceptualDistance.from_pretrained(args.teacher)
    data = load_dataset(args.data, cache_root() / "datasets")
    gen = torch.Generator().manual_seed(args.seed)
    opt = torch.optim.AdamW(student.backbone.parameters(), lr=args.lr, weight_decay=0.0)

    def changed(x: torch.Tensor) -> torch.Tensor:
        pick = (torch.rand(len(x), generator=gen) < 0.25).view(-1, 1, 1, 1)
        return torch.where(pick, photometric(x, 1.0, gen), distort(x, 1.0, gen))

    t0 = time.time()
    for step in range(1, args.steps + 1):
        idx = torch.randint(0, len(data["train_x"]), (args.batch_size,), generator=gen).sort().values.numpy()
        x = zoom_crop(to_unit(torch.from_numpy(data["train_x"][idx])), 0.5, gen)
        a, b = changed(x), changed(x)
        with torch.no_grad():
            ta, tb = distances(teacher, x, [a, b])
        sa, sb = distances(student, x, [a, b])
        target = torch.sigmoid(torch.log((ta + 1e-6) / (tb + 1e-6)) / args.tau)
        loss = F.binary_cross_entropy_with_logits(torch.log((sa + 1e-6) / (sb + 1e-6)) / args.tau, target)
        total = loss
        if args.shift_consistency:
            total = total + args.shift_consistency * shift_loss(student.backbone, student.prepare(x[: len(x) // 4]), gen)
        if args.keep:
            with torch.no_grad():
                before = first.backbone(first.prepare(x))
            total = total + args.keep * layer_terms("spatial", student.backbone(student.prepare(x)), before).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if step % 10 == 0:
            agree = ((sa > sb) == (ta > tb)).float().mean().item()
            print(f"step {step} ranking loss {loss.item():.4f} agreement with the teacher {agree:.3f} "
                  f"total {total.item():.4f} {time.time() - t0:.0f}s", file=sys.stderr, flush=True)
        if step % 100 == 0 or step == args.steps:
            name = f"{args.out.name}-s{step}"
            card = dataclasses.replace(student.card, name=name, pixels_per_degree=0.0)
            save_model(card, {k: v.detach().clone() for k, v in student.state_dict().items()},
                       args.out / f"{name}.json", overwrite=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
