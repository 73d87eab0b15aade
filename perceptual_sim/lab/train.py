"""The recipe that makes mid-accuracy backbones: train a classifier at 64 x 64, checkpoint
densely early, resume after interruption, and export any checkpoint as card + safetensors.

Augmentation is random crop (4 px reflect padding) + horizontal flip, and optionally random
global photometric changes (``photometric`` strength: gamma, saturation, colour balance,
contrast, brightness), which teach the backbone the invariances people have. Optional terms of
the loss, each on a quarter of the batch: ``shift_consistency``, the spatial distance between an
image and itself moved 1-3 px (``shift_min``: only the larger shifts; ``shift_blur``: on maps
blurred as a card's ``feature_blur`` blurs them), so that fewer decisions flip under small
shifts; ``shift_order``, the share of decisions "which of two distortions is farther from the image"
that a 1-3 px shift of both changes, made soft (the shift protocol's own measure);
``photometric_consistency``, the distance between an image and itself under a random
global photometric change (people discount the illuminant and the tone curve); ``teacher_weight``,
the log-ratio of the network's distances to a teacher metric's on pairs of images. SGD with
momentum, linear warm-up, then cosine or step decay; no label smoothing, no dropout (K22: both hurt).
Checkpoints are safetensors (model, momentum buffers, RNG state) + a JSON record; nothing is
pickled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from safetensors.torch import save as save_tensors

from .._version import __version__
from ..backbones import build_backbone
from ..csf import csf_filter
from ..distances import blur_normalized, layer_terms
from ..files import write_atomic
from ..images import IMAGE_SUFFIXES, decode_square
from ..models.archs import tap_count
from ..models.card import IMAGENET_MEAN, IMAGENET_STD, ModelCard, save_model

IMAGE_SIZE = 64


@dataclass
class Recipe:
    """Everything that defines a training run (recorded in every checkpoint and card)."""

    data: str
    arch: str = "k22_resnet"
    arch_args: dict[str, Any] = field(default_factory=dict)
    epochs: float = 4.0
    batch_size: int = 256
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.5
    schedule: str = "cosine"
    step_milestones: tuple[float, ...] = (0.33, 0.66, 0.88)
    seed: int = 0
    optimizer: str = "sgd"
    photometric: float = 0.0
    shift_consistency: float = 0.0
    shift_min: int = 1
    """The shift-consistency term moves images by this many to :data:`MAX_SHIFT` px (1: the whole range
    of the shift protocol; larger: only the larger shifts, which flip more decisions)."""
    shift_blur: float | tuple[float, ...] = 0.0
    """The shift-consistency term compares the maps blurred by a Gaussian of this many positions (one sigma,
    or one per tapped map, as a card's ``feature_blur``; 0: as they are), so that it asks for the invariance
    the metric will use."""
    shift_blur_from: float = 0.0
    """``shift_blur`` applies from this fraction of the run's steps on (0: throughout); before it, the
    shift-consistency term compares the maps as they are, so the blur's invariance is asked for late, at small rates."""
    shift_order: float = 0.0
    """Weight of :func:`shift_order_loss` at the end of the run (on an eighth of each batch, five views each;
    0: off). It ramps in from 0 linearly over the steps: an untrained network's decisions are noise."""
    photometric_consistency: float = 0.0
    """Weight of :func:`photometric_loss` (on a quarter of each batch; 0: off)."""
    teacher: str = ""
    """A metric (bundled name, card path or ``hf-hub:``) whose distances :func:`teacher_loss` matches."""
    teacher_weight: float = 0.0
    """Weight of :func:`teacher_loss` (on a quarter of each batch; 0: off)."""
    pixels_per_degree: float = 0.0
    """Train and validate on the images as seen at this viewing condition (:func:`csf_filter`; 0:
    as they are); the exported card carries it, so the metric sees what the network learned on."""


def load_folder(root: Path, classes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode a class-per-folder tree into uint8 N x 64 x 64 x 3 images and int64 labels."""
    root = Path(root)
    if classes is None:
        classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise ValueError(f"{root} holds no class folders (expected ROOT/<class>/<image>)")
    files, labels = [], []
    for i, c in enumerate(classes):
        for p in sorted((root / c).rglob("*")):
            if p.suffix.lower() in IMAGE_SUFFIXES:
                files.append(p)
                labels.append(i)
    images = np.empty((len(files), IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    for k, p in enumerate(files):
        images[k] = decode_square(p, IMAGE_SIZE)
    return images, np.asarray(labels, np.int64), classes


def load_dataset(data: Path, cache: Path) -> dict[str, Any]:
    """Train and val splits of ``data`` (``train/`` and ``val/`` class folders), cached as .npy."""
    data = Path(data).resolve()
    key = hashlib.sha256(str(data).encode()).hexdigest()[:16]
    folder = Path(cache) / key
    names = ("train_x", "train_y", "val_x", "val_y")
    if all((folder / f"{n}.npy").is_file() for n in names) and (folder / "classes.json").is_file():
        out: dict[str, Any] = {n: np.load(folder / f"{n}.npy", allow_pickle=False) for n in names}
        out["classes"] = json.loads((folder / "classes.json").read_text())
        return out
    for split in ("train", "val"):
        if not (data / split).is_dir():
            raise ValueError(f"{data} must hold train/ and val/ class folders; {data / split} is missing")
    t0 = time.time()
    tx, ty, classes = load_folder(data / "train")
    vx, vy, _ = load_folder(data / "val", classes)
    print(f"decoded {len(tx)} train + {len(vx)} val images in {time.time() - t0:.0f}s", file=sys.stderr)
    folder.mkdir(parents=True, exist_ok=True)
    for n, a in zip(names, (tx, ty, vx, vy)):
        np.save(folder / f"{n}.npy", a)
    (folder / "classes.json").write_text(json.dumps(classes))
    return {"train_x": tx, "train_y": ty, "val_x": vx, "val_y": vy, "classes": classes}


def to_unit(batch: torch.Tensor) -> torch.Tensor:
    """uint8 N x H x W x 3 -> float N x 3 x H x W in [0, 1]."""
    return batch.permute(0, 3, 1, 2).float().div_(255)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> the ImageNet-normalised input the backbones are trained on."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


PHOTOMETRIC_RANGES = {"gamma": 0.4, "saturation": 0.5, "balance": 0.15, "contrast": 0.5, "brightness": 0.2}
"""At strength 1, each change is drawn uniformly per image: gamma, saturation, per-channel gain
(colour balance) and contrast factors ``exp(U(-r, r))``, a brightness shift ``U(-r, r)``."""


def photometric(x: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    """Random global photometric changes of [0, 1] images (per image), clamped to [0, 1].

    Gamma, then saturation (blend with the luma image), colour balance (per-channel gains),
    contrast (about the image mean), brightness (a shift); ranges in :data:`PHOTOMETRIC_RANGES`
    scaled by ``strength``.
    """
    n = x.shape[0]

    def factor(key: str, k: int = 1) -> torch.Tensor:
        r = PHOTOMETRIC_RANGES[key] * strength
        return torch.exp((torch.rand(n, k, generator=gen) * 2 - 1) * r).view(n, k, 1, 1)

    x = x.clamp(0, 1).pow(factor("gamma"))
    luma = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    x = luma + (x - luma) * factor("saturation")
    x = x * factor("balance", 3)
    mean = x.mean((1, 2, 3), keepdim=True)
    x = mean + (x - mean) * factor("contrast")
    shift = (torch.rand(n, generator=gen) * 2 - 1) * PHOTOMETRIC_RANGES["brightness"] * strength
    return (x + shift.view(n, 1, 1, 1)).clamp(0, 1)


def _crop(padded: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Per image, the h x w window of ``padded`` whose top-left corner is (dy, dx)."""
    n = padded.shape[0]
    rows = (dy[:, None] + torch.arange(h)[None]).view(n, 1, h, 1).expand(n, 3, h, padded.shape[3])
    out = padded.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None]).view(n, 1, 1, w).expand(n, 3, h, w)
    return out.gather(3, cols)


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop after 4 px reflect padding, and random horizontal flip (per image)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (4, 4, 4, 4), mode="reflect")
    out = _crop(padded, torch.randint(0, 9, (n,), generator=gen), torch.randint(0, 9, (n,), generator=gen), h, w)
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.where(flip.view(n, 1, 1, 1), out.flip(3), out)


