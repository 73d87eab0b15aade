"""A plain convolutional student, made to reproduce a teacher's feature maps (distillation).

Stage ``i`` is ``depths[i]`` 3 x 3 convs with batch norm and ReLU (the first at stride 2, so
stage ``i`` sees the image at stride ``2**(i + 1)``), then a 1 x 1 conv (with bias) to
``heads[i]`` channels: the tapped map, trained to match the teacher's map at the same stride
and kept as part of the metric. A ``depths`` entry of 0 ends the network (stages after it are
not built), so one schema holds students of 1 to 4 stages.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..models.archs import student_stages
from .tiling import Tiling


class ConvStudent(nn.Module):
    """Plain conv stack with a 1 x 1 head per stage (see the module's docstring).

    Args:
        widths: channels of each stage's 3 x 3 convs.
        depths: 3 x 3 convs per stage (the first strided); 0 ends the network.
        heads: channels of each stage's tapped map (the teacher's channels at that stride).
    """

    def __init__(self, widths: Sequence[int] = (24, 48, 96, 0), depths: Sequence[int] = (1, 2, 2, 0),
                 heads: Sequence[int] = (16, 24, 40, 0)) -> None:
        super().__init__()
        stages = student_stages({"widths": widths, "depths": depths, "heads": heads})
        self.stages = nn.ModuleList()
        self.heads = nn.ModuleList()
        cin = 3
        for w, d, h in stages:
            layers: list[nn.Module] = []
            for k in range(d):
                layers += [nn.Conv2d(cin, w, 3, stride=2 if k == 0 else 1, padding=1, bias=False),
                           nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                cin = w
            self.stages.append(nn.Sequential(*layers))
            self.heads.append(nn.Conv2d(w, h, 1))
        self.channels = [h for _, _, h in stages]
        self.tiling = _tiling([d for _, d, _ in stages])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for stage, head in zip(self.stages, self.heads):
            x = stage(x)
            out.append(head(x))
        return out


def _tiling(depths: Sequence[int]) -> Tiling:
    """Every conv is centred (3 x 3, padding 1): each adds one position of its input's stride to the reach."""
    reach, jump, strides = 0, 1, []
    for d in depths:
        for k in range(d):
            reach += jump
            if k == 0:
                jump *= 2
        strides.append(jump)
    return Tiling.from_reach(tuple(strides), reach)
