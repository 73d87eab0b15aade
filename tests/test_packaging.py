"""The wheel carries the bundled models, and an installed copy finds them without the repository."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_weights_and_finds_them(tmp_path):
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    (wheel,) = tmp_path.glob("perceptual_sim-*.whl")
    shipped = sorted(p.name for p in (ROOT / "weights").iterdir() if p.suffix in (".json", ".safetensors"))
    assert shipped, "weights/ holds no bundled model"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert {f"perceptual_sim/weights/{n}" for n in shipped} <= names
        assert any(n.endswith("entry_points.txt") and b"perceptual-sim" in zf.read(n) for n in names)
        zf.extractall(tmp_path / "site")
    code = ("import perceptual_sim, perceptual_sim.models.registry as w; "
            "assert w.bundled_dir().parent == __import__('pathlib').Path(perceptual_sim.__file__).parent; "
            "print(' '.join(c.name for c in perceptual_sim.list_models()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site")},
                         check=True, capture_output=True, text=True).stdout.split()
    assert sorted(out) == sorted(Path(n).stem for n in shipped if n.endswith(".json"))
    assert "lpips-alex" in out and "perceptual_sim/weights/lpips-lin-v0.1.safetensors" in names
    assert "perceptual_sim/py.typed" in names
