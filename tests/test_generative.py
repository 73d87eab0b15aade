"""perceptual_sim.generative and its commands (diversity, nearest, systems, video), against distances
computed pair by pair with forward(): identical images, copies, a system against itself, static video."""

from __future__ import annotations

import csv
import json
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import save_random_image
from PIL import Image

from perceptual_sim.cli import main
from perceptual_sim.generative import (
    bootstrap_interval,
    compare_systems,
    diversity,
    nearest,
    recall_at_k,
    vectors,
    video,
)
from perceptual_sim.images import load_image

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = (32, 32)


def _d(model, a: Path | torch.Tensor, b: Path | torch.Tensor) -> float:
    """The distance by forward(), one pair."""
    x, y = (load_image(p)[None] if isinstance(p, Path) else p[None] for p in (a, b))
    with torch.inference_mode():
        return float(model(x, y)[0])


@pytest.fixture
def photos(tmp_path) -> list[Path]:
    return [save_random_image(tmp_path / "photos" / f"p{i}.png", i, SIZE) for i in range(6)]


def test_vectors_give_the_forward_and_pairwise_distances(tiny):
    x = torch.rand(3, 3, *SIZE, generator=torch.Generator().manual_seed(0))
    for mode in ("spatial", "meanpool", "style"):
        v = vectors(tiny, x, mode)
        with torch.inference_mode():
            want = tiny(x[[0, 0, 1]], x[[1, 2, 2]], mode=mode)
            pair = tiny.pairwise(tiny.embed(x), tiny.embed(x), mode=mode)
        got = (v[[0, 0, 1]] - v[[1, 2, 2]]).pow(2).sum(1)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(torch.cdist(v, v).pow(2), pair, rtol=1e-4, atol=1e-5)


def test_diversity_is_the_mean_over_pairs_and_zero_for_identical_images(tiny):
    x = torch.rand(3, 3, *SIZE, generator=torch.Generator().manual_seed(1))
    want = np.mean([_d(tiny, x[i], x[j]) for i, j in combinations(range(3), 2)])
    r = diversity(x, model=tiny)
    assert r.mean == pytest.approx(want, rel=1e-4) and r.pairs == 3 and r.images == 3
    assert r.interval[0] <= r.mean <= r.interval[1] and "all pairs" in r.protocol
    same = diversity(x[:1].expand(4, -1, -1, -1), model=tiny)
    assert same.mean == 0 and same.interval == (0.0, 0.0)
    grouped = diversity([x[:2], x], model=tiny)  # per input, then over inputs
    assert grouped.mean == pytest.approx((_d(tiny, x[0], x[1]) + want) / 2, rel=1e-4)
    assert grouped.pairs == 4 and set(grouped.groups) == {"0", "1"} and "grouped" in grouped.protocol
    assert r.info["model"] == "tiny" and {"mode", "sha256", "version"} <= r.info.keys()


def test_diversity_of_a_folder_groups_by_sub_folder(tiny, tmp_path):
    p = [save_random_image(tmp_path / "s" / f"in{i % 2}" / f"{i}.png", i, SIZE) for i in range(5)]
    r = diversity(tmp_path / "s", model=tiny)
    assert r.groups["in0"] == pytest.approx(np.mean([_d(tiny, p[i], p[j]) for i, j in ((0, 2), (0, 4), (2, 4))]),
                                            rel=1e-4)
    assert r.groups["in1"] == pytest.approx(_d(tiny, p[1], p[3]), rel=1e-4)
    assert diversity(tmp_path / "s", model=tiny, grouped=False).pairs == 10
    save_random_image(tmp_path / "s" / "loose.png", 9, SIZE)
    with pytest.raises(ValueError, match="has sub-folders .* and also images at its top"):
        diversity(tmp_path / "s", model=tiny)
    with pytest.raises(ValueError, match="at least 2 images per input: input 'one' has 1 image"):
        save_random_image(tmp_path / "t" / "one" / "a.png", 1, SIZE)
        save_random_image(tmp_path / "t" / "two" / "b.png", 2, SIZE)
        save_random_image(tmp_path / "t" / "two" / "c.png", 3, SIZE)
        diversity(tmp_path / "t", model=tiny)


def test_nearest_finds_copies_and_exact_distances(tiny, photos):
    r = nearest(photos[:2], photos, k=3, model=tiny)
    assert r.indices[:, 0].tolist() == [0, 1] and r.distances[:, 0].tolist() == [0.0, 0.0]
    for g, (idx, dist) in enumerate(zip(r.indices, r.distances)):
        assert list(dist) == sorted(dist)
        want = sorted((_d(tiny, photos[g], p), i) for i, p in enumerate(photos))[:3]
        assert idx.tolist() == [i for _, i in want]
        np.testing.assert_allclose(dist, [d for d, _ in want], rtol=1e-4, atol=1e-6)
    chunked = nearest(photos[:2], photos, k=3, model=tiny, chunk=2, batch_size=1)
    assert chunked.indices.tolist() == r.indices.tolist()
    with pytest.raises(ValueError, match="k=7 but there are 6 training images"):
        nearest(photos[:1], photos, k=7, model=tiny)


