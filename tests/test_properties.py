"""Properties of the distance (over random shapes, values and batches with hypothesis, and on examples where
those leave a gap) and bad tensor inputs: the one place each is tested. Module behaviour is in test_metric.py."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import make_model
from hypothesis import given, settings
from hypothesis import strategies as st

from perceptual_sim import PerceptualDistance

MODES = ("spatial", "style", "meanpool")
VIT = {"patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}
KINDS = ("uniform", "constant", "black", "binary", "identical", "near")
PROPS = settings(max_examples=15, deadline=None, derandomize=True)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, PerceptualDistance]:
    """Random-weight models: a width-0.25 ResNet-6 (also chunked into passes of 5000 pixels) and a tiny ViT."""
    folder: Path = tmp_path_factory.mktemp("prop_models")
    resnet = str(make_model(folder, name="resnet"))
    return {
        "resnet": PerceptualDistance.from_pretrained(resnet),
        "chunked": PerceptualDistance.from_pretrained(resnet, batch_pixels=5000),  # 1 to 4 images a pass
        "vit": PerceptualDistance.from_pretrained(str(make_model(folder, name="vit", arch="vit", arch_args=VIT))),
    }


@st.composite
def batches(draw: st.DrawFn, arch: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Two N x 3 x H x W batches in [0, 1] of one kind (ViT sizes are multiples of its patch)."""
    n = draw(st.integers(1, 4))
    side = st.integers(4, 10).map(lambda k: 8 * k) if arch == "vit" else st.integers(32, 80)
    h, w = draw(side), draw(side)
    kind = draw(st.sampled_from(KINDS))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.rand(n, 3, h, w, generator=g)
    y = torch.rand(n, 3, h, w, generator=g)
    if kind == "constant":
        x, y = x[:, :, :1, :1].expand_as(x).clone(), y[:, :, :1, :1].expand_as(y).clone()
    elif kind == "black":
        x = torch.zeros_like(x)
    elif kind == "binary":
        x, y = x.round(), y.round()
    elif kind == "identical":
        y = x.clone()
    elif kind == "near":
        y = (x + 1e-3 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return x, y, kind


def _close(a: torch.Tensor, b: torch.Tensor) -> None:
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("arch", ["resnet", "chunked", "vit"])
@pytest.mark.parametrize("mode", MODES)
@PROPS
@given(data=st.data())
def test_metric_properties(models, arch, mode, data):
    m = models[arch]
    x, y, _ = data.draw(batches(arch))
    d = m(x, y, mode=mode)
    if arch == "chunked":
        _close(d, models["resnet"](x, y, mode=mode))
    assert d.shape == (x.shape[0],) and d.dtype == torch.float32
    assert (d >= 0).all()
    assert torch.equal(m(x, y, mode=mode), d), "not deterministic"
    assert torch.equal(m(x, x, mode=mode), torch.zeros_like(d)), "d(x, x) != 0"
    torch.testing.assert_close(m(y, x, mode=mode), d, rtol=1e-6, atol=1e-8)
    _close(m(x[:1], y[:1], mode=mode), d[:1])
    others = torch.rand(2, *x.shape[1:], generator=torch.Generator().manual_seed(7))
    order = torch.randperm(x.shape[0] + 2, generator=torch.Generator().manual_seed(x.shape[0]))
    mixed = m(torch.cat([x, others])[order], torch.cat([y, others.flip(0)])[order], mode=mode)
    _close(mixed[order.argsort()][: x.shape[0]], d)


@pytest.mark.parametrize("arch", ["resnet", "vit"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@PROPS
@given(data=st.data())
def test_input_gradients_are_finite(models, arch, dtype, data):
    m = models[arch]
    x, y, kind = data.draw(batches(arch))
    x = x.to(dtype).requires_grad_(True)
    for mode in MODES:
        d = m(x, y.to(dtype), mode=mode)
        assert d.dtype == torch.float32 and torch.isfinite(d).all()
        (grad,) = torch.autograd.grad(d.sum(), x)
        assert torch.isfinite(grad).all(), (kind, mode)
        if kind == "identical":
            assert torch.equal(d, torch.zeros_like(d))


# ----------------------------------------------------------------------------- bad inputs
def _img(*shape: int, dtype: torch.dtype = torch.float32, fill: float | None = None) -> torch.Tensor:
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    if fill is not None:
        x[..., 0, 0] = fill
    return x.to(dtype)


IMG = (2, 3, 32, 32)
X = _img(*IMG)


def bad(x: Any, message: str, y: Any = None, error: type[Exception] = ValueError, **kwargs: Any) -> Any:
    """A bad-input case: ``model(x, y, **kwargs)`` raises ``error`` whose message contains ``message``."""
    return pytest.param(x, x if y is None else y, kwargs, error, message)


BAD = {
    "rank 3": bad(_img(3, 32, 32), "x must be N x C x H x W (4 dimensions), got shape (3, 32, 32); "
                                   "for one image use x.unsqueeze(0)"),
    "rank 5": bad(_img(1, *IMG), "x must be N x C x H x W (4 dimensions), got shape (1, 2, 3, 32, 32)"),
    "rank 2": bad(_img(32, 32), "(4 dimensions), got shape (32, 32)"),
    "4 channels": bad(_img(2, 4, 32, 32), "x must have 3 colour channels, got 4 (shape (2, 4, 32, 32))"),
    "1 channel": bad(_img(2, 1, 32, 32), "got 1 (shape (2, 1, 32, 32)) (pass grey=True to replicate"),
    "2 channels": bad(_img(2, 2, 32, 32), "x must have 3 colour channels, got 2"),
    "sizes differ": bad(X, "x is (32, 32) but y is (48, 40) (H x W); pass resize=True", y=_img(2, 3, 48, 40)),
    "batches differ": bad(X, "x and y hold 2 and 3 images; pass equal batches", y=_img(3, 3, 32, 32)),
    "1x1": bad(_img(2, 3, 1, 1), "x is 1 x 1; model 'resnet' needs at least 16 x 16 pixels. Upsample"),
    "0x0": bad(_img(2, 3, 0, 0), "x is 0 x 0; model 'resnet' needs at least 16 x 16 pixels"),
    "0 wide": bad(_img(2, 3, 32, 0), "x is 32 x 0; model 'resnet' needs at least 16 x 16"),
    "15 rows": bad(_img(2, 3, 15, 64), "x is 15 x 64; model 'resnet' needs at least 16 x 16 pixels"),
    "empty, 8x8": bad(_img(0, 3, 8, 8), "x is 8 x 8; model 'resnet' needs at least 16 x 16"),
    "empty, 4 channels": bad(_img(0, 4, 32, 32), "x must have 3 colour channels, got 4"),
    "int32": bad(_img(*IMG, dtype=torch.int32), "x has dtype torch.int32; use a float tensor in (0.0, 1.0) or "
                                                "uint8 in [0, 255]"),
    "int64": bad(_img(*IMG, dtype=torch.int64), "x has dtype torch.int64; use a float tensor"),
    "bool": bad(_img(*IMG, dtype=torch.bool), "x has dtype torch.bool; use a float tensor"),
    "complex": bad(_img(*IMG, dtype=torch.complex64), "x has dtype torch.complex64; use a float tensor"),
    "int8 y": bad(X, "y has dtype torch.int8; use a float tensor", y=_img(*IMG, dtype=torch.int8)),
    "NaN": bad(_img(*IMG, fill=float("nan")), "x contains NaN or Inf values; the distance of such images is undefined"),
    "Inf in y": bad(X, "y contains NaN or Inf values", y=_img(*IMG, fill=float("inf"))),
    "-Inf bf16": bad(_img(*IMG, dtype=torch.bfloat16, fill=-float("inf")), "x contains NaN or Inf values"),
    "0..255 floats": bad(X * 255, "outside the input range [0, 1]. Images in [0, 255]? Divide by 255, or pass a "
                                  "uint8 tensor."),
    "-1..1 floats": bad(X * 2 - 1, "outside the input range [0, 1]. Images in [-1, 1] (as lpips expects)? Pass "
                                   "input_range=(-1, 1)."),
    "-5..5 floats": bad(X * 10 - 5, "Rescale the images to the input range, or pass the range they use as input_range"),
    "0..255 as -1..1": bad(X * 255, "outside the input range [-1, 1]. Images in [0, 255]? Divide by 255",
                           input_range=(-1, 1)),
    "1.01": bad(_img(*IMG, fill=1.01), ", 1.01], outside the input range [0, 1]. If that overshoot is expected (e.g. "
                                       "from resampling), clamp them: x.clamp(0, 1)."),
    "-0.02 in -1..1": bad(X * 2 - 1.02, "If that overshoot is expected (e.g. from resampling), clamp them: "
                                        "x.clamp(-1, 1).", input_range=(-1, 1)),
    "bad range": bad(X, "input_range must be (low, high) with low < high, got (1, 0)", input_range=(1, 0)),
    "meta y": bad(X, "y is on meta but the model is on cpu: move one of them (model.to('meta') once, or "
                     "y.to('cpu'))", y=X.to("meta")),
    "meta x": bad(X.to("meta"), "x is on meta but the model is on cpu"),
    "numpy": bad(np.zeros(IMG, np.float32), "x must be a torch.Tensor, got ndarray", error=TypeError),
}


def test_distinct_images_are_at_a_positive_distance(models, images):
    """What the drawn batches leave open (they may be identical or constant): distinct images are apart."""
    for mode in MODES:
        assert (models["resnet"](*images, mode=mode) > 0).all(), mode


@pytest.mark.parametrize("arch", ["resnet", "chunked"])
def test_gradients_reach_the_inputs(models, images, arch):
    """Non-zero input gradients, also through a backbone run in chunks (the drawn batches check finiteness)."""
    x = images[0].clone().requires_grad_(True)
    models[arch](x, images[1]).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_resize_scores_images_of_other_sizes(models):
    """Unequal sizes are refused (:data:`BAD`) unless ``resize=True``, which resizes y to x."""
    x, y = _img(2, 3, 64, 64), _img(2, 3, 80, 72)
    assert models["resnet"](x, y, resize=True).shape == (2,)


@pytest.mark.parametrize("x, y, kwargs, error, message", BAD.values(), ids=list(BAD))
def test_bad_inputs_are_refused_with_a_named_reason(models, x, y, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        models["resnet"](x, y, **kwargs)


def test_vit_pads_sizes_that_are_not_multiples_of_its_patch(models):
    vit = models["vit"]
    x = _img(2, 3, 36, 42)
    y = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    padded = [torch.nn.functional.pad(t, (0, 6, 0, 4), mode="reflect") for t in (x, y)]
    maps = vit.embed(x).maps
    assert maps[0].shape[-2:] == (5, 6)  # ceil(36 / 8) x ceil(42 / 8) patches
    torch.testing.assert_close(maps[0], vit.embed(padded[0]).maps[0])
    d = vit(x, y)
    assert torch.isfinite(d).all() and (d > 0).all()
    assert vit(x, x).abs().max() == 0


@pytest.mark.parametrize("arch", ["resnet", "vit"])
def test_empty_batches_give_empty_float32_results(models, arch):
    m = models[arch]
    x = _img(0, 3, 32, 40)
    layers = len(m.backbone.channels)
    for kwargs, shape in (({}, (0,)), ({"spatial": True}, (0, 1, 32, 40)), ({"per_layer": True}, (0, layers))):
        out = m(x, x.clone(), **kwargs)
        assert out.shape == shape and out.dtype == torch.float32


def test_every_accepted_encoding_gives_the_float32_distance(models):
    """float64, float16, bfloat16, uint8, and floats in another ``input_range``."""
    m = models["resnet"]
    x, y = _img(*IMG), _img(*IMG).flip(0)
    d = m(x, y)
    torch.testing.assert_close(m(x.double(), y.double()), d)
    _close(m(2 * x - 1, 2 * y - 1, input_range=(-1, 1)), d)
    torch.testing.assert_close(m(x.half(), y.half()), d, rtol=2e-2, atol=1e-3)
    torch.testing.assert_close(m(x.bfloat16(), y.bfloat16()), d, rtol=5e-2, atol=1e-3)
    xu, yu = (x * 255).round().to(torch.uint8), (y * 255).round().to(torch.uint8)
    torch.testing.assert_close(m(xu, yu), m(xu.float() / 255, yu.float() / 255))


@pytest.mark.parametrize("input_range, eps", [((0.0, 1.0), 9e-4), ((-1.0, 1.0), 1.9e-3)])
def test_values_just_outside_the_range_are_clamped(models, input_range, eps):
    m = models["resnet"]
    lo, hi = input_range
    x, y = lo + (hi - lo) * _img(*IMG), lo + (hi - lo) * _img(*IMG).flip(0)
    x[0, 0, 0, 0], x[1, 0, 0, 0] = lo - eps, hi + eps
    torch.testing.assert_close(m(x, y, input_range=input_range), m(x.clamp(lo, hi), y, input_range=input_range))


def test_layout_does_not_change_the_result(models):
    m = models["resnet"]
    big, y = _img(2, 3, 64, 80), _img(2, 3, 32, 40).flip(0)
    strided = big[:, :, ::2, ::2]
    assert not strided.is_contiguous()
    d = m(strided.contiguous(), y)
    _close(m(strided, y), d)
    _close(m(strided.contiguous(memory_format=torch.channels_last), y.contiguous(memory_format=torch.channels_last)), d)
    _close(m(strided.transpose(2, 3), y.transpose(2, 3).contiguous()), m(strided.transpose(2, 3).contiguous(), y.mT))
