"""Pairs larger than batch_pixels are evaluated in tiles with a halo: results equal the untiled ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import make_model

from perceptual_sim import PerceptualDistance

MODES = ("spatial", "style", "meanpool")
# (arch, arch_args, feature_blur, interior side of a tile, image H x W): halos are cut on some tiles, sizes are
# not multiples of 32
CASES = {
    "resnet6": ("k22_resnet", {"width": 0.25}, 0.0, 32, (200, 170)),
    "resnet6-antialias": ("k22_resnet", {"width": 0.25, "antialias": True}, 0.0, 32, (330, 300)),
    "resnet6-feature-blur": ("k22_resnet", {"width": 0.25}, 1.0, 32, (330, 300)),
    "resnet6-stage-blur": ("k22_resnet", {"width": 0.25}, [0, 2.0, 0.5, 0], 32, (330, 300)),
    "resnet-basic": ("k22_resnet", {"width": 0.125, "block": "basic"}, 0.0, 64, (360, 330)),
    "resnet-bottleneck": ("k22_resnet", {"width": 0.125, "layers": [1, 2, 1, 1], "block": "bottleneck",
                                         "antialias": True}, 0.0, 32, (330, 300)),
    "alexnet": ("alexnet", {}, 0.0, 192, (400, 380)),
}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiling")


def _pair(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(h * w)
    x = torch.rand(2, 3, h, w, generator=g)
    return x, (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)


def _passes(model: PerceptualDistance) -> list[int]:
    """Counts the backbone's passes (in a list, so that the caller sees it grow)."""
    count = [0]
    model.backbone.register_forward_hook(lambda *_: count.__setitem__(0, count[0] + 1))
    return count


@pytest.mark.parametrize("case", CASES)
def test_tiled_equals_untiled(folder, case):
    arch, args, blur, side, (h, w) = CASES[case]
    card = str(make_model(folder, name=case, arch=arch, arch_args=args, layer_weights=True, feature_blur=blur))
    whole = PerceptualDistance.from_pretrained(card, batch_pixels=1 << 30)
    probe = PerceptualDistance.from_pretrained(card)
    halo = probe._tiling.halo  # the backbone's, plus the feature blur's reach
    assert halo > probe.backbone.tiling.halo if blur else halo == probe.backbone.tiling.halo
    tiled = PerceptualDistance.from_pretrained(card, batch_pixels=2 * (side + 2 * halo) ** 2)
    assert h * w > (side + 2 * halo) ** 2 and side + halo < min(h, w), "no tiling, or no halo cut: a vacuous test"
    passes = _passes(tiled)
    x, y = _pair(h, w)
    with torch.inference_mode():
        # Spatial terms compare every feature position: a halo too small or a misaligned tile shows.
        # The other modes, the map and uint8 inputs only add sums, on the first case.
        for mode in MODES if case == "resnet6" else ("spatial",):
            before = passes[0]
            got = tiled(x, y, mode=mode, per_layer=True)
            assert passes[0] - before > 2, "the pairs were not tiled"
            torch.testing.assert_close(got, whole(x, y, mode=mode, per_layer=True), rtol=2e-4, atol=1e-7)
        if case == "resnet6":
            torch.testing.assert_close(tiled(x, y, spatial=True), whole(x, y, spatial=True), rtol=1e-5, atol=1e-7)
            xu, yu = (x * 255).round().byte(), (y * 255).round().byte()
            torch.testing.assert_close(tiled(xu, yu), whole(xu, yu), rtol=2e-4, atol=1e-7)
            assert torch.equal(tiled(x, x), torch.zeros(2))


def test_tiled_gradients_equal_untiled(folder):
    card = str(make_model(folder, name="grad", arch_args={"width": 0.25}))
    whole = PerceptualDistance.from_pretrained(card, batch_pixels=1 << 30)
    tiled = PerceptualDistance.from_pretrained(card, batch_pixels=2 * (64 + 128) ** 2)
    x, y = _pair(200, 170)
    grads = []
    for model in (whole, tiled):
        xg = x.clone().requires_grad_(True)
        model(xg, y, mode="style", reduction="sum", out_of_range="clamp").backward()
        grads.append(xg.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-9)


def test_the_default_budget_tiles_large_pairs(folder):
    card = str(make_model(folder, name="default", arch_args={"width": 0.25}))
    model = PerceptualDistance.from_pretrained(card)  # batch_pixels 2**18 on CPU: a 400 x 400 pair is over it
    passes = _passes(model)
    x, y = _pair(400, 400)
    with torch.inference_mode():
        d = model(x[:1], y[:1])
        assert passes[0] > 1
        torch.testing.assert_close(d, PerceptualDistance.from_pretrained(card, batch_pixels=1 << 30)(x[:1], y[:1]),
                                   rtol=2e-4, atol=1e-7)


def test_vits_attend_globally_and_are_never_tiled(folder):
    args = {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}
    model = PerceptualDistance.from_pretrained(str(make_model(folder, name="vit", arch="vit", arch_args=args)),
                                               batch_pixels=64 * 64)
    assert model.backbone.tiling is None
    passes = _passes(model)
    x, y = _pair(96, 80)
    with torch.inference_mode():
        model(x[:1], y[:1])  # 2 x 7680 pixels in one pass, over the budget of 4096
    assert passes[0] == 1
