"""What several test modules need: random models and images on disk, a BAPPS tree, torchrun (not a test module)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from perceptual_sim.metric import PerceptualDistance
from perceptual_sim.models.card import ModelCard, save_model


# ----------------------------------------------------------------------------- models
def make_model(folder: Path, name: str = "tiny", arch: str = "k22_resnet", arch_args: dict | None = None,
               mode: str = "spatial", layer_weights: bool = False, seed: int = 0,
               feature_blur: float | list[float] = 0.0) -> Path:
    """Write a random-initialised model (card + safetensors) and return the card path."""
    torch.manual_seed(seed)
    card = ModelCard(name=name, arch=arch, arch_args=arch_args if arch_args is not None else {"width": 0.25},
                     default_mode=mode, layer_weights=layer_weights, feature_blur=feature_blur,
                     summary="random weights (tests)")
    module = PerceptualDistance(card)
    # Give batch norm non-trivial statistics so eval mode matters.
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    if layer_weights:
        for w in module.layer_weights:
            w.data.uniform_(0, 1)
    path = folder / f"{name}.json"
    save_model(card, module.state_dict(), path)
    return path


# ----------------------------------------------------------------------------- images
def save_pixels(path: Path, pixels: np.ndarray, mode: str = "RGB") -> Path:
    """Write H x W x 3 uint8 ``pixels`` as a PNG (converted to Pillow ``mode``), making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(pixels)).convert(mode).save(path, format="PNG")
    return path


def save_random_image(path: Path, seed: int, size: tuple[int, int] = (32, 48), mode: str = "RGB") -> Path:
    """A PNG of random pixels (``seed``) of ``size`` (H, W), converted to ``mode``."""
    return save_pixels(path, np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8), mode)


def natural_images(n: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic natural-ish images in [0, 1] (smooth waves + blurred shapes) and distorted copies."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    refs, dists = [], []
    for i in range(n):
        base = np.zeros((h, w, 3))
        for c in range(3):
            for _ in range(4):
                fy, fx = rng.uniform(0.5, 6, 2)
                phase = rng.uniform(0, 2 * np.pi)
                base[..., c] += rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * (fy * yy + fx * xx) + phase)
        img = Image.fromarray(np.uint8(255 * (base - base.min()) / (np.ptp(base) + 1e-9)))
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            box = sorted(rng.uniform(0, w, 2)) + sorted(rng.uniform(0, h, 2))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            x0, x1, y0, y1 = box
            if rng.random() < 0.5:
                draw.ellipse((x0, y0, x1, y1), fill=colour)
            else:
                draw.polygon([tuple(p) for p in rng.uniform((0, 0), (w, h), (4, 2))], fill=colour)
        img = img.filter(ImageFilter.GaussianBlur(0.8))
        kind = i % 4
        if kind == 0:
            dist = img.filter(ImageFilter.GaussianBlur(1.5))
        elif kind == 1:
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=15)
            dist = Image.open(buf).convert("RGB")
        elif kind == 2:
            arr = np.asarray(img, dtype=np.float64) + rng.normal(0, 12, (h, w, 3))
            dist = Image.fromarray(np.uint8(arr.clip(0, 255)))
        else:
            dist = Image.fromarray(np.roll(np.asarray(img), (2, 1), (0, 1)))
        refs.append(np.asarray(img))
        dists.append(np.asarray(dist))

    def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255

    return to_tensor(refs), to_tensor(dists)


# ----------------------------------------------------------------------------- a BAPPS tree
# (kind, p) per triplet. "ref0": p0 == ref, so d0 = 0 < d1 -> 1 - p; "ref1": p1 == ref -> p;
# "tie": p0 == p1 -> 0.5.
TRIPLETS = {
    "traditional": [("ref0", 0.0), ("ref0", 0.2), ("ref1", 0.6), ("tie", 1.0)],  # 1, .8, .6, .5
    "cnn": [("ref1", 1.0), ("ref0", 0.6), ("tie", 0.2)],  # 1, .4, .5
    "color": [("ref0", 1.0), ("ref1", 0.2)],  # 0, .2
}
EXPECTED_2AFC = {"traditional": 2.9 / 4, "cnn": 1.9 / 3, "color": 0.2 / 2}

# JND pairs written in this file order; p1 = p0 + noise of the given amplitude (distance grows with it).
JND_AMPLITUDES = [0.3, 0.0, 0.1, 0.03]
JND_SAME = [0.0, 1.0, 1.0, 0.0]  # by ascending amplitude: same = 1, 0, 1, 0
EXPECTED_JND = 0.5 * 1.0 + 0.5 * (2 / 3)  # recall 0.5 at precision 1, recall 1 at precision 2/3


def save_judgement(path: Path, value: float) -> None:
    """A BAPPS ``judge``/``same`` file holding ``value``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.array([value], dtype=np.float32))


def make_bapps(root: Path, seed: int = 0) -> Path:
    """A BAPPS-layout tree: 2AFC traditional/cnn/color (:data:`TRIPLETS`), JND traditional (cnn absent)."""
    rng = np.random.default_rng(seed)

    def random_patch() -> np.ndarray:
        return rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)

    for fam, triplets in TRIPLETS.items():
        folder = root / "2afc" / "val" / fam
        for i, (kind, p) in enumerate(triplets):
            ref, other = random_patch(), random_patch()
            p0, p1 = {"ref0": (ref, other), "ref1": (other, ref), "tie": (other, other)}[kind]
            name = f"{i:06d}"
            for sub, img in (("ref", ref), ("p0", p0), ("p1", p1)):
                save_pixels(folder / sub / f"{name}.png", img)
            save_judgement(folder / "judge" / f"{name}.npy", p)
    folder = root / "jnd" / "val" / "traditional"
    base = random_patch().astype(np.float64)
    noise = rng.standard_normal(base.shape) * 255
    for i, (amp, same) in enumerate(zip(JND_AMPLITUDES, JND_SAME)):
        save_pixels(folder / "p0" / f"{i:06d}.png", base.astype(np.uint8))
        save_pixels(folder / "p1" / f"{i:06d}.png", np.clip(base + amp * noise, 0, 255).round().astype(np.uint8))
        save_judgement(folder / "same" / f"{i:06d}.npy", same)
    return root


# ----------------------------------------------------------------------------- torchrun
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def torchrun(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc_per_node 2 ARGS`` (a script, or ``-m MODULE ...``)."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *map(str, args)]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False)
