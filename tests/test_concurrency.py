"""Concurrent use: the module cache under threads, and two processes filling one Hub cache at once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import torch
from helpers import make_model
from hubclient import pair, weights_digest
from hubserver import HubServer, client_env, finish_client, start_client

from perceptual_sim import PerceptualDistance, api

THREADS = 8


def test_threads_share_one_module_and_get_correct_results(tmp_path):
    model = str(make_model(tmp_path, name="shared", seed=3))
    x, y = pair()
    expected = PerceptualDistance.from_pretrained(model)(x, y)
    api.clear_cache()
    start = threading.Barrier(THREADS)
    modules: list[PerceptualDistance] = []
    results: list[torch.Tensor] = []
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            start.wait()
            if i % 2:
                modules.append(api.load(model))
            results.append(api.distance(x, y, model=model))
            modules.append(api.load(model))
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        assert len(modules) == THREADS + THREADS // 2 and len({id(m) for m in modules}) == 1
        assert len(results) == THREADS
        for d in results:
            torch.testing.assert_close(d, expected, rtol=1e-6, atol=0)
    finally:
        api.clear_cache()


@pytest.mark.network
def test_two_processes_fill_one_hub_cache_soundly(tmp_path):
    card = make_model(tmp_path, seed=4)
    files = {"card.json": card.read_bytes(), "model.safetensors": card.with_suffix(".safetensors").read_bytes()}
    cache = tmp_path / "cache"
    (tmp_path / "barrier").mkdir()
    steps = [{"op": "barrier", "dir": str(tmp_path / "barrier"), "count": 2},
             {"op": "load", "model": "hf-hub:org/shared"}]
    with HubServer(lfs_delay=0.5) as server:
        server.commit("org/shared", files)
        procs = [start_client(steps, client_env(server.endpoint, cache)) for _ in range(2)]
        both = [finish_client(p) for p in procs]
        heads = [r for r in server.requests("/model.safetensors") if r.method == "HEAD"]
        (offline,) = finish_client(start_client(steps[1:], client_env(server.endpoint, cache, offline=True)))
    local = PerceptualDistance.from_pretrained(str(card))
    for result in [run[1] for run in both] + [offline]:
        assert result["ok"], result
        assert result["digest"] == weights_digest(local)
    assert len(heads) == 4, "both processes must have asked the Hub (its metadata, then hf_hub_download)"
    repo = cache / "models--org--shared"
    blobs = sorted(p.name for p in (repo / "blobs").iterdir())
    assert len(blobs) == 2 and not [b for b in blobs if b.endswith(".incomplete")], blobs
    snapshot = next((repo / "snapshots").iterdir())
    for name, data in files.items():
        assert (snapshot / name).read_bytes() == data
    assert not list(Path(cache).rglob("*.incomplete"))
