"""Chapter 12: fast samplers of the probability-flow ODE, in ``ddim_sample``'s style. DPM-Solver++ (Lu et al. 2022,
"DPM-Solver++": data prediction, multistep, orders 1-3; order 1 is DDIM with eta = 0), Heun and Euler in the
noise-level parameterisation of Karras et al. 2022 (EDM: Algorithm 1, Algorithm 2's churn, the sigma_i of eq. 5), and
the number of network calls each sampler makes for a given ``steps``.

Notation (code timesteps 0..T-1, as in samplers.py): alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t),
lambda_t = log(alpha_t / sigma_t) (half the log-SNR), and the data prediction x0_hat = (x_t - sigma_t eps_hat) / alpha_t.
Karras et al. write the same process as x_bar = x_t / alpha_t at the noise level sigma = sigma_t / alpha_t; there the
probability-flow ODE reads d x_bar / d sigma = (x_bar - D(x_bar; sigma)) / sigma with the denoiser D = x0_hat.

Every sampler ends on clean data (alpha = 1, sigma = 0), where the update is x0_hat itself, as ``ddim_sample``'s last
step is. The per-step coefficients are Python floats computed once per call in float64, so the loops read nothing back
from the device; the arguments are checked once per call.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .._internal.noise import model_device, randn, start_noise
from .._internal.progress import progress_bar
from .._internal.types import EpsModel
from .._internal.validate import check_choice, check_positive_int, check_range
from .samplers import DDIM_SPACINGS, ddim_step_unchecked, ddim_timesteps
from .schedules import NoiseSchedule

__all__ = ["dpm_solver_sample", "heun_sample", "euler_sample", "karras_sigmas", "sigma_grid", "network_calls", "EDM_SIGMAS", "SAMPLER_NAMES"]

EDM_SIGMAS = ("karras", *DDIM_SPACINGS)  # heun_sample / euler_sample: Karras' eq. 5, or the schedule at a DDIM spacing
SAMPLER_NAMES = ("ddim", "dpm_solver", "euler", "heun")  # the samplers network_calls knows
_LOWER_ORDER_FINAL_BELOW = 15  # diffusers' rule: lower_order_final acts when there are fewer steps than this


def _check_clip(clip_x0: float | None) -> None:
    if clip_x0 is not None:
        check_range(clip_x0, "clip_x0", 0.0, float("inf"), open_low=True)


def _host_tables(schedule: NoiseSchedule) -> tuple[np.ndarray, np.ndarray]:
    """alpha_t and sigma_t for t = 0..T-1 as float64 arrays on the host (one read of the tables per call)."""
    # to the host first, then float64: MPS has no float64, so .double() on the device would fail there
    return schedule.sqrt_alpha_bar.detach().cpu().double().numpy(), schedule.sqrt_one_minus_alpha_bar.detach().cpu().double().numpy()


def _full(B: int, t: int, device: torch.device) -> torch.Tensor:
    return torch.full((B,), t, dtype=torch.long, device=device)


def _x0_hat(x: torch.Tensor, eps: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor, clip_x0: float | None) -> torch.Tensor:
    """x0_hat = (x_t - sigma_t eps_hat) / alpha_t (Ho et al. 2020, eq. 15), clipped to +/- clip_x0 if asked. The same
    float32 arithmetic as ddim_step's, so an order-1 DPM-Solver++ step and a DDIM step agree bit for bit."""
    x0 = (x - sigma * eps) / alpha
    return x0.clamp(-clip_x0, clip_x0) if clip_x0 is not None else x0


# --- DPM-Solver++ ----------------------------------------------------------------------------------------------------


def _dpm_orders(steps: int, order: int, lower_order_final: bool) -> list[int]:
    """The order of each of the ``steps`` updates (diffusers' DPMSolverMultistepScheduler with final sigma 0): step i
    has i earlier x0_hat to use, so it runs at min(order, i + 1); the last step, into sigma = 0 (lambda = +inf), is first
    order whatever the history (its higher-order terms divide by h = inf; the update is x0_hat itself); with
    ``lower_order_final`` and fewer than 15 steps the one before it is at most second order."""
    orders = [min(order, i + 1) for i in range(steps)]
    orders[-1] = 1
    if lower_order_final and steps < _LOWER_ORDER_FINAL_BELOW and steps >= 2:
        orders[-2] = min(orders[-2], 2)
    return orders


