"""How a backbone's tapped maps can be computed tile by tile and still equal the whole-image maps."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Tiling:
    """``strides``: input pixels per position of each tapped map. ``halo``: pixels of context
    a tile needs on every side (it covers every tap's receptive field), a multiple of
    :attr:`align`, the largest stride, at which tiles start.
    """

    strides: tuple[int, ...]
    halo: int

    @property
    def align(self) -> int:
        return max(self.strides)

    @classmethod
    def from_reach(cls, strides: tuple[int, ...], reach: float) -> Tiling:
        """``reach``: how far (input pixels) a tapped position's receptive field extends from the
        position's first pixel, on either side."""
        align = max(strides)
        return cls(tuple(strides), align * math.ceil(reach / align))
