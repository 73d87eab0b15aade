"""The command line: a few runs in subprocesses (entry point, exit codes, no tracebacks), the rest in-process."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import make_model, save_random_image
from PIL import Image

from perceptual_sim import ModelNotFoundError, PerceptualDistance, distance
from perceptual_sim.cli import main
from perceptual_sim.images import load_image
from perceptual_sim.models import registry
from perceptual_sim.models.card import read_card
from perceptual_sim.pictures import BAR_HEIGHT, BAR_MIN_WIDTH

H, W = 32, 48


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -m perceptual_sim.cli ARGS`` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "perceptual_sim.cli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("pair")
    return save_random_image(folder / "a.png", 1), save_random_image(folder / "b.png", 2)


def _api_distance(card: Path, a: Path, b: Path, **kwargs) -> float:
    return float(distance(load_image(a)[None], load_image(b)[None], model=str(card), **kwargs)[0])


# ----------------------------------------------------------------------------- subprocesses
@pytest.mark.slow
def test_a_b_prints_the_api_distance(tiny_card, pair, tmp_path):
    result = _run(*pair, "--model", tiny_card, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    number, names = result.stdout.split(" ", 1)
    assert float(number) == pytest.approx(_api_distance(tiny_card, *pair), rel=1e-5)
    assert names == "(tiny, spatial)\n"  # the model and mode beside the number
    assert result.stderr == ""


@pytest.mark.slow
def test_unknown_model_is_an_error_without_traceback(pair, tmp_path):
    result = _run(*pair, "--model", "no-such-model", cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("error: unknown model 'no-such-model'")
    assert "perceptual-sim list" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_dirs_carries_on_past_bad_files(tiny_card, tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "out"
    for name, seed in (("x.png", 1), ("sub/y.png", 2), ("sub/z.png", 3)):
        save_random_image(ref / name, seed)
        save_random_image(out / name, seed + 10)
    save_random_image(out / "grey.png", 4, mode="L")
    save_random_image(ref / "grey.png", 5)
    (out / "sub/z.png").write_bytes(b"not a png")  # unreadable
    save_random_image(ref / "extra.png", 6)  # unpaired
    (ref / "notes.txt").write_text("not an image: ignored")
    result = _run("dirs", ref, out, "--model", tiny_card, "--csv", tmp_path / "scores.csv", "--batch-size", "2",
                  cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "extra.png" in result.stderr and "only" in result.stderr
    assert f"error: pairs that could not be scored (1):\n  {out / 'sub/z.png'}: not an image" in result.stderr
    assert "note: greyscale image" in result.stderr
    assert result.stdout.startswith("pairs   3 scored, 1 failed\nmean ")
    with open(tmp_path / "scores.csv", newline="") as f:
        rows = {Path(r["a"]).relative_to(ref).as_posix(): r for r in csv.DictReader(f)}
    assert sorted(rows) == ["grey.png", "sub/y.png", "sub/z.png", "x.png"]
    assert rows["sub/z.png"]["distance"] == "" and "not an image" in rows["sub/z.png"]["error"]
    for name in ("grey.png", "sub/y.png", "x.png"):
        row = rows[name]
        assert row["error"] == "" and row["model"] == "tiny" and row["mode"] == "spatial"
        assert float(row["distance"]) == pytest.approx(_api_distance(tiny_card, ref / name, out / name), rel=1e-5)


# ----------------------------------------------------------------------------- compare, in-process
def test_json_fields(tiny_card, pair, capsys):
    assert main([*map(str, pair), "--model", str(tiny_card), "--json", "--mode", "meanpool"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"distance", "model", "mode", "sha256", "feature_blur", "pixels_per_degree", "version", "a", "b"}
    assert out["feature_blur"] == 0.0 and out["pixels_per_degree"] == 0.0
    card = json.loads(tiny_card.read_text())
    assert out["model"] == "tiny" and out["mode"] == "meanpool" and out["sha256"] == card["sha256"]
    assert out["a"] == str(pair[0]) and out["version"]
    assert out["distance"] == pytest.approx(_api_distance(tiny_card, *pair, mode="meanpool"), rel=1e-6)


def test_pixels_per_degree_is_applied_and_recorded(tiny_card, pair, capsys):
    assert main([*map(str, pair), "--model", str(tiny_card), "--json", "--pixels-per-degree", "60"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["pixels_per_degree"] == 60.0
    seen = PerceptualDistance.from_pretrained(str(tiny_card), pixels_per_degree=60)
    x, y = (load_image(p)[None] for p in pair)
    assert out["distance"] == pytest.approx(seen(x, y).item(), rel=1e-6)
    assert out["distance"] != pytest.approx(_api_distance(tiny_card, *pair), rel=1e-3)


def test_map_is_a_size_of_a_and_is_never_overwritten(tiny_card, pair, tmp_path, capsys):
    small = save_random_image(tmp_path / "small.png", 3, size=(20, 30))
    heat = tmp_path / "heat.png"
    assert main([str(pair[0]), str(small), "--model", str(tiny_card), "--map", str(heat), "--resize"]) == 0
    printed = float(capsys.readouterr().out.split()[0])
    assert printed == pytest.approx(_api_distance(tiny_card, pair[0], small, resize=True), rel=1e-4)
    assert Image.open(heat).size == (max(W, BAR_MIN_WIDTH), H + BAR_HEIGHT)  # A's size, and the colour bar
    before = heat.read_bytes()
    assert main([*map(str, pair), "--model", str(tiny_card), "--map", str(heat)]) == 2
    assert "exists" in capsys.readouterr().err and heat.read_bytes() == before
    assert main([*map(str, pair), "--model", str(tiny_card), "--map", str(heat), "--force"]) == 0
    assert heat.read_bytes() != before and capsys.readouterr().err.startswith(f"wrote {heat} (map {W} x {H} px")
    assert main([*map(str, pair), "--model", str(tiny_card), "--map", str(tmp_path / "m.png"), "--mode", "style"]) == 2
    assert capsys.readouterr().err.startswith("error: --map needs the spatial mode")


def test_size_mismatch_and_grey(tiny_card, pair, tmp_path, capsys):
    other = save_random_image(tmp_path / "other.png", 3, size=(H, W + 8))
    assert main([str(pair[0]), str(other), "--model", str(tiny_card)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {pair[0]} is {H} x {W} but {other} is {H} x {W + 8}") and "--resize" in err
    grey = save_random_image(tmp_path / "grey.png", 4, mode="L")
    assert main([str(pair[0]), str(grey), "--model", str(tiny_card)]) == 0
    assert capsys.readouterr().err == f"note: greyscale image {grey}: its channel is replicated to RGB\n"


def test_usage_errors(tiny_card, pair, capsys):
    assert main([]) == 2 and "COMMAND" in capsys.readouterr().err
    assert main(["lst"]) == 2
    assert capsys.readouterr().err == "error: 'lst' is neither a command nor a file; did you mean 'list'?\n"
    assert main([str(pair[0])]) == 2
    assert capsys.readouterr().err.startswith("error: the following arguments are required: B\nusage:")
    assert main([*map(str, pair), "--model", str(tiny_card), "--device", "nonsense"]) == 2
    assert capsys.readouterr().err.startswith("error: --device 'nonsense' is not a torch device")
    assert main([str(pair[0]), "missing.png", "--model", str(tiny_card)]) == 1
    assert capsys.readouterr().err == "error: missing.png: no such file\n"
    assert main(["--version"]) == 0 and capsys.readouterr().out.startswith("perceptual-sim ")


# ----------------------------------------------------------------------------- dirs, in-process
def test_dirs_refuses_existing_outputs_before_any_work(pair, tmp_path, capsys):
    folder = pair[0].parent
    existing = tmp_path / "scores.json"
    existing.write_text("keep me")
    # An unknown model would fail with exit code 1 if any work had started.
    assert main(["dirs", str(folder), str(folder), "--model", "no-such-model", "--json", str(existing)]) == 2
    assert capsys.readouterr().err.startswith(f"error: --json {existing} exists")
    assert existing.read_text() == "keep me"
    assert main(["dirs", str(folder), str(tmp_path / "nowhere"), "--model", "no-such-model"]) == 2


def test_dirs_json_output(tiny_card, pair, tmp_path, capsys):
    folder = pair[0].parent
    out = tmp_path / "scores.json"
    assert main(["dirs", str(folder), str(folder), "--model", str(tiny_card), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model"] == "tiny" and result["summary"]["count"] == 2 and result["summary"]["failed"] == 0
    assert [p["distance"] for p in result["pairs"]] == [0.0, 0.0]  # each image against itself
    assert result["only_in_a"] == [] and result["only_in_b"] == []
    assert "pairs   2 scored, 0 failed" in capsys.readouterr().out


# ----------------------------------------------------------------------------- list, download, train
def test_list(tiny_card, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(registry, "bundled_dir", lambda: tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main(["list"]) == 0
    assert capsys.readouterr().out.startswith(f"no bundled models (looked in {tmp_path})")
    for suffix in (".json", ".safetensors"):
        shutil.copy(tiny_card.with_suffix(suffix), tmp_path / f"tiny{suffix}")
    downloaded = tmp_path / "cache" / "perceptual_sim" / "models"
    (downloaded / "lpips-vgg").mkdir(parents=True)
    (downloaded / "lpips-vgg" / "lpips-vgg.json").write_text("{}")
    assert main(["list"]) == 0
    assert capsys.readouterr().out == (
        f"bundled models (in {tmp_path}):\n  tiny: k22_resnet {{'width': 0.25}}, mode spatial. random weights (tests)\n"
        "references that `perceptual-sim download NAME` makes (LPIPS v0.1, the EfficientNet-Lite0 teacher; "
        f"in {downloaded}):\n  lpips-alex-unweighted\n  lpips-vgg (downloaded)\n  lpips-vgg-unweighted\n  efficientnet-lite0\n")


def test_download_verifies_the_weights(tmp_path, capsys):
    card = make_model(tmp_path, name="dl")
    assert main(["download", str(card)]) == 0
    sha = json.loads(card.read_text())["sha256"]
    assert capsys.readouterr().out == f"dl: weights verified (sha256 {sha}) at {card.with_suffix('.safetensors')}\n"
    tensors = card.with_suffix(".safetensors")
    tensors.write_bytes(tensors.read_bytes()[:-8])
    assert main(["download", str(card)]) == 1
    assert "sha256" in capsys.readouterr().err


def test_train_run_list_export(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 1)):
        for label in ("cat", "dog"):
            for i in range(n):
                save_random_image(tmp_path / "data" / split / label / f"{i}.png", int(rng.integers(1 << 30)), size=(64, 64))
    run, models = tmp_path / "run", tmp_path / "models"
    args = ["train", "run", "--data", str(tmp_path / "data"), "--out", str(run), "--arch-args", '{"width": 0.25}',
            "--epochs", "1", "--batch-size", "4", "--shift-consistency", "0.5", "--shift-min", "2", "--shift-order", "0.5",
            "--shift-blur", "0,0,0.5,0.5", "--shift-blur-from", "0.5", "--cache", str(tmp_path / "cache"), "--threads", "1"]
    assert main(args) == 0
    assert capsys.readouterr().out.startswith(f"finished {run}")
    assert main(["train", "list", str(run)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["step", "epoch", "val", "top-1", "val", "loss", "train", "loss", "time"]
    assert [int(line.split()[0]) for line in table[1:]] == [1, 2]
    assert main(["train", "export", str(run), "--step", "2", "--name", "mine", "--dest", str(models),
                 "--mode", "meanpool"]) == 0
    card = json.loads((models / "mine.json").read_text())
    assert card["default_mode"] == "meanpool" and card["training"]["step"] == 2
    assert card["training"]["recipe"]["shift_consistency"] == 0.5  # the recipe travels with the weights
    assert card["training"]["recipe"]["shift_min"] == 2 and card["training"]["recipe"]["shift_order"] == 0.5
    assert card["training"]["recipe"]["shift_blur_from"] == 0.5
    assert card["training"]["recipe"]["shift_blur"] == [0, 0, 0.5, 0.5]  # one sigma per stage
    exported = PerceptualDistance.from_pretrained(str(models))  # the documented round trip: --dest DIR, then DIR
    assert exported.card.name == "mine" and exported.weights_path == models / "mine.safetensors"
    assert main(["train", "export", str(run), "--step", "2", "--name", "mine", "--dest", str(models)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["train", "export", str(run), "--step", "7", "--name", "other", "--dest", str(models)]) == 1
    assert "has steps [1, 2]" in capsys.readouterr().err
    assert main(["train", "export", str(run), "--step", "1", "--name", "blurred", "--dest", str(models),
                 "--feature-blur", "-1"]) == 1
    assert "field 'feature_blur' must be a number in [0, 4.0]" in capsys.readouterr().err
    assert not (models / "blurred.json").exists()
    assert main(["train", "export", str(run), "--step", "1", "--name", "early", "--dest", str(models),
                 "--feature-blur", "0.5"]) == 0
    assert main(["train", "export", str(run), "--step", "1", "--name", "staged", "--dest", str(tmp_path / "staged"),
                 "--feature-blur", "0,0.75,0.75,0.75"]) == 0
    assert read_card(tmp_path / "staged" / "staged.json").feature_blur == (0, 0.75, 0.75, 0.75)
    assert main(["train", "export", str(run), "--step", "1", "--name", "x", "--dest", str(models),
                 "--feature-blur", "a,b"]) == 2
    assert "expected a number or comma-separated numbers, got 'a,b'" in capsys.readouterr().err
    assert main([*args[:5], str(tmp_path / "late"), *args[6:], "--shift-blur-from", "1"]) == 2
    assert "--shift-blur-from: expected a fraction of the run, 0 <= F < 1, got '1'" in capsys.readouterr().err
    assert not (tmp_path / "late").exists()
    with pytest.raises(ModelNotFoundError, match=f"folder {models} holds 2 models \\(early, mine\\); pass the card"):
        PerceptualDistance.from_pretrained(str(models))
    early = PerceptualDistance.from_pretrained(str(models / "early.json")).card
    assert early.training["step"] == 1 and early.feature_blur == 0.5
    assert main(["train", "list", str(tmp_path)]) == 2
    assert main(["train", "run", "--data", str(tmp_path), "--out", str(run), "--arch-args", "[1]"]) == 2
    capsys.readouterr()
    student = '{"widths": [4, 8, 8, 0], "depths": [1, 1, 1, 0], "heads": [16, 24, 40, 0]}'
    assert main(["train", "distill", "--data", str(tmp_path), "--out", str(tmp_path / "d"), "--arch-args", student,
                 "--feature-blur", "1,0.5"]) == 2
    assert "--feature-blur has 2 values; the student matches 3 strides (2, 4, 8)" in capsys.readouterr().err


@pytest.mark.slow
def test_a_reader_that_stops_early_is_not_an_error(tmp_path):
    """`perceptual-sim list | head -1` where head has already gone: the closed pipe ends the command quietly."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first write
    proc = subprocess.run([sys.executable, "-m", "perceptual_sim", "list"], stdout=write, stderr=subprocess.PIPE,
                          env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)}, timeout=60, check=False)
    os.close(write)
    err = proc.stderr.decode()
    assert proc.returncode == 0 and "error:" not in err and "Traceback" not in err and "Exception" not in err, err