def _dpm_weights(lam: Sequence[float], alpha_t: float, k: int) -> list[float]:
    """Weights w_j of x_t = (sigma_t / sigma_s0) x_s0 + sum_j w_j x0_hat_j for the order-k multistep update (k = 2, 3)
    from lambda_t, lambda_s0, lambda_s1[, lambda_s2] (DPM-Solver++ Algorithm 2 for k = 2; for k = 3 the third-order
    multistep update of Lu et al.'s code, as diffusers writes it). With h = lambda_t - lambda_s0, r_j = h_j / h:
    k = 2: D = m0 + (m0 - m1) / (2 r0), x_t = (sigma_t/sigma_s0) x_s0 + alpha_t (1 - e^-h) D;
    k = 3: + alpha_t ((e^-h - 1)/h + 1) D1 - alpha_t ((e^-h - 1 + h)/h^2 - 1/2) D2, D1, D2 the divided differences."""
    h = lam[0] - lam[1]
    phi1 = -math.expm1(-h)  # 1 - e^-h, accurate for small h
    if k == 2:
        r0 = (lam[1] - lam[2]) / h
        return [alpha_t * phi1 * (1 + 0.5 / r0), -alpha_t * phi1 * 0.5 / r0]
    r0, r1 = (lam[1] - lam[2]) / h, (lam[2] - lam[3]) / h
    b = alpha_t * (1.0 - phi1 / h)  # multiplies D1
    c = -alpha_t * ((h - phi1) / h**2 - 0.5)  # multiplies D2
    k0 = b * (1 + r0 / (r0 + r1)) + c / (r0 + r1)  # D1 = k0-part of D1_0 = (m0 - m1)/r0 ...
    k1 = -b * r0 / (r0 + r1) - c / (r0 + r1)  # ... and of D1_1 = (m1 - m2)/r1
    return [alpha_t * phi1 + k0 / r0, -k0 / r0 + k1 / r1, -k1 / r1]


