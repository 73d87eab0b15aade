"""``hf-hub:`` models against a loopback Hub (tests/hubserver.py), through huggingface_hub's own client.

The scenarios run in groups, each with its own Hub server, Hugging Face cache and client process (a
module fixture per group; the groups the selected tests use start together, in the background,
when the first of them runs): a group shares nothing with another, so one that cannot run (its
client crashes or hangs) fails only its own tests, and a step that fails fails only the test that
checks it (the client reports each step on its own). The groups: downloads and pins;
what the Hub refuses (missing repos, revisions and files, a server error); files that fail a check
(evicted from the cache); and a filled cache read with the Hub down and with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import make_model
from hubclient import pair, weights_digest
from hubserver import Hostile, HubServer, client_env, closed_endpoint, finish_client, start_client

from perceptual_sim import PerceptualDistance, WeightsError
from perceptual_sim.models.registry import bundled_names

pytestmark = pytest.mark.network  # a loopback Hub server (tests/hubserver.py) answers every test here

TENSORS = "model.safetensors"
_models_lock = threading.Lock()  # make_model seeds torch's global generator


def _files(card: Path) -> dict[str, bytes]:
    """A Hub repo's files for the model whose card is ``card``."""
    return {"card.json": card.read_bytes(), TENSORS: card.with_suffix(".safetensors").read_bytes()}


def load(model: str) -> dict[str, str]:
    """The client step that loads ``model`` and scores :func:`hubclient.pair` with it."""
    return {"op": "load", "model": model}


def _model(folder: Path, seed: int) -> Path:
    with _models_lock:
        return make_model(folder, seed=seed)


