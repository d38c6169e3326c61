"""Exact noise predictors for data whose distribution is known in closed form: no network, no training.

For data x_0 ~ N(m, s^2 I), the noised x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Ho et al. 2020, eq. 4)
is Gaussian as well, and the best possible noise prediction (the one that minimises L_simple) is the posterior mean

    E[eps | x_t] = sqrt(1 - alpha_bar_t) (x_t - sqrt(alpha_bar_t) m) / (alpha_bar_t s^2 + 1 - alpha_bar_t).

With s = 0 (all data at the single point m) it is eq. 4 solved for eps. A sampler driven by this model makes no model
error, so whatever is wrong with its samples is the sampler's doing (chapter 08 uses it to isolate timestep spacings).
"""

from __future__ import annotations

import torch

from ._validate import check_range, check_timesteps
from .schedules import NoiseSchedule

__all__ = ["GaussianEps"]


class GaussianEps:
    """The exact eps-predictor ``model(x_t, t)`` for data x_0 ~ N(mean, std^2 I); ``mean`` has the shape of one data
    point (e.g. (2,) or (1, 28, 28)). Computed in float64, returned in x_t's dtype."""

    def __init__(self, schedule: NoiseSchedule, mean: torch.Tensor, std: float) -> None:
        check_range(std, "std", 0.0, float("inf"))
        self.schedule = schedule
        self.mean = torch.as_tensor(mean, dtype=torch.float64)
        self.std = float(std)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """E[eps | x_t] for data N(mean, std^2 I) (closed form; see the module docstring)."""
        if tuple(x_t.shape[1:]) != tuple(self.mean.shape):
            raise ValueError(f"x_t must have shape (B, *{tuple(self.mean.shape)}) to match mean; got {tuple(x_t.shape)}")
        t = check_timesteps(t, self.schedule.T, x_t.shape[0])
        ab = self.schedule.alpha_bar.double().to(x_t.device)[t.to(x_t.device)].reshape(-1, *([1] * (x_t.ndim - 1)))
        one_minus_ab = self.schedule.sqrt_one_minus_alpha_bar.double().to(x_t.device)[t.to(x_t.device)]
        one_minus_ab = (one_minus_ab**2).reshape(ab.shape)  # 1 - alpha_bar from the table that keeps its digits near t = 0
        m = self.mean.to(x_t.device)
        eps = one_minus_ab.sqrt() * (x_t.double() - ab.sqrt() * m) / (ab * self.std**2 + one_minus_ab)
        return eps.to(x_t.dtype)
