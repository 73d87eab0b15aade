"""Model cards and their files (perceptual_sim.models.card): what is written and read back, and hostile files.

Every bad card field, special files, bad tensors and oversized architectures fail cleanly (an error
naming the field and the file; one `error:` line on the command line), before anything is built.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import make_model
from safetensors.torch import load_file, save_file

import perceptual_sim
from perceptual_sim import PerceptualDistance, WeightsError
from perceptual_sim.backbones import build_backbone
from perceptual_sim.cli import main
from perceptual_sim.files import sha256_file
from perceptual_sim.models.archs import MAX_MODEL_BYTES, check_arch_args, estimate
from perceptual_sim.models.card import (
    MAX_CARD_BYTES,
    ModelCard,
    ModelNotFoundError,
    load_tensors,
    read_card,
    save_model,
)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    """A valid card (and its tensor file) to break one field at a time."""
    card = make_model(tmp_path_factory.mktemp("good"), name="good")
    return card, json.loads(card.read_text())


def test_a_card_round_trips_through_json(good):
    card = read_card(good[0])
    assert ModelCard.from_json(card.to_json()) == card
    with pytest.raises(WeightsError, match="unknown fields"):
        ModelCard.from_json(json.dumps({**json.loads(card.to_json()), "pickle": 1}))


def test_save_model_stamps_the_card_and_never_overwrites_unasked(good, tmp_path):
    card, tensors = read_card(good[0]), load_file(str(good[0].with_suffix(".safetensors")))
    stale = ModelCard.from_json(json.dumps({**good[1], "sha256": "", "package_version": "0.0.1"}))
    written = save_model(stale, tensors, tmp_path / "m.json")
    assert written.sha256 == sha256_file(tmp_path / "m.safetensors") == card.sha256
    assert written.package_version == perceptual_sim.__version__ and read_card(tmp_path / "m.json") == written
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "m.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask  # shared: not safetensors' 0600
    save_model(stale, tensors, tmp_path / "folder")  # a folder: card.json + model.safetensors
    assert sorted(p.name for p in (tmp_path / "folder").iterdir()) == ["card.json", "model.safetensors"]
    with pytest.raises(FileExistsError, match="m.json exists; choose another name or pass overwrite=True"):
        save_model(stale, tensors, tmp_path / "m.json")
    assert save_model(card, tensors, tmp_path / "m.json", overwrite=True) == written


def test_tensor_files_must_match_their_card(good, tmp_path):
    card = read_card(good[0])
    assert set(load_tensors(card, good[0].with_suffix(".safetensors"))) == set(load_file(str(good[0].with_suffix(".safetensors"))))
    with pytest.raises(ModelNotFoundError, match="tensor file .*nope.safetensors for model 'good' is missing"):
        load_tensors(card, tmp_path / "nope.safetensors")
    path = _write(tmp_path, "other", json.dumps({**good[1], "sha256": "0" * 64}), good[0].with_suffix(".safetensors"))
    message = f"has sha256 {card.sha256}, but the card of 'good' says {'0' * 64}: the file is corrupt"
    with pytest.raises(WeightsError, match=re.escape(message)):
        PerceptualDistance.from_pretrained(str(path))


def _nest(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def _with(**changes: Any):
    return lambda card: json.dumps({**card, **changes})


def _text(old: str, new: str):
    return lambda card: json.dumps(card).replace(old, new, 1)


HOSTILE = {
    "name not text": (_with(name=5), "field 'name' must be a string of at most 200 characters, got 5"),
    "name with escapes": (_with(name="x\x1b[2J"), "field 'name' must be a non-empty name without control characters"),
    "unknown arch": (_with(arch="resnet9"), ("field 'arch' must be one of ['alexnet', 'conv_student', 'efficientnet_lite0', 'k22_resnet', 'vgg16', 'vit'], "
                                            "got 'resnet9'")),
    "antialias as number": (_with(arch_args={"antialias": 1}), "arch_args.antialias must be true or false, got 1"),
    "huge width": (_with(arch_args={"width": 1e9}), "arch_args.width must be a number in [0.015625, 4], got 1000000000.0"),
    "width as text": (_with(arch_args={"width": "1"}), "arch_args.width must be a number in [0.015625, 4], got '1'"),
    "width true": (_with(arch_args={"width": True}), "arch_args.width must be a number in [0.015625, 4], got True"),
    "huge layer count": (_with(arch_args={"layers": [1, 1, 1, 10**9]}),
                         "arch_args.layers must be a list of 4 integers in [1, 64], got [1, 1, 1, 1000000000]"),
    "three stages": (_with(arch_args={"layers": [1, 1, 1]}), "arch_args.layers must be a list of 4 integers"),
    "huge class count": (_with(arch_args={"num_classes": 10**12}),
                         "arch_args.num_classes must be an integer in [0, 100000], got 1000000000000"),
    "unknown block": (_with(arch_args={"block": "giant"}),
                      "arch_args.block must be one of ['single', 'basic', 'bottleneck'], got 'giant'"),
    "unknown argument": (_with(arch_args={"depth": 3}), "arch_args.depth is not an argument of architecture 'k22_resnet'"),
    "arch_args a list": (_with(arch_args=[1]), "field 'arch_args' must be a JSON object, got [1]"),
    "huge ViT width": (_with(arch="vit", arch_args={"embed_dim": 10**7}),
                       "arch_args.embed_dim must be an integer in [1, 4096], got 10000000"),
    "huge ViT depth": (_with(arch="vit", arch_args={"depth": 10**6}), "arch_args.depth must be an integer in [1, 24]"),
    "huge ViT size": (_with(arch="vit", arch_args={"img_size": 10**6}),
                      "arch_args.img_size must be an integer in [1, 4096]"),
    "zero ViT patch": (_with(arch="vit", arch_args={"patch_size": 0}),
                       "arch_args.patch_size must be an integer in [1, 64], got 0"),
    "ViT heads": (_with(arch="vit", arch_args={"embed_dim": 96, "num_heads": 5}),
                  "arch_args.embed_dim (96) must be a multiple of arch_args.num_heads (5)"),
    "zero input_std": (_with(input_std=[0, 1, 1]),
                       "field 'input_std' must be 3 numbers (R, G, B) in [0.001, 1000], got [0, 1, 1]"),
    "two means": (_with(input_mean=[0.5, 0.5]), "field 'input_mean' must be 3 numbers (R, G, B) in [-10, 10]"),
    "mean as text": (_with(input_mean="abc"), "field 'input_mean' must be 3 numbers (R, G, B) in [-10, 10], got 'abc'"),
    "unknown mode": (_with(default_mode="max"), "field 'default_mode' must be one of ['spatial', 'style', 'meanpool']"),
    "layer_weights text": (_with(layer_weights="yes"), "field 'layer_weights' must be true or false, got 'yes'"),
    "negative min_size": (_with(min_size=-1), "field 'min_size' must be an integer in [1, 4096], got -1"),
    "fractional min_size": (_with(min_size=1.5), "field 'min_size' must be an integer in [1, 4096], got 1.5"),
    "negative feature_blur": (_with(feature_blur=-0.5), ("field 'feature_blur' must be a number in [0, 4.0] (Gaussian "
                                                         "sigma in feature positions, 0 for none) or a list of them, "
                                                         "one per tapped stage, got -0.5")),
    "feature_blur as text": (_with(feature_blur="1"), "field 'feature_blur' must be a number in [0, 4.0]"),
    "feature_blur list with text": (_with(feature_blur=[0, "1"]), "or a list of them, one per tapped stage, got [0, '1']"),
    "feature_blur per stage, too few": (_with(feature_blur=[0, 1]), ("field 'feature_blur' has 2 sigmas, but "
                                                                    "architecture 'k22_resnet' with these arch_args "
                                                                    "taps 4 maps")),
    "bad sha256": (_with(sha256="abc"), "field 'sha256' must be 64 lowercase hex digits, got 'abc'"),
    "training a list": (_with(training=[]), "field 'training' must be a JSON object, got []"),
    "huge summary": (_with(summary="x" * 20_000), "field 'summary' must be a string of at most 10,000 characters"),
    "nested 40 deep": (_with(scores=_nest(40)), "field 'scores' nests deeper than 32 levels"),
    "NaN": (_text('"min_size": 16', '"min_size": NaN'), "NaN is not a number a card may hold"),
    "Infinity": (_text('"scores": {}', '"scores": {"x": -Infinity}'), "-Infinity is not a number a card may hold"),
    "1e999": (_text('"scores": {}', '"scores": {"x": 1e999}'), "'scores.x' must be a finite number, got inf"),
    "repeated key": (_text('"arch":', '"arch": "vit", "arch":'), "key 'arch' appears twice in one object"),
    "nested 100000 deep": (lambda card: "[" * 100_000, "JSON nested too deeply (a card nests at most 32 levels)"),
    "not an object": (lambda card: "[1, 2]", "must hold a JSON object, got list"),
    "5000-digit integer": (_text('"min_size": 16', '"min_size": ' + "9" * 5000), "integer string conversion"),
    "unknown field": (_with(pickle=1), "has unknown fields ['pickle']"),
    "missing arch": (lambda card: json.dumps({k: v for k, v in card.items() if k != "arch"}),
                     "is missing a field: ModelCard.__init__() missing 1 required positional argument: 'arch'"),
}


def _write(folder: Path, name: str, text: str | bytes, tensors: Path) -> Path:
    path = folder / f"{name}.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    (folder / f"{name}.safetensors").write_bytes(tensors.read_bytes())
    return path


@pytest.mark.parametrize("make, message", HOSTILE.values(), ids=list(HOSTILE))
def test_hostile_card_fields_name_the_field_and_the_file(good, tmp_path, capsys, make, message):
    path = _write(tmp_path, "bad", make(good[1]), good[0].with_suffix(".safetensors"))
    with pytest.raises(WeightsError, match=re.escape(message)) as caught:
        PerceptualDistance.from_pretrained(str(path))
    assert str(caught.value).startswith(str(path))
    assert main(["download", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}") and err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe{}", "a model card is UTF-8 JSON text, but byte 0 is not UTF-8"),
    (b"{" + b" " * MAX_CARD_BYTES + b"}", f"larger than {MAX_CARD_BYTES:,} bytes, too large for a model card"),
], ids=["not UTF-8", "over the size cap"])
def test_undecodable_and_oversized_cards(good, tmp_path, capsys, content, message):
    path = _write(tmp_path, "bad", content, good[0].with_suffix(".safetensors"))
    with pytest.raises(WeightsError, match=re.escape(f"{path}: {message}")):
        PerceptualDistance.from_pretrained(str(path))
    assert main(["download", str(path)]) == 1 and capsys.readouterr().err == f"error: {path}: {message}\n"


def test_cards_and_tensor_files_must_be_regular_files(good, tmp_path, capsys):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # reading it would wait for a writer forever
    device = tmp_path / "zero.json"
    device.symlink_to("/dev/zero")  # reading it would never end
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "card.json").write_bytes(good[0].read_bytes())
    (folder / "model.safetensors").symlink_to("/dev/zero")
    cases = [(fifo, f"{fifo}: the model card is a FIFO (named pipe), not a regular file"),
             (device, f"{device}: the model card is a device, not a regular file"),
             (folder, f"{folder / 'model.safetensors'}: the tensor file is a device, not a regular file")]
    for path, message in cases:
        with pytest.raises(WeightsError, match=re.escape(message)):
            PerceptualDistance.from_pretrained(str(path))
        assert main(["download", str(path)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {message}") and err.count("\n") == 1


def _tensors_with(card: Path, tmp_path: Path, change) -> Path:
    """A copy of ``card``'s model whose tensors ``change`` edited, with the card's sha256 updated."""
    state = load_file(str(card.with_suffix(".safetensors")))
    change(state)
    out = tmp_path / "edited.json"
    save_file(state, str(out.with_suffix(".safetensors")))
    data = json.loads(card.read_text())
    data["sha256"] = sha256_file(out.with_suffix(".safetensors"))
    out.write_text(json.dumps(data))
    return out


def _set(key: str, value: torch.Tensor):
    return lambda state: state.__setitem__(key, value)


CONV = "backbone.net.conv1.weight"
BAD_TENSORS = {
    "NaN": (lambda s: s[CONV].view(-1).__setitem__(0, float("nan")), f"tensor {CONV!r} holds NaN or infinite values"),
    "Inf": (lambda s: s[CONV].view(-1).__setitem__(3, float("inf")), f"tensor {CONV!r} holds NaN or infinite values"),
    "int8 weights": (lambda s: s.__setitem__(CONV, s[CONV].to(torch.int8)),
                     f"tensor {CONV!r} has dtype torch.int8, expected a float dtype"),
    "bool weights": (lambda s: s.__setitem__(CONV, s[CONV] > 0), f"tensor {CONV!r} has dtype torch.bool"),
    "float counter": (lambda s: s.__setitem__("backbone.net.bn1.num_batches_tracked", torch.tensor(1.5)),
                      "tensor 'backbone.net.bn1.num_batches_tracked' has dtype torch.float32, expected torch.int64"),
}


@pytest.mark.parametrize("change, message", BAD_TENSORS.values(), ids=list(BAD_TENSORS))
def test_bad_tensors_name_the_tensor_and_the_file(good, tmp_path, capsys, change, message):
    path = _tensors_with(good[0], tmp_path, change)
    tensors = path.with_suffix(".safetensors")
    with pytest.raises(WeightsError, match=re.escape(f"{tensors}: {message}")):
        PerceptualDistance.from_pretrained(str(path))
    assert main(["download", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tensors}: {message}") and err.count("\n") == 1


def test_half_precision_weights_load(good, tmp_path, images):
    path = _tensors_with(good[0], tmp_path, lambda s: s.update({k: v.half() for k, v in s.items()
                                                                 if v.is_floating_point()}))
    half, full = PerceptualDistance.from_pretrained(str(path)), PerceptualDistance.from_pretrained(str(good[0]))
    torch.testing.assert_close(half(*images), full(*images), rtol=2e-2, atol=1e-4)


def test_oversized_architectures_are_refused_before_anything_is_built(good, tmp_path, monkeypatch, capsys):
    def fail(*args: Any) -> None:
        raise AssertionError("the backbone was built")

    card = _write(tmp_path, "huge", json.dumps({**good[1], "arch_args": {"width": 4, "layers": [64] * 4,
                                                                         "block": "bottleneck"}}),
                  good[0].with_suffix(".safetensors"))
    monkeypatch.setattr("perceptual_sim.metric.build_backbone", fail)
    message = "model 'good' would need about 33.1 GiB (6,096,882,944 parameters and 2,797,600,768 activations"
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        PerceptualDistance.from_pretrained(str(card))
    assert f"more than max_model_bytes={MAX_MODEL_BYTES:,}" in str(caught.value)
    assert main(["download", str(card)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and "PERCEPTUAL_SIM_MAX_MODEL_BYTES" in err and err.count("\n") == 1


def test_the_memory_bound_can_be_raised_or_lowered_explicitly(good, monkeypatch):
    need = estimate("k22_resnet", check_arch_args("k22_resnet", {"width": 0.25}))[0]
    assert PerceptualDistance.from_pretrained(str(good[0]), max_model_bytes=need).card.name == "good"
    with pytest.raises(ValueError, match=re.escape(f"more than max_model_bytes={need - 1:,}")):
        PerceptualDistance.from_pretrained(str(good[0]), max_model_bytes=need - 1)
    monkeypatch.setenv("PERCEPTUAL_SIM_MAX_MODEL_BYTES", str(need - 1))
    with pytest.raises(ValueError, match=re.escape(f"more than max_model_bytes={need - 1:,}")):
        PerceptualDistance.from_pretrained(str(good[0]))
    assert PerceptualDistance.from_pretrained(str(good[0]), max_model_bytes=need).card.name == "good"
    monkeypatch.setenv("PERCEPTUAL_SIM_MAX_MODEL_BYTES", "8GB")
    with pytest.raises(ValueError, match="PERCEPTUAL_SIM_MAX_MODEL_BYTES='8GB': expected a positive number of bytes"):
        PerceptualDistance.from_pretrained(str(good[0]))


ARCHS = [("k22_resnet", {}), ("k22_resnet", {"width": 0.5, "layers": [2, 2, 2, 2], "block": "basic"}),
         ("k22_resnet", {"width": 0.5, "antialias": True}),
         ("k22_resnet", {"width": 0.25, "layers": [1, 2, 1, 1], "block": "bottleneck", "num_classes": 10}),
         ("vit", {"patch_size": 8, "embed_dim": 96, "depth": 4, "num_heads": 3}),
         ("vit", {"patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2, "mlp_ratio": 2, "num_classes": 7}),
         ("alexnet", {}), ("vgg16", {})]


@pytest.mark.parametrize("arch, args", ARCHS, ids=[f"{a}-{i}" for i, (a, _) in enumerate(ARCHS)])
def test_the_estimate_counts_parameters_exactly_and_bounds_activations(arch, args):
    from perceptual_sim.models.archs import ESTIMATE_SIZE

    with torch.device("meta"):  # shapes only: nothing is allocated
        net = build_backbone(arch, args).eval()
        outputs = [0]
        for m in net.modules():
            if not list(m.children()) and not isinstance(m, (torch.nn.Identity, torch.nn.Dropout)):  # no memory
                m.register_forward_hook(lambda m, i, o: outputs.__setitem__(0, outputs[0] + o.numel()))
        net(torch.empty(1, 3, ESTIMATE_SIZE, ESTIMATE_SIZE))
    full = check_arch_args(arch, args)
    size, params, acts = estimate(arch, full)
    assert params == sum(p.numel() for p in net.parameters())
    if arch == "vit":  # attention scores and their softmax, which no module outputs (fused attention)
        tokens = (ESTIMATE_SIZE // full["patch_size"]) ** 2 + 1
        outputs[0] += full["depth"] * 2 * full["num_heads"] * tokens**2
    assert outputs[0] * 0.9 <= acts <= 2 * outputs[0]
    assert size == 4 * (params + acts)


def test_cards_built_in_python_are_checked_too():
    with pytest.raises(WeightsError, match=re.escape("arch_args.width must be a number in [0.015625, 4], got 100")):
        ModelCard(name="x", arch="k22_resnet", arch_args={"width": 100})
    card = ModelCard(name="x", arch="k22_resnet", input_mean=[0, 0, 0], input_std=(1, 1, 1))
    assert card.input_mean == (0.0, 0.0, 0.0) and card.input_std == (1.0, 1.0, 1.0)
