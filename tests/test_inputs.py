"""distance() on the inputs people already have: file paths, PIL images, H x W x 3 numpy arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from perceptual_sim import distance, load_image


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    alpha = rng.integers(0, 256, (40, 56, 1), dtype=np.uint8)
    Image.fromarray(a).save(folder / "a.png")
    Image.fromarray(np.concatenate([b, alpha], 2), "RGBA").save(folder / "b.png")  # composited over white
    exif = Image.Exif()
    exif[0x0112] = 6  # EXIF orientation: rotate 90 degrees clockwise to view
    Image.fromarray(np.ascontiguousarray(a[:, :40])).save(folder / "rotated.jpg", exif=exif.tobytes(), quality=95)
    return folder, a


def test_paths_pil_images_and_arrays_give_the_tensor_distance(tiny_card, files):
    folder, a = files
    model = str(tiny_card)
    x, y = load_image(folder / "a.png")[None], load_image(folder / "b.png")[None]
    expected = distance(x, y, model=model)
    assert expected.item() > 0
    with Image.open(folder / "a.png") as pa, Image.open(folder / "b.png") as pb:
        cases = [
            (folder / "a.png", str(folder / "b.png")),  # Path and str
            (pa, pb),  # PIL images, RGBA composited over white as load_image does
            (a, pb),  # uint8 array
            (a.astype(np.float64) / 255, y),  # float array in [0, 1], and a tensor
        ]
        for first, second in cases:
            assert torch.equal(distance(first, second, model=model), expected), (type(first), type(second))
    with Image.open(folder / "rotated.jpg") as im:
        upright = load_image(folder / "rotated.jpg")
        assert upright.shape == (3, 40, 40) and im.getexif()[0x0112] == 6
        assert torch.equal(distance(im, upright[None], model=model), torch.zeros(1))  # EXIF applied to PIL images too


def test_bad_inputs_say_what_to_do(tiny_card, files):
    folder, a = files
    model = str(tiny_card)
    channels_last = torch.rand(2, 40, 56, 3)
    with pytest.raises(ValueError, match=r"channels-last \(N x H x W x 3\); permute it .*x\.permute\(0, 3, 1, 2\)"):
        distance(channels_last, channels_last, model=model)
    with pytest.raises(ValueError, match=r"N x H x W x 3 array .*torch\.from_numpy\(x\)\.permute\(0, 3, 1, 2\)"):
        distance(a[None], a[None], model=model)
    with pytest.raises(ValueError, match=r"shape \(3, 40, 56\); one image must be H x W x 3"):
        distance(a.transpose(2, 0, 1), a, model=model)
    with pytest.raises(ValueError, match="dtype int64; use uint8, or floats"):
        distance(a.astype(np.int64), a, model=model)
    with pytest.raises(ValueError, match=r"outside the input range \[0, 1\]"):
        distance(a.astype(np.float32), a, model=model)  # 0..255 floats
    with pytest.raises(TypeError, match="must be a torch.Tensor, a file path, a PIL image"):
        distance([[0.5]], a, model=model)
    with pytest.raises(ValueError, match="no such file"):
        distance(folder / "missing.png", a, model=model)
