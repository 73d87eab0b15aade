"""The ResNet family of Kumar et al. (TMLR 2022) on timm's ``ResNet``.

ResNet-6: a 7x7/2 stem conv + 3x3/2 max-pool, then four stages of ONE 3x3 conv each
(64/128/256/512 filters times ``width``; the first stage has stride 1, the others 2),
each with a 1x1 projection shortcut where the shape changes (identity otherwise, as in
timm), then global pooling and a linear classifier when ``num_classes > 0``.
The tapped maps are the outputs of the four stages (16/8/4/2 px for a 64 px input).

``antialias=True`` low-passes before every subsampling (Zhang, ICML 2019, "Making
convolutional networks shift-invariant again"): a 3 x 3 binomial blur of the image before the
strided stem conv, max-pool at stride 1 then a blur at stride 2 (MaxBlurPool), and a blur of
the input of each strided block (blur and conv commute, so this is the blurred, subsampled
conv). The blurs have no parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.models.resnet import BasicBlock, Bottleneck, ResNet, downsample_conv
from torch import nn

from ..models.archs import resnet_widths
from .tiling import Tiling


class Blur(nn.Module):
    """Depthwise 3 x 3 binomial ([1, 2, 1] / 4 outer product) blur, edge-replicating, at ``stride``."""

    def __init__(self, stride: int = 1) -> None:
        super().__init__()
        self.stride = stride
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (k[:, None] * k[None] / 16).view(1, 1, 3, 3), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        x = F.pad(x, (1, 1, 1, 1), mode="replicate")
        return F.conv2d(x, self.kernel.to(x.dtype).expand(c, 1, 3, 3), stride=self.stride, groups=c)


class SingleConvBlock(nn.Module):
    """Residual block of one 3x3 conv + BN, added to the (projected) input, then ReLU."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        act_layer: type[nn.Module] = nn.ReLU,
        norm_layer: type[nn.Module] = nn.BatchNorm2d,
        **_timm_block_args: Any,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_layer(planes)
        self.act = act_layer(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.act(self.bn1(self.conv1(x)) + shortcut)


BLOCKS: dict[str, type[nn.Module]] = {
    "single": SingleConvBlock,
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
}


class K22ResNet(nn.Module):
    """A K22 ResNet feature extractor; ``layers=(1, 1, 1, 1), block='single'`` is ResNet-6.

    Args:
        width: multiplier on every stage's channels, the stem included (0.25 = quarter width).
        layers: blocks per stage.
        block: ``single`` (one conv, ResNet-6), ``basic`` (ResNet-18 style) or ``bottleneck``.
        antialias: blur before every subsampling (see the module's docstring).
        num_classes: size of the classifier head; 0 (the metric's case) drops it.
    """

    def __init__(
        self,
        width: float = 1.0,
        layers: Sequence[int] = (1, 1, 1, 1),
        block: str = "single",
        antialias: bool = False,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        block_cls = BLOCKS[block]
        stem, stage_channels = resnet_widths(width)
        net = ResNet(block_cls, tuple(layers), num_classes=num_classes, channels=stage_channels)
        if stem != 64:
            # timm's plain stem is always 64 wide: narrow it and rebuild the first block to match.
            net.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
            net.bn1 = nn.BatchNorm2d(stem)
            planes = stage_channels[0]
            out = planes * block_cls.expansion
            down = None
            if stem != out:
                down = downsample_conv(stem, out, kernel_size=1, norm_layer=nn.BatchNorm2d)
            net.layer1[0] = block_cls(stem, planes, 1, down)
            net.init_weights(zero_init_last=True)
        if antialias:
            net.conv1 = nn.Sequential(Blur(), net.conv1)
            net.maxpool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), Blur(stride=2))
            for stage in (net.layer2, net.layer3, net.layer4):
                stage.insert(0, Blur())
        self.net = net
        self.channels = [stage_channels[i] * block_cls.expansion for i in range(4)]
        self.tiling = _tiling(tuple(layers), block, antialias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net.forward_intermediates(x, indices=[1, 2, 3, 4], intermediates_only=True)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (training only; needs ``num_classes > 0``)."""
        return self.net(x)


def _tiling(layers: tuple[int, ...], block: str, antialias: bool = False) -> Tiling:
    """Receptive-field reach of the deepest tap; every conv, pool and blur here is centred (padding (k - 1) / 2)."""
    reach, jump = 3 + 2, 4  # the 7 x 7 / 2 stem conv (reach 3), then the 3 x 3 / 2 max-pool (1 x jump 2)
    if antialias:
        reach += 1 + 2  # the image blur (1 x jump 1); the max-pool's blur (1 x jump 2)
    convs = 2 if block == "basic" else 1  # 3 x 3 convs per block; a stage's first one carries its stride
    for n, stride in zip(layers, (1, 2, 2, 2)):
        if antialias and stride == 2:
            reach += jump  # the blur of the strided block's input
        for i in range(n * convs):
            reach += jump
            if i == 0:
                jump *= stride
    return Tiling.from_reach((4, 8, 16, 32), reach)
