"""PerceptualDistance, the module: building it from a card, frozen eval mode, its outputs, features and options.

The distance's properties (identity, symmetry, batches, gradients, input encodings, bad inputs) are
tested in test_properties.py.
"""

import pytest
import torch
from helpers import make_model
from safetensors.torch import load_file

from perceptual_sim import PerceptualDistance, WeightsError
from perceptual_sim.models.card import read_card

MODES = ["spatial", "style", "meanpool"]


def test_from_card_builds_then_loads_strictly(tiny_card, tiny, images):
    card, tensors = read_card(tiny_card), load_file(str(tiny_card.with_suffix(".safetensors")))
    from_file = PerceptualDistance.from_card(card, tiny_card.with_suffix(".safetensors"))
    from_tensors = PerceptualDistance.from_card(card, tensors)
    assert from_file.weights_path == tiny_card.with_suffix(".safetensors") and from_tensors.weights_path is None
    assert from_file.device == from_tensors.device == torch.device("cpu")
    assert torch.equal(from_file(*images), tiny(*images)) and torch.equal(from_tensors(*images), tiny(*images))
    with pytest.raises(WeightsError, match="(?s)weights do not fit model 'tiny'.*Missing key.*backbone.net.conv1.weight"):
        PerceptualDistance.from_card(card, {k: v for k, v in tensors.items() if k != "backbone.net.conv1.weight"})
    with pytest.raises(WeightsError, match="(?s)Unexpected key.*extra"):
        PerceptualDistance.from_card(card, {**tensors, "extra": torch.zeros(1)})


@pytest.fixture(scope="module")
def lin_card(model_dir):
    """A model with (random) LPIPS-style layer weights."""
    return make_model(model_dir, name="lin", layer_weights=True, seed=5)


