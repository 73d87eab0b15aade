"""EfficientNet-Lite0 (Tan & Le 2019; the TF-Lite variant: ReLU6, no squeeze-excitation) on timm's
``tf_efficientnet_lite0`` (TF "same" padding, batch-norm epsilon 1e-3, as the ImageNet weights expect).

The tapped maps are the last block output at strides 2, 4, 8 and 16 (16 / 24 / 40 / 112
channels); ``taps`` keeps the first few. TF "same" padding depends on the input's size, so a tile
would not see what the whole image sees: this backbone is never tiled (``tiling`` is None).
"""

from __future__ import annotations

import timm
import torch
from torch import nn

TAP_BLOCKS = (0, 1, 2, 4)
"""Index in timm's ``blocks`` of the last stage at strides 2, 4, 8 and 16."""
TAP_CHANNELS = (16, 24, 40, 112)


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 feature extractor tapped at strides 2 / 4 / 8 / 16 (the first ``taps``)."""

    def __init__(self, taps: int = 4) -> None:
        super().__init__()
        net = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=0)
        last = TAP_BLOCKS[taps - 1]
        self.conv_stem, self.bn1 = net.conv_stem, net.bn1
        self.blocks = nn.Sequential(*list(net.blocks)[: last + 1])
        self.taps = TAP_BLOCKS[:taps]
        self.channels = list(TAP_CHANNELS[:taps])
        self.tiling = None

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.bn1(self.conv_stem(x))
        out = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                out.append(x)
        return out
