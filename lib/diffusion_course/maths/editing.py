"""Editing with a trained noise predictor (chapter 14): SDEdit (Meng et al. 2022) and inpainting by replacement with
RePaint's resampling (Lugmayr et al. 2022, Algorithm 1 and the jump schedule of its code).

SDEdit ("SDEdit: Guided Image Synthesis and Editing with Stochastic Differential Equations", section 3; its Algorithm 1
is written for the VE-SDE, here it is the VP form, which is DDPM's): noise a guide image to an intermediate level with
q(x_t0 | x_0) (Ho et al. 2020, eq. 4) and run the reverse process from t0 down to the data. Small t0 keeps the guide
(faithful), large t0 forgets it (realistic, but a new picture).

Inpainting by replacement: at every reverse step the known pixels (mask == 1) of x_{t-1} are overwritten by a fresh
sample of q(x_{t-1} | known) and the unknown ones (mask == 0) come from the model's step (RePaint, eq. 8a-8c).
RePaint's resampling then undoes the step, x_{t-1} -> x_t ~ q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)
(Algorithm 1, line 10; beta of the level it returns to, as in their code and diffusers' ``undo_step``), and steps
again, so the model sees the pasted pixels and harmonises the rest with them. With jump length j > 1 it undoes j steps at once and redoes them.

Timesteps follow the course: code t = 0..T-1 is the paper's 1..T; a step "at t" moves x from level t to level t-1,
level -1 being the clean data (alpha_bar = 1).
"""

from __future__ import annotations

import math

import torch

from .._internal.noise import model_device, randn, start_noise
from .._internal.progress import progress_bar
from .._internal.types import EpsModel
from .._internal.validate import check_choice, check_positive_int, check_range, check_same_shape, check_timesteps
from .forward import q_sample
from .samplers import ddim_step_unchecked, ddim_timesteps, ddpm_step_unchecked
from .schedules import NoiseSchedule

__all__ = ["EDIT_SAMPLERS", "SDEDIT_SPACINGS", "sdedit", "renoise", "inpaint_step", "repaint_schedule", "inpaint_calls", "inpaint"]

EDIT_SAMPLERS = ("ddim", "ddpm")
SDEDIT_SPACINGS = ("uniform", "trailing")  # the spacings whose grid on [0, t0] ends at t0 itself, where the noised input is


def _check_clip(clip_x0: float | None) -> None:
    if clip_x0 is not None:
        check_range(clip_x0, "clip_x0", 0.0, float("inf"), open_low=True)


def _work_device(model: EpsModel, x: torch.Tensor) -> torch.device:
    """The model's device for a module (as :func:`ddim_invert` does), else the input's."""
    return model_device(model, None) if isinstance(model, torch.nn.Module) else x.device


def _full(B: int, value: int, device: torch.device) -> torch.Tensor:
    return torch.full((B,), value, dtype=torch.long, device=device)


