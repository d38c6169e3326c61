"""Samplers (chapters 4, 6 and 8): DDPM ancestral sampling (Ho et al. 2020, Algorithm 2; the step's mean is eq. 11),
DDIM (Song et al. 2021, eq. 12, with sigma_t(eta) of eq. 16 and the timestep subsequences of section 4.2) and DDIM
inversion (the eta = 0 update run forwards).

The model is never inside a step function: ``ddpm_step`` / ``ddim_step`` take the model's prediction, and the
sampling loops call ``model(x_t, t)`` (t a LongTensor of shape (B,)) in plain sight.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .._internal.noise import model_device, randn, start_noise
from .._internal.progress import progress_bar
from .._internal.types import EpsModel
from .._internal.validate import check_choice, check_positive_int, check_range, check_same_shape, check_timesteps
from .schedules import NoiseSchedule

__all__ = ["ddpm_step_unchecked", "ddim_step_unchecked",
    "ddpm_step",
    "ddim_step",
    "ddpm_sample",
    "ddim_sample",
    "ddim_timesteps",
    "ddim_invert",
    "DDIM_SPACINGS",
    "DDPM_VARIANCES",
]

DDIM_SPACINGS = ("uniform", "quadratic", "trailing", "leading")
DDPM_VARIANCES = ("beta", "posterior")


def _check_clip(clip_x0: float | None) -> None:
    if clip_x0 is not None:
        check_range(clip_x0, "clip_x0", 0.0, float("inf"), open_low=True)


def _gather(table: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``table[t]`` shaped (B, 1, ..., 1) in x's dtype and device: :func:`extract` without its range check, which reads
    t back to the host (a wait for the GPU). For the steps below, whose t was checked once by the caller."""
    return table.to(device=x.device)[t.to(x.device)].to(x.dtype).reshape(x.shape[0], *([1] * (x.ndim - 1)))


def _x0_from_eps(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t) (Ho et al. 2020, eq. 15): :func:`predict_x0_from_eps` unchecked."""
    return (x_t - _gather(schedule.sqrt_one_minus_alpha_bar, t, x_t) * eps) / _gather(schedule.sqrt_alpha_bar, t, x_t)


def _eps_from_x0(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t) (eq. 4 solved for eps): :func:`predict_eps_from_x0` unchecked."""
    return (x_t - _gather(schedule.sqrt_alpha_bar, t, x_t) * x0) / _gather(schedule.sqrt_one_minus_alpha_bar, t, x_t)


