"""Chapter 1's warm-up and chapter 4's "simplified step": the two counter-examples of the course, methods that look
like diffusion and are not DDPM, kept so that the notebooks can show where each goes wrong.

Chapter 1 (the warm-up before DDPM): train a network to undo :func:`~diffusion_course.forward.corrupt` (uniform-noise
mixing) by predicting the clean image (:func:`x0_prediction_loss`), then sample by moving part of the way to that
prediction, k times (:func:`naive_sample`). None of this is DDPM: the noise is uniform, the network never sees how
much noise there is, it predicts x_0 directly, and there is no probabilistic model behind the sampler. Chapter 4
replaces each piece.

Chapter 4 (an "unofficial simplified" reverse step, :func:`simplified_step`): it solves one forward step
x_t = sqrt(alpha_t) x_{t-1} + sqrt(1 - alpha_t) eps (Ho et al. 2020, eq. 2) for x_{t-1} and plugs the network's
eps_hat in for eps:

    x_{t-1} = (x_t - sqrt(1 - alpha_t) eps_hat) / sqrt(alpha_t)   [+ sqrt(beta_t) z]

The mistake: eps_hat estimates the noise that takes x_0 to x_t (scale sqrt(1 - alpha_bar_t)), not the one step's
noise. DDPM's mean (Ho et al. 2020, eq. 11) removes beta_t / sqrt(1 - alpha_bar_t) eps_hat; this removes
sqrt(beta_t) eps_hat, sqrt((1 - alpha_bar_t) / beta_t) times more (about 7x at the end of the DDPM schedule). Where
eps_hat is close to x_t (large t, nearly pure noise) each step shrinks x by about (1 - sqrt(beta_t)), so without the
noise term every point is squeezed towards the same place; the added noise hides part of the damage. Use
:func:`~diffusion_course.samplers.ddpm_step` for the real thing.

The old modules ``corruption`` and ``simplified`` re-export these names.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .._internal.noise import model_device, rand, randn, start_noise
from .._internal.progress import progress_bar
from .._internal.types import EpsModel
from .._internal.validate import check_positive_int, check_same_shape, check_timesteps
from .forward import corrupt
from .schedules import NoiseSchedule, extract

__all__ = ["x0_prediction_loss", "naive_mix_factors", "naive_sample", "simplified_step", "simplified_sample"]

X0Model = Callable[[torch.Tensor], torch.Tensor]


def x0_prediction_loss(model: nn.Module, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """MSE between ``model(corrupt(x0, amount))`` and x0, amount ~ U[0, 1) per example (chapter 1's training objective).

    Matches :data:`~diffusion_course.LossFn`, so it plugs into ``train(model, data, config, loss_fn=...)``. The
    amounts and the noise are drawn with ``generator`` on its own device (a CPU generator also serves a CUDA model).
    """
    gen_device = generator.device if generator is not None else x0.device
    amount = rand((x0.shape[0],), generator, gen_device, x0.dtype)  # (B,)
    x_noisy = corrupt(x0.to(gen_device), amount, generator=generator).to(x0.device)  # (B, C, H, W)
    x0_pred = model(x_noisy)
    if x0_pred.shape != x0.shape:
        raise ValueError(f"model output must have the shape of x0 {tuple(x0.shape)}; got {tuple(x0_pred.shape)}")
    return torch.mean((x0_pred.float() - x0) ** 2)


def naive_mix_factors(steps: int) -> list[float]:
    """The fraction of the way to the prediction taken at step i = 0..steps-1: 1 / (steps - i), ending at 1.

    With a prediction that never changed, these fractions would reach it exactly at the last step; ``steps = 1``
    jumps straight to the first prediction.
    """
    check_positive_int(steps, "steps", 1)
    return [1.0 / (steps - i) for i in range(steps)]


@torch.no_grad()
def naive_sample(
    model: X0Model,
    shape: tuple[int, ...],
    *,
    steps: int = 5,
    generator: torch.Generator | None = None,
    x_start: torch.Tensor | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chapter 1's naive k-step sampler: start from uniform noise x ~ U[0, 1) and repeat ``steps`` times
    x <- (1 - f_i) x + f_i model(x) with f_i = 1 / (steps - i) (see :func:`naive_mix_factors`).

    A heuristic, not a probabilistic model: it only trusts each x_0 prediction partly and lets the model look again.
    Returns the final x of ``shape``; with ``return_trajectory`` also CPU tensors (steps+1, *shape) of the inputs
    x (start first) and (steps, *shape) of the model's predictions.
    """
    factors = naive_mix_factors(steps)
    if x_start is None:
        x = rand(shape, generator, model_device(model))
    else:
        if tuple(x_start.shape) != tuple(shape):
            raise ValueError(f"x_start must have shape {tuple(shape)}; got {tuple(x_start.shape)}")
        x = x_start
    xs, preds = [x.cpu()], []
    for f in progress_bar(factors, desc=f"naive sampling ({steps} steps)", disable=not progress, leave=False):
        pred = model(x).float()  # the model's guess of the clean image, (B, C, H, W)
        x = x * (1 - f) + pred * f  # move the fraction f of the way to the guess
        if return_trajectory:
            xs.append(x.cpu())
            preds.append(pred.cpu())
    if return_trajectory:
        return x, torch.stack(xs), torch.stack(preds)
    return x


# ------------------------------------------------------------------------------------------------ chapter 4


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
        noise = randn(x_t.shape, generator, x_t.device, x_t.dtype)
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
    x = start_noise(shape, x_T, generator, model_device(model, x_T))  # the same x_T as ddpm_sample draws
    schedule = schedule.to(x.device)
    traj = [x.cpu()] if return_trajectory else None
    for i in progress_bar(range(schedule.T - 1, -1, -1), desc="simplified sampling", disable=not progress, leave=False):
        t = torch.full((x.shape[0],), i, dtype=torch.long, device=x.device)
        eps_hat = model(x, t).float()
        x = simplified_step(schedule, x, t, eps_hat, add_noise=add_noise, generator=generator)
        if traj is not None:
            traj.append(x.cpu())
    return (x, torch.stack(traj)) if traj is not None else x
