"""Chapter 13: a network trained on the integer DDPM timesteps 0..T-1 used on flow matching's continuous time
t in [0, 1]. The flow samplers and the flow-matching loss call ``model(x_t, t)`` with float t (the convention of
diffusers' ``FlowMatchEulerDiscreteScheduler``, which hands the network t x 1000); :class:`FlowTime` rescales t before
the wrapped network's sinusoidal embedding sees it, so the course's U-Net serves both chapters unchanged."""

from __future__ import annotations

import math

import torch
from torch import nn

from .._internal.validate import check_range

__all__ = ["FlowTime", "FLOW_TIME_SCALE"]

FLOW_TIME_SCALE = 1000.0  # t in [0, 1] -> [0, 1000], the range the U-Net's time embedding was laid out for


class FlowTime(nn.Module):
    """``FlowTime(net)(x, t, y=None) = net(x, scale * t[, y])``: the wrapped network's weights are ``.net``'s, so the
    U-Net's files and cards are those of a plain :class:`UNet`."""

    def __init__(self, net: nn.Module, scale: float = FLOW_TIME_SCALE) -> None:
        super().__init__()
        check_range(scale, "scale", 0.0, math.inf, open_low=True)
        self.net, self.scale = net, float(scale)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if t.ndim != 1 or t.shape[0] != x.shape[0]:
            raise ValueError(f"t must have shape ({x.shape[0]},) (one time in [0, 1] per example); got {tuple(t.shape)}")
        tt = t.to(x.device, torch.float32) * self.scale
        return self.net(x, tt) if y is None else self.net(x, tt, y)
