"""``hf-hub:`` models against a loopback Hub (tests/hubserver.py), through huggingface_hub's own client.

Three client processes share one cache: online (downloads, pins, faults), then, side by side,
one whose Hub is down and one with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import make_model
from hubclient import pair, weights_digest
from hubserver import HubServer, client_env, closed_endpoint, finish_client, start_client

from perceptual_sim import PerceptualDistance, WeightsError
from perceptual_sim.registry import bundled_names

TENSORS = "model.safetensors"


def _files(card: Path) -> dict[str, bytes]:
    """A Hub repo's files for the model whose card is ``card``."""
    return {"card.json": card.read_bytes(), TENSORS: card.with_suffix(".safetensors").read_bytes()}


def load(model: str) -> dict[str, str]:
    """The client step that loads ``model`` and scores :func:`hubclient.pair` with it."""
    return {"op": "load", "model": model}


def _steps(named: list[tuple[str, dict[str, Any]]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Step names and steps, for zipping with the client's results."""
    return [n for n, _ in named], [s for _, s in named]


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> dict[str, Any]:
    """Serve the repos, run the three clients, and return what they saw."""
    tmp = tmp_path_factory.mktemp("hub")
    old, new = make_model(tmp / "v1", seed=0), make_model(tmp / "v2", seed=1)
    with HubServer() as server:
        v1 = server.commit("org/tiny", _files(old), refs=("main", "v1"))
        v2 = server.commit("org/tiny", _files(new))
        card_v1, good = _files(old)["card.json"], _files(old)[TENSORS]
        tampered = good[:-1] + bytes([good[-1] ^ 1])
        server.commit("org/tampered", {"card.json": card_v1, TENSORS: tampered})
        server.commit("org/pickle-only", {"card.json": card_v1, "pytorch_model.bin": b"\x80\x04K\x01."})
        server.commit("org/weights-only", {TENSORS: good})
        server.fail("org/broken", 500)
        server.commit("org/nan", _nan_weights(old))  # consistent (the sha256 matches), but NaN weights
        hostile = json.loads(card_v1)
        hostile["arch_args"] = {"width": 1e9}
        server.commit("org/hostile", {"card.json": json.dumps(hostile).encode(), TENSORS: good})
        named = [("local", load(str(old)))]
        named += [("bundled", load(bundled_names()[0]))] if bundled_names() else []
        named += [
            ("main", load("hf-hub:org/tiny")), ("tag", load("hf-hub:org/tiny@v1")),
            ("sha", load(f"hf-hub:org/tiny@{v1}")),
            ("no-repo", load("hf-hub:org/nope")), ("no-card", load("hf-hub:org/weights-only")),
            ("no-rev", load("hf-hub:org/tiny@v9")), ("pickle", load("hf-hub:org/pickle-only")),
            ("500", load("hf-hub:org/broken")),
            ("tampered", load("hf-hub:org/tampered")), ("cache-after-tampered", {"op": "cache"}),
            ("tampered-again", load("hf-hub:org/tampered")),
            ("corrupt", {"op": "corrupt", "repo": "org/tiny"}), ("corrupted", load("hf-hub:org/tiny")),
            ("cache-after-corrupted", {"op": "cache"}), ("redownloaded", load("hf-hub:org/tiny")),
            ("nan", load("hf-hub:org/nan")), ("hostile", load("hf-hub:org/hostile")),
            ("cache-after-checks", {"op": "cache"}),
        ]
        cache = tmp / "cache"
        names, steps = _steps(named)
        online = dict(zip(names, finish_client(start_client(steps, client_env(server.endpoint, cache)))))
        served = server.requests()
        cached = [("main", load("hf-hub:org/tiny")), ("tag", load("hf-hub:org/tiny@v1")),
                  ("sha", load(f"hf-hub:org/tiny@{v1}")), ("uncached", load("hf-hub:org/other"))]
        names, steps = _steps(cached)
        procs = {"down": start_client(steps, client_env(closed_endpoint(), cache)),
                 "offline": start_client(steps, client_env(server.endpoint, cache, offline=True))}
        later = {k: dict(zip(names, finish_client(p))) for k, p in procs.items()}
        served_offline = server.requests()[len(served):]
    digests = {}
    for key, card in (("v1", old), ("v2", new)):
        module = PerceptualDistance.from_pretrained(str(card))
        digests[key] = (weights_digest(module), module(*pair()).tolist())
    return {"online": online, **later, "served": served, "served_offline": served_offline,
            "digests": digests, "v2": v2, "blobs": {"tampered": _sha(tampered), "v2": _sha(_files(new)[TENSORS])}}


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


def _downloads(hub: dict[str, Any], blob: str) -> int:
    """How often the online client downloaded a blob from the CDN."""
    return sum(r.method == "GET" and r.path == f"cdn:/{hub['blobs'][blob]}" for r in hub["served"])


def _same_model(result: dict[str, Any], expected: tuple[str, list[float]]) -> None:
    """``result`` loaded the weights of ``expected`` (digest, distances on :func:`hubclient.pair`)."""
    assert result["ok"], result
    assert result["digest"] == expected[0]
    torch.testing.assert_close(torch.tensor(result["distances"]), torch.tensor(expected[1]), rtol=1e-5, atol=0)


def _error(result: dict[str, Any], kind: str, *parts: str) -> None:
    """``result`` is a one-line perceptual_sim error of type ``kind`` whose message holds every part."""
    assert not result["ok"] and result["type"] == kind and result["module"] == "perceptual_sim.card", result
    message = result["message"]
    assert "\n" not in message and "Traceback" not in message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


def test_download_then_load_equals_the_local_copy(hub):
    _same_model(hub["online"]["main"], hub["digests"]["v2"])
    assert hub["online"]["main"]["net"], "the audit hook saw no socket: the no-network checks would prove nothing"
    unexpected = [r for r in hub["served"] if "/resolve/" not in r.path and not r.path.startswith("cdn:")]
    assert not unexpected, f"requests other than file downloads (Xet, telemetry, API): {unexpected}"


def test_pinned_revisions_get_their_own_weights(hub):
    _same_model(hub["online"]["tag"], hub["digests"]["v1"])
    _same_model(hub["online"]["sha"], hub["digests"]["v1"])
    assert hub["digests"]["v1"][0] != hub["digests"]["v2"][0]


def test_local_and_bundled_models_open_no_socket(hub):
    for name in ("local", "bundled"):
        if name in hub["online"]:
            assert hub["online"][name]["ok"] and hub["online"][name]["net"] == [], hub["online"][name]


@pytest.mark.parametrize("mode", ["offline", "down"])
def test_cached_models_load_without_the_hub(hub, mode):
    runs = hub[mode]
    _same_model(runs["main"], hub["digests"]["v2"])
    _same_model(runs["tag"], hub["digests"]["v1"])
    _same_model(runs["sha"], hub["digests"]["v1"])


def test_offline_mode_never_touches_the_network(hub):
    assert hub["served_offline"] == []
    assert all(r["net"] == [] for r in hub["offline"].values())
    _error(hub["offline"]["uncached"], "ModelNotFoundError", "not in the cache", "HF_HUB_OFFLINE=1 is set",
           "'org/other'", "card.json", "perceptual-sim download hf-hub:org/other")


def test_hub_down_is_a_clear_error(hub):
    _error(hub["down"]["uncached"], "ModelNotFoundError", "could not be reached", "'org/other'",
           "perceptual-sim download hf-hub:org/other", "HF_HUB_OFFLINE=1")


def test_server_error_is_a_clear_error(hub):
    _error(hub["online"]["500"], "ModelNotFoundError", "could not be reached or failed", "500", "'org/broken'")


@pytest.mark.parametrize(
    "step, parts",
    [
        ("no-repo", ["'org/nope' does not exist", "card.json and model.safetensors", "revision 'main'",
                     "perceptual-sim download"]),
        ("no-card", ["'org/weights-only' at revision 'main' has no card.json", "perceptual-sim download"]),
        ("no-rev", ["'org/tiny' has no revision 'v9'", "perceptual-sim download"]),
    ],
)
def test_missing_repo_revision_or_file(hub, step, parts):
    _error(hub["online"][step], "ModelNotFoundError", *parts)


def test_pickle_only_repo_is_refused_unread(hub):
    _error(hub["online"]["pickle"], "ModelNotFoundError", "has no model.safetensors", "only",
           "safetensors", "never pickles")
    assert not [r for r in hub["served"] if r.path.endswith(".bin")]


def test_tampered_tensor_file_is_refused_and_not_kept(hub):
    online = hub["online"]
    for step in ("tampered", "tampered-again"):
        _error(online[step], "WeightsError", "sha256", "Removed hf-hub:org/tampered from the Hub cache")
    kept = [f for f in online["cache-after-tampered"]["files"] if "models--org--tampered/" in f]
    assert not [f for f in kept if "/snapshots/" in f or "/blobs/" in f], kept
    assert _downloads(hub, "tampered") == 2, "the tampered file must be downloaded again, not taken from the cache"


def test_corrupted_cache_is_refused_then_downloaded_again(hub):
    online = hub["online"]
    _error(online["corrupted"], "WeightsError", "sha256", "Removed hf-hub:org/tiny from the Hub cache")
    files = online["cache-after-corrupted"]["files"]
    assert f"models--org--tiny/blobs/{hub['blobs']['v2']}" not in files
    assert not [f for f in files if f.startswith(f"models--org--tiny/snapshots/{hub['v2']}/")], files
    _same_model(online["redownloaded"], hub["digests"]["v2"])
    assert _downloads(hub, "v2") == 2


@pytest.mark.parametrize("step, repo, message", [
    ("nan", "org/nan", "tensor 'backbone.net.conv1.weight' holds NaN or infinite values"),
    ("hostile", "org/hostile", "arch_args.width must be a number in [0.015625, 4], got 1000000000.0"),
])
def test_hub_files_failing_any_check_are_evicted_from_the_cache(hub, step, repo, message):
    _error(hub["online"][step], "WeightsError", message, f"Removed hf-hub:{repo} from the Hub cache")
    kept = [f for f in hub["online"]["cache-after-checks"]["files"] if f"models--{repo.replace('/', '--')}/" in f]
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
