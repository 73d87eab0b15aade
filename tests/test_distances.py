"""Each distance head against a hand computation on tiny feature maps."""

from math import sqrt

import pytest
import torch

from perceptual_sim.distances import (
    blur_normalized,
    embedding,
    layer_terms,
    spatial_maps,
    squared_cdist,
    unit_normalize,
)

# One layer, N=1, C=2, h=1, w=2: location 1 holds a=(3,4), b=(4,3); location 2 a=(1,0), b=(0,2).
A = torch.tensor([[3.0, 1.0], [4.0, 0.0]]).view(1, 2, 1, 2)
B = torch.tensor([[4.0, 0.0], [3.0, 2.0]]).view(1, 2, 1, 2)


def test_spatial_by_hand():
    # normalised: a -> (.6,.8),(1,0); b -> (.8,.6),(0,1); squared diffs .08 and 2; mean 1.04
    assert layer_terms("spatial", [A], [B]).item() == pytest.approx(1.04, abs=1e-6)


def test_spatial_with_layer_weights_by_hand():
    w = [torch.tensor([2.0, 0.5])]
    # location 1: 2*.04 + .5*.04 = .1; location 2: 2*1 + .5*1 = 2.5; mean 1.3
    assert layer_terms("spatial", [A], [B], w).item() == pytest.approx(1.3, abs=1e-6)
    assert spatial_maps([A], [B], w)[0].flatten().tolist() == pytest.approx([0.1, 2.5], abs=1e-6)


def test_feature_blur_by_hand():
    # sigma 0.5: taps (e, 1, e) / (1 + 2e), e = exp(-2); rows of one position are replicated (no change),
    # along the width the border is replicated: out_0 = (1 - e') ŷ0 + e' ŷ1, out_1 = e' ŷ0 + (1 - e') ŷ1
    e = torch.exp(torch.tensor(-2.0)) / (1 + 2 * torch.exp(torch.tensor(-2.0)))
    y = unit_normalize(A)
    expected = torch.stack([(1 - e) * y[..., 0] + e * y[..., 1], e * y[..., 0] + (1 - e) * y[..., 1]], -1)
    torch.testing.assert_close(blur_normalized(A, 0.5), expected)
    flat = torch.ones(1, 2, 5, 5)  # a constant map stays its normalised self
    torch.testing.assert_close(blur_normalized(flat, 1.5), unit_normalize(flat))


def test_style_by_hand():
    # G_a = [[.68,.24],[.24,.32]], G_b = [[.32,.24],[.24,.68]]; ||G_a-G_b||^2 = 2*.36^2; / C^2
    assert layer_terms("style", [A], [B]).item() == pytest.approx(2 * 0.36**2 / 4, abs=1e-6)


def test_meanpool_by_hand():
    # means: a (2, 2), b (2, 2.5); unit-normalise, squared distance, / C
    expected = ((2 / sqrt(8) - 2 / sqrt(10.25)) ** 2 + (2 / sqrt(8) - 2.5 / sqrt(10.25)) ** 2) / 2
    assert layer_terms("meanpool", [A], [B]).item() == pytest.approx(expected, abs=1e-7)


def test_layers_sum_and_unknown_mode():
    terms = layer_terms("spatial", [A, 2 * A], [B, B])
    assert terms.shape == (1, 2)
    assert terms[0, 1].item() == pytest.approx(terms[0, 0].item(), abs=1e-6)  # scale-invariant
    with pytest.raises(ValueError, match="mode must be one of"):
        layer_terms("cosine", [A], [B])


def test_zero_features_give_finite_gradients():
    f = torch.zeros(1, 4, 3, 3, requires_grad=True)
    g = torch.rand(1, 4, 3, 3)
    for mode in ("spatial", "style", "meanpool"):
        layer_terms(mode, [f], [g]).sum().backward()
        assert torch.isfinite(f.grad).all()
        f.grad = None
    assert torch.equal(unit_normalize(torch.zeros(1, 3, 2, 2)), torch.zeros(1, 3, 2, 2))


@pytest.mark.parametrize("mode", ["spatial", "style", "meanpool"])
def test_embedding_distance_equals_direct_terms(mode):
    g = torch.Generator().manual_seed(0)
    fa = [torch.randn(3, 5, 4, 4, generator=g), torch.randn(3, 7, 2, 2, generator=g)]
    fb = [torch.randn(2, 5, 4, 4, generator=g), torch.randn(2, 7, 2, 2, generator=g)]
    w = [torch.rand(5, generator=g), torch.rand(7, generator=g)]
    weights = w if mode == "spatial" else None
    ea, eb = embedding(mode, fa, weights), embedding(mode, fb, weights)
    matrix = sum(squared_cdist(a, b) for a, b in zip(ea, eb))
    for i in range(3):
        for j in range(2):
            direct = layer_terms(mode, [f[i : i + 1] for f in fa], [f[j : j + 1] for f in fb], weights).sum()
            assert matrix[i, j].item() == pytest.approx(direct.item(), rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("copies", [1, 8])  # near-duplicates per row: recomputed directly, or their rows in float64
def test_squared_cdist_keeps_near_duplicates_accurate(copies):
    g = torch.Generator().manual_seed(0)
    a = 5 + torch.rand(64, 3000, generator=g)  # a common offset: plain float32 Gram terms would cancel badly
    b = a[torch.arange(64) % (64 // copies)] + 1e-4 * torch.randn(64, 3000, generator=g)
    exact = (a.double()[:, None] - b.double()[None]).pow(2).sum(-1)
    got = squared_cdist(a, b)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got.double(), exact, rtol=1e-5, atol=0)
    assert torch.equal(squared_cdist(a, a).diagonal(), torch.zeros(64))


def test_squared_cdist_edge_cases():
    a = torch.rand(3, 5)
    assert squared_cdist(a, a[:0]).shape == (3, 0) and squared_cdist(a[:0], a[:0]).shape == (0, 0)
    exact = (a.double()[:, None] - a.double()[None]).pow(2).sum(-1)
    torch.testing.assert_close(squared_cdist(a.double(), a.double()), exact.float())  # float64 in, float32 out
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")  # reduced-precision float32 matmuls: the Gram goes float64
    try:
        torch.testing.assert_close(squared_cdist(a, a), exact.float())
    finally:
        torch.set_float32_matmul_precision(previous)