MAX_SHIFT = 3
"""The shift-consistency term moves images by 1 to this many pixels (the shift protocol's range)."""


def shifted(x: torch.Tensor, gen: torch.Generator, low: int = 1) -> torch.Tensor:
    """Each image moved ``low``..:data:`MAX_SHIFT` px left, right, up or down (at random, per image);
    the uncovered border is reflected."""
    if not 1 <= low <= MAX_SHIFT:
        raise ValueError(f"the smallest shift must be 1 to {MAX_SHIFT} px, got {low}")
    _, _, h, w = x.shape
    dy, dx = _shift_corners(len(x), gen, low)
    return _crop(F.pad(x, (MAX_SHIFT,) * 4, mode="reflect"), dy, dx, h, w)


def _shift_corners(n: int, gen: torch.Generator, low: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the top-left corner (dy, dx) of a window moved ``low``..:data:`MAX_SHIFT` px left, right,
    up or down from (:data:`MAX_SHIFT`, :data:`MAX_SHIFT`)."""
    k = torch.randint(low, MAX_SHIFT + 1, (n,), generator=gen)
    k = torch.where(torch.rand(n, generator=gen) < 0.5, k, -k)
    vertical = torch.rand(n, generator=gen) < 0.5
    return MAX_SHIFT + torch.where(vertical, k, 0), MAX_SHIFT + torch.where(vertical, 0, k)


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur (sigma per image, in pixels; 0 leaves the image), reflected border."""
    r = 6
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t[None] / sigma.clamp_min(1e-3)[:, None]) ** 2)
    k = k / k.sum(1, keepdim=True)
    n, c, h, w = x.shape
    y = F.pad(x.reshape(1, n * c, h, w), (r, r, r, r), mode="reflect")
    kk = k.repeat_interleave(c, 0)
    y = F.conv2d(y, kk.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(y, kk.view(n * c, 1, -1, 1), groups=n * c)
    return y.view(n, c, h, w)


def distort(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Each image, with probability ``p``, gets one of: white noise, coarse (blotchy) noise, fine
    band-limited noise, chromatic noise, blur; amplitudes random, result clamped to [0, 1]."""
    n, _, h, w = x.shape
    kind = torch.randint(0, 5, (n,), generator=gen)
    on = torch.rand(n, generator=gen) < p
    sigma = torch.exp(torch.empty(n).uniform_(math.log(0.01), math.log(0.15), generator=gen)).view(n, 1, 1, 1)
    white = torch.randn(x.shape, generator=gen)
    grey = torch.randn((n, 1, h, w), generator=gen).expand_as(x)
    white = torch.where(torch.rand(n, 1, 1, 1, generator=gen) < 0.5, white, grey)
    cell = int(2 ** torch.randint(1, 5, (1,), generator=gen).item())  # 2..16 px blotches
    coarse = F.interpolate(torch.randn((n, 3, max(1, h // cell), max(1, w // cell)), generator=gen), size=(h, w),
                           mode="bicubic", align_corners=False)
    coarse = coarse / coarse.flatten(1).std(1).clamp_min(1e-6).view(n, 1, 1, 1)
    fine = white - _blur(white, torch.full((n,), 1.0))  # high-pass: energy near Nyquist
    fine = fine / fine.flatten(1).std(1).clamp_min(1e-6).view(n, 1, 1, 1)
    luma = torch.randn((n, 1, h, w), generator=gen)
    chroma = torch.randn(x.shape, generator=gen) - luma
    noises = torch.stack([white, coarse, fine, chroma])  # 4 x N x 3 x H x W
    pick = kind.clamp(max=3)
    noise = noises[pick, torch.arange(n)]
    noisy = x + sigma * noise
    blurred = _blur(x, torch.empty(n).uniform_(0.4, 2.5, generator=gen))
    out = torch.where((kind == 4).view(n, 1, 1, 1), blurred, noisy)
    return torch.where(on.view(n, 1, 1, 1), out, x).clamp(0, 1)


def spatial_distances(fa: Sequence[torch.Tensor], fb: Sequence[torch.Tensor],
                      blur: float | Sequence[float] = 0.0) -> torch.Tensor:
    """Per image, Σ over maps of ``mean_hw ||â - b̂||²`` (the metric's spatial distance, equal weights),
    each pair of normalised maps first blurred by ``blur`` positions where positive (one sigma, or one
    per map, as the card's ``feature_blur``)."""
    sigmas = list(blur) if isinstance(blur, Sequence) else [blur] * len(fa)
    fa = [blur_normalized(m, s) if s else m for m, s in zip(fa, sigmas)]
    fb = [blur_normalized(m, s) if s else m for m, s in zip(fb, sigmas)]
    return layer_terms("spatial", fa, fb).sum(1)


def feature_loss(fa: Sequence[torch.Tensor], fb: Sequence[torch.Tensor],
                 blur: float | Sequence[float] = 0.0) -> torch.Tensor:
    """The mean over images of :func:`spatial_distances`."""
    return spatial_distances(fa, fb, blur).mean()


def shift_loss(model: torch.nn.Module, x: torch.Tensor, gen: torch.Generator, blur: float = 0.0,
               low: int = 1) -> torch.Tensor:
    """Mean spatial distance (all tapped layers, unit-normalised, equal weights; with ``blur``, of the
    maps blurred by :func:`~perceptual_sim.distances.blur_normalized`) between each image of ``x`` and
    itself moved by :func:`shifted` (``low`` px or more)."""
    fa = model(x.contiguous(memory_format=torch.channels_last))
    fb = model(shifted(x, gen, low).contiguous(memory_format=torch.channels_last))
    return feature_loss(fa, fb, blur)


def _maps(model: torch.nn.Module, x: torch.Tensor, pixels_per_degree: float) -> list[torch.Tensor]:
    """The network's maps of [0, 1] images as the metric feeds its backbone: seen, clamped, normalised."""
    seen = csf_filter(x, pixels_per_degree).clamp(0, 1) if pixels_per_degree else x
    return model(normalize(seen).contiguous(memory_format=torch.channels_last))


SHIFT_ORDER_TEMPERATURE = 0.1
""":func:`shift_order_loss`'s sigmoid is this fraction of the batch's mean ``|d_b - d_a|`` wide."""


def shift_order_distances(model: torch.nn.Module, raw: torch.Tensor, gen: torch.Generator,
                          pixels_per_degree: float = 0.0) -> tuple[torch.Tensor, ...]:
    """``(d_a, d_b, d_a', d_b')`` per image of ``raw`` ([0, 1]), the shift protocol on the training images:
    each image is a reference; ``a`` and ``b`` are two :func:`distort` draws of it; ``d`` is the network's
    spatial distance from the reference's central window to theirs (seen at ``pixels_per_degree``), ``d'`` to
    theirs moved by one draw of :func:`shifted`'s offsets (the same for ``a`` and ``b``; nothing invented at
    the border). All five views go through the network in one pass (one set of batch statistics)."""
    n, _, h, w = raw.shape
    a, b = distort(raw, 1.0, gen), distort(raw, 1.0, gen)
    dy, dx = _shift_corners(n, gen)
    side_h, side_w = h - 2 * MAX_SHIFT, w - 2 * MAX_SHIFT
    centre = torch.full((n,), MAX_SHIFT)
    views = [_crop(t, centre, centre, side_h, side_w) for t in (raw, a, b)] + [
        _crop(t, dy, dx, side_h, side_w) for t in (a, b)]
    ref, da, db, sa, sb = zip(*(m.chunk(5) for m in _maps(model, torch.cat(views), pixels_per_degree)))
    return tuple(spatial_distances(ref, other) for other in (da, db, sa, sb))


def shift_order_loss(model: torch.nn.Module, raw: torch.Tensor, gen: torch.Generator,
                     pixels_per_degree: float = 0.0) -> torch.Tensor:
    """The share of :func:`shift_order_distances`' decisions that the shift changes, made soft:
    ``mean(sigmoid(-sign(d_b - d_a) (d_b' - d_a') / t))``, ``t`` being :data:`SHIFT_ORDER_TEMPERATURE` times
    the batch's mean ``|d_b - d_a|`` (neither differentiated). Only the shifted decision is pulled towards
    the unshifted one; features that ignore the image score 0.5, the worst an untrained network scores, so
    the term cannot be met by dying features."""
    return soft_flips(*shift_order_distances(model, raw, gen, pixels_per_degree))


def soft_flips(d_a: torch.Tensor, d_b: torch.Tensor, s_a: torch.Tensor, s_b: torch.Tensor,
               temperature: float = SHIFT_ORDER_TEMPERATURE) -> torch.Tensor:
    """``mean(sigmoid(-sign(d_b - d_a) (s_b - s_a) / t))``, ``t`` = ``temperature`` x the mean ``|d_b - d_a|``
    (the unshifted side not differentiated): the share of decisions the shifted distances change, made soft."""
    margin = (d_b - d_a).detach()
    width = (temperature * margin.abs().mean()).clamp_min(1e-8)
    return torch.sigmoid(-margin.sign() * (s_b - s_a) / width).mean()


def photometric_loss(model: torch.nn.Module, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Mean spatial distance (all tapped layers, unit-normalised, equal weights) between each [0, 1]
    image of ``x`` and itself under :func:`photometric` at strength 1, both fed normalised."""
    fa = model(normalize(x).contiguous(memory_format=torch.channels_last))
    fb = model(normalize(photometric(x, 1.0, gen)).contiguous(memory_format=torch.channels_last))
    return feature_loss(fa, fb)


def teacher_loss(model: torch.nn.Module, teacher: torch.nn.Module, raw: torch.Tensor, gen: torch.Generator,
                 pixels_per_degree: float = 0.0) -> torch.Tensor:
    """Mean over pairs of ``(log(d_student + 1e-3) - log(d_teacher + 1e-3))²``: the network's spatial
    distance (images seen at ``pixels_per_degree``, maps blurred as the teacher's card blurs them) against
    the ``teacher`` metric's (a :class:`~perceptual_sim.PerceptualDistance`, on the same [0, 1] images)
    between each image of ``raw`` and, by quarters: itself under :func:`distort`, under :func:`photometric`
    at strength 1, moved by :func:`shifted`, and another image of ``raw``."""
    k = max(1, len(raw) // 4)
    other = torch.cat([distort(raw[:k], 1.0, gen), photometric(raw[k : 2 * k], 1.0, gen),
                       shifted(raw[2 * k : 3 * k], gen), raw[3 * k :].roll(1, 0)])
    with torch.no_grad():
        d_teacher = teacher(raw, other)

    d_student = spatial_distances(_maps(model, raw, pixels_per_degree), _maps(model, other, pixels_per_degree),
                                  teacher.card.feature_blur)
    return ((d_student + 1e-3).log() - (d_teacher + 1e-3).log()).pow(2).mean()


def lr_at(recipe: Recipe, step: int, steps_per_epoch: int) -> float:
    epoch = step / steps_per_epoch
    if epoch < recipe.warmup_epochs:
        return recipe.lr * (step + 1) / max(1, round(recipe.warmup_epochs * steps_per_epoch))
    if recipe.schedule == "cosine":
        span = max(1e-9, recipe.epochs - recipe.warmup_epochs)
        return 0.5 * recipe.lr * (1 + math.cos(math.pi * min(1.0, (epoch - recipe.warmup_epochs) / span)))
    drops = sum(epoch >= m * recipe.epochs for m in recipe.step_milestones)
    return recipe.lr * 0.1**drops


def checkpoint_steps(steps_per_epoch: int, epochs: float) -> list[int]:
    """Dense early, sparse late: 8 per epoch in epoch 1, 4 in epochs 2-3, 1 per epoch to 10, then every 5."""
    total = round(epochs * steps_per_epoch)
    marks: set[float] = {k / 8 for k in range(1, 9)} | {1 + k / 4 for k in range(1, 9)}
    marks |= set(range(4, 11)) | set(range(15, int(epochs) + 1, 5)) | {epochs}
    return sorted({min(total, max(1, round(m * steps_per_epoch))) for m in marks if m <= epochs})


@torch.no_grad()
def evaluate_top1(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 500,
                  pixels_per_degree: float = 0.0) -> tuple[float, float]:
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(x), batch):
        images = to_unit(torch.from_numpy(x[i : i + batch]))
        if pixels_per_degree:
            images = csf_filter(images, pixels_per_degree)
        logits = model.classify(normalize(images))
        t = torch.from_numpy(y[i : i + batch])
        loss += F.cross_entropy(logits, t, reduction="sum").item()
        correct += (logits.argmax(1) == t).sum().item()
    model.train()
    return correct / len(x), loss / len(x)


def _latest_checkpoint(out: Path) -> Path | None:
    records = sorted(out.glob("step-*.json"))
    return records[-1] if records else None


def start_run(out: Path, recipe: Any, threads: int | None) -> Path:
    """Create (or re-open) the run folder ``out`` for ``recipe`` (a dataclass, saved as ``recipe.json``);
    ValueError if it holds a run with another recipe. Fields added since the run started take their
    defaults. Sets torch's threads when given."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    recipe_file = out / "recipe.json"
    if recipe_file.is_file():
        saved = {**dataclasses.asdict(type(recipe)(data="")), **json.loads(recipe_file.read_text())}
        if saved != json.loads(json.dumps(dataclasses.asdict(recipe))):
            raise ValueError(f"{out} holds a run with another recipe ({recipe_file}); use a new --out folder")
    else:
        recipe_file.write_text(json.dumps(dataclasses.asdict(recipe), indent=2))
    if threads:
        torch.set_num_threads(threads)
    return out


def train(recipe: Recipe, out: Path, *, cache: Path, threads: int | None = None, log_every: int = 50) -> Path:
    """Train (or resume) the run in ``out``; returns the folder. Safe to interrupt and re-run."""
    if not 1 <= recipe.shift_min <= MAX_SHIFT:
        raise ValueError(f"shift_min must be 1 to {MAX_SHIFT} px, got {recipe.shift_min}")
    if not 0 <= recipe.shift_blur_from < 1:
        raise ValueError(f"shift_blur_from must be a fraction of the run in [0, 1), got {recipe.shift_blur_from}")
    per_map = isinstance(recipe.shift_blur, Sequence)
    sigmas = recipe.shift_blur if per_map else (recipe.shift_blur,)
    if not all(0 <= s < math.inf for s in sigmas):
        raise ValueError(f"shift_blur must be sigmas >= 0, got {recipe.shift_blur}")
    if per_map and len(sigmas) != (taps := tap_count(recipe.arch, recipe.arch_args)):
        raise ValueError(f"shift_blur has {len(sigmas)} sigmas, but {recipe.arch} with these arch_args "
                         f"taps {taps} maps; give one sigma per tapped map or a single number")
    teacher = None
    if recipe.teacher_weight > 0:
        if not recipe.teacher:
            raise ValueError("teacher_weight is set but no teacher is named: give a model name or card path")
        from ..metric import PerceptualDistance

        teacher = PerceptualDistance.from_pretrained(recipe.teacher)
    out = start_run(out, recipe, threads)
    data = load_dataset(Path(recipe.data), cache)
    n_classes = len(data["classes"])
    with torch.random.fork_rng(devices=[]):  # the initial weights follow the recipe's seed, not the caller's RNG
        torch.manual_seed(recipe.seed)
        model = build_backbone(recipe.arch, {**recipe.arch_args, "num_classes": n_classes})
    model = model.to(memory_format=torch.channels_last)
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if recipe.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=False)
    elif recipe.optimizer == "adamw":
        opt = torch.optim.AdamW(groups, lr=recipe.lr)
    else:
        raise ValueError(f"optimizer must be sgd or adamw, got {recipe.optimizer!r}")
    n_train = len(data["train_x"])
    steps_per_epoch = n_train // recipe.batch_size
    total = round(recipe.epochs * steps_per_epoch)
    marks = checkpoint_steps(steps_per_epoch, recipe.epochs)
    gen = torch.Generator().manual_seed(recipe.seed)
    step = 0
    last = resume(out, model, opt, gen)
    if last is not None:
        step = last["step"]
        print(f"resumed from step-{step:07d} (step {step}/{total})", file=sys.stderr)
    perm = None
    model.train()
    t0, seen = time.time(), 0
    while step < total:
        epoch_idx, pos = divmod(step, steps_per_epoch)
        perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(recipe.seed * 100003 + epoch_idx))
        idx = perm[pos * recipe.batch_size : (pos + 1) * recipe.batch_size].numpy()
        x = to_unit(torch.from_numpy(data["train_x"][np.sort(idx)]))
        if recipe.photometric > 0:
            x = photometric(x, recipe.photometric, gen)
        raw = x
        if recipe.pixels_per_degree:
            x = csf_filter(x, recipe.pixels_per_degree)
        seen_x = augment(x, gen)  # crops and flips commute with the per-channel normalisation
        x = normalize(seen_x)
        y = torch.from_numpy(data["train_y"][np.sort(idx)])
        lr = lr_at(recipe, step, steps_per_epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        loss = F.cross_entropy(model.classify(x.contiguous(memory_format=torch.channels_last)), y)
        q = max(1, len(x) // 4)  # each consistency term: a quarter of the batch, two more passes
        shift_blur = recipe.shift_blur if step >= recipe.shift_blur_from * total else 0.0
        terms = optimise(opt, loss, {
            "photometric": (recipe.photometric_consistency, partial(photometric_loss, model, seen_x[:q], gen)),
            "shift": (recipe.shift_consistency, partial(shift_loss, model, x[:q], gen, shift_blur, recipe.shift_min)),
            "teacher": (recipe.teacher_weight, partial(teacher_loss, model, teacher, raw[:q], gen, recipe.pixels_per_degree)),
            "order": (recipe.shift_order * step / total, partial(shift_order_loss, model, raw[: max(1, q // 2)], gen,
                                                  recipe.pixels_per_degree)),  # 5 views each: an eighth
        })
        step += 1
        seen += len(idx)
        if step % log_every == 0 or step == total:
            rate = seen / (time.time() - t0)
            eta = (total - step) * recipe.batch_size / rate
            print(f"step {step}/{total} epoch {step / steps_per_epoch:.3f} loss {loss.item():.3f}{log_terms(terms)} lr {lr:.4f} "
                  f"{rate:.0f} img/s ETA {eta / 60:.1f} min", file=sys.stderr, flush=True)
        if step in marks:
            top1, val_loss = evaluate_top1(model, data["val_x"], data["val_y"],
                                           pixels_per_degree=recipe.pixels_per_degree)
            _save_checkpoint(out, model, opt, gen, step, steps_per_epoch, top1, val_loss, loss.item())
            print(f"checkpoint step {step}: val top-1 {100 * top1:.2f}% val loss {val_loss:.3f}", file=sys.stderr, flush=True)
    return out


def _save_checkpoint(out: Path, model, opt, gen, step, steps_per_epoch, top1, val_loss, train_loss) -> None:
    record = {"step": step, "epoch": step / steps_per_epoch, "val_top1": top1, "val_loss": val_loss,
              "train_loss": train_loss}
    save_checkpoint(out, model, opt, gen, record, "step,epoch,val_top1,val_loss,train_loss",
                    f"{step},{step / steps_per_epoch:.4f},{top1:.4f},{val_loss:.4f},{train_loss:.4f}")


def optimise(opt: torch.optim.Optimizer, loss: torch.Tensor,
             terms: dict[str, tuple[float, Callable[[], torch.Tensor]]]) -> dict[str, torch.Tensor]:
    """One optimiser step on ``loss`` plus ``weight x term()`` for each named term whose weight is
    positive (computed in the dict's order, which fixes the random draws). Returns the terms computed."""
    computed, total = {}, loss
    for name, (weight, term) in terms.items():
        if weight > 0:
            computed[name] = term()
            total = total + weight * computed[name]
    opt.zero_grad(set_to_none=True)
    total.backward()
    opt.step()
    return computed


def log_terms(terms: dict[str, torch.Tensor]) -> str:
    """`` shift 0.1234 photometric 0.5678`` for the terms :func:`optimise` returned (empty when none)."""
    return "".join(f" {k} {terms[k].item():.4f}" for k in ("shift", "photometric", "teacher", "order")
                   if k in terms)


def save_checkpoint(out: Path, model, opt, gen, record: dict[str, Any], header: str, row: str) -> None:
    """Checkpoint ``step-NNNNNNN``: model, optimiser state and RNG as safetensors, then ``record`` (with
    the time) as JSON, then ``row`` appended to ``log.csv`` (``header`` first in a new file)."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        for key, v in opt.state.get(p, {}).items():
            tensors[f"optim.{i}.{key}"] = v if torch.is_tensor(v) else torch.tensor(v)
    tensors["rng"] = gen.get_state()
    name = f"step-{record['step']:07d}"
    # the tensors first, then the record, each renamed into place: a checkpoint whose record
    # exists is complete (for resume after a crash, and for a sweep reading beside the run)
    write_atomic(out / f"{name}.safetensors", save_tensors({k: v.contiguous() for k, v in tensors.items()}))
    record = {**record, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_atomic(out / f"{name}.json", json.dumps(record, indent=2).encode())
    with open(out / "log.csv", "a") as f:
        if f.tell() == 0:
            f.write(header + "\n")
        f.write(row + "\n")


def resume(out: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, gen: torch.Generator) -> dict[str, Any] | None:
    """Load the run's last checkpoint (:func:`save_checkpoint`) into ``model``, ``opt`` and ``gen``;
    its record, or None when the run has none."""
    last = _latest_checkpoint(out)
    if last is None:
        return None
    state = load_file(str(last.with_suffix(".safetensors")))
    model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")}, strict=True)
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, p in enumerate(params):
        for key in ("momentum_buffer", "exp_avg", "exp_avg_sq", "step"):
            if f"optim.{i}.{key}" in state:
                opt.state[p][key] = state[f"optim.{i}.{key}"]
    gen.set_state(state["rng"])
    return json.loads(last.read_text())


def checkpoints(run: Path) -> list[dict[str, Any]]:
    """The records of a run's checkpoints, in step order."""
    return [json.loads(p.read_text()) for p in sorted(Path(run).glob("step-*.json"))]


def export(run: Path, step: int, name: str, dest: Path, *, default_mode: str = "spatial",
           feature_blur: float | tuple[float, ...] = 0.0,
           summary: str = "", scores: dict[str, Any] | None = None, data: str | None = None,
           overwrite: bool = False) -> ModelCard:
    """Write checkpoint ``step`` of ``run`` as a metric model (classifier head dropped).

    ``feature_blur`` goes into the card (:class:`~perceptual_sim.models.card.ModelCard`); ``data``
    describes the training data in the card (default: the recipe's data path).
    """
    run = Path(run)
    record_file = run / f"step-{step:07d}.json"
    if not record_file.is_file():
        steps = [r["step"] for r in checkpoints(run)]
        raise ValueError(f"{run} has no checkpoint at step {step}; it has steps {steps}")
    recipe = json.loads((run / "recipe.json").read_text())
    record = json.loads(record_file.read_text())
    state = load_file(str(record_file.with_suffix(".safetensors")))
    backbone = {f"backbone.{k[6:]}": v for k, v in state.items()
                if k.startswith("model.") and not k.startswith(("model.net.fc.", "model.net.head."))}
    card = ModelCard(
        name=name, arch=recipe["arch"], arch_args=recipe["arch_args"], default_mode=default_mode,
        feature_blur=feature_blur, pixels_per_degree=recipe.get("pixels_per_degree", 0.0), summary=summary,
        scores=scores or {},
        training={"data": data or recipe["data"], "recipe": recipe, "step": record["step"], "epoch": record["epoch"],
                  "val_top1": record["val_top1"], "package_version": __version__},
        license="Apache-2.0 (code). Weights trained on Tiny-ImageNet, a subset of ImageNet: "
                "ImageNet terms apply (non-commercial research and educational use).",
    )
    dest = Path(dest)
    return save_model(card, backbone, dest / f"{name}.json" if dest.suffix != ".json" else dest, overwrite=overwrite)
