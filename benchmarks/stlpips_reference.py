"""ST-LPIPS (shift-tolerant LPIPS, Ghildyal & Liu, ECCV 2022) as a reference metric for the harnesses.

    python benchmarks/stlpips_reference.py

Wraps the ``stlpips-pytorch==0.0.2`` wheel (BSD-2; ``pip install stlpips-pytorch==0.0.2``) with its
bundled ``weights/vST0.0/{alex,vgg}_shift_tolerant.pth``. Its modules import ``IPython`` and
``torchsummary`` without using them on this path; where those are not installed, empty stand-ins
are put in ``sys.modules``. The wheel loads its weights with ``strict=False``, so :class:`STLPIPS`
checks that every tensor of the model holds the file's value. Images are scored at their own size.

``main`` prints, for both nets, that check and the largest difference between :class:`STLPIPS`
(features once per image, then compared) and the wheel's own ``LPIPS.forward`` on random pairs
(smooth random images and noisier copies of them, at three sizes).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

NETS = ("alex", "vgg")


def stlpips_module() -> Any:
    """``stlpips_pytorch.stlpips``, imported with stand-ins for its unused ``IPython`` and ``torchsummary``."""
    for name, attr in (("IPython", "embed"), ("torchsummary", "summary")):
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            stub = types.ModuleType(name)
            setattr(stub, attr, None)
            sys.modules[name] = stub
    return importlib.import_module("stlpips_pytorch.stlpips")


def weights_path(net: str) -> Path:
    """The wheel's ST-LPIPS weights for ``net``, where its ``LPIPS`` loads them from."""
    return Path(stlpips_module().__file__).parent / "weights" / "vST0.0" / f"{net}_shift_tolerant.pth"


def check_loaded(model: torch.nn.Module, path: Path) -> dict[str, int]:
    """Raise unless every entry of ``model.state_dict()`` equals the file's tensor of that name, the
    only names absent from the file being ``lins.N.*``, the same tensors as ``linN.*``, and the file
    has no other names. Returns the counts of file tensors and of such aliases."""
    file = torch.load(path, map_location="cpu", weights_only=True)
    state = model.state_dict(keep_vars=True)
    unexpected = sorted(set(file) - set(state))
    aliases = {k: re.sub(r"^lins\.(\d+)\.", r"lin\1.", k) for k in state if k not in file}
    bad = sorted(k for k, v in aliases.items() if v == k or v not in file or state[v] is not state[k])
    if unexpected or bad:
        raise RuntimeError(f"{path.name}: unexpected keys {unexpected}, missing keys that are not lins aliases {bad}")
    differ = sorted(k for k in state if not torch.equal(state[k].detach(), file[aliases.get(k, k)]))
    if differ:
        raise RuntimeError(f"{path.name}: tensors that do not hold the file's values: {differ}")
    return {"file tensors": len(file), "lins aliases": len(aliases)}


class STLPIPS:
    """ST-LPIPS distance (``LPIPS(net, variant="shift_tolerant")`` of the wheel) in mode ``"spatial"``:
    features are the unit-normalised layer maps of each image, compared by the learned linear layers."""

    modes = ("spatial",)

    def __init__(self, net: str) -> None:
        if net not in NETS:
            raise ValueError(f"net must be one of {NETS}, got {net!r}")
        self.name = f"stlpips-{net}"
        path = weights_path(net)
        self.model = stlpips_module().LPIPS(net=net, variant="shift_tolerant", verbose=False)
        self.loaded = check_loaded(self.model, path)
        self.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()

    @torch.no_grad()
    def features(self, x: Tensor) -> list[Tensor]:
        """Unit-normalised maps of the five layers for a [0, 1] (or uint8) N x 3 x H x W batch."""
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        m = self.model
        normalize = stlpips_module().utils.normalize_tensor
        return [normalize(t) for t in m.net(m.scaling_layer(2 * x - 1))]

    @torch.no_grad()
    def compare(self, fa: list[Tensor], fb: list[Tensor]) -> dict[str, Tensor]:
        """{"spatial": ST-LPIPS distance per pair}, summed over layers as ``LPIPS.forward`` does."""
        val = sum(lin((a - b) ** 2).mean((2, 3), keepdim=True) for lin, a, b in zip(self.model.lins, fa, fb))
        return {"spatial": val.flatten()}


def main() -> int:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    shapes = [(64, 64), (61, 77), (96, 128)]
    for net in NETS:
        metric = STLPIPS(net)
        print(f"{metric.name}: {weights_path(net).name} sha256 {metric.sha256}")
        print(f"  every state_dict tensor holds the file's value: {metric.loaded}")
        worst_abs = worst_rel = 0.0
        for h, w in shapes:
            a = F.interpolate(torch.rand(3, 3, h // 8, w // 8, generator=g), size=(h, w), mode="bilinear")
            noise = torch.tensor([0.02, 0.1, 0.5]).view(3, 1, 1, 1) * torch.randn(3, 3, h, w, generator=g)
            b = (a + noise).clamp(0, 1)
            ours = metric.compare(metric.features(a), metric.features(b))["spatial"].double()
            with torch.no_grad():
                theirs = torch.cat([metric.model(2 * a[i : i + 1] - 1, 2 * b[i : i + 1] - 1).flatten()
                                    for i in range(len(a))]).double()
            diff = (ours - theirs).abs()
            worst_abs, worst_rel = max(worst_abs, diff.max().item()), max(worst_rel, (diff / theirs).max().item())
            print(f"  {h}x{w}: ours {[round(v, 6) for v in ours.tolist()]}, "
                  f"wheel {[round(v, 6) for v in theirs.tolist()]}")
        print(f"  {3 * len(shapes)} pairs: max abs difference {worst_abs:.2e}, max relative {worst_rel:.2e}")
        if worst_rel > 1e-5:
            raise RuntimeError(f"{metric.name} differs from the wheel by {worst_rel:.2e} (relative)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
