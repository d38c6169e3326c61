"""Chapter 13: flow matching on the straight path (Lipman et al. 2023; Liu et al. 2022, "rectified flow"; the
convention of Esser et al. 2024, SD3, and of diffusers' ``FlowMatchEulerDiscreteScheduler``).

The path: x_t = (1 - t) x0 + t eps with t in [0, 1]; t = 0 is data, t = 1 is pure noise N(0, I). Its velocity along
one (x0, eps) pair is d x_t / dt = eps - x0 =: v, and the network v_theta(x_t, t) regresses it:

    L_FM = E_{t, x0, eps} || (eps - x0) - v_theta((1 - t) x0 + t eps, t) ||^2     (mean over pixels, like L_simple)

Sampling integrates d x / dt = v_theta(x, t) from t = 1 (noise) down to t = 0 (data). The network is called as
``model(x_t, t)`` with t a float tensor of shape (B,) in [0, 1]; a network that wants another time scale rescales
inside its wrapper (:class:`diffusion_course.models.FlowTime`). The exact velocities of known data are in
:mod:`~diffusion_course.maths.flow_oracles`; the bridge to the DDPM path (conversions, either model in the other's
sampler) is in :mod:`~diffusion_course.maths.flow_paths`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from .._internal.noise import model_device, rand, randn, start_noise
from .._internal.progress import progress_bar
from .._internal.validate import check_choice, check_positive_int, check_range

__all__ = [
    "flow_matching_loss", "flow_matching_loss_fn", "flow_sample", "flow_sigmas", "flow_euler_step_unchecked", "FLOW_METHODS",
    "T_SAMPLINGS", "sample_flow_t", "shift_sigmas", "check_flow_time",
]

FLOW_METHODS = ("euler", "heun")  # flow_sample's integrators
T_SAMPLINGS = ("uniform", "logit_normal")  # how the loss draws t: U[0, 1], or SD3's logit-normal (Esser et al. 2024, eq. 19)

# A velocity model as the sampler and the loss call it: model(x_t, t) -> v_hat, t a float tensor (B,) in [0, 1].
VelocityModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_flow_time(t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """Flow times for the batch ``x`` (B, ...): a float tensor (B,) with values in [0, 1] (0 = data, 1 = noise). A
    Python float or a 0-d tensor is one time for the whole batch; anything else raises a ValueError naming t."""
    B = x.shape[0]
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        t = torch.full((B,), float(t), dtype=x.dtype if torch.is_floating_point(x) else torch.float32, device=x.device)
    if not isinstance(t, torch.Tensor) or not torch.is_floating_point(t):
        raise ValueError(f"t must be a float or a float tensor of shape (B,) = ({B},) with values in [0, 1]; got {type(t).__name__} "
                         f"{getattr(t, 'dtype', '')}")
    if t.ndim == 0:
        t = t.expand(B)
    if t.shape != (B,):
        raise ValueError(f"t must have shape ({B},) (one time per example); got {tuple(t.shape)}")
    if B and not bool(((t >= 0) & (t <= 1)).all()):
        raise ValueError(f"t must lie in [0, 1] (0 = data, 1 = noise); got values in [{float(t.min()):.4g}, {float(t.max()):.4g}]")
    return t


def _check_t_sampling(t_sampling: str, logit_mean: float, logit_std: float) -> None:
    check_choice(t_sampling, T_SAMPLINGS, "t_sampling")
    check_range(logit_mean, "logit_mean", -math.inf, math.inf)
    check_range(logit_std, "logit_std", 0.0, math.inf, open_low=True)


def sample_flow_t(n: int, *, t_sampling: str = "uniform", logit_mean: float = 0.0, logit_std: float = 1.0,
                  generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """n training times t in (0, 1): uniform, or logit-normal t = sigmoid(m + s u), u ~ N(0, 1) (SD3's choice:
    more weight on the middle of the path, where the velocity is hardest to predict)."""
    check_positive_int(n, "n", 1)
    _check_t_sampling(t_sampling, logit_mean, logit_std)
    device = torch.device(device)
    if t_sampling == "uniform":
        return rand((n,), generator, device)
    return torch.sigmoid(logit_mean + logit_std * randn((n,), generator, device))


def _fm_unchecked(model: VelocityModel, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    tb = t.view(-1, *([1] * (x0.ndim - 1)))
    x_t = (1 - tb) * x0 + tb * eps  # the straight path between a data point and its noise
    return ((eps - x0) - model(x_t, t)).pow(2).mean()  # regress the path's velocity v = eps - x0


def flow_matching_loss(
    model: VelocityModel,
    x0: torch.Tensor,
    *,
    t: torch.Tensor | None = None,
    eps: torch.Tensor | None = None,
    t_sampling: str = "uniform",
    logit_mean: float = 0.0,
    logit_std: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The conditional flow-matching loss L_FM (module docstring) on a batch x0 (B, ...): a scalar tensor.

    ``t`` (B,) in [0, 1] (or one float for the batch) and ``eps`` (like x0) may be given (for checks); otherwise t is
    drawn by ``t_sampling`` and eps ~ N(0, I), both from ``generator``, t first. Its minimum over models, for Gaussian
    data, is :func:`~diffusion_course.maths.flow_oracles.gaussian_flow_loss_minimum`."""
    if x0.ndim < 2:
        raise ValueError(f"x0 must have shape (B, ...) with at least 2 dims; got {tuple(x0.shape)}")
    if t is None:
        t = sample_flow_t(x0.shape[0], t_sampling=t_sampling, logit_mean=logit_mean, logit_std=logit_std, generator=generator, device=x0.device)
    else:
        _check_t_sampling(t_sampling, logit_mean, logit_std)
        t = check_flow_time(t, x0)
    if eps is None:
        eps = randn(x0.shape, generator, x0.device, x0.dtype)
    elif eps.shape != x0.shape:
        raise ValueError(f"eps must have x0's shape {tuple(x0.shape)}; got {tuple(eps.shape)}")
    return _fm_unchecked(model, x0, t.to(x0.device, x0.dtype), eps)


