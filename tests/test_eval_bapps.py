"""BAPPS harness: the pure scores on hand arrays, and end-to-end on a small tree in the BAPPS layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import (
    EXPECTED_2AFC,
    EXPECTED_JND,
    JND_AMPLITUDES,
    JND_SAME,
    TRIPLETS,
    make_bapps,
    save_judgement,
    save_pixels,
)
from PIL import Image

from perceptual_sim.cli import main
from perceptual_sim.images import load_image
from perceptual_sim.lab.evaluate import jnd_map, score_bapps, two_afc_score
from perceptual_sim.lab.evaluate.bapps import VAL_FAMILIES, format_bapps, voc_ap

RNG = np.random.default_rng(1)


def _random_image() -> np.ndarray:
    return RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def bapps_root(tmp_path_factory) -> Path:
    return make_bapps(tmp_path_factory.mktemp("bapps"))


# ------------------------------------------------------------------------------ pure scores
def test_two_afc_score_hand_values():
    d0 = np.array([0.0, 1.0, 2.0, 1.0, 0.5])
    d1 = np.array([1.0, 0.0, 2.0, 3.0, 0.4])
    p = np.array([0.2, 0.2, 0.7, 1.0, 0.6])
    np.testing.assert_allclose(two_afc_score(d0, d1, p), [0.8, 0.2, 0.5, 0.0, 0.6])


def test_two_afc_score_rejects_bad_input():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        two_afc_score(np.zeros(2), np.ones(2), np.array([0.5, 1.5]))
    with pytest.raises(ValueError, match="one shape"):
        two_afc_score(np.zeros(2), np.ones(3), np.zeros(2))


def test_jnd_map_hand_values():
    assert jnd_map(np.array([0.3, 0.0, 0.1, 0.03]), np.array(JND_SAME)) == pytest.approx(EXPECTED_JND)
    # Fractional "same": sorted by d, same = .5, 1, .25, 0 -> AP = 2/7*3/4 + 4/7*3/4 + 1/7*7/12 = 61/84.
    assert jnd_map(np.array([0.1, 0.4, 0.2, 0.3]), np.array([0.5, 0.0, 1.0, 0.25])) == pytest.approx(61 / 84)
    # Perfect ranking: every "same" pair closer than every "different" one.
    assert jnd_map(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 0.0])) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="undefined"):
        jnd_map(np.array([1.0, 2.0]), np.zeros(2))


def test_jnd_map_matches_lpips_reference():
    lpips = pytest.importorskip("lpips")
    rng = np.random.default_rng(3)
    d, same = rng.random(200), rng.random(200).round(1)
    s = same[np.argsort(d)]
    tp, fp = np.cumsum(s), np.cumsum(1 - s)
    expected = lpips.voc_ap(tp / (tp + (s.sum() - tp)), tp / (tp + fp))
    assert jnd_map(d, same) == pytest.approx(expected, rel=1e-12)
    assert voc_ap(tp / s.sum(), tp / (tp + fp)) == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------ end to end
def test_score_bapps_on_tree(bapps_root, tiny_card):
    res = score_bapps(str(tiny_card), bapps_root, batch_size=3)
    assert res["2afc"].keys() == EXPECTED_2AFC.keys()
    for fam, expected in EXPECTED_2AFC.items():
        assert res["2afc"][fam]["score"] == pytest.approx(expected), fam
        assert res["2afc"][fam]["n"] == len(TRIPLETS[fam])
    assert res["ps"] == pytest.approx(np.mean(list(EXPECTED_2AFC.values())))
    assert res["ps_partial"] is True
    assert res["ps_families"] == ["traditional", "cnn", "color"]
    assert res["missing_2afc"] == ["superres", "deblur", "frameinterp"]
    assert res["jnd"]["traditional"] == {"map": pytest.approx(EXPECTED_JND), "n": 4}
    assert res["missing_jnd"] == ["cnn"]
    assert res["model"] == "tiny" and res["mode"] == "spatial" and len(res["sha256"]) == 64
    json.dumps(res)  # JSON-ready


def test_jnd_tree_distances_follow_the_noise_amplitude(bapps_root, tiny):
    """Precondition of EXPECTED_JND: the model orders the JND pairs by noise amplitude."""
    folder = bapps_root / "jnd" / "val" / "traditional"
    x = torch.stack([load_image(folder / "p0" / f"{i:06d}.png") for i in range(4)])
    y = torch.stack([load_image(folder / "p1" / f"{i:06d}.png") for i in range(4)])
    with torch.inference_mode():
        d = tiny(x, y).numpy()
    assert list(np.argsort(d)) == list(np.argsort(JND_AMPLITUDES))


def test_score_bapps_families_and_module(bapps_root, tiny):
    res = score_bapps(tiny, bapps_root, families=["cnn", "superres"], mode="meanpool")
    assert res["ps_families"] == ["cnn"] and res["ps"] == pytest.approx(EXPECTED_2AFC["cnn"])
    assert res["missing_2afc"] == ["superres"] and res["missing_jnd"] == ["cnn"] and res["jnd"] == {}
    assert res["mode"] == "meanpool"
    with pytest.raises(ValueError, match="subset"):
        score_bapps(tiny, bapps_root, families=["mix"])


def test_score_bapps_all_six_is_not_partial(tmp_path, tiny):
    for fam in VAL_FAMILIES:
        folder = tmp_path / "2afc" / "val" / fam
        ref = _random_image()
        for sub, img in (("ref", ref), ("p0", ref), ("p1", _random_image())):
            save_pixels(folder / sub / "000000.png", img)
        save_judgement(folder / "judge" / "000000.npy", 0.25)
    res = score_bapps(tiny, tmp_path)
    assert res["ps"] == pytest.approx(0.75) and res["ps_partial"] is False and res["missing_2afc"] == []


def test_score_bapps_reports_broken_trees(tmp_path, tiny, bapps_root):
    with pytest.raises(ValueError, match="neither 2afc/val/ nor jnd/val/"):
        score_bapps(tiny, tmp_path)
    fam = tmp_path / "2afc" / "val" / "cnn"
    img = _random_image()
    for sub in ("ref", "p0"):
        save_pixels(fam / sub / "000000.png", img)
    save_judgement(fam / "judge" / "000000.npy", 0.5)
    with pytest.raises(ValueError, match=r"p1/000000.png is missing"):
        score_bapps(tiny, tmp_path)
    save_pixels(fam / "p1" / "000000.png", img)
    np.save(fam / "judge" / "000000.npy", np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="holds 2 values"):
        score_bapps(tiny, tmp_path)
    np.save(fam / "judge" / "000000.npy", np.array([1.5]))
    with pytest.raises(ValueError, match=r"fraction in \[0, 1\]"):
        score_bapps(tiny, tmp_path)
    with pytest.raises(ValueError, match="batch_size"):
        score_bapps(tiny, bapps_root, batch_size=0)


def test_cli_eval_bapps(bapps_root, tiny_card, tmp_path, capsys):
    out = tmp_path / "res.json"
    argv = ["eval", "bapps", "--root", str(bapps_root), "--model", str(tiny_card), "--json", str(out),
            "--families", "cnn", "color"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "PS (partial: cnn, color)" in printed and "missing JND families: cnn" in printed
    res = json.loads(out.read_text())
    assert res["ps"] == pytest.approx((EXPECTED_2AFC["cnn"] + EXPECTED_2AFC["color"]) / 2)
    assert res["package_version"]
    assert main(argv) == 2
    assert "--force" in capsys.readouterr().err
    assert main(argv + ["--force"]) == 0


# ------------------------------------------------------------------------------ lpips' load_size protocol
def make_protocol_tree(root: Path) -> tuple[Path, dict[str, Path]]:
    """256 px patches whose 2AFC and JND answers flip between 64 px (lpips' loaders) and the stored size.

    ``checker`` adds a 1-px checkerboard, strong at 256 px but averaged away by the 4x bilinear
    downscale; ``smooth`` adds a broad bump that survives it. Humans (p, same) side with 64 px.
    """
    rng = np.random.default_rng(5)
    low = Image.fromarray(rng.integers(77, 179, (8, 8, 3), dtype=np.uint8)).resize((256, 256), Image.BILINEAR)
    ref = np.asarray(low).astype(np.float64)
    yy, xx = np.mgrid[:256, :256]
    checker = ref + 64 * np.where((yy + xx) % 2, 1, -1)[..., None]
    smooth = ref + 40 * np.exp(-((yy - 128) ** 2 + (xx - 100) ** 2) / (2 * 45**2))[..., None]
    patches = {name: np.clip(img, 0, 255).round().astype(np.uint8)
               for name, img in (("ref", ref), ("checker", checker), ("smooth", smooth))}
    afc = root / "2afc" / "val" / "traditional"
    for i, (p0, p1, p) in enumerate((("checker", "smooth", 0.0), ("smooth", "checker", 1.0))):
        for sub, name in (("ref", "ref"), ("p0", p0), ("p1", p1)):
            save_pixels(afc / sub / f"{i:06d}.png", patches[name])
        save_judgement(afc / "judge" / f"{i:06d}.npy", p)
    jnd = root / "jnd" / "val" / "traditional"
    for i, (name, same) in enumerate((("checker", 1.0), ("smooth", 0.0))):
        save_pixels(jnd / "p0" / f"{i:06d}.png", patches["ref"])
        save_pixels(jnd / "p1" / f"{i:06d}.png", patches[name])
        save_judgement(jnd / "same" / f"{i:06d}.npy", same)
    return root, {name: afc / sub / "000000.png" for name, sub in (("ref", "ref"), ("checker", "p0"), ("smooth", "p1"))}


def test_bapps_follows_lpips_load_size_by_default(tmp_path, tiny, tiny_card, capsys):
    from torchvision import transforms

    root, files = make_protocol_tree(tmp_path)
    # Precondition, with lpips' own transform (TwoAFCDataset: Resize(load_size), ToTensor) as the oracle.
    reference, stored = transforms.Compose([transforms.Resize(64), transforms.ToTensor()]), transforms.ToTensor()

    def d(name: str, load) -> float:
        x, y = (load(Image.open(files[n]).convert("RGB"))[None] for n in ("ref", name))
        with torch.inference_mode():
            return float(tiny(x, y))

    assert d("checker", reference) < d("smooth", reference) and d("checker", stored) > d("smooth", stored)
    default, at_stored = score_bapps(tiny, root), score_bapps(tiny, root, load_size=None)
    assert default["load_size"] == 64 and at_stored["load_size"] is None
    assert default["2afc"]["traditional"]["score"] == 1.0 and at_stored["2afc"]["traditional"]["score"] == 0.0
    assert default["jnd"]["traditional"]["map"] == 1.0 and at_stored["jnd"]["traditional"]["map"] == 0.5
    assert "patches resized to 64 px (lpips' protocol)" in format_bapps(default)
    assert main(["eval", "bapps", "--root", str(root), "--model", str(tiny_card), "--load-size", "stored",
                 "--families", "traditional", "--json", str(tmp_path / "stored.json")]) == 0
    assert "patches at their stored size" in capsys.readouterr().out
    assert json.loads((tmp_path / "stored.json").read_text())["2afc"] == at_stored["2afc"]
    assert main(["eval", "bapps", "--root", str(root), "--load-size", "0"]) == 2
    assert "expected a positive number of pixels or 'stored'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="load_size must be a positive integer or None"):
        score_bapps(tiny, root, load_size=0)
