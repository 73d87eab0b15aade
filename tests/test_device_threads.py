"""``from_pretrained(device=...)``, and the command line's ``--threads`` and ``--quiet``."""

from __future__ import annotations

import pytest
import torch

from perceptual_sim import PerceptualDistance


def test_from_pretrained_moves_the_built_module(tiny_card):
    default = PerceptualDistance.from_pretrained(str(tiny_card))
    assert default.device == torch.device("cpu")
    moved = PerceptualDistance.from_pretrained(str(tiny_card), device="meta")  # a real move, on any machine
    assert moved.device.type == "meta"
    assert all(p.device.type == "meta" for p in moved.parameters())
    auto = PerceptualDistance.from_pretrained(str(tiny_card), device="auto")
    assert auto.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(PerceptualDistance.from_pretrained(str(tiny_card), device=torch.device("cpu"))(x, x * 0.9),
                       default(x, x * 0.9))


def test_from_pretrained_refuses_a_bad_device(tiny_card):
    with pytest.raises(ValueError, match="not a torch device"):
        PerceptualDistance.from_pretrained(str(tiny_card), device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            PerceptualDistance.from_pretrained(str(tiny_card), device="cuda")
