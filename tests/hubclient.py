"""Run Hub scenarios in this process and print one JSON result per step (driven by ``hubserver.run_client``).

``python hubclient.py STEPS_JSON`` where each step is one of

- ``{"op": "load", "model": M}``: ``PerceptualDistance.from_pretrained(M)`` and its distances on
  :func:`pair`; the result has ``distances``, ``digest`` (of the loaded weights), ``net`` (the
  sockets this step opened or looked up, from an audit hook), ``backoff_s`` (retry sleeps that
  huggingface_hub asked for; they are skipped); or, on an error, its ``type``, ``module`` and
  ``message``.
- ``{"op": "corrupt", "repo": R}``: flip the last byte of ``R``'s cached ``model.safetensors`` (main).
- ``{"op": "cache"}``: the files and links under ``HF_HUB_CACHE`` (``files``), relative to it.
- ``{"op": "barrier", "dir": D, "count": K}``: wait until ``K`` clients have reached this step.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import types
from pathlib import Path
from typing import Any

import torch

NET_EVENTS = ("socket.connect", "socket.getaddrinfo")
_net: list[str] = []
_slept: list[float] = []


def pair() -> tuple[torch.Tensor, torch.Tensor]:
    """Two fixed 2 x 3 x 40 x 48 batches in [0, 1]."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 40, 48, generator=g)
    return x, (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over the module's state dict (names and bytes, in name order)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in NET_EVENTS:
        _net.append(f"{event} {args[1] if event == 'socket.connect' else args[:2]}")


def _skip_backoff_sleeps() -> None:
    """Make huggingface_hub's retry sleeps instant (recorded in ``_slept``); its retry logic still runs."""
    from huggingface_hub import file_download
    from huggingface_hub.utils import _http

    fake = types.SimpleNamespace(**{n: getattr(time, n) for n in dir(time) if not n.startswith("_")})
    fake.sleep = _slept.append
    file_download.time = _http.time = fake


def _load(model: str) -> dict[str, Any]:
    from perceptual_sim import PerceptualDistance

    module = PerceptualDistance.from_pretrained(model)
    with torch.inference_mode():
        d = module(*pair())
    return {"distances": d.tolist(), "digest": weights_digest(module)}


def _corrupt(repo: str) -> dict[str, Any]:
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo, "model.safetensors")
    assert isinstance(path, str), f"{repo} is not cached"
    with open(os.path.realpath(path), "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 0xFF]))
    return {"path": path}


def _cache() -> dict[str, Any]:
    root = Path(os.environ["HF_HUB_CACHE"])
    return {"files": sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_symlink() or p.is_file())}


def _barrier(folder: str, count: int) -> dict[str, Any]:
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(os.listdir(folder)) < count:
        if time.monotonic() > deadline:
            raise TimeoutError("barrier: the other clients did not arrive")
        time.sleep(0.01)
    return {}


def run(step: dict[str, Any]) -> dict[str, Any]:
    _net.clear()
    _slept.clear()
    try:
        if step["op"] == "load":
            out = _load(step["model"])
        elif step["op"] == "corrupt":
            out = _corrupt(step["repo"])
        elif step["op"] == "cache":
            out = _cache()
        else:
            out = _barrier(step["dir"], step["count"])
        out["ok"] = True
    except Exception as exc:
        out = {"ok": False, "type": type(exc).__name__, "module": type(exc).__module__, "message": str(exc)}
    return {**out, "net": list(_net), "backoff_s": sum(_slept)}


if __name__ == "__main__":
    _skip_backoff_sleeps()
    sys.addaudithook(_audit)
    print(json.dumps([run(step) for step in json.loads(sys.argv[1])]))
