"""LPIPS-compatible AlexNet and VGG16 conv trunks (torchvision layouts).

The taps are the ReLU outputs LPIPS v0.1 uses: relu1..relu5 for AlexNet
(64/192/384/256/256 channels) and relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 for VGG16.
Parameter names follow torchvision (``features.<i>.weight``).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import alexnet, vgg16

from .tiling import Tiling


class _Trunk(nn.Module):
    taps: tuple[int, ...] = ()

    def __init__(self, features: nn.Sequential, channels: list[int]) -> None:
        super().__init__()
        self.features = features[: self.taps[-1] + 1]
        self.channels = channels
        self.tiling = self._tiling()

    def _tiling(self) -> Tiling:
        """Each tap's stride and receptive-field reach, from its conv and pool layers (their
        padding can shift a field off-centre: that offset counts)."""
        reach, centre, jump, strides, reaches = 0.0, 0.0, 1, [], []
        for i, layer in enumerate(self.features):
            if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
                k, s, p = (v if isinstance(v, int) else v[0] for v in (layer.kernel_size, layer.stride, layer.padding))
                reach += jump * (k - 1) / 2
                centre += jump * ((k - 1) / 2 - p)
                jump *= s
            if i in self.taps:
                strides.append(jump)
                reaches.append(reach + abs(centre))
        return Tiling.from_reach(tuple(strides), max(reaches))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


class AlexNetTrunk(_Trunk):
    """AlexNet conv trunk tapped at relu1..relu5."""

    taps = (1, 4, 7, 9, 11)

    def __init__(self) -> None:
        super().__init__(alexnet(weights=None).features, [64, 192, 384, 256, 256])


class VGG16Trunk(_Trunk):
    """VGG16 conv trunk tapped at relu1_2, relu2_2, relu3_3, relu4_3, relu5_3."""

    taps = (3, 8, 15, 22, 29)

    def __init__(self) -> None:
        super().__init__(vgg16(weights=None).features, [64, 128, 256, 512, 512])
