"""The second hostile review (issue 20): PIL objects, planted links, short image data, NaN from
``pairwise``, pseudo-files and oversized tensor files, a swapped download cache, and the smaller holes
(special files in ``dirs``, multi-page TIFFs, ``--force`` on an input, ``--device cpu:99``).
The Hub's size and time bounds are tested against a hostile loopback Hub in test_hub.py."""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_model, save_random_image
from PIL import Image
from safetensors.torch import load_file, save_file

from perceptual_sim import PerceptualDistance, WeightsError, distance, load_image
from perceptual_sim.cli import main
from perceptual_sim.files import sha256_file, write_atomic
from perceptual_sim.images import ImageError, pil_to_tensor
from perceptual_sim.models.archs import MAX_MODEL_BYTES, check_arch_args, estimate
from perceptual_sim.models.card import ModelCard
from perceptual_sim.models.registry import PINNED

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n%%EndComments\nshowpage\n%%EOF\n"


def _one_error_line(err: str, *parts: str) -> None:
    """stderr is one ``error:`` line holding every part, no traceback."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    for part in parts:
        assert part in lines[0], f"{part!r} not in {lines[0]!r}"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def short_png(w: int, h: int, rows: int) -> bytes:
    """An RGB PNG whose header says ``w`` x ``h`` but whose complete zlib stream holds ``rows`` rows."""
    row = b"\x00" + bytes(range(256)) * (3 * w // 256) + bytes(3 * w % 256)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(row * rows, 9))
            + _chunk(b"IEND", b""))


# ----------------------------------------------------------------------------- 1. PIL images
def test_a_pil_image_meets_the_file_policy(tiny_card, tmp_path, monkeypatch):
    (tmp_path / "eps.png").write_bytes(EPS)
    save_random_image(tmp_path / "b.png", 0, (16, 16))
    stub = tmp_path / "bin" / "gs"
    stub.parent.mkdir()
    stub.write_text(f"#!/bin/sh\ntouch {tmp_path / 'ran'}\n")
    stub.chmod(0o755)
    monkeypatch.setenv("PATH", f"{stub.parent}{os.pathsep}{os.environ['PATH']}")
    with Image.open(tmp_path / "eps.png") as im, pytest.raises(ImageError, match="eps.png: a EPS image"):
        distance(im, tmp_path / "b.png", model=str(tiny_card))
    assert not (tmp_path / "ran").exists(), "Ghostscript (the stub) was started"

    with pytest.raises(ImageError, match="100 x 50 = 5,000 pixels, more than the limit of 4,999"):
        pil_to_tensor(Image.new("RGB", (100, 50)), max_pixels=4999)
    (tmp_path / "short.png").write_bytes(short_png(64, 64, 32))
    with Image.open(tmp_path / "short.png") as im, pytest.raises(ImageError, match="short.png: truncated image data"):
        pil_to_tensor(im)
    with Image.open(tmp_path / "b.png") as im:  # an allowed, whole file is decoded as load_image does
        torch.testing.assert_close(pil_to_tensor(im), load_image(tmp_path / "b.png"), rtol=0, atol=0)


# ----------------------------------------------------------------------------- 2. planted links
@pytest.mark.parametrize("overwrite", [False, True])
def test_atomic_writes_never_follow_a_planted_link(tmp_path, overwrite):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out.csv"
    for pid in range(os.getpid() - 50, os.getpid() + 50):  # the names today's code would pick
        (tmp_path / f".{out.name}.{pid}.tmp").symlink_to(victim)
    write_atomic(out, b"result", overwrite=overwrite)
    assert victim.read_text() == "keep me"
    st = os.lstat(out)
    assert stat.S_ISREG(st.st_mode) and st.st_nlink == 1 and out.read_bytes() == b"result"
    assert stat.S_IMODE(st.st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ----------------------------------------------------------------------------- 4. short image data
def test_a_png_whose_data_stops_half_way_is_an_error(tiny_card, tmp_path, capsys):
    (tmp_path / "short.png").write_bytes(short_png(256, 256, 128))
    save_random_image(tmp_path / "b.png", 0, (256, 256))
    assert main([str(tmp_path / "short.png"), str(tmp_path / "b.png"), "--model", str(tiny_card)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    _one_error_line(captured.err, "short.png: truncated image data", "98,432 of the 196,864 bytes")
    bomb = short_png(4000, 3000, 1)  # a few KB that Pillow would turn into 12 MP of zeros
    assert len(bomb) < 20_000
    (tmp_path / "bomb.png").write_bytes(bomb)
    with pytest.raises(ImageError, match="bomb.png: truncated image data"):
        load_image(tmp_path / "bomb.png")


@pytest.mark.parametrize("fmt, options", [("PNG", {}), ("WEBP", {"quality": 80}), ("WEBP", {"lossless": True}),
                                          ("TIFF", {}), ("TIFF", {"compression": "tiff_lzw"}), ("BMP", {}),
                                          ("JPEG", {})])
def test_truncated_data_is_an_error_in_every_format(tmp_path, fmt, options):
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    rgb.save(buffer, format=fmt, **options)
    data = buffer.getvalue()
    for fraction in (0.5, 0.9, 0.99):
        path = tmp_path / f"cut{fraction}.{fmt.lower()}"
        path.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(ImageError, match=f"{path}: "):
            load_image(path)


# ----------------------------------------------------------------------------- 5. pairwise
def test_pairwise_raises_on_a_model_that_overflows(tmp_path):
    card = make_model(tmp_path, name="overflowing")
    tensors = card.with_suffix(".safetensors")
    state = load_file(str(tensors))
    state["backbone.net.conv1.weight"].fill_(1e38)
    state["backbone.net.bn1.weight"].fill_(1e-38)
    save_file(state, str(tensors))
    data = json.loads(card.read_text())
    data["sha256"] = sha256_file(tensors)
    card.write_text(json.dumps(data))
    model = PerceptualDistance.from_pretrained(str(card))
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        features = model.embed(x)
        with pytest.raises(ValueError, match="NaN or infinite for 3 of 3 rows"):
            model.pairwise(features, features)


# ----------------------------------------------------------------------------- 6. tensor files
def _with_tensor_file(tiny_card: Path, folder: Path, target: Path | None = None, size: int | None = None) -> Path:
    """A copy of the tiny model's card whose tensor file is a link to ``target``, or a sparse file of ``size``."""
    card = folder / "m.json"
    card.write_bytes(tiny_card.read_bytes())
    tensors = card.with_suffix(".safetensors")
    if target is not None:
        tensors.symlink_to(target)
    else:
        with open(tensors, "wb") as f:
            f.truncate(size)
    return card


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line in its own process, which must end within 60 s."""
    return subprocess.run([sys.executable, "-m", "perceptual_sim", *args], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.parametrize("target, message", [("/proc/self/pagemap", "pseudo-file system"),
                                             ("/proc/self/mem", "pseudo-file system")])
@pytest.mark.slow
def test_pseudo_files_are_refused_unread(tiny_card, tmp_path, target, message):
    if not os.path.exists(target):
        pytest.skip(f"no {target} here")
    card = _with_tensor_file(tiny_card, tmp_path, Path(target))
    save_random_image(tmp_path / "a.png", 0, (32, 32))
    result = _cli(str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--model", str(card))
    assert result.returncode == 1
    _one_error_line(result.stderr, f"{card.with_suffix('.safetensors')}: the tensor file is on a {message}")


def test_a_huge_sparse_tensor_file_is_refused_by_its_size_unread(tiny_card, tmp_path):
    card = _with_tensor_file(tiny_card, tmp_path, size=20 << 30)
    start = time.monotonic()
    with pytest.raises(WeightsError, match=r"m.safetensors: the tensor file is 21,474,836,480 bytes, but architecture "
                                           r"'k22_resnet' with the card's arch_args needs at most [\d,]+"):
        PerceptualDistance.from_pretrained(str(card))
    assert time.monotonic() - start < 5


def test_the_hash_is_checked_before_a_large_model_is_built(tmp_path, monkeypatch):
    args = {"width": 4.0, "layers": [3, 4, 6, 3], "block": "bottleneck"}
    need = estimate("k22_resnet", check_arch_args("k22_resnet", args))[0]
    assert 2 << 30 < need < MAX_MODEL_BYTES
    card = ModelCard(name="big", arch="k22_resnet", arch_args=args, sha256="0" * 64)
    (tmp_path / "big.json").write_text(card.to_json())
    (tmp_path / "big.safetensors").write_bytes(b"x" * 100)
    built = []
    monkeypatch.setattr(PerceptualDistance, "__init__", lambda self, *a, **k: built.append(1))
    with pytest.raises(WeightsError, match="big.safetensors has sha256 .* but the card of 'big' says 0000"):
        PerceptualDistance.from_pretrained(str(tmp_path / "big.json"))
    assert not built


# ----------------------------------------------------------------------------- 7. pinned references
def test_the_download_cache_holds_only_the_pinned_references(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = tmp_path / "perceptual_sim" / "models" / "lpips-vgg"
    folder.mkdir(parents=True)
    planted = make_model(folder, name="lpips-vgg")  # a ResNet, self-consistent (its card's sha256 is its file's)
    with pytest.raises(WeightsError, match=f"{planted}: this card says arch 'k22_resnet'.* but 'lpips-vgg' is "
                                           f"pinned to arch 'vgg16' {{}}, sha256 {PINNED['lpips-vgg'][2]}"):
        PerceptualDistance.from_pretrained("lpips-vgg")
    save_random_image(tmp_path / "a.png", 0, (32, 32))
    assert main([str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--model", "lpips-vgg"]) == 1
    _one_error_line(capsys.readouterr().err, "pinned to arch 'vgg16'", f"Delete {folder}")


def test_the_pins_name_what_download_makes():
    from perceptual_sim.convert import REFERENCES, _card, _efficientnet_card

    made = {name: _card(*REFERENCES[name]) for name in PINNED if name in REFERENCES}
    made["efficientnet-lite0"] = _efficientnet_card()
    assert {name: (c.arch, c.arch_args) for name, c in made.items()} == {n: p[:2] for n, p in PINNED.items()}


# ----------------------------------------------------------------------------- also
def test_dirs_reports_the_special_files_it_skips(tiny_card, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        save_random_image(folder / "x.png", 0)
        os.mkfifo(folder / "pipe.png")
    (a / "null.png").symlink_to("/dev/null")
    (b / "dangling.png").symlink_to(tmp_path / "nothing")
    assert main(["dirs", str(a), str(b), "--model", str(tiny_card)]) == 1
    err = capsys.readouterr().err
    assert "error: image names that are not regular files, skipped (FIFOs, devices, sockets, links to nothing) (4):" in err
    for path in (a / "pipe.png", b / "pipe.png", a / "null.png", b / "dangling.png"):
        assert f"  {path}\n" in err


def test_a_multi_page_tiff_is_refused(tmp_path):
    pages = [Image.new("RGB", (20, 20), colour) for colour in ("red", "blue")]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(ImageError, match="pages.tif: a multi-page TIFF"):
        load_image(tmp_path / "pages.tif")


def test_force_never_overwrites_an_input(tiny_card, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        save_random_image(folder / "x.png", 0)
    before = (a / "x.png").read_bytes()
    linked = tmp_path / "linked"
    linked.symlink_to(a)
    for argv, flag in (
        (["dirs", str(a), str(b), "--csv", str(linked / "x.png"), "--force"], "--csv"),
        (["dirs", str(a), str(b), "--json", str(b / "x.png"), "--force"], "--json"),
        ([str(a / "x.png"), str(b / "x.png"), "--map", str(a / "x.png"), "--force"], "--map"),
    ):
        assert main([*argv, "--model", str(tiny_card)]) == 2
        _one_error_line(capsys.readouterr().err, flag, "is one of this run's inputs", "even with --force")
    assert (a / "x.png").read_bytes() == before


def test_a_cpu_index_other_than_0_is_refused(tiny_card, tmp_path, capsys):
    save_random_image(tmp_path / "a.png", 0, (32, 32))
    assert main([str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--model", str(tiny_card), "--device", "cpu:99"]) == 2
    _one_error_line(capsys.readouterr().err, "--device cpu:99: there is one CPU device here")
