"""The training recipe (perceptual_sim.lab.train) keeps its promises: checkpoints dense early, nothing pickled,
and a run interrupted and started again ends exactly where an uninterrupted one does."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from helpers import save_random_image
from safetensors.torch import load_file

from perceptual_sim.lab import train as recipe_module
from perceptual_sim.lab.train import Recipe, checkpoint_steps, checkpoints, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Two classes of random 64 x 64 images: 4 + 4 to train on (two steps of 4 an epoch), 1 + 1 to validate."""
    root = tmp_path_factory.mktemp("data")
    for split, n in (("train", 4), ("val", 1)):
        for c, label in enumerate(("cat", "dog")):
            for i in range(n):
                save_random_image(root / split / label / f"{i}.png", 100 * c + 10 * (split == "val") + i, (64, 64))
    return root


def _recipe(data: Path, **changes) -> Recipe:
    return Recipe(data=str(data), arch_args={"width": 0.25}, epochs=2, batch_size=4, warmup_epochs=0.5, **changes)


def test_checkpoints_are_dense_early_and_sparse_late():
    """8 per epoch in epoch 1, 4 per epoch in epochs 2-3, one per epoch to 10, then every 5 (and the last step)."""
    assert checkpoint_steps(8, 20) == [*range(1, 9), *range(10, 25, 2), *range(32, 81, 8), 120, 160]
    assert checkpoint_steps(8, 2.5) == [*range(1, 9), 10, 12, 14, 16, 18, 20]


def test_an_interrupted_run_resumes_to_the_uninterrupted_result(data, tmp_path, monkeypatch):
    torch.manual_seed(1)  # the caller's generator must not matter: the recipe's seed sets the initial weights
    whole = train(_recipe(data), tmp_path / "whole", cache=tmp_path / "cache")
    save = recipe_module._save_checkpoint

    def save_then_stop(out, model, opt, gen, step, *args):
        save(out, model, opt, gen, step, *args)
        if step == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(recipe_module, "_save_checkpoint", save_then_stop)
    torch.manual_seed(2)
    with pytest.raises(KeyboardInterrupt):
        train(_recipe(data), tmp_path / "resumed", cache=tmp_path / "cache")
    assert [r["step"] for r in checkpoints(tmp_path / "resumed")] == [1, 2]
    monkeypatch.undo()
    resumed = train(_recipe(data), tmp_path / "resumed", cache=tmp_path / "cache")

    def record(r: dict) -> dict:
        return {k: v for k, v in r.items() if k != "time"}

    assert [record(r) for r in checkpoints(resumed)] == [record(r) for r in checkpoints(whole)]
    assert [r["step"] for r in checkpoints(whole)] == [1, 2, 3, 4]
    final, expected = load_file(str(resumed / "step-0000004.safetensors")), load_file(str(whole / "step-0000004.safetensors"))
    assert final.keys() == expected.keys() and any(k.startswith("optim.") for k in final)
    for key, value in expected.items():  # model, momentum buffers and RNG state, bit for bit
        assert final[key].equal(value), key
    assert (resumed / "log.csv").read_text() == (whole / "log.csv").read_text()
    assert {p.suffix for p in resumed.iterdir()} == {".json", ".safetensors", ".csv"}  # nothing pickled


def test_the_recipe_seed_sets_the_initial_weights(data, tmp_path):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        torch.manual_seed(len(runs))  # a different global state before each run
        train(dataclasses.replace(_recipe(data), epochs=0.5, seed=seed), tmp_path / name, cache=tmp_path / "cache")
        runs[name] = load_file(str(tmp_path / name / "step-0000001.safetensors"))
    assert all(runs["a"][k].equal(runs["b"][k]) for k in runs["a"])
    assert not runs["a"]["model.net.conv1.weight"].equal(runs["c"]["model.net.conv1.weight"])


def test_a_run_folder_holds_one_recipe(data, tmp_path):
    train(dataclasses.replace(_recipe(data), epochs=0.5), tmp_path / "run", cache=tmp_path / "cache")
    with pytest.raises(ValueError, match="holds a run with another recipe .*recipe.json.*use a new --out folder"):
        train(dataclasses.replace(_recipe(data), epochs=0.5, lr=0.01), tmp_path / "run", cache=tmp_path / "cache")


