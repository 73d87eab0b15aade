"""Contrast sensitivity (perceptual_sim.csf): coarse structure passes, detail near Nyquist is attenuated
as the viewing condition says, and the filter is exact where it should be."""

from __future__ import annotations

import math

import pytest
import torch

from perceptual_sim.csf import PEAK_CPD, csf_filter, sensitivity


def grating(cycles_per_pixel: float, size: int = 64) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32)
    g = 0.5 + 0.25 * torch.cos(2 * math.pi * cycles_per_pixel * x)
    return g.view(1, 1, 1, size).expand(1, 3, size, size).clone()


def test_sensitivity_is_flat_below_its_peak_and_falls_above():
    f = torch.tensor([0.0, 1.0, PEAK_CPD, 16.0, 30.0])
    s = sensitivity(f)
    assert torch.equal(s[:3], torch.ones(3))
    assert 1 > s[3] > s[4] > 0


def test_ppd_zero_is_the_identity_and_flat_images_pass():
    x = torch.rand(2, 3, 20, 24)
    assert csf_filter(x, 0) is x
    flat = torch.full((1, 3, 20, 24), 0.3)
    assert torch.allclose(csf_filter(flat, 60), flat, atol=1e-6)


def test_fine_gratings_fade_with_more_pixels_per_degree():
    """A 0.4 cycles/px grating at 60 px/degree is 24 cycles/degree: its contrast falls to the CSF's value."""
    fine, coarse = grating(0.4), grating(0.1)
    contrast = lambda x: (x[..., 16:48, 16:48].amax() - x[..., 16:48, 16:48].amin()).item() / 0.5
    assert abs(contrast(csf_filter(coarse, 60)) - 1) < 0.02  # 6 cycles/degree: below the peak
    assert abs(contrast(csf_filter(fine, 60)) - sensitivity(torch.tensor(24.0)).item()) < 0.05
    assert contrast(csf_filter(fine, 90)) < contrast(csf_filter(fine, 30)) < 1


def test_a_model_at_a_viewing_condition_sees_less_of_fine_noise():
    """The metric filters both images (x at 60 px/degree): fine noise shrinks, d(x, x) stays 0, a card
    field sets the default and a bad value is refused."""
    import dataclasses

    from perceptual_sim import PerceptualDistance
    from perceptual_sim.models.card import ModelCard, WeightsError

    torch.manual_seed(0)
    card = ModelCard(name="t", arch="k22_resnet", arch_args={"width": 0.25})
    plain = PerceptualDistance(card)
    seen = PerceptualDistance(dataclasses.replace(card, pixels_per_degree=60.0))
    seen.load_state_dict(plain.state_dict())
    x = torch.full((1, 3, 64, 64), 0.5)
    fine = (x + 0.05 * (grating(0.45) - 0.5) / 0.25).clamp(0, 1)
    assert seen(x, x).item() == 0
    assert seen(x, fine).item() < 0.5 * plain(x, fine).item()
    assert PerceptualDistance(card, pixels_per_degree=60.0).pixels_per_degree == 60.0
    with pytest.raises(WeightsError, match="pixels_per_degree"):
        dataclasses.replace(card, pixels_per_degree=-1.0)


@pytest.mark.parametrize("block, images_per_chunk", [(32, 5), (7, 2)])
def test_the_filter_is_the_separable_convolution(block, images_per_chunk, monkeypatch):
    """Block by block (blocks cut anywhere, the last one short) and chunk by chunk of images (the
    last one short): one reflected separable convolution."""
    import torch.nn.functional as F

    from perceptual_sim import csf
    from perceptual_sim.csf import kernel, radius

    monkeypatch.setattr(csf, "BLOCK", block)
    monkeypatch.setattr(csf, "CHUNK_VALUES", images_per_chunk * 3 * 40 * 77)
    csf._block_matrix.cache_clear()
    x = torch.rand(5, 3, 40, 77)
    k, r = kernel(60.0), radius(60.0)
    ref = F.pad(x.reshape(15, 1, 40, 77), (r, r, r, r), mode="reflect")
    ref = F.conv2d(F.conv2d(ref, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1)).view(5, 3, 40, 77)
    try:
        assert torch.allclose(csf_filter(x, 60), ref, atol=1e-6)
    finally:
        csf._block_matrix.cache_clear()


def test_a_side_shorter_than_the_kernel_is_filtered_and_flat_stays_flat():
    """At 200 px/degree the kernel reaches 20 px each side: a 5 x 9 image still filters (reflection
    stops at the border) and a flat one passes unchanged."""
    x = torch.rand(1, 3, 5, 9)
    y = csf_filter(x, 200)
    assert y.shape == x.shape and torch.isfinite(y).all() and not torch.allclose(y, x)
    flat = torch.full((1, 3, 5, 9), 0.7)
    assert torch.allclose(csf_filter(flat, 200), flat, atol=1e-6)


def test_a_filter_first_used_in_inference_mode_still_serves_a_loss():
    x = torch.rand(1, 3, 24, 24)
    with torch.inference_mode():
        csf_filter(x, 37.0)  # builds and caches the constants
    y = x.clone().requires_grad_(True)
    csf_filter(y, 37.0).sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()
