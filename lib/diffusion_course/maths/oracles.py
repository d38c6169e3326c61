"""Exact noise predictors for data whose distribution is known in closed form: no network, no training.

For data x_0 ~ N(m, s^2 I), the noised x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Ho et al. 2020, eq. 4)
is Gaussian as well, and the best possible noise prediction (the one that minimises L_simple) is the posterior mean

    E[eps | x_t] = sqrt(1 - alpha_bar_t) (x_t - sqrt(alpha_bar_t) m) / (alpha_bar_t s^2 + 1 - alpha_bar_t).

With s = 0 (all data at the single point m) it is eq. 4 solved for eps. A sampler driven by this model makes no model
error, so whatever is wrong with its samples is the sampler's doing (chapter 08 uses it to isolate timestep spacings).
"""

from __future__ import annotations

import torch

from .._internal.validate import check_range, check_timesteps
from .forward import predict_eps_from_x0
from .schedules import NoiseSchedule, extract

__all__ = ["GaussianEps", "ExactDenoiser"]


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


class ExactDenoiser:
    """The exact eps-predictor ``model(x_t, t)`` for data drawn with equal weights from Gaussians N(mu_k, s^2 I),
    k = 1..K; s = 0 makes it the data set {mu_k} itself. It is the minimiser of L_simple (Ho et al. 2020, eq. 14)
    for that data: eps*(x_t, t) = E[eps | x_t], obtained from E[x_0 | x_t] by inverting eq. 4.

    E[x_0 | x_t] = m + sqrt(alpha_bar_t) s^2 / v (x_t - sqrt(alpha_bar_t) m), with v = alpha_bar_t s^2 + 1 - alpha_bar_t,
    m = sum_k p(k | x_t) mu_k and p(k | x_t) proportional to exp(-||x_t - sqrt(alpha_bar_t) mu_k||^2 / (2 v)).
    Computed in float64, returned in x_t's dtype.
    """

    def __init__(self, schedule: NoiseSchedule, centres: torch.Tensor, s: float = 0.0) -> None:
        check_range(s, "s", 0.0, float("inf"))
        if centres.ndim < 2 or centres.shape[0] < 1:
            raise ValueError(f"centres must have shape (K, ...) with K >= 1; got {tuple(centres.shape)}")
        self.schedule = schedule
        self.point_shape = tuple(centres.shape[1:])
        self.centres = centres.double().reshape(len(centres), -1)  # (K, D)
        self.s = float(s)

    def x0_hat(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """E[x_0 | x_t] (the posterior mean of the clean point), same shape as x_t."""
        if tuple(x_t.shape[1:]) != self.point_shape:
            raise ValueError(f"x_t must have shape (B, *{self.point_shape}) to match centres; got {tuple(x_t.shape)}")
        t = check_timesteps(t, self.schedule.T, x_t.shape[0])
        B = x_t.shape[0]
        ab = extract(self.schedule.alpha_bar, t, x_t).double().reshape(B, 1)  # (B, 1)
        one_minus_ab = extract(self.schedule.sqrt_one_minus_alpha_bar, t, x_t).double().reshape(B, 1) ** 2  # precise near t = 0
        x = x_t.double().reshape(B, -1)  # (B, D)
        mu = self.centres.to(x.device)
        v = ab * self.s**2 + one_minus_ab  # variance of x_t given the component
        d2 = (x**2).sum(1, keepdim=True) - 2 * ab.sqrt() * x @ mu.T + ab * (mu**2).sum(1)  # (B, K) squared distances
        w = torch.softmax(-d2 / (2 * v), dim=1)  # p(k | x_t)
        m = w @ mu  # sum_k p(k | x_t) mu_k
        x0 = m + (ab.sqrt() * self.s**2 / v) * (x - ab.sqrt() * m)
        return x0.reshape(x_t.shape).to(x_t.dtype)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """E[eps | x_t] = (x_t - sqrt(alpha_bar_t) E[x_0 | x_t]) / sqrt(1 - alpha_bar_t)."""
        return predict_eps_from_x0(self.schedule, x_t, t, self.x0_hat(x_t, t))
