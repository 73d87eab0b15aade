"""`dirs` and the command line under hostile input: failing pairs, odd names, deep and unreadable trees,
unpaired files, outputs that must not be clobbered or half-written, bad --device and --model values."""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from helpers import make_model, save_pixels, save_random_image
from safetensors.torch import load_file, save_file

from perceptual_sim import ModelNotFoundError, distance, load
from perceptual_sim.cli import main
from perceptual_sim.files import sha256_file

GREY = (124, 116, 104)  # about the ImageNet mean: the overflowing model below stays finite on it
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\nshowpage\n%%EOF\n"


def _save(path: Path, seed: int | None, size: tuple[int, int] = (32, 48)) -> Path:
    """A PNG of random pixels (``seed``) or of the flat colour GREY (``seed`` None)."""
    if seed is None:
        return save_pixels(path, np.broadcast_to(np.array(GREY, np.uint8), (*size, 3)))
    return save_random_image(path, seed, size)


@pytest.fixture(scope="module")
def overflowing(tmp_path_factory) -> Path:
    """A model whose first conv overflows float32 on most images (a NaN distance), not on flat GREY ones."""
    card = make_model(tmp_path_factory.mktemp("nan"), name="overflowing")
    tensors = card.with_suffix(".safetensors")
    state = load_file(str(tensors))
    state["backbone.net.conv1.weight"].fill_(1e38)
    state["backbone.net.bn1.weight"].fill_(1e-38)
    save_file(state, str(tensors))
    data = json.loads(card.read_text())
    data["sha256"] = sha256_file(tensors)
    card.write_text(json.dumps(data))
    return card


def _strict_json(text: str) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"{name} in JSON output")

    return json.loads(text, parse_constant=refuse)


