"""Psychophysics suite: the constructions (equal MSE, isoluminance, frequency bands), determinism,
L2 at exactly 50 on equal-MSE families, ties, and the command line."""

from __future__ import annotations

import json

import pytest
import torch

from perceptual_sim.cli import main
from perceptual_sim.lab.evaluate.metrics import L2Metric
from perceptual_sim.lab.evaluate.psych import (
    FAMILIES,
    LUMA,
    _chunk,
    _luma,
    band_noise,
    decisions,
    match_mse,
    random_crops,
    score_metric,
    skimage_photos,
)

pytest.importorskip("skimage")


@pytest.fixture(scope="module")
def photos() -> list[torch.Tensor]:
    return list(skimage_photos()[:4])


def test_match_mse_hits_the_target():
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(3, 3, 16, 16, generator=g)
    delta = torch.randn(3, 3, 16, 16, generator=g)
    target = torch.tensor([1e-3, 4e-3, 2e-2], dtype=torch.float64)
    out = match_mse(ref, delta, target)
    assert out.min() >= 0 and out.max() <= 1
    mse = (out.double() - ref.double()).pow(2).mean((1, 2, 3))
    torch.testing.assert_close(mse, target, rtol=1e-7, atol=0)
    with pytest.raises(ValueError, match="cannot reach"):
        match_mse(ref, torch.zeros_like(delta), target)


def test_band_noise_stays_in_its_band():
    n = band_noise((2, 1, 64, 64), 0.35, 0.5, torch.Generator().manual_seed(0))
    assert n.pow(2).mean().item() == pytest.approx(1.0, rel=1e-5)
    power = torch.fft.rfft2(n).abs().pow(2)
    r = (torch.fft.fftfreq(64).view(64, 1) ** 2 + torch.fft.rfftfreq(64).view(1, -1) ** 2).sqrt()
    inside = (r >= 0.35) & (r < 0.5)
    assert power[..., ~inside].max() < 1e-6 * power[..., inside].max()


def test_chromatic_noise_is_isoluminant(photos):
    ref, a, _, _ = _chunk(FAMILIES["chromatic-noise"], photos, 32, 6, 0, 0)
    unclipped = ((a > 0.001) & (a < 0.999)).all(1, keepdim=True)
    d_luma = _luma(a) - _luma(ref)
    assert d_luma[unclipped].abs().max() < 1e-5
    assert (a - ref).abs().max() > 0.02
    assert sum(LUMA) == pytest.approx(1.0)


def test_crops_are_deterministic_and_varied(photos):
    import numpy as np

    one = random_crops(photos, 5, 32, np.random.default_rng(3))
    two = random_crops(photos, 5, 32, np.random.default_rng(3))
    assert torch.equal(one, two) and one.shape == (5, 3, 32 + 2 * 3, 32 + 2 * 3)
    assert (one[0] - one[1]).abs().mean() > 0.01


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_families_build_valid_triplets(photos, name):
    ref, a, b, variants = _chunk(FAMILIES[name], photos, 32, 4, 0, 0)
    assert ref.shape == a.shape == b.shape == (4, 3, 32, 32) and len(variants) == 4
    for x in (ref, a, b):
        assert torch.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
    assert (a - ref).abs().amax((1, 2, 3)).min() > 0 and (b - ref).abs().amax((1, 2, 3)).min() > 0
    again = _chunk(FAMILIES[name], photos, 32, 4, 0, 0)
    assert torch.equal(again[1], a) and torch.equal(again[2], b)
    if FAMILIES[name].equal_mse:
        mse_a = (a.double() - ref.double()).pow(2).mean((1, 2, 3))
        mse_b = (b.double() - ref.double()).pow(2).mean((1, 2, 3))
        torch.testing.assert_close(mse_a, mse_b, rtol=1e-6, atol=0)


def test_decisions_with_ties():
    d_a = torch.tensor([0.1, 0.3, 0.2, 1.0])
    d_b = torch.tensor([0.2, 0.1, 0.2, 1.0 + 1e-6])
    assert decisions(d_a, d_b).tolist() == [1.0, 0.0, 0.5, 0.5]


def test_l2_is_at_chance_on_equal_mse_families(photos):
    res = score_metric(L2Metric(), sizes=[32], per_family=6, photos=photos, batch_size=3)
    for name, fam in res["families"].items():
        score = fam["scores"]["32"]["pixel"]["score"]
        if FAMILIES[name].equal_mse:
            assert score == 0.5, name
    # the same linear-light noise has the larger sRGB error on dark regions
    assert res["families"]["luminance-masking"]["scores"]["32"]["pixel"]["score"] == 1.0
    assert res["mean"]["32"]["pixel"] == pytest.approx(
        sum(f["scores"]["32"]["pixel"]["score"] for f in res["families"].values()) / len(FAMILIES))


def test_bad_arguments(photos):
    with pytest.raises(ValueError, match="unknown psychophysics families"):
        score_metric(L2Metric(), families=["telepathy"], photos=photos)
    with pytest.raises(ValueError, match="at least 32"):
        score_metric(L2Metric(), sizes=[16], photos=photos)
    with pytest.raises(ValueError, match="per_family"):
        score_metric(L2Metric(), per_family=0, photos=photos)


def test_cli_eval_psych(tmp_path, tiny_card, capsys):
    out = tmp_path / "psych.json"
    assert main(["eval", "psych", "--model", str(tiny_card), "--size", "32", "--per-family", "2",
                 "--families", "tone-vs-noise", "monotonicity", "--json", str(out)]) == 0
    assert "tone-vs-noise" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert set(res["families"]) == {"tone-vs-noise", "monotonicity"} and res["model"] == "tiny"
    assert set(res["mean"]["32"]) == {"spatial", "style", "meanpool"}
    assert res["families"]["tone-vs-noise"]["citation"].startswith("Wang & Bovik")
