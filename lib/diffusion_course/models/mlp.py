"""Chapter 4: a small noise predictor eps_theta(x_t, t) for 2-D points, an MLP with a sinusoidal time embedding."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .._internal.validate import check_positive_int
from .embeddings import SinusoidalEmbedding

__all__ = ["MLPConfig", "MLPDenoiser", "MLPBlock"]


@dataclass(kw_only=True)
class MLPConfig:
    """Sizes of :class:`MLPDenoiser`."""

    data_dim: int = 2  # dimension of one data point (2 for the toy sets)
    hidden: int = 128  # width of every hidden layer
    depth: int = 3  # number of residual hidden blocks
    time_dim: int = 32  # size of the sinusoidal time embedding (even)

    def __post_init__(self) -> None:
        check_positive_int(self.data_dim, "data_dim")
        check_positive_int(self.hidden, "hidden")
        check_positive_int(self.depth, "depth", 0)
        check_positive_int(self.time_dim, "time_dim", 2)
        if self.time_dim % 2:
            raise ValueError(f"time_dim must be even (sin and cos halves); got {self.time_dim}")


class MLPBlock(nn.Module):
    """Residual block: h + Linear(SiLU(Linear(h) + time projection))."""

    def __init__(self, hidden: int, time_dim: int) -> None:
        super().__init__()
        check_positive_int(hidden, "hidden", 1)
        check_positive_int(time_dim, "time_dim", 1)
        self.fc1 = nn.Linear(hidden, hidden)
        self.time = nn.Linear(time_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.act = nn.SiLU()

    def forward(self, h: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        return h + self.fc2(self.act(self.fc1(self.act(h)) + self.time(temb)))


class MLPDenoiser(nn.Module):
    """eps_theta(x_t, t) for (B, data_dim) points; the time embedding enters every block (as in Ho et al. 2020's U-Net)."""

    def __init__(self, config: MLPConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or MLPConfig()
        self.time_embed = nn.Sequential(SinusoidalEmbedding(c.time_dim), nn.Linear(c.time_dim, c.time_dim), nn.SiLU())
        self.inp = nn.Linear(c.data_dim, c.hidden)
        self.blocks = nn.ModuleList(MLPBlock(c.hidden, c.time_dim) for _ in range(c.depth))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(c.hidden, c.data_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.config.data_dim:
            raise ValueError(f"x must have shape (B, {self.config.data_dim}); got {tuple(x.shape)}")
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            # a (1,) t would otherwise broadcast silently over the whole batch
            raise ValueError(f"t must have shape (B,) = ({x.shape[0]},), one timestep per point; got {tuple(t.shape)}")
        temb = self.time_embed(t)  # (B, time_dim)
        h = self.inp(x)  # (B, hidden)
        for block in self.blocks:
            h = block(h, temb)
        return self.out(h)  # (B, data_dim)