def test_faiss_with_every_candidate_equals_exact(tiny, photos):
    pytest.importorskip("faiss")
    exact = nearest(photos[3:], photos, k=2, model=tiny)
    approx = nearest(photos[3:], photos, k=2, model=tiny, index="faiss", candidates=len(photos))
    assert approx.indices.tolist() == exact.indices.tolist() and recall_at_k(exact.indices, approx.indices) == 1.0
    np.testing.assert_allclose(approx.distances, exact.distances, rtol=1e-5, atol=1e-7)
    assert approx.index == "faiss" and approx.memory_bound > 0


def test_faiss_missing_says_which_extra(tiny, photos, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match=r'pip install "perceptual-sim\[nearest\]"'):
        nearest(photos, photos, model=tiny, index="faiss")


def test_recall_at_k_and_bootstrap_by_hand():
    assert recall_at_k(np.array([[1, 2], [3, 4]]), np.array([[2, 9], [4, 3]])) == 0.75
    assert bootstrap_interval([0.5] * 10) == (0.5, 0.5)
    lo, hi = bootstrap_interval(np.arange(100.0))
    assert lo < 49.5 < hi and hi - lo < 25


def _systems(tmp_path, photos) -> tuple[Path, Path, Path]:
    ref, same, noisy = tmp_path / "ref", tmp_path / "same", tmp_path / "noisy"
    for i, p in enumerate(photos):
        for folder, seed in ((ref, None), (same, None), (noisy, 100 + i)):
            folder.mkdir(exist_ok=True)
            pixels = np.asarray(Image.open(p)).astype(int)
            if seed is not None:
                pixels = np.clip(pixels + np.random.default_rng(seed).integers(-40, 41, pixels.shape), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(folder / p.name)
    return ref, same, noisy


def test_systems_paired_difference(tiny, tmp_path, photos):
    ref, same, noisy = _systems(tmp_path, photos)
    r = compare_systems(ref, [same, noisy, same], names=["a", "b", "a2"], model=tiny)
    d_noisy = [_d(tiny, ref / p.name, noisy / p.name) for p in photos]
    np.testing.assert_allclose(r.distances[:, 1], d_noisy, rtol=1e-4)
    assert r.means["a"] == 0.0 and r.means["b"] == pytest.approx(np.mean(d_noisy), rel=1e-4)
    ab, aa2 = r.comparisons[0], r.comparisons[1]
    assert (ab["a"], ab["b"]) == ("a", "b") and ab["difference"] == pytest.approx(-np.mean(d_noisy), rel=1e-4)
    assert ab["interval"][1] < 0 and ab["a_wins"] == 1.0 and ab["b_wins"] == 0.0
    assert (aa2["b"], aa2["difference"], aa2["interval"], aa2["ties"]) == ("a2", 0.0, [0.0, 0.0], 1.0)
    (noisy / photos[0].name).unlink()
    with pytest.raises(ValueError, match=r"system b .* has no image for 1 references, e\.g\. p0\.png"):
        compare_systems(ref, [same, noisy], names=["a", "b"], model=tiny)


def _frames(folder: Path, frames: list[np.ndarray]) -> Path:
    folder.mkdir()
    for t, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"frame{t}.png")  # frame10 sorts after frame9
    return folder


def _clip(n: int, seed: int) -> list[np.ndarray]:
    base = np.random.default_rng(seed).integers(0, 256, (*SIZE, 3), dtype=np.uint8)
    return [np.roll(base, 3 * t, axis=1) for t in range(n)]


def test_video_of_frame_folders_by_hand(tiny, tmp_path):
    a, b = _clip(11, 0), _clip(11, 1)
    fa, fb = _frames(tmp_path / "a", a), _frames(tmp_path / "b", b)
    r = video(fa, fb, model=tiny, batch_size=4)  # batches of 4: the flicker spans batch edges
    t = [torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in (*a, *b)]
    want = [_d(tiny, t[i], t[11 + i]) for i in range(11)]
    np.testing.assert_allclose(r.distances, want, rtol=1e-4)
    flick_a = [_d(tiny, t[i], t[i + 1]) for i in range(10)]
    flick_b = [_d(tiny, t[11 + i], t[12 + i]) for i in range(10)]
    np.testing.assert_allclose(r.flicker_a, flick_a, rtol=1e-4)
    assert r.tlpips == pytest.approx(np.mean(np.abs(np.subtract(flick_b, flick_a))), rel=1e-3, abs=1e-6)
    assert r.worst[0] == (int(np.argmax(want)), pytest.approx(max(want), rel=1e-4)) and r.frames == 11
    static = video(_frames(tmp_path / "s", [a[0]] * 5), _frames(tmp_path / "t", [b[0]] * 5), model=tiny)
    assert static.tlpips == 0.0 and not static.flicker_b.any()
    with pytest.raises(ValueError, match="has 11 frames but .* has 5; the videos must have as many frames"):
        video(fa, tmp_path / "s", model=tiny)
    with pytest.raises(ValueError, match="no such video file or frame folder"):
        video(fa, tmp_path / "missing.mp4", model=tiny)


