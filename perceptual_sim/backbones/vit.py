"""A narrow Vision Transformer (timm's ``VisionTransformer``), tapped after every block."""

from __future__ import annotations

import torch
from timm.models.vision_transformer import VisionTransformer
from torch import nn


class NarrowViT(nn.Module):
    """Narrow ViT feature extractor.

    Args:
        patch_size: 4 or 8 at 64 px.
        embed_dim, depth, num_heads, mlp_ratio: as in timm.
        img_size: training size; other sizes work (``dynamic_img_size``); a height or width that
            is not a multiple of the patch is reflect-padded at the bottom and right to whole patches.
        tokens: ``patch`` taps each block's patch tokens as an N x C x h x w map;
            ``cls`` taps each block's CLS token as an N x C x 1 x 1 map (K22's choice).
        num_classes: classifier size; 0 (the metric's case) drops it.

    Attention is global: the taps cannot be computed tile by tile (``tiling`` is None).
    """

    tiling = None

    def __init__(
        self,
        patch_size: int = 4,
        embed_dim: int = 64,
        depth: int = 4,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
        img_size: int = 64,
        tokens: str = "patch",
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        self.tokens = tokens
        self.patch_size = patch_size
        self.net = VisionTransformer(
            img_size=img_size,
            patch_size=patch_size,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            num_classes=num_classes,
            dynamic_img_size=True,
        )
        self.channels = [embed_dim] * depth

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[-2:]
        p = self.patch_size
        if h % p or w % p:  # reflect-pad the bottom and right edges up to whole patches
            pad_h, pad_w = -h % p, -w % p
            mode = "reflect" if pad_h < h and pad_w < w else "replicate"
            x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode=mode)
        taps = self.net.forward_intermediates(
            x, return_prefix_tokens=True, intermediates_only=True, output_fmt="NCHW"
        )
        if self.tokens == "patch":
            return [patches for patches, _ in taps]
        return [prefix[:, 0, :, None, None] for _, prefix in taps]

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (training only; needs ``num_classes > 0``)."""
        return self.net(x)
