"""A teaching counter-example (chapter 4): an "unofficial simplified" reverse step that is NOT DDPM.

It solves one forward step x_t = sqrt(alpha_t) x_{t-1} + sqrt(1 - alpha_t) eps for x_{t-1} and plugs the network's
eps_hat in for eps:

    x_{t-1} = (x_t - sqrt(1 - alpha_t) eps_hat) / sqrt(alpha_t)   [+ sqrt(beta_t) z]

The mistake: eps_hat estimates the noise that takes x_0 to x_t (scale sqrt(1 - alpha_bar_t)), not the one step's
noise. DDPM's mean (Ho et al. 2020, eq. 11) removes beta_t / sqrt(1 - alpha_bar_t) eps_hat; this removes
sqrt(beta_t) eps_hat, sqrt((1 - alpha_bar_t) / beta_t) times more (about 7x at the end of the DDPM schedule). Where
eps_hat is close to x_t (large t, nearly pure noise) each step shrinks x by about (1 - sqrt(beta_t)), so without the
noise term every point is squeezed towards the same place; the added noise hides part of the damage. Use
:func:`~diffusion_course.samplers.ddpm_step` for the real thing.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from ._types import EpsModel
from ._validate import check_same_shape, check_timesteps
from .samplers import _default_device, _start
from .schedules import NoiseSchedule, extract

__all__ = ["simplified_step", "simplified_sample"]



def simplified_step(
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: torch.Tensor | int,
    eps_hat: torch.Tensor,
    *,
    add_noise: bool = True,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The counter-example step x_{t-1} = (x_t - sqrt(1 - alpha_t) eps_hat) / sqrt(alpha_t) + sqrt(beta_t) z
    (one forward step, Ho et al. 2020 eq. 2, solved for x_{t-1}; NOT eq. 11). No z at the last step (code t = 0)
    or with ``add_noise=False``."""
    t = check_timesteps(t, schedule.T, x_t.shape[0])
    check_same_shape(x_t, eps_hat, "x_t", "eps_hat")
    alpha_t = extract(schedule.alpha, t, x_t)
    x_prev = (x_t - (1 - alpha_t).sqrt() * eps_hat) / alpha_t.sqrt()
    if not add_noise:
        return x_prev
    if noise is None:
        gen_device = generator.device if generator is not None else x_t.device
        noise = torch.randn(x_t.shape, generator=generator, device=gen_device, dtype=x_t.dtype).to(x_t.device)
    check_same_shape(x_t, noise, "x_t", "noise")
    not_last = (t > 0).to(x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))
    return x_prev + not_last * extract(schedule.beta, t, x_t).sqrt() * noise


@torch.no_grad()
def simplified_sample(
    model: EpsModel,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    *,
    add_noise: bool = True,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Run :func:`simplified_step` from x_T ~ N(0, I) down to x_0 (T model calls), the counter-example to Algorithm 2.

    Returns x_0 of ``shape``; with ``return_trajectory`` also a CPU tensor (T+1, *shape) holding x_T, ..., x_0.
    """
    x = _start(shape, x_T, generator, _default_device(model, x_T))  # the same x_T as ddpm_sample draws
    schedule = schedule.to(x.device)
    traj = [x.cpu()] if return_trajectory else None
    for i in tqdm(range(schedule.T - 1, -1, -1), desc="simplified sampling", disable=not progress, leave=False):
        t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
        eps_hat = model(x, t).float()
        x = simplified_step(schedule, x, t, eps_hat, add_noise=add_noise, generator=generator)
        if traj is not None:
            traj.append(x.cpu())
    return (x, torch.stack(traj)) if traj is not None else x
