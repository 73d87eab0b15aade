"""The loss path: reduction, straight-through clamping (out_of_range="clamp"), Adam on every bundled model."""

from __future__ import annotations

import pytest
import torch

from perceptual_sim import distance
from perceptual_sim.models.registry import bundled_names

MODES = ("spatial", "style", "meanpool")
DTYPES = (torch.float32, torch.bfloat16)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("model", bundled_names())
def test_adam_from_noise_to_a_target_lowers_the_loss(model, mode, dtype):
    g = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, 32, 32, generator=g).to(dtype)
    x = torch.rand(1, 3, 32, 32, generator=g).to(dtype).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.05)
    losses, left_the_range = [], False
    for _ in range(50):
        loss = distance(x, target, model=model, mode=mode, reduction="mean", out_of_range="clamp")
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        left_the_range |= bool(((x < -1e-3) | (x > 1 + 1e-3)).any())
    assert loss.shape == () and loss.dtype == torch.float32
    assert all(torch.isfinite(torch.tensor(losses)))
    assert left_the_range, "Adam never left [0, 1]: the test would not show that clamping lets the loop run"
    assert losses[-1] < 0.5 * losses[0], losses[::10]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("out_of_range", ["error", "clamp"])
def test_gradients_at_pixels_equal_to_0_and_1_are_non_zero(tiny, dtype, out_of_range):
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 48, 48, generator=g)
    x[:, :, :16] = 0.0
    x[:, :, 16:32] = 1.0
    x = x.to(dtype).requires_grad_(True)
    y = torch.rand(2, 3, 48, 48, generator=g).to(dtype)
    for mode in MODES:
        x.grad = None
        tiny(x, y, mode=mode, reduction="sum", out_of_range=out_of_range).backward()
        for rows in (slice(0, 16), slice(16, 32)):  # all 0, all 1
            grad = x.grad[:, :, rows].float()
            assert torch.isfinite(grad).all() and (grad != 0).float().mean() > 0.9, (mode, rows)


def test_clamp_is_straight_through(tiny, images):
    x, y = images
    wide = (x * 1.6 - 0.3).requires_grad_(True)  # about a third of the values outside [0, 1]
    d = tiny(wide, y, out_of_range="clamp")
    torch.testing.assert_close(d, tiny(wide.detach().clamp(0, 1), y), rtol=0, atol=0)  # forward: clamped
    d.sum().backward()
    inside = wide.detach().clamp(0, 1).requires_grad_(True)
    tiny(inside, y).sum().backward()
    torch.testing.assert_close(wide.grad, inside.grad)  # backward: the gradient at the clamped value, passed through


def test_evaluation_keeps_its_loud_range_errors(tiny, images):
    x, y = images
    with pytest.raises(ValueError, match=r"outside the input range \[0, 1\].*clamp"):
        tiny(x * 1.5, y)
    with pytest.raises(ValueError, match="NaN or Inf"):
        tiny(torch.full_like(x, float("nan")), y, out_of_range="clamp")
    with pytest.raises(ValueError, match=r"out_of_range must be one of \('error', 'clamp'\), got 'ignore'"):
        tiny(x, y, out_of_range="ignore")


def test_reductions(tiny, images):
    x, y = images
    d = tiny(x, y)
    assert tiny(x, y, reduction="none").shape == (4,)
    torch.testing.assert_close(tiny(x, y, reduction="mean"), d.mean())
    torch.testing.assert_close(tiny(x, y, reduction="sum"), d.sum())
    assert tiny(x[:0], y[:0], reduction="sum").item() == 0.0
    with pytest.raises(ValueError, match="reduction='mean' of an empty batch is undefined"):
        tiny(x[:0], y[:0], reduction="mean")
    with pytest.raises(ValueError, match=r"reduction must be one of \('none', 'mean', 'sum'\)"):
        tiny(x, y, reduction="max")
    with pytest.raises(ValueError, match="reduce the output yourself"):
        tiny(x, y, spatial=True, reduction="mean")
