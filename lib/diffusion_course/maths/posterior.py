"""Chapter 3: the forward-process posterior q(x_{t-1} | x_t, x_0) = N(tilde-mu_t, tilde-beta_t I) (Ho et al. 2020,
eqs. 6-7) and the model's mean written with a noise prediction, mu_theta = (x_t - beta_t / sqrt(1 - alpha_bar_t)
eps_hat) / sqrt(alpha_t) (eq. 11)."""

from __future__ import annotations

import torch

from .._internal.validate import check_same_shape, check_timesteps
from .schedules import NoiseSchedule, extract

__all__ = ["q_posterior", "posterior_mean_from_eps"]


def q_posterior(
    schedule: NoiseSchedule, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eqs. 6-7).

    tilde-mu_t = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x_0 + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t
    tilde-beta_t = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t        (0 at code t = 0)
    """
    t = check_timesteps(t, schedule.T, x_t.shape[0])
    check_same_shape(x_t, x0, "x_t", "x0")
    mean = extract(schedule.posterior_mean_coef1, t, x_t) * x0 + extract(schedule.posterior_mean_coef2, t, x_t) * x_t
    var = extract(schedule.posterior_variance, t, x_t).expand_as(x_t)
    log_var = extract(schedule.posterior_log_variance_clipped, t, x_t).expand_as(x_t)
    return mean, var, log_var


def posterior_mean_from_eps(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
    """The eps-parameterised mean mu = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) (Ho et al. 2020, eq. 11).

    With the true noise it equals tilde-mu_t of :func:`q_posterior`; with a prediction eps_hat it is the model's mean.
    """
    t = check_timesteps(t, schedule.T, x_t.shape[0])
    check_same_shape(x_t, eps, "x_t", "eps")
    coef = extract(schedule.beta, t, x_t) / extract(schedule.sqrt_one_minus_alpha_bar, t, x_t)
    return (x_t - coef * eps) / extract(schedule.alpha, t, x_t).sqrt()
