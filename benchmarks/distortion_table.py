"""What distances mean: each bundled model's distance (default mode) for common distortions at 256 px.

    python benchmarks/distortion_table.py [--json benchmarks/distortion_table.json] [--models NAME|CARD ...]

Images: the eight colour photographs that ship inside scikit-image (``pip install scikit-image``),
each centre-cropped to a square and resized to 260 px (PIL Lanczos); the reference is the middle
256 x 256. Distortions are applied to that 8-bit reference and saved as 8 bits again: JPEG at
several qualities (PIL), Gaussian blur (PIL ``GaussianBlur(radius=sigma)``), Gaussian noise (seed 0),
a shift of the picture by 1 or 2 px (the 256 px window moved over the 260 px image: no wrap-around,
no resampling) and brightness scaled by 0.9 or 1.1. Each cell is the median over the eight
photographs (min-max in the JSON). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

from perceptual_sim import DEFAULT_MODEL, PerceptualDistance, __version__, list_models
from perceptual_sim.convert import REFERENCES

PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "hubble_deep_field.jpg", "ihc.png",
          "motorcycle_left.png", "retina.jpg", "rocket.jpg")
SIZE, MARGIN = 256, 2


def _jpeg(quality: int) -> Callable[[Image.Image], Image.Image]:
    def apply(im: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        im.save(buffer, format="JPEG", quality=quality)
        return Image.open(buffer).convert("RGB")
    return apply


def _blur(sigma: float) -> Callable[[Image.Image], Image.Image]:
    def apply(im: Image.Image) -> Image.Image:
        return im.filter(ImageFilter.GaussianBlur(sigma))
    return apply


def _noise(sigma: float) -> Callable[[Image.Image], Image.Image]:
    def apply(im: Image.Image) -> Image.Image:
        rng = np.random.default_rng(0)
        noisy = np.asarray(im, dtype=np.float64) + 255 * sigma * rng.standard_normal((SIZE, SIZE, 3))
        return Image.fromarray(np.clip(noisy, 0, 255).round().astype(np.uint8))
    return apply


def _brightness(factor: float) -> Callable[[Image.Image], Image.Image]:
    def apply(im: Image.Image) -> Image.Image:
        return Image.fromarray(np.clip(np.asarray(im, dtype=np.float64) * factor, 0, 255).round().astype(np.uint8))
    return apply


DISTORTIONS: list[tuple[str, Callable[[Image.Image], Image.Image] | int]] = [
    *((f"JPEG quality {q}", _jpeg(q)) for q in (90, 75, 50, 30, 10)),
    *((f"Gaussian blur sigma {s:g} px", _blur(s)) for s in (0.5, 1, 2)),
    *((f"Gaussian noise sigma {s:g}", _noise(s)) for s in (0.02, 0.05, 0.1)),
    ("shift 1 px", 1),
    ("shift 2 px", 2),
    ("brightness x0.9", _brightness(0.9)),
    ("brightness x1.1", _brightness(1.1)),
]
"""(name, distortion of the 256 px reference, or a shift in pixels of the 260 px image)."""


def photos() -> list[Image.Image]:
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        sys.exit("error: the photographs come with scikit-image: pip install scikit-image")
    folder = Path(spec.origin).parent / "data"
    out = []
    for name in PHOTOS:
        with Image.open(folder / name) as im:
            im = im.convert("RGB")
            side = min(im.size)
            left, top = (im.width - side) // 2, (im.height - side) // 2
            out.append(im.crop((left, top, left + side, top + side)).resize((SIZE + 2 * MARGIN,) * 2, Image.LANCZOS))
    return out


def pairs() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Distortion name -> (references, distorted), each 8 x 3 x 256 x 256 uint8."""
    big = photos()
    window = (MARGIN, MARGIN, MARGIN + SIZE, MARGIN + SIZE)
    refs = [im.crop(window) for im in big]
    out = {}
    for name, distortion in DISTORTIONS:
        if isinstance(distortion, int):
            moved = [im.crop((window[0] + distortion, window[1], window[2] + distortion, window[3])) for im in big]
        else:
            moved = [distortion(im) for im in refs]
        out[name] = tuple(torch.stack([torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1) for im in ims])
                          for ims in (refs, moved))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=None, help="also write every cell (median, min, max) as JSON")
    ap.add_argument("--models", nargs="+", default=None, metavar="MODEL",
                    help="names or card paths to tabulate instead of the bundled models")
    args = ap.parse_args(argv)
    data = pairs()
    names = args.models or sorted((card.name for card in list_models()),
                                  key=lambda n: (n in REFERENCES, n != DEFAULT_MODEL, n))
    result: dict[str, dict[str, dict[str, float]]] = {}
    headers = []
    for model_name in names:
        model = PerceptualDistance.from_pretrained(model_name)
        headers.append(f"`{model.card.name}` ({model.mode})")
        with torch.inference_mode():
            for distortion, (x, y) in data.items():
                d = model(x, y).double().numpy()
                result.setdefault(distortion, {})[model_name] = {
                    "median": float(np.median(d)), "min": float(d.min()), "max": float(d.max())}
    print("| distortion (256 px) | " + " | ".join(headers) + " |")
    print("| --- |" + " --- |" * len(names))
    for distortion, cells in result.items():
        print(f"| {distortion} | " + " | ".join(f"{cells[n]['median']:.3g}" for n in names) + " |")
    if args.json is not None:
        args.json.write_text(json.dumps({"date": date.today().isoformat(), "version": __version__,
                                         "torch": torch.__version__, "photos": list(PHOTOS), "size": SIZE,
                                         "cells": result}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
