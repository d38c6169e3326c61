"""Chapter 1's U-Net: an x0-predictor with no time input, three levels of 5x5 convolutions (Ronneberger et al. 2015)."""

from __future__ import annotations

import torch
from torch import nn

from .._internal.validate import check_positive_int

__all__ = ["BasicUNet"]


class BasicUNet(nn.Module):
    """A minimal U-Net (Ronneberger et al. 2015) mapping a noisy image (B, C, H, W) to a clean estimate of the same shape.

    Down path: conv 5x5 -> SiLU -> 2x2 max-pool, twice; up path: nearest upsample, conv, adding the skip of the same
    resolution. H and W must be divisible by 4.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, widths: tuple[int, int, int] = (32, 64, 64)) -> None:
        super().__init__()
        check_positive_int(in_channels, "in_channels")
        check_positive_int(out_channels, "out_channels")
        if len(widths) != 3:
            raise ValueError(f"widths must hold 3 channel counts (one per level); got {tuple(widths)}")
        for w in widths:
            check_positive_int(w, "widths entries")
        c1, c2, c3 = widths
        self.down = nn.ModuleList([
            nn.Conv2d(in_channels, c1, 5, padding=2),
            nn.Conv2d(c1, c2, 5, padding=2),
            nn.Conv2d(c2, c3, 5, padding=2),
        ])
        self.up = nn.ModuleList([
            nn.Conv2d(c3, c3, 5, padding=2),
            nn.Conv2d(c3, c1, 5, padding=2),
            nn.Conv2d(c1, out_channels, 5, padding=2),
        ])
        self.act = nn.SiLU()
        self.pool = nn.MaxPool2d(2)
        self.upsample = nn.Upsample(scale_factor=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"x must have shape (B, C, H, W) with H and W divisible by 4; got {tuple(x.shape)}")
        skips = []
        for i, conv in enumerate(self.down):
            x = self.act(conv(x))  # (B, c_i, H / 2^i, W / 2^i)
            if i < 2:
                skips.append(x)
                x = self.pool(x)
        for i, conv in enumerate(self.up):
            if i > 0:
                x = self.upsample(x)
                x = x + skips.pop()
            x = conv(x)
            if i < 2:
                x = self.act(x)
        return x
