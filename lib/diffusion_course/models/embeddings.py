"""Chapter 4: the sinusoidal timestep embedding (Vaswani et al. 2017, section 3.5; used for t by Ho et al. 2020,
Appendix B)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .._internal.validate import check_range

__all__ = ["sinusoidal_embedding", "SinusoidalEmbedding"]


def _check_dim(dim: int, max_period: float) -> None:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2 or dim % 2:
        raise ValueError(f"dim must be an even int in [2, inf); got {dim!r}")
    check_range(max_period, "max_period", 1.0, math.inf, open_low=True)


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Embed timesteps t (B,) as (B, dim): [sin(t w_0) .. sin(t w_{h-1}), cos(t w_0) .. cos(t w_{h-1})],
    w_i = max_period^(-i/h), h = dim // 2. Nearby t get nearby vectors; every t gets a distinct one."""
    if t.ndim != 1:
        raise ValueError(f"t must have shape (B,); got {tuple(t.shape)}")
    _check_dim(dim, max_period)
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)  # (B, dim)


class SinusoidalEmbedding(nn.Module):
    """Module form of :func:`sinusoidal_embedding` (no trainable parameters)."""

    def __init__(self, dim: int, max_period: float = 10000.0) -> None:
        super().__init__()
        _check_dim(dim, max_period)
        self.dim = dim
        self.max_period = max_period

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return sinusoidal_embedding(t, self.dim, self.max_period)