def ddpm_step(
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: torch.Tensor | int,
    eps_hat: torch.Tensor,
    *,
    variance: str = "beta",
    clip_x0: float | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One reverse step x_t -> x_{t-1} ~ N(mu_theta(x_t, t), sigma_t^2 I) (Ho et al. 2020, Algorithm 2, line 4).

    1. x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_bar_t), clipped to [-clip_x0, clip_x0] if asked;
    2. mu = tilde-mu_t(x0_hat, x_t) (eq. 7; without clipping this equals eq. 11's eps form);
    3. sigma_t^2 = beta_t ("beta") or tilde-beta_t ("posterior"), section 3.2;
    4. add sigma_t z, except at the last step (code t = 0), which returns the mean.

    This checks its arguments, then runs :func:`ddpm_step_unchecked` (the arithmetic), which the sampling loops call directly.
    """
    check_choice(variance, DDPM_VARIANCES, "variance")
    _check_clip(clip_x0)
    t = check_timesteps(t, schedule.T, x_t.shape[0])
    if noise is None:
        noise = randn(x_t.shape, generator, x_t.device, x_t.dtype)
    return ddpm_step_unchecked(schedule, x_t, t, eps_hat, variance, clip_x0, noise)


def ddpm_step_unchecked(
    schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor, eps_hat: torch.Tensor, variance: str, clip_x0: float | None,
    noise: torch.Tensor,
) -> torch.Tensor:
    """:func:`ddpm_step` without the checks that read values back from the device: t is a checked LongTensor (B,).
    Shapes are still compared (that costs nothing and stops a model output from silently broadcasting)."""
    check_same_shape(x_t, eps_hat, "x_t", "eps_hat")
    check_same_shape(x_t, noise, "x_t", "noise")
    x0_hat = _x0_from_eps(schedule, x_t, t, eps_hat)  # 1.
    if clip_x0 is not None:
        x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
    mean = _gather(schedule.posterior_mean_coef1, t, x_t) * x0_hat + _gather(schedule.posterior_mean_coef2, t, x_t) * x_t  # 2. eq. 7
    var_table = schedule.beta if variance == "beta" else schedule.posterior_variance  # 3.
    sigma = _gather(var_table, t, x_t).sqrt()
    not_last = (t > 0).to(x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))  # 4. no noise on the last step
    return mean + not_last * sigma * noise


def ddim_step(
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: torch.Tensor | int,
    t_prev: torch.Tensor | int,
    eps_hat: torch.Tensor,
    *,
    eta: float = 0.0,
    clip_x0: float | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One DDIM step from timestep t to an earlier kept timestep t_prev (Song et al. 2021, eq. 12).

    t_prev = -1 stands for the clean data (alpha_bar = 1).

    1. x0_hat = (x_t - sqrt(1 - alpha_bar_t) eps_hat) / sqrt(alpha_bar_t)            ("predicted x_0")
    2. sigma = eta sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_prev)   (eq. 16)
    3. x_prev = sqrt(alpha_bar_prev) x0_hat + sqrt(1 - alpha_bar_prev - sigma^2) eps_hat + sigma z

    This checks its arguments, then runs :func:`ddim_step_unchecked` (the arithmetic), which the sampling loop calls directly.
    """
    check_range(eta, "eta", 0.0, 1.0)
    _check_clip(clip_x0)
    B = x_t.shape[0]
    t = check_timesteps(t, schedule.T, B)
    if isinstance(t_prev, int) and not isinstance(t_prev, bool):
        t_prev = torch.full((B,), t_prev, dtype=torch.long)
    if isinstance(t_prev, torch.Tensor) and not t_prev.dtype.is_floating_point and t_prev.numel():
        if int(t_prev.min()) < -1 or int(t_prev.max()) > schedule.T - 1:
            raise ValueError(
                f"t_prev must lie in [-1, T-1] = [-1, {schedule.T - 1}] (-1 stands for the clean data); "
                f"got values in [{int(t_prev.min())}, {int(t_prev.max())}]"
            )
    t_prev = check_timesteps(t_prev + 1, schedule.T + 1, B, name="t_prev") - 1  # shape and dtype; t_prev in [-1, T-1]
    if (t_prev.to(t.device) >= t).any():
        raise ValueError("t_prev must be smaller than t (DDIM steps go backwards in time)")
    if eta > 0 and noise is None:
        noise = randn(x_t.shape, generator, x_t.device, x_t.dtype)
    return ddim_step_unchecked(schedule, x_t, t, t_prev, eps_hat, eta, clip_x0, noise)


def ddim_step_unchecked(
    schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor, t_prev: torch.Tensor, eps_hat: torch.Tensor, eta: float,
    clip_x0: float | None, noise: torch.Tensor | None,
) -> torch.Tensor:
    """:func:`ddim_step` without the checks that read values back from the device: t and t_prev are checked
    LongTensors (B,) with -1 <= t_prev < t, and ``noise`` is given when eta > 0. Shapes are still compared (free)."""
    check_same_shape(x_t, eps_hat, "x_t", "eps_hat")
    x0_hat = _x0_from_eps(schedule, x_t, t, eps_hat)  # 1.
    if clip_x0 is not None:
        x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
        eps_hat = _eps_from_x0(schedule, x_t, t, x0_hat)  # keep eps consistent with the clipped x0
    # 1 - alpha_bar comes from the stored sqrt_one_minus_alpha_bar (derived in float64): formed as 1 - alpha_bar in
    # float32 it keeps only ~4 digits where alpha_bar = 1 - 1e-4, i.e. on the last steps of sampling.
    zero = torch.zeros(1, device=schedule.device)
    ab_t = _gather(schedule.alpha_bar, t, x_t)
    one_minus_ab_t = _gather(schedule.sqrt_one_minus_alpha_bar, t, x_t) ** 2
    ab_prev = _gather(torch.cat([zero + 1, schedule.alpha_bar]), t_prev + 1, x_t)  # index 0 is "t = -1" (clean data)
    one_minus_ab_prev = _gather(torch.cat([zero, schedule.sqrt_one_minus_alpha_bar]), t_prev + 1, x_t) ** 2
    # eq. 16 with 1 - alpha_bar_t / alpha_bar_prev = (alpha_bar_prev - alpha_bar_t) / alpha_bar_prev, the difference
    # taken from the table that keeps its digits: 1 - alpha_bar near the data, alpha_bar near pure noise.
    gap = torch.where(ab_prev > 0.5, one_minus_ab_t - one_minus_ab_prev, ab_prev - ab_t)
    sigma = eta * (one_minus_ab_prev / one_minus_ab_t * gap / ab_prev).clamp(min=0).sqrt()  # 2.
    direction = (one_minus_ab_prev - sigma**2).clamp(min=0).sqrt() * eps_hat
    x_prev = ab_prev.sqrt() * x0_hat + direction  # 3.
    if eta > 0:
        check_same_shape(x_t, noise, "x_t", "noise")
        x_prev = x_prev + sigma * noise
    return x_prev


def ddim_timesteps(T: int, steps: int, spacing: str = "uniform") -> torch.Tensor:
    """The kept timesteps tau_1 < ... < tau_S of a DDIM sampler, ascending, LongTensor (S,) (Song et al. 2021, section 4.2).

    - "uniform":   floor(linspace(0, T-1, S)), always includes T-1 and 0 (diffusers: "linspace", rounded);
    - "quadratic": floor(linspace(0, sqrt(0.8 T), S)^2) made strictly increasing (the DDIM paper's CIFAR-10 choice; stops at 0.8 T);
    - "trailing":  round(T - k T/S) - 1 for k = 0..S-1 (Lin et al. 2024, Table 2), always includes T-1;
    - "leading":   k (T // S) for k = 0..S-1 (the DDIM paper's code, and diffusers' current default); it never reaches T-1, so sampling starts at a
      timestep whose alpha_bar is far from 0 (shown in chapter 8).
    """
    check_positive_int(T, "T")
    check_positive_int(steps, "steps", 1, T)
    check_choice(spacing, DDIM_SPACINGS, "spacing")
    if spacing == "uniform":
        ts = np.floor(np.linspace(0, T - 1, steps)).astype(np.int64) if steps > 1 else np.array([T - 1])
    elif spacing == "quadratic":
        ts = np.floor(np.linspace(0, np.sqrt(T * 0.8), steps) ** 2).astype(np.int64)
        for i in range(1, len(ts)):  # squares of small numbers collide; keep the sequence strictly increasing
            ts[i] = max(ts[i], ts[i - 1] + 1)
        if ts[-1] > T - 1:
            ts = np.floor(np.linspace(0, T - 1, steps)).astype(np.int64)
    elif spacing == "trailing":
        # k = 0..S-1 computed from an integer range: np.arange(T, 0, -T / S) (diffusers' form) returns S + 1 entries,
        # the last one -1, whenever T / S rounds down in floating point (e.g. T=1000, S=61).
        ts = (np.round(T - np.arange(steps) * (T / steps)) - 1).astype(np.int64)[::-1].copy()
    else:  # leading
        ts = (np.arange(steps) * (T // steps)).astype(np.int64)
    return torch.from_numpy(ts)


@torch.no_grad()
def ddpm_sample(
    model: EpsModel,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    *,
    variance: str = "beta",
    clip_x0: float | None = None,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Ancestral sampling, T model calls from x_T ~ N(0, I) to x_0 (Ho et al. 2020, Algorithm 2).

    Returns x_0 of ``shape``; with ``return_trajectory`` also a CPU tensor (T+1, *shape) holding x_T, ..., x_0.
    """
    check_choice(variance, DDPM_VARIANCES, "variance")
    _check_clip(clip_x0)
    device = model_device(model, x_T)
    schedule = schedule.to(device)
    x = start_noise(shape, x_T, generator, device)
    traj = [x.cpu()] if return_trajectory else None
    for i in progress_bar(range(schedule.T - 1, -1, -1), desc="DDPM sampling", disable=not progress, leave=False):
        t = torch.full((x.shape[0],), i, dtype=torch.long, device=device)
        eps_hat = model(x, t).float()
        noise = randn(x.shape, generator, device, x.dtype) if i > 0 else torch.zeros_like(x)
        x = ddpm_step_unchecked(schedule, x, t, eps_hat, variance, clip_x0, noise)  # ddpm_step, its checks done once above
        if traj is not None:
            traj.append(x.cpu())
    return (x, torch.stack(traj)) if traj is not None else x


@torch.no_grad()
def ddim_sample(
    model: EpsModel,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    *,
    steps: int = 50,
    eta: float = 0.0,
    spacing: str = "uniform",
    clip_x0: float | None = None,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """DDIM sampling with ``steps`` model calls over the kept timesteps of ``spacing`` (Song et al. 2021, eq. 12).

    eta = 0 is deterministic given x_T; eta = 1 with every timestep kept is DDPM with the posterior variance.
    Returns x_0; with ``return_trajectory`` also a CPU tensor (steps+1, *shape).
    """
    check_range(eta, "eta", 0.0, 1.0)
    _check_clip(clip_x0)
    ts = ddim_timesteps(schedule.T, steps, spacing).tolist()
    device = model_device(model, x_T)
    schedule = schedule.to(device)
    x = start_noise(shape, x_T, generator, device)
    traj = [x.cpu()] if return_trajectory else None
    B = x.shape[0]
    for k in progress_bar(range(len(ts) - 1, -1, -1), desc=f"DDIM sampling ({steps} steps)", disable=not progress, leave=False):
        t = torch.full((B,), ts[k], dtype=torch.long, device=device)
        t_prev = torch.full((B,), ts[k - 1] if k > 0 else -1, dtype=torch.long, device=device)
        eps_hat = model(x, t).float()
        noise = randn(x.shape, generator, device, x.dtype) if eta > 0 else None
        x = ddim_step_unchecked(schedule, x, t, t_prev, eps_hat, eta, clip_x0, noise)  # ddim_step, its checks done once above
        if traj is not None:
            traj.append(x.cpu())
    return (x, torch.stack(traj)) if traj is not None else x


@torch.no_grad()
def ddim_invert(
    model: EpsModel,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    *,
    steps: int = 50,
    spacing: str = "uniform",
    clip_x0: float | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Deterministic encoding x_0 -> x_T by running the eta = 0 DDIM update forwards in time (Song et al. 2021, section 5.4).

    Each step evaluates eps_theta at the current level and moves to the next kept timestep:
    x_next = sqrt(alpha_bar_next) x0_hat + sqrt(1 - alpha_bar_next) eps_hat. ``ddim_sample(..., x_T=result, eta=0)``
    with the same steps and spacing reconstructs x_0 up to the discretisation error. With ``clip_x0`` each x0_hat is
    clipped and eps_hat re-derived from it, as :func:`ddim_step` does (use the same setting when decoding). The work
    runs on the model's device; the result comes back there.
    """
    _check_clip(clip_x0)
    ts = ddim_timesteps(schedule.T, steps, spacing).tolist()
    device = model_device(model, None) if isinstance(model, torch.nn.Module) else x0.device
    schedule = schedule.to(device)
    B = x0.shape[0]
    x = x0.to(device)
    traj = [x.cpu()] if return_trajectory else None
    for k in progress_bar(range(len(ts)), desc=f"DDIM inversion ({steps} steps)", disable=not progress, leave=False):
        t_next = torch.full((B,), ts[k], dtype=torch.long, device=device)
        if k == 0:
            # From clean data (alpha_bar = 1): the model sees the first kept level, the usual approximation.
            eps_hat = model(x, t_next).float()
            check_same_shape(x, eps_hat, "x_t", "eps_hat")
            x0_hat = x
        else:
            t_cur = torch.full((B,), ts[k - 1], dtype=torch.long, device=device)
            eps_hat = model(x, t_cur).float()
            check_same_shape(x, eps_hat, "x_t", "eps_hat")
            x0_hat = _x0_from_eps(schedule, x, t_cur, eps_hat)
            if clip_x0 is not None:
                x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
                eps_hat = _eps_from_x0(schedule, x, t_cur, x0_hat)
        x = _gather(schedule.sqrt_alpha_bar, t_next, x) * x0_hat + _gather(schedule.sqrt_one_minus_alpha_bar, t_next, x) * eps_hat
        if traj is not None:
            traj.append(x.cpu())
    return (x, torch.stack(traj)) if traj is not None else x
