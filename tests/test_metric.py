"""PerceptualDistance: invariants, frozen eval mode, outputs, inputs, strict weights."""

import dataclasses
import json

import pytest
import torch
from helpers import make_model
from safetensors.torch import load_file, save_file

from perceptual_sim import ModelNotFoundError, PerceptualDistance, WeightsError
from perceptual_sim.files import sha256_file

MODES = ["spatial", "style", "meanpool"]


@pytest.mark.parametrize("mode", MODES)
def test_identity_symmetry_nonnegative(tiny, images, mode):
    x, y = images
    d = tiny(x, y, mode=mode)
    assert d.shape == (4,) and d.dtype == torch.float32
    assert (d > 0).all()
    assert torch.equal(tiny(x, x, mode=mode), torch.zeros(4))
    torch.testing.assert_close(tiny(y, x, mode=mode), d, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("mode", MODES)
def test_batch_invariance(tiny, images, mode):
    x, y = images
    full = tiny(x, y, mode=mode)
    single = torch.cat([tiny(x[i : i + 1], y[i : i + 1], mode=mode) for i in range(4)])
    torch.testing.assert_close(full, single, rtol=1e-5, atol=1e-7)
    shuffled = tiny(x.flip(0), y.flip(0), mode=mode).flip(0)
    torch.testing.assert_close(full, shuffled, rtol=1e-5, atol=1e-7)


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


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_input_gradients_are_finite(tiny, dtype):
    g = torch.Generator().manual_seed(3)
    cases = {
        "random": (torch.rand(2, 3, 64, 64, generator=g), torch.rand(2, 3, 64, 64, generator=g)),
        "constant": (torch.full((2, 3, 64, 64), 0.3), torch.full((2, 3, 64, 64), 0.7)),
        "black": (torch.zeros(2, 3, 64, 64), torch.rand(2, 3, 64, 64, generator=g)),
    }
    cases["identical"] = (cases["random"][0], cases["random"][0].clone())
    for name, (a, b) in cases.items():
        a = a.to(dtype).requires_grad_(True)
        for mode in MODES:
            d = tiny(a, b.to(dtype), mode=mode)
            assert d.dtype == torch.float32
            (grad,) = torch.autograd.grad(d.sum(), a)
            assert torch.isfinite(grad).all(), (name, mode)
    x = torch.rand(1, 3, 64, 64, generator=g, requires_grad=True)
    tiny(x, torch.rand(1, 3, 64, 64, generator=g)).sum().backward()
    assert x.grad.abs().sum() > 0


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


def test_input_ranges_and_dtypes(tiny, images):
    x, y = images
    d = tiny(x, y)
    torch.testing.assert_close(tiny(2 * x - 1, 2 * y - 1, input_range=(-1, 1)), d, rtol=1e-5, atol=1e-7)
    xu, yu = (x * 255).round().to(torch.uint8), (y * 255).round().to(torch.uint8)
    torch.testing.assert_close(tiny(xu, yu), tiny(xu.float() / 255, yu.float() / 255))
    torch.testing.assert_close(tiny(x.double(), y.double()), d)
    # floating-point noise just outside [0, 1] is clamped, not an error
    torch.testing.assert_close(tiny((x - 1e-5), y), tiny(x.sub(1e-5).clamp(0, 1), y))


@pytest.mark.parametrize(
    "x, message",
    [
        (torch.rand(3, 64, 64), r"4 dimensions.*unsqueeze\(0\)"),
        (torch.rand(1, 4, 64, 64), "3 colour channels, got 4"),
        (torch.rand(1, 1, 64, 64), "grey=True"),
        (torch.rand(1, 3, 64, 64) * 255, "Divide by 255"),
        (torch.rand(1, 3, 64, 64) * 2 - 1, r"input_range=\(-1, 1\)"),
        (torch.full((1, 3, 64, 64), float("nan")), "NaN or Inf"),
        (torch.randint(0, 255, (1, 3, 64, 64), dtype=torch.int32), "dtype torch.int32"),
        (torch.rand(1, 3, 8, 8), "needs at least 16 x 16"),
    ],
)
def test_bad_inputs_are_named(tiny, x, message):
    with pytest.raises(ValueError, match=message):
        tiny(x, x.clone())


def test_sizes_must_match_unless_resize(tiny):
    x, y = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 80, 72)
    with pytest.raises(ValueError, match="resize=True"):
        tiny(x, y)
    assert tiny(x, y, resize=True).shape == (2,)
    with pytest.raises(ValueError, match="hold 2 and 3 images"):
        tiny(x, torch.rand(3, 3, 64, 64))


def test_grey_option(tiny):
    g = torch.rand(2, 1, 64, 64)
    torch.testing.assert_close(tiny(g, g.flip(3), grey=True), tiny(g.expand(2, 3, 64, 64), g.flip(3).expand(2, 3, 64, 64)))


def test_empty_batch(tiny):
    assert tiny(torch.rand(0, 3, 64, 64), torch.rand(0, 3, 64, 64)).shape == (0,)


def test_layer_weights_are_used(model_dir, images):
    x, y = images
    card = make_model(model_dir, name="lin", layer_weights=True, seed=5)
    m = PerceptualDistance.from_pretrained(str(card))
    plain = m(x, y).clone()
    for w in m.layer_weights:
        w.data.mul_(2)
    torch.testing.assert_close(m(x, y), 2 * plain)


def test_strict_loading_and_hash(tmp_path, images):
    card_path = make_model(tmp_path, name="m")
    tensors = tmp_path / "m.safetensors"
    card = json.loads(card_path.read_text())
    # a tensor missing
    state = load_file(str(tensors))
    del state["backbone.net.conv1.weight"]
    save_file(state, str(tensors))
    card["sha256"] = sha256_file(tensors)
    card_path.write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="Missing key"):
        PerceptualDistance.from_pretrained(str(card_path))
    # bytes that do not match the card
    card["sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    with pytest.raises(WeightsError, match="sha256"):
        PerceptualDistance.from_pretrained(str(card_path))


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ModelNotFoundError, match="unknown model 'no-such-model'.*perceptual-sim list"):
        PerceptualDistance.from_pretrained("no-such-model")


def test_card_round_trip(tiny_card):
    from perceptual_sim.card import ModelCard, read_card

    card = read_card(tiny_card)
    assert ModelCard.from_json(card.to_json()) == card
    with pytest.raises(WeightsError, match="unknown fields"):
        ModelCard.from_json(json.dumps({**dataclasses.asdict(card), "pickle": 1}))


def test_device_mismatch_is_named(tiny):
    x = torch.rand(1, 3, 64, 64, device="meta")
    with pytest.raises(ValueError, match="is on meta but the model is on cpu"):
        tiny(x, x)


def test_chunked_backbone_matches_one_pass(tiny_card, images):
    x, y = images
    whole = PerceptualDistance.from_pretrained(str(tiny_card))
    chunked = PerceptualDistance.from_pretrained(str(tiny_card), batch_pixels=64 * 64 * 3)
    for mode in MODES:
        torch.testing.assert_close(chunked(x, y, mode=mode), whole(x, y, mode=mode), rtol=1e-5, atol=1e-7)
    xg = x.clone().requires_grad_(True)
    chunked(xg, y).sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0


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