def test_shifted_moves_each_image_by_one_to_three_pixels_along_one_axis():
    x = torch.rand(64, 3, 20, 20)
    moved = recipe_module.shifted(x, torch.Generator().manual_seed(0))
    seen = set()
    for a, b in zip(x, moved):
        found = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
                 if b[:, 3:-3, 3:-3].equal(a[:, 3 + dy : 17 + dy, 3 + dx : 17 + dx])]
        assert len(found) == 1
        dy, dx = found[0]
        assert (dy == 0) != (dx == 0) and 1 <= abs(dy + dx) <= 3
        seen.add((dy, dx))
    assert len(seen) > 6  # both axes, both directions, several distances


def test_shifted_with_a_smallest_shift_moves_only_that_far_or_further():
    x = torch.rand(64, 3, 20, 20)
    moved = recipe_module.shifted(x, torch.Generator().manual_seed(0), low=3)
    for a, b in zip(x, moved):
        assert any(b[:, 3:-3, 3:-3].equal(a[:, 3 + dy : 17 + dy, 3 + dx : 17 + dx])
                   for dy, dx in ((3, 0), (-3, 0), (0, 3), (0, -3)))
    with pytest.raises(ValueError, match="smallest shift must be 1 to 3 px, got 4"):
        recipe_module.shifted(x, torch.Generator(), low=4)


def test_shift_loss_is_zero_for_flat_images_and_positive_with_finite_gradients_otherwise():
    from perceptual_sim.backbones import build_backbone

    torch.manual_seed(0)
    model = build_backbone("k22_resnet", {"width": 0.25}).eval()
    flat = torch.full((2, 3, 64, 64), 0.3)  # reflecting a flat image leaves it unchanged
    assert recipe_module.shift_loss(model, flat, torch.Generator().manual_seed(0)).item() == 0
    x = torch.rand(2, 3, 64, 64)
    term = recipe_module.shift_loss(model, x, torch.Generator().manual_seed(0))
    term.backward()
    assert term.item() > 0
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_shift_loss_blur_forgives_a_pattern_that_alternates_from_pixel_to_pixel():
    class Maps(torch.nn.Module):  # the image itself as the one tapped map
        def forward(self, x):
            return [x]

    sign = (torch.arange(64).view(64, 1) + torch.arange(64)).remainder(2).mul(2).sub(1).float()
    base = torch.rand(8, 3, 1, 1) + 1
    x = base + 0.5 * base.flip(1) * sign  # a checkerboard: an odd shift swaps its two directions
    plain = recipe_module.shift_loss(Maps(), x, torch.Generator().manual_seed(0)).item()
    blurred = recipe_module.shift_loss(Maps(), x, torch.Generator().manual_seed(0), blur=1.0).item()
    assert plain > 0.01 and blurred < 0.01 * plain


def test_photometric_loss_is_positive_with_finite_gradients_and_changes_the_training(data, tmp_path):
    from perceptual_sim.backbones import build_backbone

    torch.manual_seed(0)
    model = build_backbone("k22_resnet", {"width": 0.25}).eval()
    term = recipe_module.photometric_loss(model, torch.rand(2, 3, 64, 64), torch.Generator().manual_seed(0))
    term.backward()
    assert term.item() > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    finals = {}
    for weight in (0.0, 1.0):
        out = train(dataclasses.replace(_recipe(data), epochs=0.5, photometric_consistency=weight),
                    tmp_path / str(weight), cache=tmp_path / "cache")
        finals[weight] = load_file(str(out / "step-0000001.safetensors"))
    assert not finals[0.0]["model.net.conv1.weight"].equal(finals[1.0]["model.net.conv1.weight"])


