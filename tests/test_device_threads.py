"""``from_pretrained(device=...)``, and the command line's ``--threads`` and ``--quiet``."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest
import torch
from helpers import save_random_image

from perceptual_sim import PerceptualDistance
from perceptual_sim.cli import auto_threads, main
from perceptual_sim.files import QUIET_ENV
from perceptual_sim.pairs import progress


def test_from_pretrained_moves_the_built_module(tiny_card):
    default = PerceptualDistance.from_pretrained(str(tiny_card))
    assert default.device == torch.device("cpu")
    moved = PerceptualDistance.from_pretrained(str(tiny_card), device="meta")  # a real move, on any machine
    assert moved.device.type == "meta"
    assert all(p.device.type == "meta" for p in moved.parameters())
    auto = PerceptualDistance.from_pretrained(str(tiny_card), device="auto")
    assert auto.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    x = torch.rand(1, 3, 32, 32)
    assert torch.equal(PerceptualDistance.from_pretrained(str(tiny_card), device=torch.device("cpu"))(x, x * 0.9),
                       default(x, x * 0.9))


def test_from_pretrained_refuses_a_bad_device(tiny_card):
    with pytest.raises(ValueError, match="not a torch device"):
        PerceptualDistance.from_pretrained(str(tiny_card), device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            PerceptualDistance.from_pretrained(str(tiny_card), device="cuda")


# ----------------------------------------------------------------------------- the command line
@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    for i in range(3):
        save_random_image(a / f"{i}.png", seed=i, size=(32, 32))
        save_random_image(b / f"{i}.png", seed=10 + i, size=(32, 32))
    return a, b


def test_dirs_says_what_it_wrote_unless_quiet(tiny_card, folders, tmp_path, capsys):
    a, b = folders
    table = tmp_path / "scores.csv"
    assert main(["dirs", str(a), str(b), "--model", str(tiny_card), "--csv", str(table)]) == 0
    assert f"wrote {table} (3 pairs)" in capsys.readouterr().err
    assert main(["dirs", str(a), str(b), "--model", str(tiny_card), "--csv", str(table), "--force", "--quiet"]) == 0
    out = capsys.readouterr()
    assert "wrote" not in out.err and "mean" in out.out
    assert os.environ.get(QUIET_ENV) is None  # undone after the command


def test_quiet_switches_the_progress_bar_off(monkeypatch):
    monkeypatch.setenv(QUIET_ENV, "1")
    with progress(3, "pairs", "pair") as bar:
        assert bar.disable
    monkeypatch.delenv(QUIET_ENV)
    with progress(3, "pairs", "pair") as bar:
        assert not bar.disable


def test_csv_and_json_dash_write_to_stdout(tiny_card, folders, tmp_path, monkeypatch, capsys):
    a, b = folders
    monkeypatch.chdir(tmp_path)
    assert main(["dirs", str(a), str(b), "--model", str(tiny_card), "--csv", "-"]) == 0
    out = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(out.out)))
    assert [Path(r["a"]).name for r in rows] == ["0.png", "1.png", "2.png"] and all(float(r["distance"]) > 0 for r in rows)
    assert "mean" in out.err and "wrote" not in out.err  # the summary moves to stderr
    assert not (tmp_path / "-").exists()
    assert main(["dirs", str(a), str(b), "--model", str(tiny_card), "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["count"] == 3
    assert main(["dirs", str(a), str(b), "--model", str(tiny_card), "--json", "-", "--csv", "-"]) == 2
    assert "stdout" in capsys.readouterr().err


def test_threads_are_set_for_the_command_and_restored(tiny_card, folders, monkeypatch, capsys):
    a, b = folders
    seen = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (seen.append(n), real(n)))
    before = torch.get_num_threads()
    assert main(["dirs", str(a), str(b), "--model", str(tiny_card), "--threads", "1"]) == 0
    assert seen == [1, before] and torch.get_num_threads() == before
    assert main(["dirs", str(a), str(b), "--threads", "0"]) == 2
    assert "positive integer or auto" in capsys.readouterr().err


@pytest.mark.parametrize(("cores", "load", "omp", "expected"),
                         [(2, 5.5, None, 1), (2, 0.1, None, 2), (16, 4.2, None, 12), (16, 0.0, "4", 4), (4, 9.0, "8", 1)])
def test_auto_threads_uses_the_idle_cores(monkeypatch, cores, load, omp, expected):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    assert auto_threads() == expected


def test_nearest_says_what_it_wrote(tiny_card, folders, tmp_path, capsys):
    a, b = folders
    table, page = tmp_path / "nn.csv", tmp_path / "nn.html"
    assert main(["nearest", str(a), str(b), "--model", str(tiny_card), "--top", "2", "--csv", str(table),
                 "--report", str(page)]) == 0
    err = capsys.readouterr().err
    assert f"wrote {table} (6 rows)" in err and f"wrote {page} (3 generated images)" in err
    assert table.exists() and page.exists()


def test_compare_map_confirms_unless_quiet(tiny_card, folders, tmp_path, capsys):
    a, b = folders
    heat = tmp_path / "heat.png"
    pair = [str(a / "0.png"), str(b / "0.png"), "--model", str(tiny_card), "--map", str(heat)]
    assert main(pair) == 0
    assert f"wrote {heat} (map 32 x 32 px" in capsys.readouterr().err
    assert main([*pair, "--force", "--quiet"]) == 0
    assert capsys.readouterr().err == ""
