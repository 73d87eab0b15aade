"""Where it runs: ``python -m perceptual_sim``, ``auto`` devices, and commands that answer without torch."""

from __future__ import annotations

import subprocess
import sys

import torch

from perceptual_sim import load
from perceptual_sim.api import parse_device
from perceptual_sim.cli import build_parser

NO_TORCH = """
import contextlib, io, sys
from perceptual_sim.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    codes = [main(["--version"]), main(["--help"]), main(["list"])]
heavy = sorted(m for m in ("torch", "numpy", "PIL", "safetensors", "tqdm") if m in sys.modules)
print(codes, heavy, "resnet6-pa" in out.getvalue(), "download" in out.getvalue())
"""


def test_version_help_and_list_do_not_import_torch(tmp_path):
    result = subprocess.run([sys.executable, "-c", NO_TORCH], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "[0, 0, 0] [] True True"


def test_python_dash_m_runs_the_command_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "perceptual_sim", "--version"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0 and result.stdout.startswith("perceptual-sim 0.")


def test_auto_device_is_cuda_when_available_else_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert parse_device("auto").type == expected
    assert load().device.type == expected
    args = build_parser("compare").parse_args(["compare", "a.png", "b.png"])
    assert args.device == "auto"
