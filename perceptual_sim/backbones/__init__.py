"""Backbones: modules that map an image batch to a list of tapped feature maps.

Every backbone has ``channels`` (channels per tapped map, known before any forward) and
``tiling`` (a :class:`Tiling`, or None when a tap sees the whole image, as in a ViT), and
returns ``list[Tensor]`` of N x C_l x h_l x w_l maps from ``forward``. Arguments are checked
against :mod:`perceptual_sim.models.archs` before anything is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ..models.archs import SCHEMAS, check_arch_args
from .classic import AlexNetTrunk, VGG16Trunk
from .efficientnet import EfficientNetLite0
from .resnet import K22ResNet
from .student import ConvStudent
from .tiling import Tiling
from .vit import NarrowViT

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "k22_resnet": K22ResNet,
    "vit": NarrowViT,
    "conv_student": ConvStudent,
    "efficientnet_lite0": EfficientNetLite0,
    "alexnet": AlexNetTrunk,
    "vgg16": VGG16Trunk,
}


assert set(ARCHITECTURES) == set(SCHEMAS), "every architecture needs an argument schema in archs.py"


def build_backbone(arch: str, args: dict[str, Any] | None = None) -> nn.Module:
    """Build the backbone named ``arch`` with keyword arguments ``args`` (checked first: ValueError)."""
    checked = check_arch_args(arch, args)
    return ARCHITECTURES[arch](**checked)


__all__ = ["ARCHITECTURES", "AlexNetTrunk", "ConvStudent", "EfficientNetLite0", "K22ResNet", "NarrowViT", "Tiling", "VGG16Trunk", "build_backbone"]