def test_video_file_decoded_by_pyav(tiny, tmp_path):
    av = pytest.importorskip("av")
    frames = _clip(6, 2)
    path = tmp_path / "a.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=5)  # lossless: decoded frames equal the written ones
        stream.width, stream.height, stream.pix_fmt = SIZE[1], SIZE[0], "bgr0"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())
    r = video(path, _frames(tmp_path / "f", frames), model=tiny)
    assert r.frames == 6 and r.mean == 0.0 and r.tlpips == 0.0
    with pytest.raises(ValueError, match="ends after 3 frames but"):
        video(path, _frames(tmp_path / "g", frames[:3]), model=tiny)
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="not a video PyAV can read"):
        video(tmp_path / "bad.mp4", path, model=tiny)


def test_diversity_metric(tiny_card):
    pytest.importorskip("torchmetrics")
    from perceptual_sim.torchmetrics import PerceptualDiversityMetric

    metric = PerceptualDiversityMetric(str(tiny_card), normalize=True)
    x = torch.rand(2, 3, 3, *SIZE, generator=torch.Generator().manual_seed(3))
    metric.update(x)
    metric.update(x[0, :1].expand(4, -1, -1, -1))  # one input, identical samples: 0
    model = metric.model
    want = [np.mean([_d(model, s[i], s[j]) for i, j in combinations(range(3), 2)]) for s in x]
    assert float(metric.compute()) == pytest.approx((sum(want) + 0.0) / 3, rel=1e-4)
    with pytest.raises(ValueError, match="at least 2 samples per input"):
        metric.update(x[:, :1])


# ----------------------------------------------------------------------------- the commands
def test_cli_commands_write_outputs_with_provenance(tiny_card, tmp_path, photos, capsys):
    model = ["--model", str(tiny_card)]
    photos_dir = photos[0].parent
    assert main(["diversity", str(photos_dir), *model, "--json", str(tmp_path / "d.json")]) == 0
    d = json.loads((tmp_path / "d.json").read_text())
    assert d["pairs"] == 15 and d["interval"][0] <= d["diversity"] <= d["interval"][1]
    assert {"model", "mode", "sha256", "version", "protocol"} <= d.keys()
    assert main(["nearest", str(photos_dir), str(photos_dir), "--top", "2", *model, "--csv", str(tmp_path / "n.csv"),
                 "--report", str(tmp_path / "n.html")]) == 0
    with open(tmp_path / "n.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and rows[0]["rank"] == "1" and rows[0]["training"] == rows[0]["generated"]
    assert float(rows[0]["distance"]) == 0.0 and rows[0]["model"] == "tiny" and rows[0]["version"]
    page = (tmp_path / "n.html").read_text()
    assert "Closest to a training image" in page and page.count("<img") == 6 * 3
    ref, same, noisy = _systems(tmp_path, photos)
    assert main(["systems", str(ref), str(same), str(noisy), *model, "--report", str(tmp_path / "s.html"),
                 "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "same - noisy: -" in out and "closer: same 100.0%, noisy 0.0%" in out
    page = (tmp_path / "s.html").read_text()
    assert "<th data-type=number>same</th><th data-type=number>noisy</th>" in page
    fa, fb = _frames(tmp_path / "va", _clip(4, 0)), _frames(tmp_path / "vb", _clip(4, 1))
    assert main(["video", str(fa), str(fb), *model, "--plot", str(tmp_path / "v.png"), "--csv",
                 str(tmp_path / "v.csv")]) == 0
    with Image.open(tmp_path / "v.png") as im:
        assert im.format == "PNG" and im.size == (900, 380)
    assert len((tmp_path / "v.csv").read_text().splitlines()) == 5


def test_cli_bad_inputs_one_error_line_and_nothing_overwritten(tiny_card, tmp_path, photos, capsys):
    model = ["--model", str(tiny_card)]
    photos_dir = photos[0].parent
    (photos_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    out = tmp_path / "d.json"
    assert main(["diversity", str(photos_dir), *model, "--json", str(out)]) == 1  # the rest is scored
    err = capsys.readouterr().err
    assert "error: files that could not be used (left out) (1):" in err and "broken.png" in err
    assert json.loads(out.read_text())["images"] == 6
    out.write_text("mine")
    assert main(["diversity", str(photos_dir), *model, "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "exists; choose another file or pass --force" in err
    assert out.read_text() == "mine"
    assert main(["nearest", str(photos_dir), str(tmp_path / "nowhere"), *model]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["nearest", str(photos_dir), str(photos_dir), *model, "--report", str(tmp_path / "r.txt")]) == 2
    assert "ending in .html" in capsys.readouterr().err
    assert main(["systems", str(photos_dir), str(photos_dir), str(photos_dir), *model]) == 2
    assert "share a name" in capsys.readouterr().err
    fa, fb = _frames(tmp_path / "va", _clip(3, 0)), _frames(tmp_path / "vb", _clip(2, 1))
    assert main(["video", str(fa), str(fb), *model]) == 1
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "has 3 frames but" in err