def flow_matching_loss_fn(*, t_sampling: str = "uniform", logit_mean: float = 0.0, logit_std: float = 1.0) -> Callable:
    """L_FM for :func:`diffusion_course.train`'s ``loss_fn``: ``loss_fn(model, x0, generator)`` with the same draws as
    :func:`flow_matching_loss` (t first, then eps) and its checks done once here."""
    _check_t_sampling(t_sampling, logit_mean, logit_std)

    def loss_fn(model: nn.Module, x0: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        dev = g.device if g is not None else x0.device
        t = sample_flow_t(x0.shape[0], t_sampling=t_sampling, logit_mean=logit_mean, logit_std=logit_std, generator=g, device=dev)
        eps = torch.randn(x0.shape, generator=g, device=dev, dtype=x0.dtype)
        return _fm_unchecked(model, x0, t.to(x0.device), eps.to(x0.device))

    return loss_fn


def shift_sigmas(sigmas: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3's time shift (Esser et al. 2024, section 5.3.2; diffusers' ``shift``): t' = s t / (1 + (s - 1) t). s > 1
    spends more of the steps at high noise, which larger images need; s = 1 leaves the grid alone."""
    check_range(shift, "shift", 0.0, math.inf, open_low=True)
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def flow_sigmas(steps: int, *, shift: float = 1.0) -> torch.Tensor:
    """The time grid of :func:`flow_sample`: steps + 1 times from 1 down to 0, evenly spaced, then shifted.

    diffusers' ``FlowMatchEulerDiscreteScheduler(shift=shift)`` steps on this grid after
    ``set_timesteps(sigmas=flow_sigmas(steps)[:-1])`` (the unshifted grid without its final 0: diffusers shifts it and
    appends the 0 itself); its default grid, ``set_timesteps(steps)``, ends at 1 / num_train_timesteps before the 0."""
    check_positive_int(steps, "steps", 1)
    return shift_sigmas(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), shift)


def flow_euler_step_unchecked(x: torch.Tensor, v_hat: torch.Tensor, t: float, t_next: float) -> torch.Tensor:
    """One Euler step of d x / dt = v from t to t_next < t: x + (t_next - t) v_hat (diffusers' ``step``)."""
    return x + (t_next - t) * v_hat


@torch.no_grad()
def flow_sample(
    model: VelocityModel,
    shape: Sequence[int],
    *,
    steps: int = 20,
    method: str = "euler",
    shift: float = 1.0,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Integrate d x / dt = v_theta(x, t) from t = 1 (x_T ~ N(0, I)) to t = 0 on :func:`flow_sigmas`' grid.

    ``method="euler"`` makes ``steps`` network calls; ``"heun"`` (the explicit trapezoid, Karras et al. 2022,
    Algorithm 1) corrects every step but the last, which ends at t = 0, so it makes 2 * steps - 1 calls.
    Returns x_0; with ``return_trajectory`` also a CPU tensor (steps + 1, *shape)."""
    check_choice(method, FLOW_METHODS, "method")
    ts = flow_sigmas(steps, shift=shift).tolist()
    device = model_device(model, x_T)
    x = start_noise(shape, x_T, generator, device)
    traj = [x.cpu()] if return_trajectory else None
    B = x.shape[0]
    for i in progress_bar(range(steps), desc=f"flow sampling ({method}, {steps} steps)", disable=not progress, leave=False):
        t, t_next = ts[i], ts[i + 1]
        v = model(x, torch.full((B,), t, device=device)).float()
        x_next = flow_euler_step_unchecked(x, v, t, t_next)
        if method == "heun" and t_next > 0:
            v_next = model(x_next, torch.full((B,), t_next, device=device)).float()
            x_next = x + (t_next - t) * 0.5 * (v + v_next)
        x = x_next
        if traj is not None:
            traj.append(x.cpu())
    return (x, torch.stack(traj)) if traj is not None else x
