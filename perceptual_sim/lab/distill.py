"""Feature distillation: train a small ``conv_student`` so that its unit-normalised feature maps
match a teacher's at the same strides (the teacher: EfficientNet-Lite0, ImageNet-trained, fed the
image at its own size).

Loss: the metric's own spatial term between student and teacher maps, summed over the matched
strides, ``Σ_l mean_hw ||ŝ_l - t̂_l||²`` (unit-normalised over channels), on Tiny-ImageNet images
augmented so that the student sees what the metric will be asked about: crop and flip, a random
zoom (a smaller crop upsampled, for the smoother pixels of large images), global photometric
changes, and distortions (white, band-limited or blotchy noise, blur, a small shift). An optional
shift-consistency term (as :mod:`perceptual_sim.lab.train`) holds the student's distance between an
image and itself moved 1-3 px small. AdamW, linear warm-up, cosine decay; checkpoints
(safetensors + JSON, nothing pickled) at fixed steps, resumable with the same command.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from .._version import __version__
from ..backbones import build_backbone
from ..csf import csf_filter
from ..models.card import ModelCard, save_model
from .train import (
    distort,
    feature_loss,
    load_dataset,
    log_terms,
    optimise,
    photometric,
    resume,
    save_checkpoint,
    shift_loss,
    start_run,
    to_unit,
)

TEACHER_MEAN = (127 / 255,) * 3
TEACHER_STD = (128 / 255,) * 3
"""EfficientNet-Lite0's input normalisation, ``(255 x - 127) / 128``, as a card's mean and std."""


@dataclass
class DistillRecipe:
    """Everything that defines a distillation run (recorded in every checkpoint and card)."""

    data: str
    arch_args: dict[str, Any] = field(default_factory=dict)
    teacher: str = "efficientnet-lite0"
    steps: int = 12000
    batch_size: int = 96
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 300
    seed: int = 0
    photometric: float = 1.0
    distort: float = 0.6
    zoom: float = 0.5
    shift_consistency: float = 0.0
    teacher_pixels_per_degree: float = 0.0
    """The teacher sees the images at this viewing condition (:func:`csf_filter`; 0: as they are); the
    student sees them as they are, so it learns the contrast sensitivity and runs without the filter."""
    feature_blur: float | tuple[float, ...] = 0.0
    """The loss compares the maps blurred as the metric's ``feature_blur`` does, one sigma or one per
    matched stride (the exported card carries it)."""


class Teacher:
    """EfficientNet-Lite0 (``efficientnet-lite0`` model) tapped at the last block of each stride."""

    def __init__(self, strides: list[int], pixels_per_degree: float = 0.0) -> None:
        from ..backbones.efficientnet import TAP_BLOCKS
        from ..metric import PerceptualDistance

        net = PerceptualDistance.from_pretrained("efficientnet-lite0").backbone
        net.blocks = net.blocks[: TAP_BLOCKS[len(strides) - 1] + 1]  # nothing past the last matched tap
        self.net = net
        self.strides = strides
        self.pixels_per_degree = pixels_per_degree

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.pixels_per_degree:
            x = csf_filter(x, self.pixels_per_degree)
        maps = self.net(((x - 127 / 255) / (128 / 255)).contiguous(memory_format=torch.channels_last))
        by_stride = {x.shape[-1] // m.shape[-1]: m for m in maps}
        return [by_stride[s] for s in self.strides]


def zoom_crop(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """With probability ``p`` (per batch), a random square crop of 1/2 to 7/8 of the side resized back
    to the batch's size (bilinear): smoother pixels, as in large images; else a crop after 4 px reflect
    padding. Then a random horizontal flip per image."""
    n, _, h, w = x.shape
    if torch.rand(1, generator=gen).item() < p:
        side = int(torch.randint(h // 2, h * 7 // 8 + 1, (1,), generator=gen).item())
        i, j = (int(torch.randint(0, h - side + 1, (1,), generator=gen).item()) for _ in range(2))
        x = F.interpolate(x[:, :, i : i + side, j : j + side], size=(h, w), mode="bilinear", align_corners=False)
    else:
        padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
        i, j = (int(torch.randint(0, 9, (1,), generator=gen).item()) for _ in range(2))
        x = padded[:, :, i : i + h, j : j + w]
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.where(flip.view(n, 1, 1, 1), x.flip(3), x)


def student_strides(arch_args: dict[str, Any]) -> list[int]:
    from ..models.archs import check_arch_args, student_stages

    return [2 ** (i + 1) for i in range(len(student_stages(check_arch_args("conv_student", arch_args))))]


def lr_at(recipe: DistillRecipe, step: int) -> float:
    if step < recipe.warmup_steps:
        return recipe.lr * (step + 1) / recipe.warmup_steps
    t = (step - recipe.warmup_steps) / max(1, recipe.steps - recipe.warmup_steps)
    return 0.5 * recipe.lr * (1 + math.cos(math.pi * min(1.0, t)))


def checkpoint_steps(total: int) -> list[int]:
    """Every tenth of the run, and the 1st and 3rd twentieth (early stopping is chosen from these)."""
    return sorted({max(1, round(total * k / 20)) for k in (1, 3)} | {round(total * k / 10) for k in range(1, 11)})


def distill(recipe: DistillRecipe, out: Path, *, cache: Path, threads: int | None = None,
            log_every: int = 50) -> Path:
    """Run (or resume) the distillation in ``out``; returns the folder. Safe to interrupt and re-run."""
    out = start_run(out, recipe, threads)
    data = load_dataset(Path(recipe.data), cache)
    strides = student_strides(recipe.arch_args)
    teacher = Teacher(strides, recipe.teacher_pixels_per_degree)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = build_backbone("conv_student", recipe.arch_args)
    model = model.to(memory_format=torch.channels_last)
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": recipe.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=recipe.lr)
    gen = torch.Generator().manual_seed(recipe.seed)
    marks = checkpoint_steps(recipe.steps)
    step = 0
    last = resume(out, model, opt, gen)
    if last is not None:
        step = last["step"]
        print(f"resumed from step-{step:07d} (step {step}/{recipe.steps})", file=sys.stderr)
    val = torch.from_numpy(data["val_x"][:: max(1, len(data["val_x"]) // 512)][:512])
    n_train = len(data["train_x"])
    model.train()
    t0, seen = time.time(), 0
    while step < recipe.steps:
        idx = torch.randint(0, n_train, (recipe.batch_size,), generator=gen).sort().values.numpy()
        x = zoom_crop(to_unit(torch.from_numpy(data["train_x"][idx])), recipe.zoom, gen)
        if recipe.photometric > 0:
            x = photometric(x, recipe.photometric, gen)
        x = distort(x, recipe.distort, gen)
        target = teacher(x)
        for g in opt.param_groups:
            g["lr"] = lr_at(recipe, step)
        s_in = _student_input(x)
        loss = feature_loss(model(s_in), target, recipe.feature_blur)
        q = max(1, len(s_in) // 4)
        terms = optimise(opt, loss, {"shift": (recipe.shift_consistency, partial(shift_loss, model, s_in[:q], gen))})
        step += 1
        seen += len(idx)
        if step % log_every == 0 or step == recipe.steps:
            rate = seen / (time.time() - t0)
            eta = (recipe.steps - step) * recipe.batch_size / rate
            print(f"step {step}/{recipe.steps} loss {loss.item():.4f}{log_terms(terms)} lr {lr_at(recipe, step - 1):.5f} "
                  f"{rate:.0f} img/s ETA {eta / 60:.1f} min", file=sys.stderr, flush=True)
        if step in marks:
            fidelity = evaluate_fidelity(model, teacher, val, recipe.feature_blur)
            save_checkpoint(out, model, opt, gen, {"step": step, "fidelity": fidelity, "train_loss": loss.item()},
                            "step,fidelity,train_loss", f"{step},{fidelity:.5f},{loss.item():.5f}")
            model.train()
            print(f"checkpoint step {step}: val fidelity loss {fidelity:.4f}", file=sys.stderr, flush=True)
    return out


def _student_input(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(TEACHER_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(TEACHER_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def evaluate_fidelity(model: torch.nn.Module, teacher: Teacher, val_u8: torch.Tensor,
                      blur: float | Sequence[float] = 0.0) -> float:
    """:func:`feature_loss` on clean validation images (lower: closer to the teacher)."""
    model.eval()
    total = 0.0
    for i in range(0, len(val_u8), 128):
        x = to_unit(val_u8[i : i + 128])
        total += feature_loss(model(_student_input(x)), teacher(x), blur).item() * len(x)
    return total / len(val_u8)


def export(run: Path, step: int, name: str, dest: Path, *, summary: str = "", scores: dict[str, Any] | None = None,
           overwrite: bool = False) -> ModelCard:
    """Write checkpoint ``step`` of the distillation ``run`` as a metric model."""
    run = Path(run)
    record_file = run / f"step-{step:07d}.json"
    if not record_file.is_file():
        steps = [json.loads(p.read_text())["step"] for p in sorted(run.glob("step-*.json"))]
        raise ValueError(f"{run} has no checkpoint at step {step}; it has steps {steps}")
    recipe = json.loads((run / "recipe.json").read_text())
    record = json.loads(record_file.read_text())
    state = load_file(str(record_file.with_suffix(".safetensors")))
    backbone = {f"backbone.{k[6:]}": v for k, v in state.items() if k.startswith("model.")}
    card = ModelCard(
        name=name, arch="conv_student", arch_args=recipe["arch_args"], input_mean=TEACHER_MEAN, input_std=TEACHER_STD,
        default_mode="spatial", feature_blur=recipe.get("feature_blur", 0.0), summary=summary, scores=scores or {},
        training={"data": "Tiny-ImageNet, 202-class copy (101,000 train images, 64 x 64), teacher "
                          f"{recipe['teacher']}", "recipe": recipe, "step": record["step"],
                  "fidelity": record["fidelity"], "package_version": __version__},
        license="Apache-2.0 (code). Distilled on Tiny-ImageNet (ImageNet terms: non-commercial research and "
                "educational use) from EfficientNet-Lite0 (Apache-2.0, ImageNet-trained).",
    )
    dest = Path(dest)
    return save_model(card, backbone, dest / f"{name}.json" if dest.suffix != ".json" else dest, overwrite=overwrite)
