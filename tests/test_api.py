"""distance() and load() on the bundled default model."""

from pathlib import Path

import pytest
import torch

from perceptual_sim import DEFAULT_MODEL, distance, list_models, load
from perceptual_sim.images import load_image
from perceptual_sim.lab.evaluate.distortions import distort

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_default_model_is_bundled_and_trained_here():
    cards = {c.name: c for c in list_models()}
    assert DEFAULT_MODEL in cards
    card = cards[DEFAULT_MODEL]
    assert card.training["val_top1"] > 0.05 and card.sha256 and "proxy" in card.scores


def test_distance_on_natural_images_grows_with_distortion():
    x = load_image(EXAMPLES / "astronaut.png")[None]
    assert distance(x, x).item() == 0.0
    for kind in ("noise", "blur", "jpeg"):
        ds = [distance(x, distort(x, kind, level, torch.Generator().manual_seed(0))).item() for level in (1, 3, 5)]
        assert 0 < ds[0] < ds[1] < ds[2], (kind, ds)


def test_load_is_cached_per_options():
    assert load() is load(DEFAULT_MODEL)
    assert load(precision="bfloat16") is not load()
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    d = distance(x, torch.rand(2, 3, 64, 64))
    assert d.requires_grad and d.shape == (2,)
    with pytest.raises(TypeError, match="must be a torch.Tensor"):
        distance([1.0], [2.0])