def test_shift_consistency_changes_the_training(data, tmp_path):
    # step 1 is the first step: its augmentation is drawn before the shifts, so only the term's gradient can differ
    finals = {}
    for weight in (0.0, 1.0):
        out = train(dataclasses.replace(_recipe(data), epochs=0.5, shift_consistency=weight), tmp_path / str(weight),
                    cache=tmp_path / "cache")
        finals[weight] = load_file(str(out / "step-0000001.safetensors"))
    assert not finals[0.0]["model.net.conv1.weight"].equal(finals[1.0]["model.net.conv1.weight"])


def test_shift_order_loss_has_finite_gradients_and_gives_features_that_ignore_the_image_one_half():
    from perceptual_sim.backbones import build_backbone

    torch.manual_seed(0)
    model = build_backbone("k22_resnet", {"width": 0.25})
    raw = torch.rand(4, 3, 64, 64)
    term = recipe_module.shift_order_loss(model, raw, torch.Generator().manual_seed(0), 60.0)
    term.backward()
    assert 0 < term.item() < 1
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)

    class Blind(torch.nn.Module):  # the same map whatever the image: no decision either way
        def forward(self, x):
            return [torch.ones(len(x), 4, 8, 8)]

    assert recipe_module.shift_order_loss(Blind(), raw, torch.Generator().manual_seed(0)).item() == 0.5


def test_shift_order_loss_is_small_when_a_shift_keeps_every_decision(monkeypatch):
    smooth = torch.nn.functional.interpolate(torch.rand(8, 3, 4, 4), size=(64, 64), mode="bilinear")
    calls = []

    def two_levels(x, p, gen):  # a: faint noise, b: strong noise, so b is always the farther
        calls.append(1)
        return x + (0.02 if len(calls) % 2 else 0.4) * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))

    monkeypatch.setattr(recipe_module, "distort", two_levels)
    term = recipe_module.shift_order_loss(_ImagePlusOne(), smooth, torch.Generator().manual_seed(0)).item()
    assert term < 0.01


def test_shift_order_loss_sees_the_shift_protocols_windows():
    raw = torch.rand(8, 3, 64, 64)
    shapes = []
    term = recipe_module.shift_order_loss(_Recording(_ImagePlusOne(), shapes), raw, torch.Generator().manual_seed(0))
    assert shapes == [(40, 3, 58, 58)]  # reference, two distortions, both moved: one pass of 58 x 58 windows
    assert term.item() > 0


class _ImagePlusOne(torch.nn.Module):  # the image itself (kept off zero) as the one tapped map
    def forward(self, x):
        return [x + 1]


class _Recording(torch.nn.Module):
    def __init__(self, inner, shapes):
        super().__init__()
        self.inner, self.shapes = inner, shapes

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return self.inner(x)


def test_shift_order_ramps_in_and_changes_the_training(data, tmp_path):
    finals = {}
    for weight in (0.0, 1.0):
        out = train(dataclasses.replace(_recipe(data), epochs=1, shift_order=weight), tmp_path / str(weight),
                    cache=tmp_path / "cache")
        finals[weight] = [load_file(str(out / f"step-000000{s}.safetensors"))["model.net.conv1.weight"] for s in (1, 2)]
    assert finals[0.0][0].equal(finals[1.0][0])  # step 1 runs at weight 0: the ramp starts there
    assert not finals[0.0][1].equal(finals[1.0][1])


def test_shift_blur_applies_from_its_fraction_of_the_run(data, tmp_path, monkeypatch):
    blurs = []
    real = recipe_module.shift_loss
    monkeypatch.setattr(recipe_module, "shift_loss", lambda model, x, gen, blur, low: blurs.append(blur) or real(model, x, gen, blur, low))
    train(dataclasses.replace(_recipe(data), shift_consistency=0.5, shift_blur=0.75, shift_blur_from=0.5), tmp_path / "run",
          cache=tmp_path / "cache")
    assert blurs == [0.0, 0.0, 0.75, 0.75]  # 4 steps: the first half compares the maps as they are
    with pytest.raises(ValueError, match=r"shift_blur_from must be a fraction of the run in \[0, 1\), got 1"):
        train(dataclasses.replace(_recipe(data), shift_blur_from=1.0), tmp_path / "bad", cache=tmp_path / "cache")