@pytest.mark.parametrize("mode", MODES)
def test_compare_of_features_is_the_forward_distance(lin_card, images, mode):
    """compare() is where a mode meets the layer weights: the forward pass and the harnesses use it."""
    x, y = images
    m = PerceptualDistance.from_pretrained(str(lin_card))
    fx, fy = m.embed(x), m.embed(y)
    torch.testing.assert_close(m.compare(fx, fy, mode=mode), m(x, y, mode=mode), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(m.compare(fx.maps, fy.maps, mode=mode, per_layer=True), m(x, y, mode=mode, per_layer=True),
                               rtol=1e-5, atol=1e-7)
    unweighted = m.compare(fx, fy, mode=mode)
    for w in m.layer_weights:
        w.data.mul_(2)
    weighted = m.compare(fx, fy, mode=mode)
    for w in m.layer_weights:
        w.data.div_(2)
    torch.testing.assert_close(weighted, 2 * unweighted if mode == "spatial" else unweighted)
    with pytest.raises(ValueError, match="mode must be one of"):
        m.compare(fx, fy, mode="cosine")


def test_feature_blur_changes_the_spatial_mode_only(model_dir, tiny, images):
    """A card's feature_blur blurs what the spatial mode compares, in every path; same weights otherwise."""
    x, y = images
    blurred = PerceptualDistance.from_pretrained(str(make_model(model_dir, name="blurred", feature_blur=1.0)))
    for mode in MODES:
        d, plain = blurred(x, y, mode=mode), tiny(x, y, mode=mode)
        fx, fy = blurred.embed(x), blurred.embed(y)
        torch.testing.assert_close(blurred.compare(fx, fy, mode=mode), d, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(blurred.pairwise(fx, fy, mode=mode).diagonal(), d, rtol=1e-4, atol=1e-6)
        if mode == "spatial":
            assert (d < 0.9 * plain).all()  # averaging neighbours shrinks the differences of noisy images
            torch.testing.assert_close(blurred(x, y, spatial=True).mean((1, 2, 3)), d, rtol=1e-5, atol=1e-7)
        else:
            torch.testing.assert_close(d, plain, rtol=0, atol=0)
    assert torch.equal(blurred(x, x), torch.zeros(4))
    # one sigma per stage: a 0 leaves its stage's term as it is
    staged = PerceptualDistance.from_pretrained(str(make_model(model_dir, name="staged", feature_blur=[0, 1, 0, 1])))
    terms, plain, all_blurred = (m(x, y, per_layer=True) for m in (staged, tiny, blurred))
    torch.testing.assert_close(terms[:, [0, 2]], plain[:, [0, 2]], rtol=0, atol=0)
    torch.testing.assert_close(terms[:, [1, 3]], all_blurred[:, [1, 3]], rtol=1e-6, atol=1e-8)
    xg = x.clone().requires_grad_(True)
    blurred(xg, y, reduction="sum").backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


def test_per_layer_and_map_add_up(tiny, images):
    x, y = images
    d = tiny(x, y)
    terms = tiny(x, y, per_layer=True)
    assert terms.shape == (4, 4)
    torch.testing.assert_close(terms.sum(1), d)
    heat = tiny(x, y, spatial=True)
    assert heat.shape == (4, 1, 64, 64) and (heat >= 0).all()
    torch.testing.assert_close(heat.mean((1, 2, 3)), d, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="only in spatial mode"):
        tiny(x, y, mode="style", spatial=True)


def test_map_localises_a_change(tiny):
    x = torch.full((1, 3, 64, 64), 0.5)
    y = x.clone()
    y[..., 40:56, 40:56] = 1.0
    heat = tiny(x, y, spatial=True)[0, 0]
    assert heat[40:56, 40:56].mean() > 5 * heat[:16, :16].mean()


def test_eval_mode_survives_train(tiny, images):
    x, y = images
    before = tiny(x, y)
    tiny.train()
    assert not tiny.training
    assert not any(m.training for m in tiny.modules())
    assert not any(p.requires_grad for p in tiny.parameters())
    torch.testing.assert_close(tiny(x, y), before, rtol=0, atol=0)


@pytest.mark.parametrize("mode", MODES)
def test_pairwise_equals_looped(tiny, mode):
    g = torch.Generator().manual_seed(4)
    a, b = torch.rand(3, 3, 64, 64, generator=g), torch.rand(5, 3, 64, 64, generator=g)
    matrix = tiny.pairwise(tiny.embed(a), tiny.embed(b), mode=mode)
    assert matrix.shape == (3, 5)
    looped = torch.stack([tiny(a[i : i + 1].expand(5, -1, -1, -1), b, mode=mode) for i in range(3)])
    torch.testing.assert_close(matrix, looped, rtol=1e-4, atol=1e-6)


def test_pairwise_spatial_needs_equal_sizes(tiny):
    fa, fb = tiny.embed(torch.rand(2, 3, 64, 64)), tiny.embed(torch.rand(2, 3, 48, 64))
    with pytest.raises(ValueError, match="equal image sizes"):
        tiny.pairwise(fa, fb, mode="spatial")
    assert tiny.pairwise(fa, fb, mode="meanpool").shape == (2, 2)


def test_grey_option(tiny):
    g = torch.rand(2, 1, 64, 64)
    torch.testing.assert_close(tiny(g, g.flip(3), grey=True), tiny(g.expand(2, 3, 64, 64), g.flip(3).expand(2, 3, 64, 64)))


def test_layer_weights_are_used(lin_card, images):
    x, y = images
    m = PerceptualDistance.from_pretrained(str(lin_card))
    plain = m(x, y).clone()
    for w in m.layer_weights:
        w.data.mul_(2)
    torch.testing.assert_close(m(x, y), 2 * plain)


def test_bfloat16_precision_stays_close(tiny_card, images):
    x, y = images
    exact = PerceptualDistance.from_pretrained(str(tiny_card))(x, y)
    fast = PerceptualDistance.from_pretrained(str(tiny_card), precision="bfloat16")
    assert fast(x, y).dtype == torch.float32
    torch.testing.assert_close(fast(x, y), exact, rtol=5e-2, atol=1e-4)
    with pytest.raises(ValueError, match="precision must be one of"):
        PerceptualDistance.from_pretrained(str(tiny_card), precision="int8")


def test_validation_can_be_switched_off(tiny_card):
    m = PerceptualDistance.from_pretrained(str(tiny_card), validate=False)
    x = torch.rand(1, 3, 64, 64) * 1.5  # out of range: clamped without a check
    torch.testing.assert_close(m(x, x.flip(3)), m(x.clamp(0, 1), x.flip(3).clamp(0, 1)))
    with pytest.raises(ValueError, match="3 colour channels"):
        m(torch.rand(1, 2, 64, 64), torch.rand(1, 2, 64, 64))


def test_the_option_types_list_the_accepted_values():
    import typing

    from perceptual_sim import metric
    from perceptual_sim.models.archs import MODES, Mode

    assert typing.get_args(Mode) == MODES
    assert set(typing.get_args(metric.Precision)) == set(metric.PRECISIONS)
    assert typing.get_args(metric.Reduction) == metric.REDUCTIONS
    assert typing.get_args(metric.OutOfRange) == metric.OUT_OF_RANGE
    hints = typing.get_type_hints(PerceptualDistance.forward)
    assert hints["reduction"] == metric.Reduction and hints["out_of_range"] == metric.OutOfRange
