"""Offline proxies: scoring rules by hand, determinism, and the shift-flip protocol."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import spearmanr

from perceptual_sim.lab.evaluate.distortions import DISTORTIONS, LEVELS, distort
from perceptual_sim.lab.evaluate.metrics import L2Metric, NetMetric, SSIMMetric, ssim
from perceptual_sim.lab.evaluate.proxy import (
    SHIFT_CROP,
    _decision,
    _spearman_rows,
    crop_shift,
    judge,
    make_proxy_set,
    score,
)


def test_decision_by_hand():
    d0 = torch.tensor([0.1, 0.5, 0.3, 0.2])
    d1 = torch.tensor([0.2, 0.4, 0.3, 0.9])
    assert _decision(d0, d1).tolist() == [0.0, 1.0, 0.5, 0.0]


def test_spearman_rows_by_hand():
    d = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 3.0, 2.0, 4.0, 5.0]])
    # third row: one swap of neighbours, rho = 1 - 6*2/(5*24) = 0.9
    assert _spearman_rows(d).tolist() == pytest.approx([1.0, -1.0, 0.9])


def test_distortions_grow_with_level_and_are_deterministic():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    for kind in DISTORTIONS:
        outs = [distort(x, kind, lvl, torch.Generator().manual_seed(1)) for lvl in LEVELS]
        assert all(o.shape == x.shape and o.min() >= 0 and o.max() <= 1 for o in outs)
        errors = [(o - x).pow(2).mean().item() for o in outs]
        assert errors == sorted(errors), kind
        torch.testing.assert_close(outs[0], distort(x, kind, 1, torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match="unknown distortion"):
        distort(x, "swirl", 1, torch.Generator())


def test_crop_shift_moves_the_view_without_inventing_pixels():
    x = torch.arange(10.0).view(1, 1, 1, 10).expand(1, 3, 4, 10)
    assert SHIFT_CROP == 3
    assert crop_shift(x, 0)[0, 0, 0].tolist() == [0, 1, 2, 3, 4, 5, 6]
    assert crop_shift(x, 2)[0, 0, 0].tolist() == [2, 3, 4, 5, 6, 7, 8]
    assert crop_shift(x, 3)[0, 0, 0].tolist() == [3, 4, 5, 6, 7, 8, 9]
    with pytest.raises(ValueError, match="0..3 px"):
        crop_shift(x, 4)


def test_ssim_identity():
    x = torch.rand(2, 3, 32, 32)
    assert ssim(x, x).tolist() == pytest.approx([1.0, 1.0])
    assert (ssim(x, x.flip(3)) < 0.5).all()


@pytest.fixture(scope="module")
def proxy_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(14):
        base = np.linspace(0, 255, 64)[None, :, None] * rng.uniform(0.3, 1, 3)
        img = (base + rng.normal(0, 20, (64, 64, 3))).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(root / f"{i:02d}.png")
    cache = tmp_path_factory.mktemp("cache")
    data = make_proxy_set(root, triplets=10, mono_images=4, cache=cache)
    again = make_proxy_set(root, triplets=10, mono_images=4, cache=tmp_path_factory.mktemp("cache2"))
    assert torch.equal(data.p0, again.p0) and torch.equal(data.mono, again.mono)
    return judge(data, [("L2", L2Metric()), ("SSIM", SSIMMetric())], progress=False)


def test_proxy_set_shapes_and_judgments(proxy_data):
    assert proxy_data.ref.shape == (10, 3, 64, 64) and proxy_data.ref.dtype == torch.uint8
    assert proxy_data.mono.shape == (4, len(DISTORTIONS), 5, 3, 64, 64)
    assert set(proxy_data.p.tolist()) <= {0.0, 0.5, 1.0}
    assert proxy_data.judges == ["L2", "SSIM"]


def test_scores_follow_the_protocol(proxy_data, tiny):
    single = judge(dataclasses.replace(proxy_data), [("L2", L2Metric())], progress=False)
    l2 = score(L2Metric(), single, progress=False)["pixel"]
    assert l2["2afc"] == 1.0  # a judge agrees with itself on every triplet
    ref, p0, p1 = (t.float() / 255 for t in (single.ref, single.p0, single.p1))
    w = ref.shape[-1]

    def decisions(k):  # ST-LPIPS: the reference keeps columns 0..w-4, p0 and p1 show columns k..w-4+k
        r = ref[..., : w - 3]
        return _decision(*((r - p[..., k : w - 3 + k]).pow(2).mean((1, 2, 3)) for p in (p0, p1)))

    flips = [(decisions(k) != decisions(0)).float().mean().item() for k in (1, 2, 3)]
    assert [l2["shift_flips"][k] for k in "123"] == pytest.approx(flips)
    assert max(flips) > 0  # the hand rule is not vacuous on this set
    assert l2["monotonicity"] == pytest.approx(1.0)  # every distortion grows in L2 with its level
    net = score(NetMetric(tiny), proxy_data, progress=False)
    assert set(net) == {"spatial", "style", "meanpool"}
    levels = proxy_data.mono.shape[2]
    with torch.inference_mode():
        for mode, s in net.items():  # the rules by hand (scipy's Spearman), on the forward distances
            d0, d1 = (tiny(proxy_data.ref, p, mode=mode).numpy() for p in (proxy_data.p0, proxy_data.p1))
            p = proxy_data.p.numpy()
            assert s["2afc"] == pytest.approx(np.mean((d0 < d1) * (1 - p) + (d1 < d0) * p + 0.5 * (d0 == d1)))
            rho = {kind: np.mean([spearmanr(row, np.arange(levels)).statistic for row in torch.stack(
                [tiny(proxy_data.mono_ref, proxy_data.mono[:, k, level], mode=mode) for level in range(levels)], 1)])
                for k, kind in enumerate(DISTORTIONS)}
            assert s["monotonicity_by_type"] == pytest.approx(rho, abs=1e-12)
            assert s["monotonicity"] == pytest.approx(np.mean(list(rho.values())), abs=1e-12)


def test_eval_proxy_command(proxy_data, tiny_card, tmp_path, monkeypatch, capsys):
    """`perceptual-sim eval proxy` on an already judged set (the judges are not rebuilt)."""
    import json

    from perceptual_sim.cli import main
    from perceptual_sim.lab.evaluate import proxy

    images = tmp_path / "unused"
    monkeypatch.setattr(proxy, "make_proxy_set", lambda *a, **k: proxy_data)
    out = tmp_path / "proxy.json"
    code = main(["eval", "proxy", "--images", str(images), "--model", str(tiny_card), "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert result["judges"] == proxy_data.judges and set(result["scores"]) == {"spatial", "style", "meanpool"}
    assert "2AFC" in capsys.readouterr().out
    assert main(["eval", "proxy", "--images", str(images), "--model", str(tiny_card), "--json", str(out)]) == 2
