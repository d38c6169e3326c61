"""The forward (noising) process (chapters 1-2): chapter 1's uniform-noise mixing, one DDPM step q(x_t | x_{t-1})
(Ho et al. 2020, eq. 2), the closed form q(x_t | x_0) (eq. 4), and conversions between x_0, eps (eq. 15) and v
(Salimans & Ho 2022, section 4). Argument order everywhere: schedule, data, t, noise."""

from __future__ import annotations

import torch

from .._internal.noise import noise_like, rand
from .._internal.validate import check_same_shape, check_timesteps
from .schedules import NoiseSchedule, extract

__all__ = [
    "corrupt",
    "q_step",
    "q_sample",
    "add_noise",
    "q_mean_variance",
    "predict_x0_from_eps",
    "predict_eps_from_x0",
    "v_from_x0_eps",
    "predict_x0_from_v",
    "predict_eps_from_v",
]


def corrupt(x: torch.Tensor, amount: torch.Tensor | float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mix ``x`` with uniform noise: (1 - amount) * x + amount * U[0, 1) (the "from scratch" warm-up before DDPM).

    ``amount`` is a float or a (B,) tensor with values in [0, 1]; it is broadcast over the other axes.
    """
    amount = torch.as_tensor(amount, dtype=x.dtype, device=x.device)
    if amount.ndim == 0:
        amount = amount.expand(x.shape[0])
    if amount.ndim != 1 or amount.shape[0] != x.shape[0]:
        raise ValueError(f"amount must be a float or a tensor of shape (B,) = ({x.shape[0]},); got shape {tuple(amount.shape)}")
    if (amount < 0).any() or (amount > 1).any() or not torch.isfinite(amount).all():
        raise ValueError(f"amount must lie in [0, 1]; got values in [{float(amount.min()):.3g}, {float(amount.max()):.3g}]")
    noise = rand(x.shape, generator, x.device, x.dtype)
    amount = amount.reshape(-1, *([1] * (x.ndim - 1)))
    return x * (1 - amount) + noise * amount


def q_step(
    schedule: NoiseSchedule,
    x_prev: torch.Tensor,
    t: torch.Tensor | int,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One forward step, a sample of q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I) (Ho et al. 2020, eq. 2).

    The coefficient sqrt(1 - beta_t) keeps a unit-variance input at unit variance.
    """
    t = check_timesteps(t, schedule.T, x_prev.shape[0])
    eps = noise_like(x_prev, eps, generator)
    return extract(schedule.alpha, t, x_prev).sqrt() * x_prev + extract(schedule.beta, t, x_prev).sqrt() * eps


def q_sample(
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    t: torch.Tensor | int,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Closed-form forward process, x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Ho et al. 2020, eq. 4)."""
    t = check_timesteps(t, schedule.T, x0.shape[0])
    eps = noise_like(x0, eps, generator)
    return extract(schedule.sqrt_alpha_bar, t, x0) * x0 + extract(schedule.sqrt_one_minus_alpha_bar, t, x0) * eps


def add_noise(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
    """diffusers' name for :func:`q_sample` (``DDPMScheduler.add_noise(original_samples, noise, timesteps)``), in the
    package's argument order: schedule, data, t, noise. A noise tensor where t belongs is refused by the t check."""
    return q_sample(schedule, x0, t, eps=eps)


def q_mean_variance(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I) (Ho et al. 2020, eq. 4).

    Note the variance is 1 - alpha_bar_t; its square root is the standard deviation.
    """
    t = check_timesteps(t, schedule.T, x0.shape[0])
    mean = extract(schedule.sqrt_alpha_bar, t, x0) * x0
    var = (extract(schedule.sqrt_one_minus_alpha_bar, t, x0) ** 2).expand_as(x0)  # not 1 - alpha_bar: float32 cancels
    return mean, var


def predict_x0_from_eps(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
    """Invert eq. 4 for x_0: x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t) (Ho et al. 2020, eq. 15)."""
    t = check_timesteps(t, schedule.T, x_t.shape[0])
    check_same_shape(x_t, eps, "x_t", "eps")
    return (x_t - extract(schedule.sqrt_one_minus_alpha_bar, t, x_t) * eps) / extract(schedule.sqrt_alpha_bar, t, x_t)


def predict_eps_from_x0(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, x0: torch.Tensor) -> torch.Tensor:
    """Invert eq. 4 for the noise: eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t) (Ho et al. 2020, eq. 4)."""
    t = check_timesteps(t, schedule.T, x_t.shape[0])
    check_same_shape(x_t, x0, "x_t", "x0")
    return (x_t - extract(schedule.sqrt_alpha_bar, t, x_t) * x0) / extract(schedule.sqrt_one_minus_alpha_bar, t, x_t)


def v_from_x0_eps(schedule: NoiseSchedule, x0: torch.Tensor, t: torch.Tensor | int, eps: torch.Tensor) -> torch.Tensor:
    """Velocity target v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 (Salimans & Ho 2022, section 4)."""
    t = check_timesteps(t, schedule.T, x0.shape[0])
    check_same_shape(x0, eps, "x0", "eps")
    return extract(schedule.sqrt_alpha_bar, t, x0) * eps - extract(schedule.sqrt_one_minus_alpha_bar, t, x0) * x0


def predict_x0_from_v(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, v: torch.Tensor) -> torch.Tensor:
    """x_0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v (Salimans & Ho 2022, section 4)."""
    t = check_timesteps(t, schedule.T, x_t.shape[0])
    check_same_shape(x_t, v, "x_t", "v")
    return extract(schedule.sqrt_alpha_bar, t, x_t) * x_t - extract(schedule.sqrt_one_minus_alpha_bar, t, x_t) * v


def predict_eps_from_v(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor | int, v: torch.Tensor) -> torch.Tensor:
    """eps = sqrt(1 - alpha_bar_t) x_t + sqrt(alpha_bar_t) v (Salimans & Ho 2022, section 4)."""
    t = check_timesteps(t, schedule.T, x_t.shape[0])
    check_same_shape(x_t, v, "x_t", "v")
    return extract(schedule.sqrt_one_minus_alpha_bar, t, x_t) * x_t + extract(schedule.sqrt_alpha_bar, t, x_t) * v