def test_shift_blur_per_stage_reaches_the_term_and_must_match_the_taps(data, tmp_path, monkeypatch):
    blurs = []
    real = recipe_module.shift_loss
    monkeypatch.setattr(recipe_module, "shift_loss", lambda model, x, gen, blur, low: blurs.append(blur) or real(model, x, gen, blur, low))
    per_stage = (0.0, 0.0, 0.75, 0.75)  # k22_resnet taps its 4 stages
    train(dataclasses.replace(_recipe(data), epochs=1, shift_consistency=0.5, shift_blur=per_stage), tmp_path / "run",
          cache=tmp_path / "cache")
    assert blurs == [per_stage, per_stage]
    with pytest.raises(ValueError, match=r"shift_blur has 3 sigmas, but k22_resnet with these arch_args taps 4 maps"):
        train(dataclasses.replace(_recipe(data), shift_blur=(0.0, 0.5, 0.5)), tmp_path / "bad", cache=tmp_path / "cache")
    with pytest.raises(ValueError, match=r"shift_blur must be sigmas >= 0, got -1"):
        train(dataclasses.replace(_recipe(data), shift_blur=-1.0), tmp_path / "bad", cache=tmp_path / "cache")


def test_a_viewing_condition_filters_training_and_validation_and_reaches_the_card(data, tmp_path, monkeypatch):
    seen = []
    real = recipe_module.csf_filter
    monkeypatch.setattr(recipe_module, "csf_filter", lambda x, ppd: seen.append((tuple(x.shape), ppd)) or real(x, ppd))
    out = train(dataclasses.replace(_recipe(data), epochs=0.5, pixels_per_degree=60), tmp_path / "run",
                cache=tmp_path / "cache")
    assert seen == [((4, 3, 64, 64), 60), ((2, 3, 64, 64), 60)]  # the training batch, then the validation images
    card = recipe_module.export(out, 1, "seen", tmp_path / "models")
    assert card.pixels_per_degree == 60
    plain = train(dataclasses.replace(_recipe(data), epochs=0.5), tmp_path / "plain", cache=tmp_path / "cache")
    assert recipe_module.export(plain, 1, "plain", tmp_path / "models").pixels_per_degree == 0
    assert load_file(str(out / "step-0000001.safetensors"))["model.net.conv1.weight"].ne(
        load_file(str(plain / "step-0000001.safetensors"))["model.net.conv1.weight"]).any()


def test_teacher_loss_is_zero_for_the_teachers_own_network_and_positive_with_gradients_for_another():
    import copy

    from perceptual_sim import PerceptualDistance
    from perceptual_sim.backbones import build_backbone

    teacher = PerceptualDistance.from_pretrained("resnet6-pa")
    raw = torch.rand(8, 3, 48, 48)
    own = copy.deepcopy(teacher.backbone)
    same = recipe_module.teacher_loss(own, teacher, raw, torch.Generator().manual_seed(0), teacher.pixels_per_degree)
    assert same.item() < 1e-8
    torch.manual_seed(0)
    other = build_backbone("k22_resnet", {"width": 0.25})
    term = recipe_module.teacher_loss(other, teacher, raw, torch.Generator().manual_seed(0), teacher.pixels_per_degree)
    term.backward()
    assert term.item() > 0.01
    assert all(torch.isfinite(p.grad).all() for p in other.parameters() if p.grad is not None)


def test_a_teacher_changes_the_training_and_must_be_named(data, tmp_path):
    finals = {}
    for weight in (0.0, 1.0):
        out = train(dataclasses.replace(_recipe(data), epochs=0.5, teacher="resnet6-pa", teacher_weight=weight),
                    tmp_path / str(weight), cache=tmp_path / "cache")
        finals[weight] = load_file(str(out / "step-0000001.safetensors"))
    assert not finals[0.0]["model.net.conv1.weight"].equal(finals[1.0]["model.net.conv1.weight"])
    with pytest.raises(ValueError, match="teacher_weight is set but no teacher is named"):
        train(dataclasses.replace(_recipe(data), teacher_weight=1.0), tmp_path / "none", cache=tmp_path / "cache")