@torch.no_grad()
def dpm_solver_sample(
    model: EpsModel,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    *,
    steps: int = 20,
    order: int = 2,
    spacing: str = "trailing",
    clip_x0: float | None = 1.0,
    lower_order_final: bool = True,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """DPM-Solver++ (Lu et al. 2022), multistep in the data prediction: ``order`` = 1, 2 (2M) or 3 (3M).

    The exact solution from s to t is x_t = (sigma_t/sigma_s) x_s + sigma_t int_{lambda_s}^{lambda_t} e^lambda x0_hat d lambda;
    taking x0_hat constant gives the first-order step x_t = (sigma_t/sigma_s) x_s - alpha_t (e^-h - 1) x0_hat_s,
    h = lambda_t - lambda_s, which is DDIM with eta = 0 (it runs as :func:`ddim_step_unchecked`, so ``order=1`` equals
    ``ddim_sample(eta=0.0)`` on the same spacing exactly). Orders 2 and 3 extrapolate x0_hat from the earlier steps'
    predictions (see :func:`_dpm_weights`); the first steps run at lower order while that history builds up, the step
    into the clean data is always first order, and ``lower_order_final`` (fewer than 15 steps) caps the one before it
    at second order, as diffusers' ``DPMSolverMultistepScheduler`` does. x0_hat is clipped to +/- ``clip_x0`` when given.

    ``steps`` is the number of network calls (``network_calls("dpm_solver", steps) == steps``), one per kept timestep of
    :func:`ddim_timesteps` ``(T, steps, spacing)``; it must be at least ``order``. Returns x_0; with
    ``return_trajectory`` also a CPU tensor (steps+1, *shape) holding x_T and the state after each step.
    """
    check_positive_int(order, "order", 1, 3)
    check_positive_int(steps, "steps", order, schedule.T)
    _check_clip(clip_x0)
    ts = ddim_timesteps(schedule.T, steps, spacing).tolist()[::-1]  # descending: the timesteps the model is called at
    a, s = _host_tables(schedule)
    lam = [math.log(a[t] / s[t]) for t in ts] + [math.inf]  # lambda of every level, the clean data last
    orders = _dpm_orders(steps, order, lower_order_final)
    device = model_device(model, x_T)
    schedule = schedule.to(device)
    x = start_noise(shape, x_T, generator, device)
    traj = [x.cpu()] if return_trajectory else None
    B, ones = x.shape[0], (1,) * (x.ndim - 1)
    alpha_col, sigma_col = schedule.sqrt_alpha_bar.reshape(-1, *ones), schedule.sqrt_one_minus_alpha_bar.reshape(-1, *ones)
    history: list[torch.Tensor] = []  # x0_hat of the latest steps, newest last
    for i in progress_bar(range(steps), desc=f"DPM-Solver++({order}M, {steps} steps)", disable=not progress, leave=False):
        t = _full(B, ts[i], device)
        eps_hat = model(x, t).float()
        history = [*history[-2:], _x0_hat(x, eps_hat, alpha_col[ts[i]], sigma_col[ts[i]], clip_x0)]
        if orders[i] == 1:  # DDIM, eta = 0 (its checks done once above)
            t_prev = _full(B, ts[i + 1] if i + 1 < steps else -1, device)
            x = ddim_step_unchecked(schedule, x, t, t_prev, eps_hat, 0.0, clip_x0, None)
        else:
            t_next = ts[i + 1]
            w = _dpm_weights([lam[i + 1 - j] for j in range(orders[i] + 1)], a[t_next], orders[i])  # lambda_t, lambda_s0, ...
            x = (s[t_next] / s[ts[i]]) * x + sum(wj * m for wj, m in zip(w, reversed(history)))
        if traj is not None:
            traj.append(x.cpu())
    return (x, torch.stack(traj)) if traj is not None else x


# --- Karras et al. (EDM): sigmas, Heun and Euler ---------------------------------------------------------------------


def karras_sigmas(schedule: NoiseSchedule, steps: int, *, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. 2022, eq. 5: sigma_i = (sigma_max^(1/rho) + i/(N-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho for
    i = 0..N-1 (N = ``steps``), then sigma_N = 0; sigma_min / sigma_max are the schedule's noise levels
    sigma_t / alpha_t at t = 0 and T-1. rho = 7 spends most steps at low noise; rho = 1 is uniform in sigma. float64,
    shape (steps+1,), descending (the same values as diffusers' ``use_karras_sigmas=True``)."""
    check_positive_int(steps, "steps", 1)
    check_range(rho, "rho", 0.0, float("inf"), open_low=True, open_high=True)
    a, s = _host_tables(schedule)
    lo, hi = (s[0] / a[0]) ** (1 / rho), (s[-1] / a[-1]) ** (1 / rho)
    ramp = np.linspace(0.0, 1.0, steps)
    return torch.from_numpy(np.concatenate([(hi + ramp * (lo - hi)) ** rho, [0.0]]))


def sigma_grid(schedule: NoiseSchedule, steps: int, *, sigmas: str = "karras", rho: float = 7.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The levels :func:`heun_sample` and :func:`euler_sample` step through: (timesteps, sigma), a LongTensor (steps,)
    descending and float64 (steps+1,) with the final 0.

    ``sigmas="karras"``: each sigma of :func:`karras_sigmas` is mapped to a fractional timestep by linear interpolation
    of log sigma between neighbouring timesteps (diffusers' ``_sigma_to_t``), rounded to the nearest timestep (the
    models here take integer t), and replaced by that timestep's own sigma, so that the eps the model predicts and the
    sigma the step uses belong to the same noise level (with many steps, neighbours may share a timestep). Otherwise
    the kept timesteps of that DDIM spacing (:func:`ddim_timesteps`) and the schedule's sigma at each.
    """
    check_choice(sigmas, EDM_SIGMAS, "sigmas")
    check_positive_int(steps, "steps", 1, schedule.T)
    a, s = _host_tables(schedule)
    table = s / a  # sigma_t / alpha_t, increasing in t
    if sigmas == "karras":
        target = karras_sigmas(schedule, steps, rho=rho).numpy()[:-1]
        frac = np.interp(np.log(np.maximum(target, 1e-10)), np.log(table), np.arange(schedule.T, dtype=np.float64))
        ts = np.round(frac).astype(np.int64)
    else:
        ts = ddim_timesteps(schedule.T, steps, sigmas).numpy()[::-1].copy()
    return torch.from_numpy(ts), torch.from_numpy(np.concatenate([table[ts], [0.0]]))


def _check_edm(schedule: NoiseSchedule, steps: int, sigmas: str, rho: float, churn: tuple[float, float, float, float],
               clip_x0: float | None) -> None:
    check_choice(sigmas, EDM_SIGMAS, "sigmas")
    check_positive_int(steps, "steps", 1, schedule.T)
    check_range(rho, "rho", 0.0, float("inf"), open_low=True, open_high=True)
    s_churn, s_tmin, s_tmax, s_noise = churn
    check_range(s_churn, "s_churn", 0.0, float("inf"))
    check_range(s_tmin, "s_tmin", 0.0, float("inf"))
    check_range(s_tmax, "s_tmax", s_tmin, float("inf"))
    check_range(s_noise, "s_noise", 0.0, float("inf"))
    _check_clip(clip_x0)


def _churned_levels(schedule: NoiseSchedule, ts: np.ndarray, sig: np.ndarray, churn: tuple[float, float, float, float]):
    """Algorithm 2, lines 4-6, planned before the loop: gamma_i = min(S_churn/N, sqrt(2) - 1) where
    S_tmin <= sigma_i <= S_tmax (else 0), sigma_hat = (1 + gamma_i) sigma_i snapped to a timestep's sigma as in
    :func:`sigma_grid`. Returns (t_hat, sigma_hat) lists; both equal (ts, sig) where gamma_i = 0."""
    s_churn, s_tmin, s_tmax, _ = churn
    a, s = _host_tables(schedule)
    table = s / a
    t_hat, sig_hat = [int(t) for t in ts], [float(v) for v in sig[:-1]]
    for i, v in enumerate(sig_hat):
        gamma = min(s_churn / len(ts), math.sqrt(2) - 1) if s_tmin <= v <= s_tmax else 0.0
        if gamma > 0:
            t = int(np.round(np.interp(math.log(v * (1 + gamma)), np.log(table), np.arange(schedule.T, dtype=np.float64))))
            t_hat[i], sig_hat[i] = max(t, t_hat[i]), float(table[max(t, t_hat[i])])
    return t_hat, sig_hat


@torch.no_grad()
def _edm_sample(model: EpsModel, schedule: NoiseSchedule, shape: Sequence[int], steps: int, sigmas: str, rho: float,
                churn: tuple[float, float, float, float], clip_x0: float | None, generator: torch.Generator | None,
                x_T: torch.Tensor | None, return_trajectory: bool, progress: bool, heun: bool):
    """Karras et al. 2022, Algorithm 2 (Algorithm 1 when no gamma_i > 0), with Heun's correction or without (Euler)."""
    ts, sig = (v.numpy() for v in sigma_grid(schedule, steps, sigmas=sigmas, rho=rho))
    t_hat, sig_hat = _churned_levels(schedule, ts, sig, churn)
    device = model_device(model, x_T)
    x = start_noise(shape, x_T, generator, device)
    B = x.shape[0]

    def denoise(x_bar: torch.Tensor, sigma: float, t: int) -> torch.Tensor:  # D(x_bar; sigma) = x0_hat
        eps_hat = model(x_bar / math.sqrt(1 + sigma**2), _full(B, t, device)).float()  # the model sees x = alpha x_bar
        x0 = x_bar - sigma * eps_hat
        return x0.clamp(-clip_x0, clip_x0) if clip_x0 is not None else x0

    x_bar = x * math.sqrt(1 + sig[0] ** 2)  # x_T is the sample at the first level: x_bar = x / alpha
    traj = [x.cpu()] if return_trajectory else None
    name = "Heun" if heun else "Euler"
    for i in progress_bar(range(steps), desc=f"{name} sampling ({steps} steps)", disable=not progress, leave=False):
        if sig_hat[i] > sig[i]:  # lines 5-6: raise the noise to sigma_hat
            noise = randn(x.shape, generator, device, x.dtype)
            x_bar = x_bar + churn[3] * math.sqrt(sig_hat[i] ** 2 - sig[i] ** 2) * noise
        d = (x_bar - denoise(x_bar, sig_hat[i], t_hat[i])) / sig_hat[i]  # line 7
        x_next = x_bar + (sig[i + 1] - sig_hat[i]) * d  # line 8: Euler step
        if heun and sig[i + 1] > 0:  # lines 9-11: second-order correction
            d_next = (x_next - denoise(x_next, sig[i + 1], int(ts[i + 1]))) / sig[i + 1]
            x_next = x_bar + (sig[i + 1] - sig_hat[i]) * (0.5 * d + 0.5 * d_next)
        x_bar = x_next
        if traj is not None:
            traj.append((x_bar / math.sqrt(1 + sig[i + 1] ** 2)).cpu())
    return (x_bar, torch.stack(traj)) if traj is not None else x_bar


def heun_sample(
    model: EpsModel,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    *,
    steps: int = 10,
    sigmas: str = "karras",
    rho: float = 7.0,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
    clip_x0: float | None = None,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Heun's second-order method on the probability-flow ODE (Karras et al. 2022, Algorithm 1), in x_bar = x / alpha:

    d_i = (x_bar_i - D(x_bar_i; sigma_i)) / sigma_i;  x_bar' = x_bar_i + (sigma_{i+1} - sigma_i) d_i  (Euler)
    d'  = (x_bar' - D(x_bar'; sigma_{i+1})) / sigma_{i+1};  x_bar_{i+1} = x_bar_i + (sigma_{i+1} - sigma_i) (d_i + d')/2

    with D(x_bar; sigma) = x0_hat = x_bar - sigma eps_hat(alpha x_bar, t), t the timestep whose sigma it is (see
    :func:`sigma_grid` for the levels: ``sigmas="karras"`` with ``rho``, or a DDIM spacing). The last interval, to
    sigma = 0, is the Euler step alone, so ``steps`` sigma intervals cost 2*steps - 1 network calls
    (``network_calls("heun", steps)``). ``s_churn > 0`` adds Algorithm 2's churn: where s_tmin <= sigma_i <= s_tmax the
    noise is first raised to sigma_hat = (1 + gamma) sigma_i, gamma = min(s_churn/steps, sqrt(2) - 1), with fresh noise
    of scale ``s_noise`` (drawn with ``generator``), and the step starts from sigma_hat. x0_hat is clipped to
    +/- ``clip_x0`` when given. Returns x_0; with ``return_trajectory`` also a CPU tensor (steps+1, *shape) holding x_T
    and the state x = alpha x_bar at each level.
    """
    churn = (s_churn, s_tmin, s_tmax, s_noise)
    _check_edm(schedule, steps, sigmas, rho, churn, clip_x0)
    return _edm_sample(model, schedule, shape, steps, sigmas, rho, churn, clip_x0, generator, x_T, return_trajectory, progress, True)


def euler_sample(
    model: EpsModel,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    *,
    steps: int = 20,
    sigmas: str = "karras",
    rho: float = 7.0,
    s_churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
    clip_x0: float | None = None,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """:func:`heun_sample` without the correction: Euler's first-order method, x_bar_{i+1} = x_bar_i + (sigma_{i+1} -
    sigma_i) eps_hat (Karras et al. 2022, Algorithm 1 without lines 9-11). One network call per interval
    (``network_calls("euler", steps) == steps``). On a DDIM spacing it is DDIM with eta = 0 (Song et al. 2021, eqs. 13-14:
    the same update written in x_bar and sigma); with the churn it is Algorithm 2 without the correction.
    """
    churn = (s_churn, s_tmin, s_tmax, s_noise)
    _check_edm(schedule, steps, sigmas, rho, churn, clip_x0)
    return _edm_sample(model, schedule, shape, steps, sigmas, rho, churn, clip_x0, generator, x_T, return_trajectory, progress, False)


def network_calls(sampler: str, steps: int) -> int:
    """Network calls a sampler makes for ``steps``: "ddim" (:func:`ddim_sample`), "dpm_solver"
    (:func:`dpm_solver_sample`) and "euler" (:func:`euler_sample`) call the model once per step; "heun"
    (:func:`heun_sample`) twice per sigma interval except the last (Euler to sigma = 0): 2*steps - 1."""
    check_choice(sampler, SAMPLER_NAMES, "sampler")
    check_positive_int(steps, "steps", 1)
    return 2 * steps - 1 if sampler == "heun" else steps
