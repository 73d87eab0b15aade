"""IQA harness: correlation functions against scipy, the logistic fit, and end to end on a generated list."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import save_pixels

from perceptual_sim.cli import main
from perceptual_sim.images import load_image
from perceptual_sim.lab.evaluate import correlations, score_iqa
from perceptual_sim.lab.evaluate.iqa import fit_logistic, krcc, logistic4, logistic5, plcc, read_list, srcc

stats = pytest.importorskip("scipy.stats")

STRENGTHS = [0.02, 0.05, 0.1, 0.2, 0.3, 0.45]
HEADER = ["dis_img_path", "dis_type", "ref_img_path", "score"]


def _smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    x = torch.from_numpy(rng.random((1, 3, 8, 8))).float()
    x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)[0]
    return x.permute(1, 2, 0).numpy()


def _save(path: Path, img: np.ndarray) -> None:
    save_pixels(path, (np.clip(img, 0, 1) * 255).round().astype(np.uint8))


def _write_list(path: Path, rows: list[list[object]], header: list[str] = HEADER) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


@pytest.fixture(scope="module")
def iqa_tree(tmp_path_factory) -> tuple[Path, Path]:
    """12 distorted images: 6 noise levels of one reference (48 x 56), 6 contrast levels of another (64 x 64).

    MOS = 100 * exp(-3 * strength), a decreasing function of the strength.
    """
    root = tmp_path_factory.mktemp("iqa")
    rng = np.random.default_rng(0)
    refs = {"noise": _smooth_image(rng, 48, 56), "contrast": _smooth_image(rng, 64, 64)}
    rows = []
    for kind, ref in refs.items():
        _save(root / "refs" / f"{kind}.png", ref)
        noise = rng.standard_normal(ref.shape)
        for i, s in enumerate(STRENGTHS):
            img = ref + s * noise if kind == "noise" else ref * (1 - s) + 0.5 * s
            _save(root / "dis" / f"{kind}_{i}.png", img)
            rows.append([f"dis/{kind}_{i}.png", kind, f"refs/{kind}.png", 100 * np.exp(-3 * s)])
    rows = [rows[i] for i in rng.permutation(len(rows))]  # the list order must not matter
    return _write_list(root / "list.csv", rows), root


def _direct_distances(model, list_file: Path, root: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    items = read_list(list_file, root)
    d = np.empty(len(items))
    with torch.inference_mode():
        for ref in {it.ref for it in items}:  # one batch per reference (one image size)
            idx = [i for i, it in enumerate(items) if it.ref == ref]
            x = load_image(ref)[None].expand(len(idx), -1, -1, -1)
            d[idx] = model(x, torch.stack([load_image(items[i].dis) for i in idx])).numpy()
    return d, np.array([it.score for it in items]), [it.dis_type for it in items]


# ------------------------------------------------------------------------------ pure functions
def test_correlation_functions_match_scipy():
    x = np.array([0.1, 0.4, 0.35, 0.8, 0.8, 1.2, 0.05, 0.9])
    y = np.array([1.0, 2.0, 2.5, 2.4, 3.0, 4.0, 0.5, 3.0])
    assert srcc(x, y) == pytest.approx(stats.spearmanr(x, y)[0])
    assert krcc(x, y) == pytest.approx(stats.kendalltau(x, y)[0])
    assert plcc(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
    assert srcc(x, -y) == pytest.approx(-srcc(x, y))


@pytest.mark.parametrize("params", [4, 5])
def test_logistic_fit_recovers_a_logistic(params):
    x = np.linspace(0.0, 2e-3, 40)  # distance-like scale: the fit standardises x
    y = logistic5(x, 80.0, 4e3, 1e-3, 0.0, 50.0) if params == 5 else logistic4(x, 90.0, 10.0, 1e-3, 2e-4)
    assert plcc(x, y) < 0.99
    fitted = fit_logistic(x, y, params)
    assert plcc(fitted, y) == pytest.approx(1.0, abs=1e-6)
    c = correlations(x, y, logistic=params)
    assert c["plcc_fitted"] is True and c["fit_error"] is None
    assert c["plcc"] == pytest.approx(1.0, abs=1e-6) and c["srcc"] == pytest.approx(1.0)


def test_correlations_without_a_fit():
    x, y = np.array([1.0, 2.0, 3.0, 5.0]), np.array([2.0, 1.0, 4.0, 4.5])
    c = correlations(x, y, logistic=5)  # 4 points cannot fit 5 parameters
    assert c["plcc_fitted"] is False and "too few" in c["fit_error"]
    assert c["plcc"] == pytest.approx(stats.pearsonr(x, y)[0])
    c = correlations(x, np.full(4, 3.0))
    assert c["srcc"] is None and c["plcc"] is None and c["plcc_fitted"] is False


def test_missing_scipy_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "scipy", None)
    with pytest.raises(ImportError, match=r"perceptual-sim\[eval\]"):
        srcc(np.arange(3.0), np.arange(3.0))


# ------------------------------------------------------------------------------ end to end
def test_score_iqa_mos(iqa_tree, tiny_card, tiny):
    list_file, root = iqa_tree
    d, mos, types = _direct_distances(tiny, list_file, root)
    for kind in ("noise", "contrast"):  # precondition: distance grows with strength within each type
        sel = [i for i, t in enumerate(types) if t == kind]
        assert srcc(d[sel], mos[sel]) == pytest.approx(-1.0)
    res = score_iqa(str(tiny_card), list_file, root, batch_size=4)
    assert res["scores"] == "mos" and res["quality"] == "-distance" and res["logistic"] == 5
    assert list(res["per_type"]) == sorted(set(types), key=types.index)
    for kind in ("noise", "contrast"):
        c = res["per_type"][kind]
        assert c["n"] == 6 and c["srcc"] == pytest.approx(1.0) and c["krcc"] == pytest.approx(1.0)
        assert c["plcc_fitted"] is True and 0.95 < c["plcc"] <= 1
    overall = res["overall"]
    assert overall["n"] == 12
    assert overall["srcc"] == pytest.approx(stats.spearmanr(-d, mos)[0])
    assert overall["krcc"] == pytest.approx(stats.kendalltau(-d, mos)[0])
    assert res["model"] == "tiny" and len(res["sha256"]) == 64
    json.dumps(res)


def test_score_iqa_dmos_and_4_param(iqa_tree, tiny):
    list_file, root = iqa_tree
    with open(list_file, newline="") as f:
        rows = list(csv.reader(f))[1:]
    dmos_list = _write_list(root / "dmos.csv", [[a, b, c, 100 - float(s)] for a, b, c, s in rows])
    res = score_iqa(tiny, dmos_list, root, scores="dmos", logistic=4)
    assert res["quality"] == "distance"
    assert all(c["srcc"] == pytest.approx(1.0) for c in res["per_type"].values())


def test_score_iqa_rejects_bad_lists(iqa_tree, tiny, tmp_path):
    list_file, root = iqa_tree
    bad = _write_list(tmp_path / "a.csv", [["dis/noise_0.png", "noise", "refs/noise.png", 1]], header=HEADER[:3])
    with pytest.raises(ValueError, match="header row"):
        score_iqa(tiny, bad, root)
    bad = _write_list(tmp_path / "b.csv", [["dis/noise_0.png", "noise", "refs/noise.png", "good"]])
    with pytest.raises(ValueError, match="line 2 .* not a number"):
        score_iqa(tiny, bad, root)
    bad = _write_list(tmp_path / "c.csv", [["dis/nope.png", "noise", "refs/noise.png", 1]])
    with pytest.raises(FileNotFoundError, match="nope.png"):
        score_iqa(tiny, bad, root)
    bad = _write_list(tmp_path / "d.csv", [["dis/noise_0.png", "noise", "refs/contrast.png", 1]])
    with pytest.raises(ValueError, match="same size"):
        score_iqa(tiny, bad, root)
    with pytest.raises(ValueError, match="mos"):
        score_iqa(tiny, list_file, root, scores="z")
    with pytest.raises(ValueError, match="4 or 5"):
        score_iqa(tiny, list_file, root, logistic=3)


def test_cli_eval_iqa(iqa_tree, tiny_card, tmp_path, capsys):
    list_file, root = iqa_tree
    out = tmp_path / "iqa.json"
    argv = ["eval", "iqa", "--list", str(list_file), "--root", str(root), "--model", str(tiny_card),
            "--logistic", "4", "--json", str(out)]
    assert main(argv) == 0
    assert "SRCC" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["per_type"]["noise"]["srcc"] == pytest.approx(1.0) and res["logistic"] == 4
    assert main(argv) == 2 and "exists" in capsys.readouterr().err