@torch.no_grad()
def sdedit(
    model: EpsModel,
    schedule: NoiseSchedule,
    x_input: torch.Tensor,
    *,
    t0: int,
    steps: int | None = None,
    eta: float = 0.0,
    sampler: str = "ddim",
    spacing: str = "uniform",
    clip_x0: float | None = 1.0,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """SDEdit (Meng et al. 2022, section 3): x_t0 = sqrt(alpha_bar_t0) x_input + sqrt(1 - alpha_bar_t0) eps (eq. 4;
    eps from ``generator`` unless ``noise`` is given), then the reverse process from level t0 to the data.

    - ``sampler="ddpm"``: ancestral steps at t = t0, ..., 0 (t0 + 1 model calls, sigma^2 = beta, as :func:`ddpm_sample`);
      the paper's own choice, a stochastic reverse process. ``steps`` must be None.
    - ``sampler="ddim"``: DDIM (Song et al. 2021, eq. 12) over ``ddim_timesteps(t0 + 1, steps, spacing)``, a grid of
      [0, t0] that starts at t0 (min(steps, t0 + 1) calls; None means every timestep, t0 + 1 calls). With eta = 0 the
      only randomness is the noise of the first line.

    Returns the edit, x_input's shape; with ``return_trajectory`` also a CPU tensor (calls + 2, ...) holding x_input,
    x_t0, then x after every step.
    """
    check_choice(sampler, EDIT_SAMPLERS, "sampler")
    check_choice(spacing, SDEDIT_SPACINGS, "spacing")
    check_positive_int(t0, "t0", 0, schedule.T - 1)
    check_range(eta, "eta", 0.0, 1.0)
    _check_clip(clip_x0)
    if sampler == "ddpm" and steps is not None:
        raise ValueError(f"steps applies to sampler='ddim' only; DDPM takes every timestep from t0 down to 0 ({t0 + 1} calls); got steps={steps}")
    n = t0 + 1 if steps is None else min(check_positive_int(steps, "steps", 1), t0 + 1)  # [0, t0] holds t0 + 1 levels
    device = _work_device(model, x_input)
    schedule = schedule.to(device)
    x0 = x_input.to(device).float()
    B = x0.shape[0]
    if noise is not None:
        check_same_shape(x_input, noise, "x_input", "noise")
        noise = noise.to(device).float()
    x = q_sample(schedule, x0, _full(B, t0, device), eps=noise, generator=generator)  # 1. noise the guide to level t0
    traj = [x0.cpu(), x.cpu()] if return_trajectory else None
    if sampler == "ddpm":
        levels, prevs = list(range(t0, -1, -1)), None
    else:
        ts = ddim_timesteps(t0 + 1, n, spacing).tolist()
        levels, prevs = ts[::-1], ([*ts[:-1]][::-1] + [-1])
    for k in progress_bar(range(len(levels)), desc=f"SDEdit from t0 = {t0} ({sampler})", disable=not progress, leave=False):
        t = _full(B, levels[k], device)
        eps_hat = model(x, t).float()  # 2. the reverse process, one model call per step
        if prevs is None:
            z = randn(x.shape, generator, device, x.dtype) if levels[k] > 0 else torch.zeros_like(x)
            x = ddpm_step_unchecked(schedule, x, t, eps_hat, "beta", clip_x0, z)
        else:
            z = randn(x.shape, generator, device, x.dtype) if eta > 0 else None
            x = ddim_step_unchecked(schedule, x, t, _full(B, prevs[k], device), eps_hat, eta, clip_x0, z)
        if traj is not None:
            traj.append(x.cpu())
    return (x, torch.stack(traj)) if traj is not None else x


def _log_alpha_bar(schedule: NoiseSchedule, level: int) -> float:
    """log alpha_bar at ``level`` in float64 from the betas (level -1, the data, gives 0)."""
    return float(torch.log1p(-schedule.beta.detach().cpu().double()[: level + 1]).sum())


def renoise(
    schedule: NoiseSchedule,
    x_s: torch.Tensor,
    s: int,
    t: int,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A sample of q(x_t | x_s) = N(sqrt(alpha_bar_t / alpha_bar_s) x_s, (1 - alpha_bar_t / alpha_bar_s) I) for levels
    -1 <= s < t <= T-1 (s = -1 is the data): RePaint's undo step. With s = t - 1 it is q(x_t | x_{t-1}) =
    N(sqrt(1 - beta_t) x_{t-1}, beta_t I) (Ho et al. 2020, eq. 2; Lugmayr et al. 2022, Algorithm 1, line 10); with
    s = -1 it is q(x_t | x_0) (eq. 4). The ratio comes from sum log(1 - beta) in float64, so 1 - ratio keeps its digits."""
    check_positive_int(t, "t", 0, schedule.T - 1)
    if isinstance(s, bool) or not isinstance(s, int) or not -1 <= s < t:
        raise ValueError(f"s must be an int in [-1, t - 1] = [-1, {t - 1}] (-1 stands for the clean data); got {s!r}")
    log_ratio = _log_alpha_bar(schedule, t) - _log_alpha_bar(schedule, s)  # log(alpha_bar_t / alpha_bar_s) < 0
    mean_coef, var = math.exp(log_ratio / 2), -math.expm1(log_ratio)
    if eps is None:
        eps = randn(x_s.shape, generator, x_s.device, x_s.dtype)
    check_same_shape(x_s, eps, "x_s", "eps")
    return mean_coef * x_s + var**0.5 * eps


def _check_mask(mask: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """The mask as a 0/1 float tensor of known's shape (it may broadcast, e.g. (1, 1, H, W) or (B, 1, H, W))."""
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"mask must be a tensor of 0s and 1s broadcastable to {tuple(known.shape)}; got {type(mask).__name__}")
    try:
        shape = torch.broadcast_shapes(mask.shape, known.shape)
    except RuntimeError:
        shape = None
    if shape != known.shape:
        raise ValueError(f"mask must broadcast to the shape of known {tuple(known.shape)}; got {tuple(mask.shape)}")
    m = mask.to(device=known.device, dtype=known.dtype)
    if not bool(((m == 0) | (m == 1)).all()):
        raise ValueError("mask must hold only 0 (unknown, to fill in) and 1 (known, kept); got other values in [0, 1] or outside")
    return m.expand_as(known)


def _paste(schedule: NoiseSchedule, x_unknown: torch.Tensor, t_prev: torch.Tensor, known: torch.Tensor, mask: torch.Tensor,
           known_noise: torch.Tensor | None) -> torch.Tensor:
    """mask * q(x_{t_prev} | known) + (1 - mask) * x_unknown (Lugmayr et al. 2022, eq. 8a-8c); t_prev = -1 is the data,
    where the known pixels are ``known`` itself. The level's coefficients are read from the stored square roots (in
    float32 1 - alpha_bar would lose most digits near the data)."""
    one, zero = torch.ones(1, device=schedule.device), torch.zeros(1, device=schedule.device)
    idx = (t_prev + 1).to(schedule.device)
    shape = (x_unknown.shape[0], *([1] * (x_unknown.ndim - 1)))
    a = torch.cat([one, schedule.sqrt_alpha_bar])[idx].to(x_unknown).reshape(shape)
    s = torch.cat([zero, schedule.sqrt_one_minus_alpha_bar])[idx].to(x_unknown).reshape(shape)
    x_known = a * known if known_noise is None else a * known + s * known_noise
    return mask * x_known + (1 - mask) * x_unknown


def inpaint_step(
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: torch.Tensor | int,
    eps_hat: torch.Tensor,
    known: torch.Tensor,
    mask: torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    known_noise: torch.Tensor | None = None,
    clip_x0: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One replacement step x_t -> x_{t-1} (Lugmayr et al. 2022, eq. 8a-8c, Algorithm 1 lines 4-8):

    1. x_unknown = the DDPM reverse step (Ho et al. 2020, Algorithm 2, line 4; sigma^2 = beta, no noise at t = 0) with ``noise``;
    2. x_known = sqrt(alpha_bar_{t-1}) known + sqrt(1 - alpha_bar_{t-1}) known_noise, a sample of q(x_{t-1} | known);
       at t = 0 (level -1, the data) it is ``known`` itself;
    3. x_{t-1} = mask * x_known + (1 - mask) * x_unknown   (mask: 1 = known pixel, 0 = to fill in).

    ``known_noise`` defaults to ``noise``: each pixel reads only one of the two parts, so one draw serves both (diffusers'
    RePaintScheduler does the same); both default to fresh draws from ``generator``.
    """
    _check_clip(clip_x0)
    t = check_timesteps(t, schedule.T, x_t.shape[0])
    check_same_shape(x_t, eps_hat, "x_t", "eps_hat")
    check_same_shape(x_t, known, "x_t", "known")
    m = _check_mask(mask, known)
    if noise is None:
        noise = randn(x_t.shape, generator, x_t.device, x_t.dtype)
    check_same_shape(x_t, noise, "x_t", "noise")
    if known_noise is not None:
        check_same_shape(x_t, known_noise, "x_t", "known_noise")
    x_unknown = ddpm_step_unchecked(schedule, x_t, t, eps_hat, "beta", clip_x0, noise)
    return _paste(schedule, x_unknown, t.to(x_t.device) - 1, known, m, noise if known_noise is None else known_noise)


def repaint_schedule(steps: int, resample: int = 1, jump: int = 1) -> list[int]:
    """RePaint's walk over the grid levels ``steps - 1 .. 0`` and then -1 (the data), with jumps back in time
    (``get_schedule_jump`` in Lugmayr et al.'s code, its other options off): at every level j = 0, jump, 2 jump, ... with
    room above it (j + jump <= steps - 1), after arriving there the walk goes back up ``jump`` levels and down again,
    ``resample - 1`` times. A step down from level a calls the model at a; a step up is an undo (no call).

    With jump = 1 this is Algorithm 1: every step but the last one (into the data) is done ``resample`` times.
    diffusers' ``RePaintScheduler.set_timesteps`` builds the same list (without the final -1) but reads each entry as
    the timestep of a step, so its jumps start one level lower.
    """
    check_positive_int(steps, "steps")
    check_positive_int(resample, "resample")
    check_positive_int(jump, "jump", 1, steps)
    jumps = {j: resample - 1 for j in range(0, steps - jump, jump)}
    walk, level = [steps - 1], steps - 1
    while level >= 0:
        level -= 1
        walk.append(level)
        if jumps.get(level, 0) > 0:
            jumps[level] -= 1
            for _ in range(jump):
                level += 1
                walk.append(level)
    return walk


def inpaint_calls(steps: int, resample: int = 1, jump: int = 1) -> int:
    """Network calls of :func:`inpaint` on a grid of ``steps`` levels (T for the full DDPM): one per step down in
    :func:`repaint_schedule`, i.e. steps + (number of jump levels) (resample - 1) jump; steps + (steps - 1)(resample - 1)
    for jump = 1."""
    walk = repaint_schedule(steps, resample, jump)
    return sum(b < a for a, b in zip(walk[:-1], walk[1:]))


def _kept_levels(schedule: NoiseSchedule, steps: int | None, spacing: str) -> list[int]:
    """The grid of levels inpainting walks over: every timestep, or DDIM's kept timesteps (ascending)."""
    if steps is None:
        return list(range(schedule.T))
    check_positive_int(steps, "steps", 1, schedule.T)
    return ddim_timesteps(schedule.T, steps, spacing).tolist()


@torch.no_grad()
def inpaint(
    model: EpsModel,
    schedule: NoiseSchedule,
    known: torch.Tensor,
    mask: torch.Tensor,
    *,
    steps: int | None = None,
    eta: float = 1.0,
    spacing: str = "uniform",
    resample: int = 1,
    jump: int = 1,
    clip_x0: float | None = 1.0,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Fill in the pixels where ``mask == 0``, keeping ``known`` where ``mask == 1`` (images and mask broadcastable to
    known's shape): the replacement method, with RePaint's resampling for ``resample`` r > 1 and jump length ``jump``
    (Lugmayr et al. 2022, Algorithm 1 and :func:`repaint_schedule`). Network calls: :func:`inpaint_calls`.

    - ``steps=None``: every timestep, the unknown pixels by DDPM's step (sigma^2 = beta) as in :func:`inpaint_step`;
    - ``steps=S``: DDIM (eq. 12 with ``eta``, default 1: stochastic, as resampling needs) on ``ddim_timesteps(T, S,
      spacing)``; an undo between kept levels s < t samples q(x_t | x_s) (:func:`renoise`).

    The known pixels are pasted after every step at the new level (a fresh q(x_{t-1} | known), sharing the step's noise
    draw, see :func:`inpaint_step`), so at the end they equal ``known`` exactly. With mask all 0 and resample = 1 the
    draws are those of :func:`ddpm_sample` (``steps=None``) or :func:`ddim_sample` with the same eta, so the result is
    theirs. Returns x_0; with ``return_trajectory`` also a CPU tensor holding x after every move (steps and undos).
    """
    check_range(eta, "eta", 0.0, 1.0)
    check_choice(spacing, ("uniform", "quadratic", "trailing", "leading"), "spacing")
    _check_clip(clip_x0)
    ts = _kept_levels(schedule, steps, spacing)
    walk = repaint_schedule(len(ts), resample, jump)
    device = model_device(model, x_T) if x_T is not None or isinstance(model, torch.nn.Module) else known.device
    schedule = schedule.to(device)
    known = known.to(device).float()
    m = _check_mask(mask, known)
    x = start_noise(known.shape, x_T, generator, device)
    traj = [x.cpu()] if return_trajectory else None
    B = x.shape[0]
    for a, b in progress_bar(list(zip(walk[:-1], walk[1:])), desc="inpainting", disable=not progress, leave=False):
        if b > a:  # undo: back up one level with q(x_{ts[b]} | x_{ts[a]})
            x = renoise(schedule, x, ts[a], ts[b], generator=generator)
        else:
            t, t_prev = _full(B, ts[a], device), _full(B, ts[b] if b >= 0 else -1, device)
            eps_hat = model(x, t).float()
            if steps is None:
                z = randn(x.shape, generator, device, x.dtype) if ts[a] > 0 else torch.zeros_like(x)
                x_unknown = ddpm_step_unchecked(schedule, x, t, eps_hat, "beta", clip_x0, z)
            else:
                z = randn(x.shape, generator, device, x.dtype) if eta > 0 or b >= 0 else None
                x_unknown = ddim_step_unchecked(schedule, x, t, t_prev, eps_hat, eta, clip_x0, z if eta > 0 else None)
            x = _paste(schedule, x_unknown, t_prev, known, m, z)
        if traj is not None:
            traj.append(x.cpu())
    return (x, torch.stack(traj)) if traj is not None else x
