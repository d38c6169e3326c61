"""Chapter 8: DDPM on a subsequence of timesteps ("respacing", Nichol & Dhariwal 2021, section 4).

A model trained with T steps can sample with S < T steps tau_1 < ... < tau_S: keep alpha_bar at the kept steps and
give the shorter chain the betas beta'_k = 1 - alpha_bar_{tau_k} / alpha_bar_{tau_{k-1}} (alpha_bar_{tau_0} := 1).
The shorter chain has exactly the same marginals q(x_{tau_k} | x_0), so ancestral sampling (Ho et al. 2020,
Algorithm 2) on it is a valid DDPM sampler with S model calls. With sigma^2 = beta' it is the "sigma-hat" row of the
DDIM paper's Table 1 (Song et al. 2021, section 5.1); with the posterior variance it equals DDIM with eta = 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._internal.types import EpsModel
from .samplers import ddim_timesteps, ddpm_sample
from .schedules import NoiseSchedule

__all__ = ["respaced_schedule", "RespacedModel", "ddpm_sample_respaced"]


def _check_kept(timesteps: torch.Tensor | Sequence[int], T: int) -> torch.Tensor:
    ts = torch.as_tensor(timesteps)
    if ts.ndim != 1 or ts.numel() == 0 or ts.dtype.is_floating_point or ts.dtype == torch.bool:
        raise ValueError(f"timesteps must be a non-empty 1-D sequence of integer timesteps; got {tuple(ts.shape)} {ts.dtype}")
    ts = ts.long()
    if int(ts.min()) < 0 or int(ts.max()) > T - 1:
        raise ValueError(f"timesteps must lie in [0, T-1] = [0, {T - 1}]; got values in [{int(ts.min())}, {int(ts.max())}]")
    if ts.numel() > 1 and not bool((ts[1:] > ts[:-1]).all()):
        raise ValueError("timesteps must be strictly increasing (tau_1 < ... < tau_S)")
    return ts


def respaced_schedule(schedule: NoiseSchedule, timesteps: torch.Tensor | Sequence[int]) -> NoiseSchedule:
    """The S-step schedule whose alpha_bar equals ``schedule.alpha_bar`` at the kept ``timesteps`` (ascending):
    beta'_k = 1 - alpha_bar_{tau_k} / alpha_bar_{tau_{k-1}} (Nichol & Dhariwal 2021, section 4)."""
    ts = _check_kept(timesteps, schedule.T)
    # log alpha_bar_t = sum_{s<=t} log(1 - beta_s) in float64 from the stored betas (which keep full relative
    # precision, unlike 1 - alpha_bar in float32); beta'_k = 1 - exp(log alpha_bar_{tau_k} - log alpha_bar_{tau_{k-1}}).
    log_ab = torch.cumsum(torch.log1p(-schedule.beta.detach().cpu().to(torch.float64)), 0)[ts]  # (S,)
    log_ab_prev = torch.cat([torch.zeros(1, dtype=torch.float64), log_ab[:-1]])
    return NoiseSchedule.from_betas(-torch.expm1(log_ab - log_ab_prev))


class RespacedModel(nn.Module):
    """Calls ``model(x, tau[k])`` when asked for index k of the respaced chain (the model only knows the original t)."""

    def __init__(self, model: EpsModel, timesteps: torch.Tensor | Sequence[int]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("tau", torch.as_tensor(timesteps).long().clone(), persistent=False)

    def forward(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return self.model(x, self.tau.to(k.device)[k])


@torch.no_grad()
def ddpm_sample_respaced(
    model: EpsModel,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    *,
    steps: int,
    spacing: str = "uniform",
    variance: str = "beta",
    clip_x0: float | None = None,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Ancestral DDPM sampling (Ho et al. 2020, Algorithm 2) on the ``steps`` kept timesteps of ``spacing``
    (Nichol & Dhariwal 2021, section 4); ``steps = T`` with "uniform" spacing is plain :func:`ddpm_sample`.

    variance "beta" (sigma^2 = beta'_k) is the DDIM paper's sigma-hat sampler; "posterior" equals DDIM with eta = 1.
    """
    ts = ddim_timesteps(schedule.T, steps, spacing)
    wrapped = RespacedModel(model, ts)
    return ddpm_sample(
        wrapped, respaced_schedule(schedule, ts), shape, variance=variance, clip_x0=clip_x0, generator=generator,
        x_T=x_T, return_trajectory=return_trajectory, progress=progress,
    )
