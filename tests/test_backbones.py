"""Backbone structure: ResNet-6 as K22 describes it, narrowing, the ViT taps, LPIPS trunks."""

import pytest
import torch

from perceptual_sim.backbones import build_backbone
from perceptual_sim.backbones.resnet import Blur
from perceptual_sim.models.archs import check_arch_args, tap_count


def resnet6_params(w: int) -> int:
    """Hand count: stem conv+BN; 4 stages of one 3x3 conv+BN, 1x1 projection+BN where shapes change."""
    c = [w, 2 * w, 4 * w, 8 * w]
    total = 3 * w * 49 + 2 * w  # stem
    inp = w
    for out in c:
        total += inp * out * 9 + 2 * out
        if inp != out:
            total += inp * out + 2 * out
        inp = out
    return total


@pytest.mark.parametrize("width, stem", [(1.0, 64), (0.25, 16), (0.5, 32)])
def test_resnet6_structure(width, stem):
    m = build_backbone("k22_resnet", {"width": width}).eval()
    assert sum(p.numel() for p in m.parameters()) == resnet6_params(stem)
    assert m.channels == [stem, 2 * stem, 4 * stem, 8 * stem]
    assert m.net.conv1.weight.shape == (stem, 3, 7, 7)
    feats = m(torch.rand(2, 3, 64, 64))
    assert [f.shape[1:] for f in feats] == [(c, s, s) for c, s in zip(m.channels, (16, 8, 4, 2))]
    assert all(len(getattr(m.net, f"layer{i}")) == 1 for i in range(1, 5))


def test_antialiased_resnet6_blurs_before_every_subsampling():
    plain = build_backbone("k22_resnet", {"width": 0.25})
    m = build_backbone("k22_resnet", {"width": 0.25, "antialias": True}).eval()
    assert sum(p.numel() for p in m.parameters()) == resnet6_params(16)  # the blurs have no parameters
    assert [f.shape for f in m(torch.rand(1, 3, 64, 48))] == [f.shape for f in plain(torch.rand(1, 3, 64, 48))]
    blurs = [mod for mod in m.modules() if isinstance(mod, Blur)]
    assert [b.stride for b in blurs] == [1, 2, 1, 1, 1]  # image, max-pool, stages 2-4
    impulse = torch.zeros(1, 1, 5, 5)
    impulse[0, 0, 2, 2] = 16
    expected = torch.zeros(5, 5)
    expected[1:4, 1:4] = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]])
    torch.testing.assert_close(blurs[0](impulse)[0, 0], expected)  # [1, 2, 1] / 4 outer product, by hand
    flat = torch.full((1, 2, 4, 4), 0.3)
    torch.testing.assert_close(blurs[1](flat), torch.full((1, 2, 2, 2), 0.3))  # edges replicate: no dark border


def test_resnet18_like():
    m = build_backbone("k22_resnet", {"layers": [2, 2, 2, 2], "block": "basic", "width": 0.25})
    assert m.channels == [16, 32, 64, 128]
    assert [len(getattr(m.net, f"layer{i}")) for i in range(1, 5)] == [2, 2, 2, 2]


def test_vit_taps_every_block():
    args = {"patch_size": 8, "embed_dim": 32, "depth": 3, "num_heads": 2}
    patch = build_backbone("vit", args).eval()
    feats = patch(torch.rand(2, 3, 64, 64))
    assert patch.channels == [32] * 3 and [f.shape for f in feats] == [(2, 32, 8, 8)] * 3
    assert patch(torch.rand(1, 3, 48, 80))[0].shape == (1, 32, 6, 10)  # other sizes work
    cls = build_backbone("vit", {**args, "tokens": "cls"}).eval()
    cls.load_state_dict(patch.state_dict())
    assert [f.shape for f in cls(torch.rand(2, 3, 64, 64))] == [(2, 32, 1, 1)] * 3


@pytest.mark.parametrize("arch, channels, params", [("alexnet", [64, 192, 384, 256, 256], 2_469_696),
                                                    ("vgg16", [64, 128, 256, 512, 512], 14_714_688)])
def test_lpips_trunks(arch, channels, params):
    m = build_backbone(arch)
    assert m.channels == channels
    assert sum(p.numel() for p in m.parameters()) == params
    assert [f.shape[1] for f in m.eval()(torch.rand(1, 3, 64, 64))] == channels


def test_unknown_architecture_and_bad_args():
    with pytest.raises(ValueError, match="unknown architecture 'resnet9'.*k22_resnet"):
        build_backbone("resnet9")
    with pytest.raises(ValueError, match=r"arch_args\.depth is not an argument of architecture 'k22_resnet' "
                                         r"\(its arguments: width, layers, block, antialias, num_classes\)"):
        build_backbone("k22_resnet", {"depth": 3})


@pytest.mark.parametrize("arch, args", [("k22_resnet", {"width": 0.25}), ("k22_resnet", {"block": "bottleneck"}),
                                        ("alexnet", {}), ("vgg16", {}), ("vit", {"depth": 3, "embed_dim": 32})])
def test_tap_count_matches_the_built_backbone(arch, args):
    """Cards check a per-stage feature_blur against tap_count without building the model."""
    full = check_arch_args(arch, args)
    assert tap_count(arch, full) == len(build_backbone(arch, full).channels)