def _client(named: list[tuple[str, dict[str, Any]]], env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Run the named steps in one client process; the result of each step by name."""
    return dict(zip([n for n, _ in named], finish_client(start_client([s for _, s in named], env))))


def _tiny_repo(server: HubServer, tmp: Path) -> dict[str, Any]:
    """``org/tiny``: v1 (tagged v1), then v2 on main."""
    old, new = _model(tmp / "v1", 0), _model(tmp / "v2", 1)
    v1 = server.commit("org/tiny", _files(old), refs=("main", "v1"))
    v2 = server.commit("org/tiny", _files(new))
    return {"cards": {"v1": old, "v2": new}, "v1": v1, "v2": v2}


# ----------------------------------------------------------------------------- the groups
def _downloads(tmp: Path) -> dict[str, Any]:
    with HubServer() as server:
        repo = _tiny_repo(server, tmp)
        named = [("local", load(str(repo["cards"]["v1"])))]
        named += [("bundled", load(bundled_names()[0]))] if bundled_names() else []
        named += [("main", load("hf-hub:org/tiny")), ("tag", load("hf-hub:org/tiny@v1")),
                  ("sha", load(f"hf-hub:org/tiny@{repo['v1']}"))]
        steps = _client(named, client_env(server.endpoint, tmp / "cache"))
        return {**repo, "steps": steps, "served": server.requests()}


def _refusals(tmp: Path) -> dict[str, Any]:
    """What the Hub refuses: a repo, revision or file that is not there, a server error."""
    with HubServer() as server:
        good = _files(_model(tmp / "v1", 0))
        server.commit("org/tiny", good)
        server.commit("org/pickle-only", {"card.json": good["card.json"], "pytorch_model.bin": b"\x80\x04K\x01."})
        server.commit("org/weights-only", {TENSORS: good[TENSORS]})
        server.fail("org/broken", 500)
        named = [("no-repo", load("hf-hub:org/nope")), ("no-card", load("hf-hub:org/weights-only")),
                 ("no-rev", load("hf-hub:org/tiny@v9")), ("pickle", load("hf-hub:org/pickle-only")),
                 ("500", load("hf-hub:org/broken"))]
        return {"steps": _client(named, client_env(server.endpoint, tmp / "cache")), "served": server.requests()}


def _checks(tmp: Path) -> dict[str, Any]:
    """Files that fail a check: tampered, corrupted in the cache, NaN weights, a hostile card."""
    with HubServer() as server:
        repo = _tiny_repo(server, tmp)
        card_v1, good = _files(repo["cards"]["v1"])["card.json"], _files(repo["cards"]["v1"])[TENSORS]
        tampered = good[:-1] + bytes([good[-1] ^ 1])
        server.commit("org/tampered", {"card.json": card_v1, TENSORS: tampered})
        server.commit("org/nan", _nan_weights(repo["cards"]["v1"]))  # consistent (the sha256 matches), but NaN weights
        hostile = json.loads(card_v1)
        hostile["arch_args"] = {"width": 1e9}
        server.commit("org/hostile", {"card.json": json.dumps(hostile).encode(), TENSORS: good})
        named = [
            ("tampered", load("hf-hub:org/tampered")), ("cache-after-tampered", {"op": "cache"}),
            ("tampered-again", load("hf-hub:org/tampered")),
            ("downloaded", load("hf-hub:org/tiny")), ("corrupt", {"op": "corrupt", "repo": "org/tiny"}),
            ("corrupted", load("hf-hub:org/tiny")), ("cache-after-corrupted", {"op": "cache"}),
            ("redownloaded", load("hf-hub:org/tiny")),
            ("nan", load("hf-hub:org/nan")), ("hostile", load("hf-hub:org/hostile")),
            ("cache-after-checks", {"op": "cache"}),
        ]
        steps = _client(named, client_env(server.endpoint, tmp / "cache"))
        return {**repo, "steps": steps, "served": server.requests(), "blobs": {"tampered": _sha(tampered)}}


def _cached(tmp: Path) -> dict[str, Any]:
    """A cache filled online, then read by two clients side by side: the Hub down, and HF_HUB_OFFLINE=1."""
    with HubServer() as server:
        repo = _tiny_repo(server, tmp)
        cache = tmp / "cache"
        named = [("main", load("hf-hub:org/tiny")), ("tag", load("hf-hub:org/tiny@v1")),
                 ("sha", load(f"hf-hub:org/tiny@{repo['v1']}"))]
        filled = _client(named, client_env(server.endpoint, cache))
        assert all(r["ok"] for r in filled.values()), filled
        served = len(server.requests())
        named.append(("uncached", load("hf-hub:org/other")))
        steps = [s for _, s in named]
        procs = {"down": start_client(steps, client_env(closed_endpoint(), cache)),
                 "offline": start_client(steps, client_env(server.endpoint, cache, offline=True))}
        runs = {k: dict(zip([n for n, _ in named], finish_client(p))) for k, p in procs.items()}
        return {**repo, **runs, "served_offline": server.requests()[served:]}


GROUPS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "hub_downloads": _downloads, "hub_refusals": _refusals, "hub_checks": _checks, "hub_cached": _cached,
}
"""Each group's fixture name and what runs it."""


@pytest.fixture(scope="module")
def hub_runs(request, tmp_path_factory) -> Iterator[dict[str, Future[dict[str, Any]]]]:
    """Start, together in the background, the groups that the selected tests of this module use."""
    tmp = tmp_path_factory.mktemp("hub")
    wanted = sorted({name for item in request.session.items if item.module is request.module
                     for name in item.fixturenames if name in GROUPS})
    with ThreadPoolExecutor(max(1, len(wanted))) as pool:
        yield {name: pool.submit(GROUPS[name], tmp / name) for name in wanted}


@pytest.fixture(scope="module")
def hub_downloads(hub_runs) -> dict[str, Any]:
    return hub_runs["hub_downloads"].result()


@pytest.fixture(scope="module")
def hub_refusals(hub_runs) -> dict[str, Any]:
    return hub_runs["hub_refusals"].result()


@pytest.fixture(scope="module")
def hub_checks(hub_runs) -> dict[str, Any]:
    return hub_runs["hub_checks"].result()


@pytest.fixture(scope="module")
def hub_cached(hub_runs) -> dict[str, Any]:
    return hub_runs["hub_cached"].result()


# ----------------------------------------------------------------------------- checks of results
def _nan_weights(card: Path) -> dict[str, bytes]:
    """The files of ``card``'s model with one weight set to NaN, the card's sha256 updated to match."""
    from safetensors.torch import load_file, save

    state = load_file(str(card.with_suffix(".safetensors")))
    state["backbone.net.conv1.weight"].view(-1)[0] = float("nan")
    data = save(state)
    meta = json.loads(card.read_text())
    meta["sha256"] = hashlib.sha256(data).hexdigest()
    return {"card.json": json.dumps(meta).encode(), TENSORS: data}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@functools.cache
def _expected(card: Path) -> tuple[str, list[float]]:
    """What loading ``card``'s model gives: its weights' digest and its distances on :func:`hubclient.pair`."""
    module = PerceptualDistance.from_pretrained(str(card))
    with torch.inference_mode():
        return weights_digest(module), module(*pair()).tolist()


def _downloads_of(run: dict[str, Any], blob: str) -> int:
    """How often a group's client downloaded a blob (by sha256) from the CDN."""
    return sum(r.method == "GET" and r.path == f"cdn:/{blob}" for r in run["served"])


def _same_model(result: dict[str, Any], card: Path) -> None:
    """``result`` loaded the weights of the model of ``card`` (digest, distances on :func:`hubclient.pair`)."""
    assert result["ok"], result
    digest, distances = _expected(card)
    assert result["digest"] == digest
    torch.testing.assert_close(torch.tensor(result["distances"]), torch.tensor(distances), rtol=1e-5, atol=0)


def _error(result: dict[str, Any], kind: str, *parts: str) -> None:
    """``result`` is a one-line perceptual_sim error of type ``kind`` whose message holds every part."""
    assert not result["ok"] and result["type"] == kind and result["module"] == "perceptual_sim.models.card", result
    message = result["message"]
    assert "\n" not in message and "Traceback" not in message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


# ----------------------------------------------------------------------------- the tests
def test_download_then_load_equals_the_local_copy(hub_downloads):
    run = hub_downloads
    _same_model(run["steps"]["main"], run["cards"]["v2"])
    assert run["steps"]["main"]["net"], "the audit hook saw no socket: the no-network checks would prove nothing"
    unexpected = [r for r in run["served"] if "/resolve/" not in r.path and not r.path.startswith("cdn:")]
    assert not unexpected, f"requests other than file downloads (Xet, telemetry, API): {unexpected}"


def test_pinned_revisions_get_their_own_weights(hub_downloads):
    run = hub_downloads
    _same_model(run["steps"]["tag"], run["cards"]["v1"])
    _same_model(run["steps"]["sha"], run["cards"]["v1"])
    assert _expected(run["cards"]["v1"])[0] != _expected(run["cards"]["v2"])[0]


def test_local_and_bundled_models_open_no_socket(hub_downloads):
    steps = hub_downloads["steps"]
    for name in ("local", "bundled"):
        if name in steps:
            assert steps[name]["ok"] and steps[name]["net"] == [], steps[name]


@pytest.mark.parametrize("mode", ["offline", "down"])
def test_cached_models_load_without_the_hub(hub_cached, mode):
    run = hub_cached
    _same_model(run[mode]["main"], run["cards"]["v2"])
    _same_model(run[mode]["tag"], run["cards"]["v1"])
    _same_model(run[mode]["sha"], run["cards"]["v1"])


def test_offline_mode_never_touches_the_network(hub_cached):
    run = hub_cached
    assert run["served_offline"] == []
    assert all(r["net"] == [] for r in run["offline"].values())
    _error(run["offline"]["uncached"], "ModelNotFoundError", "not in the cache", "HF_HUB_OFFLINE=1 is set",
           "'org/other'", "card.json", "perceptual-sim download hf-hub:org/other")


def test_hub_down_is_a_clear_error(hub_cached):
    _error(hub_cached["down"]["uncached"], "ModelNotFoundError", "could not be reached", "'org/other'",
           "perceptual-sim download hf-hub:org/other", "HF_HUB_OFFLINE=1")


def test_server_error_is_a_clear_error(hub_refusals):
    _error(hub_refusals["steps"]["500"], "ModelNotFoundError", "could not be reached or failed", "500",
           "'org/broken'")


@pytest.mark.parametrize(
    "step, parts",
    [
        ("no-repo", ["'org/nope' does not exist", "card.json and model.safetensors", "revision 'main'",
                     "perceptual-sim download"]),
        ("no-card", ["'org/weights-only' at revision 'main' has no card.json", "perceptual-sim download"]),
        ("no-rev", ["'org/tiny' has no revision 'v9'", "perceptual-sim download"]),
    ],
)
def test_missing_repo_revision_or_file(hub_refusals, step, parts):
    _error(hub_refusals["steps"][step], "ModelNotFoundError", *parts)


def test_pickle_only_repo_is_refused_unread(hub_refusals):
    run = hub_refusals
    _error(run["steps"]["pickle"], "ModelNotFoundError", "has no model.safetensors", "only",
           "safetensors", "never pickles")
    assert not [r for r in run["served"] if r.path.endswith(".bin")]


def test_tampered_tensor_file_is_refused_and_not_kept(hub_checks):
    run = hub_checks
    for step in ("tampered", "tampered-again"):
        _error(run["steps"][step], "WeightsError", "sha256", "Removed hf-hub:org/tampered from the Hub cache")
    kept = [f for f in run["steps"]["cache-after-tampered"]["files"] if "models--org--tampered/" in f]
    assert not [f for f in kept if "/snapshots/" in f or "/blobs/" in f], kept
    assert _downloads_of(run, run["blobs"]["tampered"]) == 2, "the tampered file must be downloaded again, not taken from the cache"


def test_corrupted_cache_is_refused_then_downloaded_again(hub_checks):
    run = hub_checks
    steps, v2 = run["steps"], _sha(_files(run["cards"]["v2"])[TENSORS])
    _same_model(steps["downloaded"], run["cards"]["v2"])
    _error(steps["corrupted"], "WeightsError", "sha256", "Removed hf-hub:org/tiny from the Hub cache")
    files = steps["cache-after-corrupted"]["files"]
    assert f"models--org--tiny/blobs/{v2}" not in files
    assert not [f for f in files if f.startswith(f"models--org--tiny/snapshots/{run['v2']}/")], files
    _same_model(steps["redownloaded"], run["cards"]["v2"])
    assert _downloads_of(run, v2) == 2


@pytest.mark.parametrize("step, repo, message", [
    ("nan", "org/nan", "tensor 'backbone.net.conv1.weight' holds NaN or infinite values"),
    ("hostile", "org/hostile", "arch_args.width must be a number in [0.015625, 4], got 1000000000.0"),
])
def test_hub_files_failing_any_check_are_evicted_from_the_cache(hub_checks, step, repo, message):
    steps = hub_checks["steps"]
    _error(steps[step], "WeightsError", message, f"Removed hf-hub:{repo} from the Hub cache")
    kept = [f for f in steps["cache-after-checks"]["files"] if f"models--{repo.replace('/', '--')}/" in f]
    assert not [f for f in kept if "/snapshots/" in f or "/blobs/" in f], kept


def test_local_files_that_fail_the_hash_are_never_deleted(tmp_path):
    card = make_model(tmp_path)
    folder = tmp_path / "models--org--x" / "snapshots" / ("0" * 40)  # laid out like the Hub cache
    folder.mkdir(parents=True)
    good = card.with_suffix(".safetensors").read_bytes()
    (folder / "card.json").write_bytes(card.read_bytes())
    (folder / "model.safetensors").write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(WeightsError, match="sha256") as caught:
        PerceptualDistance.from_pretrained(str(folder))
    assert "Removed" not in str(caught.value)
    assert sorted(p.name for p in folder.iterdir()) == ["card.json", "model.safetensors"]


def _push(model: Path | str, repo: str, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    """``perceptual-sim push MODEL REPO`` in a fresh interpreter (huggingface_hub reads HF_ENDPOINT on import)."""
    return subprocess.run([sys.executable, "-m", "perceptual_sim.cli", "push", str(model), repo, *extra],
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def test_push_uploads_what_a_hub_load_gives_back(tmp_path):
    card = make_model(tmp_path / "model", seed=3)
    local = PerceptualDistance.from_pretrained(str(card))
    with HubServer(token="secret") as server:
        env = client_env(server.endpoint, tmp_path / "hf-cache")
        no_token = _push(card, "org/pushed", env)
        assert no_token.returncode == 1 and "hf auth login" in no_token.stderr and "Traceback" not in no_token.stderr
        assert "org/pushed" not in server.repos

        env["HF_TOKEN"] = "secret"
        first = _push(card, "org/pushed", env, "--private")
        assert first.returncode == 0, first.stderr
        commit = server.repos["org/pushed"].refs["main"]
        assert f"hf-hub:org/pushed@{commit}" in first.stdout and server.private["org/pushed"]
        files = server.repos["org/pushed"].commits[commit]
        assert files["model.safetensors"] == card.with_suffix(".safetensors").read_bytes()
        assert "hf-hub:org/pushed" in files["README.md"].decode() and ".gitattributes" in files
        again = _push(card, "org/pushed", env)  # the repo exists: a second commit on main
        assert again.returncode == 0, again.stderr
        assert server.repos["org/pushed"].refs["main"] != commit

        [loaded] = finish_client(start_client([load(f"hf-hub:org/pushed@{commit}")], env))
    assert loaded["ok"], loaded
    assert loaded["digest"] == weights_digest(local)
    with torch.inference_mode():
        assert loaded["distances"] == pytest.approx(local(*pair()).tolist(), abs=1e-6)


def test_push_refuses_bad_input_before_any_upload(tmp_path):
    card = make_model(tmp_path / "model", seed=4)
    tensors = card.with_suffix(".safetensors")
    tensors.write_bytes(tensors.read_bytes()[:-1] + b"\0")
    with HubServer(token="secret") as server:
        env = {**client_env(server.endpoint, tmp_path / "hf-cache"), "HF_TOKEN": "secret"}
        for model, repo, message in [(card, "org/x", "sha256"), (tmp_path / "nope", "org/x", "unknown model"),
                                     (card, "no-slash", "ORG/NAME")]:
            result = _push(model, repo, env)
            assert result.returncode == 1 and message in result.stderr and "Traceback" not in result.stderr, result.stderr
        assert server.requests() == []


# ----------------------------------------------------------------------------- a hostile Hub
HOSTILE_HUB = {
    # (file, behaviour, the error's type, what its message says)
    "5 GB card announced": ("card.json", Hostile(announce=5 << 30, send=5 << 30), "WeightsError",
                            ["5,368,709,120 bytes", "1,048,576", "refused before downloading"]),
    "card larger than announced": ("card.json", Hostile(announce=100, send=64 << 20), "WeightsError",
                                   ["more than 100 bytes", "stopped"]),
    "a byte every 2 s": ("card.json", Hostile(announce=1000, send=1000, byte_every=2.0), "ModelNotFoundError",
                         ["deadline of 3 s", "PERCEPTUAL_SIM_HUB_DEADLINE"]),
    "never answers": ("card.json", Hostile(mute=120), "ModelNotFoundError", ["card.json"]),
}


@pytest.fixture(scope="module")
def hostile_hub(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """Each hostile repo loaded by its own client, side by side; each result has its wall time ``s``."""
    import time

    with HubServer() as server:
        for i, (filename, behaviour, _, _) in enumerate(HOSTILE_HUB.values()):
            server.hostile(f"org/hostile{i}", filename, behaviour)
        env = {**client_env(server.endpoint, tmp_path_factory.mktemp("hostile") / "cache"),
               "PERCEPTUAL_SIM_HUB_DEADLINE": "3"}
        start = time.monotonic()
        procs = {name: start_client([load(f"hf-hub:org/hostile{i}")], env) for i, name in enumerate(HOSTILE_HUB)}
        out = {}
        for name, proc in procs.items():
            out[name] = {**finish_client(proc, timeout=120)[0], "s": time.monotonic() - start}
        return out


@pytest.mark.parametrize("case", HOSTILE_HUB)
def test_hostile_hub_files_are_bounded_in_size_and_time(hostile_hub, case):
    filename, _, kind, parts = HOSTILE_HUB[case]
    result = hostile_hub[case]
    _error(result, kind, filename, f"org/hostile{list(HOSTILE_HUB).index(case)}", *parts)
    assert result["s"] < 60, f"{case} took {result['s']:.0f} s"
