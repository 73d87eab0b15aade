"""What a newcomer meets first: an unreachable Hub fails fast, a missing input is reported before torch is imported."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perceptual_sim import ModelNotFoundError
from perceptual_sim.models import hub

ROOT = Path(__file__).resolve().parents[1]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_hub_fails_fast_when_nothing_is_cached(tmp_path, monkeypatch):
    from huggingface_hub import constants

    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    start = time.monotonic()
    with pytest.raises(ModelNotFoundError, match=r"card.json is not in the cache and the Hub could not be reached "
                                                 r"\(127.0.0.1:\d+: Connection refused\)"):
        hub.download("org/missing", cache_dir=tmp_path / "hub")
    assert time.monotonic() - start < 3  # huggingface_hub's own retries took about 25 s


def test_the_probe_says_why_and_stands_aside_for_a_proxy(monkeypatch):
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    port = _closed_port()
    assert hub._unreachable(f"http://127.0.0.1:{port}") == f"127.0.0.1:{port}: Connection refused"
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert hub._unreachable(f"http://127.0.0.1:{server.getsockname()[1]}") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert hub._unreachable(f"http://127.0.0.1:{port}") is None


@pytest.mark.parametrize("args", [["compare", "{missing}", "examples/astronaut.png"],
                                  ["compare", "examples/astronaut.png", "{missing}"],
                                  ["{missing}", "examples/astronaut.png"]])
def test_a_missing_input_is_reported_before_torch_is_imported(args, tmp_path):
    missing = str(tmp_path / "nope.png")
    code = ("import sys, runpy; sys.argv = ['perceptual-sim', *sys.argv[1:]]\n"
            "from perceptual_sim.cli import main\n"
            "status = main()\n"
            "print('torch imported' if 'torch' in sys.modules else 'torch not imported')\n"
            "sys.exit(status)\n")
    result = subprocess.run([sys.executable, "-c", code, *(a.format(missing=missing) for a in args)], cwd=ROOT,
                            capture_output=True, text=True, check=False, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1, result.stderr
    assert result.stderr == f"error: {missing}: no such file\n"
    assert result.stdout == "torch not imported\n"
