"""LPIPS-compatible AlexNet and VGG16 conv trunks (torchvision layouts).

The taps are the ReLU outputs LPIPS v0.1 uses: relu1..relu5 for AlexNet
(64/192/384/256/256 channels) and relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 for VGG16.
Parameter names follow torchvision (``features.<i>.weight``).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import alexnet, vgg16


class _Trunk(nn.Module):
    taps: tuple[int, ...] = ()

    def __init__(self, features: nn.Sequential, channels: list[int]) -> None:
        super().__init__()
        self.features = features[: self.taps[-1] + 1]
        self.channels = channels

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