def test_one_bad_pair_never_aborts_the_run(overflowing, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for name in ("flat1.png", "flat2.png"):
        _save(a / name, None)
        _save(b / name, None)
    _save(a / "noise.png", 1)
    _save(b / "noise.png", 2)
    _save(a / "eps.png", 3)
    (b / "eps.png").write_bytes(EPS)
    out = tmp_path / "out.json"
    assert main(["dirs", str(a), str(b), "--model", str(overflowing), "--json", str(out), "--csv",
                 str(tmp_path / "out.csv")]) == 1
    err = capsys.readouterr().err
    assert "error: pairs that could not be scored (2):" in err
    assert f"{a / 'noise.png'} / {b / 'noise.png'}: the distance is NaN or infinite for 1 of 1 pairs" in err
    assert f"{b / 'eps.png'}: not an image in a format decoded here" in err
    result = _strict_json(out.read_text())
    scored = {Path(p["b"]).name: p for p in result["pairs"]}
    assert scored["flat1.png"]["distance"] == 0.0 and scored["flat2.png"]["distance"] == 0.0
    assert scored["noise.png"]["distance"] is None and "NaN or infinite" in scored["noise.png"]["error"]
    assert result["summary"]["count"] == 2 and result["summary"]["failed"] == 2
    with open(tmp_path / "out.csv", newline="") as f:
        assert {Path(r["b"]).name: r["distance"] for r in csv.DictReader(f)}["noise.png"] == ""


def test_a_non_finite_distance_is_an_error_not_a_score(overflowing, tmp_path, capsys):
    x, y = _save(tmp_path / "x.png", 1), _save(tmp_path / "y.png", 2)
    assert main([str(x), str(y), "--model", str(overflowing), "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.startswith("error: the distance is NaN or infinite for 1 of 1 pairs")
    assert captured.err.count("\n") == 1
    with pytest.raises(ValueError, match="the distance is NaN or infinite for 1 of 2 pairs \\(index 1\\)"):
        flat = torch.tensor(GREY, dtype=torch.uint8).view(1, 3, 1, 1).expand(1, 3, 32, 48)
        noise = torch.randint(0, 256, (1, 3, 32, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
        distance(torch.cat([flat, noise]), torch.cat([flat, noise]), model=str(overflowing))


NAMES = [os.fsdecode(b"latin1-\xe9t\xe9.png"), "esc-\x1b[31mred.png", "=HYPERLINK(1).png", "+1.png", "-2.png",
         "@SUM(A1).png", "new\nline.png", "tab\tname.png", "bidi-\u202egnp.png", "caf\u00e9.png"]


def test_any_file_name_reaches_the_terminal_csv_and_json_safely(tiny_card, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for i, name in enumerate(NAMES):
        _save(a / name, i)
        _save(b / name, i + 100)
    (b / NAMES[1]).write_bytes(b"not an image")  # its error names the file
    _save(a / ("only-" + NAMES[0]), 7)  # unpaired
    table, report = tmp_path / "scores.csv", tmp_path / "scores.json"
    code = main(["dirs", str(a), str(b), "--model", str(tiny_card), "--csv", str(table), "--json", str(report)])
    captured = capsys.readouterr()
    assert code == 1
    for line in (captured.out + captured.err).splitlines():
        assert line.isprintable(), repr(line)  # no escape sequences, bidi overrides, stray bytes or line breaks
    for text in (captured.out, captured.err):
        text.encode("utf-8")  # no lone surrogates
    assert "latin1-\\xe9t\\xe9.png" in captured.err and "esc-\\x1b[31mred.png: not an image" in captured.err
    data = report.read_bytes().decode("utf-8")  # strict UTF-8
    result = _strict_json(data)
    names = sorted(Path(p["a"]).name for p in result["pairs"])
    assert "latin1-\\xe9t\\xe9.png" in names and "new\\x0aline.png" in names and "caf\u00e9.png" in names
    assert result["only_in_a"] == ["only-latin1-\\xe9t\\xe9.png"]
    rows = list(csv.reader(table.read_text(encoding="utf-8").splitlines()))
    assert len(rows) == 1 + len(NAMES)  # one row per pair: no name broke a row


@pytest.mark.parametrize("folder", ["=cmd", "+1", "./-2", "@SUM(A1)"])
def test_csv_cells_never_start_a_spreadsheet_formula(tiny_card, tmp_path, monkeypatch, capsys, folder):
    monkeypatch.chdir(tmp_path)
    _save(tmp_path / folder / "x.png", 1)
    (tmp_path / folder / "y.png").write_bytes(b"not an image")
    assert main(["dirs", folder, folder, "--model", str(tiny_card), "--csv", "out.csv"]) == 1
    with open(tmp_path / "out.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    name = str(Path(folder))
    assert [r["a"] for r in rows] == [f"'{name}/x.png", f"'{name}/y.png"]
    assert rows[1]["error"].startswith(f"'{name}/y.png: not an image")
    capsys.readouterr()


def test_trees_deeper_than_the_recursion_limit_are_walked(tiny_card, tmp_path, capsys):
    depth = sys.getrecursionlimit() + 50
    # In memory where there is a tmpfs: removing a thousand folders costs seconds on some disks.
    root = Path(tempfile.mkdtemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else tmp_path))
    made = 0
    try:
        folder = str(root)
        for _ in range(depth):  # (pathlib's mkdir(parents=True) would itself recurse)
            folder += "/d"
            os.mkdir(folder)
            made += 1
        _save(Path(folder) / "x.png", 1, size=(16, 16))
        assert main(["dirs", str(root), str(root), "--model", str(tiny_card)]) == 0  # the tree against itself
        assert capsys.readouterr().out.startswith("pairs   1 scored, 0 failed")
    finally:  # bottom-up, one name at a time: shutil.rmtree (pytest's clean-up too) would hit the recursion limit
        fds = [os.open(root, os.O_RDONLY)]
        for _ in range(made):
            fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
        if made == depth:
            os.unlink("x.png", dir_fd=fds[-1])
        while len(fds) > 1:
            os.close(fds.pop())
            os.rmdir("d", dir_fd=fds[-1])
        os.close(fds.pop())
        root.rmdir()


def test_unreadable_folders_are_reported(tiny_card, tmp_path, monkeypatch, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        _save(folder / "x.png", 1)
        _save(folder / "locked" / "y.png", 2)
    scandir = os.scandir

    def locked(path):
        if Path(path) == b / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", locked)  # (the tests may run as root, who reads any folder)
    out = tmp_path / "out.json"
    assert main(["dirs", str(a), str(b), "--model", str(tiny_card), "--json", str(out), "--allow-unpaired"]) == 1
    err = capsys.readouterr().err
    assert f"error: folders that could not be read (their files are missing from the pairs) (1):\n  " \
           f"{b / 'locked'}: Permission denied\n" in err
    assert json.loads(out.read_text())["unreadable_folders"] == [f"{b / 'locked'}: Permission denied"]


def test_unpaired_files_fail_the_run_unless_expected(tiny_card, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        _save(folder / "x.png", 1)
    _save(a / "extra.png", 2)
    assert main(["dirs", str(a), str(b), "--model", str(tiny_card)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: files in {a} only (no counterpart in {b}) (1):\n  extra.png\n")
    assert captured.err.endswith("error: 1 files have no counterpart (listed above); pass --allow-unpaired if that "
                                 "is expected\n")
    assert captured.out.startswith("pairs   1 scored, 0 failed")
    assert main(["dirs", str(a), str(b), "--model", str(tiny_card), "--allow-unpaired"]) == 0
    assert capsys.readouterr().err == f"warning: files in {a} only (no counterpart in {b}) (1):\n  extra.png\n"


def test_outputs_are_checked_before_any_work(tmp_path, capsys):
    folder = tmp_path / "images"
    _save(folder / "x.png", 1)
    dangling = tmp_path / "scores.csv"
    dangling.symlink_to(tmp_path / "elsewhere" / "target.csv")
    # An unknown model would fail with exit code 1 if any work had started.
    assert main(["dirs", str(folder), str(folder), "--model", "no-such-model", "--csv", str(dangling)]) == 2
    assert capsys.readouterr().err.startswith(f"error: --csv {dangling} is a link to nothing; choose another file")
    assert dangling.is_symlink() and not (tmp_path / "elsewhere").exists()


def test_outputs_are_replaced_atomically(tiny_card, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "images"
    _save(folder / "x.png", 1)
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "target.csv")
    assert main(["dirs", str(folder), str(folder), "--model", str(tiny_card), "--csv", str(link), "--force"]) == 0
    assert not link.is_symlink() and link.read_text().startswith("a,b,distance")  # the link itself was replaced
    assert not (tmp_path / "target.csv").exists()
    out = tmp_path / "scores.json"
    out.write_text("the previous results\n")
    fdopen = os.fdopen

    class Interrupted:
        """The temporary output file, interrupted half way through its write."""

        def __init__(self, f: Any) -> None:
            self.f = f

        def __enter__(self) -> Interrupted:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def fileno(self) -> int:
            return self.f.fileno()

        def write(self, data: bytes) -> int:
            self.f.write(data[: len(data) // 2])
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "fdopen", lambda fd, mode="r", *a, **k: Interrupted(fdopen(fd, mode, *a, **k))
                        if mode == "wb" else fdopen(fd, mode, *a, **k))
    assert main(["dirs", str(folder), str(folder), "--model", str(tiny_card), "--json", str(out), "--force"]) == 130
    assert out.read_text() == "the previous results\n"  # never half a file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "link.csv", "scores.json"]  # no temporary left
    capsys.readouterr()


def test_bad_device_and_empty_model(tiny_card, tmp_path, capsys):
    x = _save(tmp_path / "x.png", 1)
    assert main([str(x), str(x), "--model", str(tiny_card), "--device", "meta"]) == 2
    assert capsys.readouterr().err == ("error: --device 'meta' is a meta device, which holds no data to compute on; "
                                       "use auto, cpu or cuda[:N] (devices of type cpu, cuda, mps, xpu work)\n")
    assert main([str(x), str(x), "--model", ""]) == 2
    assert capsys.readouterr().err.startswith("error: argument --model: expected a bundled name, a path or "
                                              "hf-hub:ORG/NAME, got an empty string\n")
    with pytest.raises(ModelNotFoundError, match="a model must be a non-empty string, got ''"):
        load("")
    with pytest.raises(ValueError, match="--device 'meta' is a meta device"):
        load(str(tiny_card), device="meta")
