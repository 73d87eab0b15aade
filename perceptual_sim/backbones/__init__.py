"""Backbones: modules that map an image batch to a list of tapped feature maps.

Every backbone has ``channels`` (channels per tapped map, known before any forward)
and returns ``list[Tensor]`` of N x C_l x h_l x w_l maps from ``forward``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .classic import AlexNetTrunk, VGG16Trunk
from .resnet import K22ResNet
from .vit import NarrowViT

ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "k22_resnet": K22ResNet,
    "vit": NarrowViT,
    "alexnet": AlexNetTrunk,
    "vgg16": VGG16Trunk,
}


def build_backbone(arch: str, args: dict[str, Any] | None = None) -> nn.Module:
    """Build the backbone named ``arch`` with keyword arguments ``args``."""
    if arch not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown architecture {arch!r}; known architectures: {known}")
    try:
        return ARCHITECTURES[arch](**(args or {}))
    except TypeError as exc:
        raise ValueError(f"bad arguments {args!r} for architecture {arch!r}: {exc}") from None


__all__ = ["ARCHITECTURES", "AlexNetTrunk", "K22ResNet", "NarrowViT", "VGG16Trunk", "build_backbone"]
