"""Chapter 13: the straight path and the DDPM path are two Gaussian probability paths of one family,
x_t = a_t x0 + b_t eps (Lipman et al. 2023, section 4; Albergo & Vanden-Eijnden 2023; Kingma & Gao 2023, "Understanding
diffusion objectives"): the straight path has (a, b) = (1 - t, t), the DDPM (variance-preserving) path has
(alpha, sigma) = (sqrt(alpha_bar), sqrt(1 - alpha_bar)). Dividing a DDPM point by alpha + sigma gives

    x_ddpm / (alpha + sigma) = (1 - t) x0 + t eps   with   t = sigma / (alpha + sigma),

a point of the straight path with the same x0 and eps: only the scale of x and the clock differ, and a path of the
family is fixed by its signal-to-noise ratio alpha / sigma = (1 - t) / t. So one network serves both samplers:
:class:`EpsAsVelocity` lets a DDPM eps-model be sampled by :func:`~diffusion_course.maths.flow.flow_sample`, and
:class:`VelocityAsEps` lets a velocity model be sampled by :func:`~diffusion_course.maths.samplers.ddim_sample`.

On the straight path, with v = eps - x0: x0 = x_t - t v, eps = x_t + (1 - t) v, v = (x_t - x0) / t = (eps - x_t) / (1 - t).
The DDPM tables used are the schedule's ``sqrt_alpha_bar`` and ``sqrt_one_minus_alpha_bar`` (those of ``q_sample``).
"""

from __future__ import annotations

import torch
from torch import nn

from .._internal.types import EpsModel
from .._internal.validate import check_same_shape, check_timesteps
from .flow import VelocityModel, check_flow_time
from .schedules import NoiseSchedule

__all__ = [
    "flow_x0_eps_from_v", "flow_v_from_x0_eps", "flow_v_from_x0", "flow_v_from_eps", "ddpm_to_flow_time", "flow_to_ddpm_time",
    "flow_to_ddpm_scale", "EpsAsVelocity", "VelocityAsEps",
]


def _times(t: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    """t checked for the batch x, as (B, 1, ..., 1) in x's dtype on x's device."""
    return check_flow_time(t, x).to(x.device, x.dtype).reshape(-1, *([1] * (x.ndim - 1)))


def flow_x0_eps_from_v(v: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x0_hat, eps_hat) = (x_t - t v, x_t + (1 - t) v): the data point and the noise a velocity v points between, on
    the straight path x_t = (1 - t) x0 + t eps. t (B,) or a float in [0, 1]; computed in x_t's dtype."""
    check_same_shape(x_t, v, "x_t", "v")
    tt = _times(t, x_t)
    return x_t - tt * v, x_t + (1 - tt) * v


def flow_v_from_x0_eps(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The straight path's velocity v = eps - x0 = d x_t / dt (the flow-matching target)."""
    check_same_shape(x0, eps, "x0", "eps")
    return eps - x0


def flow_v_from_x0(x0_hat: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """v = (x_t - x0_hat) / t: the velocity of the straight line from x0_hat through x_t (t in (0, 1])."""
    check_same_shape(x_t, x0_hat, "x_t", "x0_hat")
    tt = _times(t, x_t)
    if bool((tt == 0).any()):
        raise ValueError("t must lie in (0, 1] to recover v from x0_hat (at t = 0, x_t is x0 and tells nothing about v)")
    return (x_t - x0_hat) / tt


def flow_v_from_eps(eps_hat: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """v = (eps_hat - x_t) / (1 - t): the velocity of the straight line from x_t to the noise eps_hat (t in [0, 1))."""
    check_same_shape(x_t, eps_hat, "x_t", "eps_hat")
    tt = _times(t, x_t)
    if bool((tt == 1).any()):
        raise ValueError("t must lie in [0, 1) to recover v from eps_hat (at t = 1, x_t is eps and tells nothing about v)")
    return (eps_hat - x_t) / (1 - tt)


def _host_tables(schedule: NoiseSchedule) -> torch.Tensor:
    """(3, T) float64 on the CPU: alpha, sigma and the log-SNR lambda = log(alpha^2 / sigma^2), decreasing in t."""
    alpha, sigma = schedule.sqrt_alpha_bar.detach().cpu().double(), schedule.sqrt_one_minus_alpha_bar.detach().cpu().double()
    return torch.stack([alpha, sigma, 2 * (alpha.log() - sigma.log())])


def ddpm_to_flow_time(schedule: NoiseSchedule, t: torch.Tensor | int) -> torch.Tensor:
    """The straight-path time of DDPM timesteps t (int or LongTensor (B,) in [0, T-1]): sigma_t / (alpha_t + sigma_t),
    float64 on the CPU (0-d for an int). The DDPM x_t divided by alpha_t + sigma_t is the straight path's point then."""
    scalar = isinstance(t, int) and not isinstance(t, bool)
    tt = check_timesteps(torch.tensor([t]) if scalar else t, schedule.T).cpu()
    alpha, sigma, _ = _host_tables(schedule)
    out = sigma[tt] / (alpha[tt] + sigma[tt])
    return out[0] if scalar else out


def flow_to_ddpm_scale(t: torch.Tensor | float) -> torch.Tensor:
    """alpha + sigma = 1 / sqrt((1 - t)^2 + t^2): the factor that turns the straight path's point at time t into the
    DDPM point with the same x0, eps and signal-to-noise ratio (alpha / sigma = (1 - t) / t, alpha^2 + sigma^2 = 1).
    t a float or a float tensor with values in [0, 1]; computed in t's dtype (float64 for a Python float)."""
    tt = torch.as_tensor(t, dtype=torch.float64) if not isinstance(t, torch.Tensor) else t
    check_flow_time(tt.reshape(-1), tt.reshape(-1))
    return ((1 - tt) ** 2 + tt**2).rsqrt()


def _ddpm_index(lam: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For flow times t and the log-SNR table lam (T,), same dtype and device: (k, w), the DDPM timestep k and weight w
    in [0, 1] with log-SNR(t) = (1 - w) lam_k + w lam_{k+1}, clamped to the schedule's ends (w = 0 at k = 0 and
    below, w = 1 at k = T - 2 and above)."""
    T = lam.shape[0]
    if T == 1:
        return torch.zeros_like(t, dtype=torch.long), torch.zeros_like(t)
    target = 2 * (torch.log1p(-t) - torch.log(t))  # log((1 - t)^2 / t^2): +inf at t = 0, -inf at t = 1
    k = (torch.searchsorted(-lam, -target.contiguous(), right=True) - 1).clamp(0, T - 2)
    gap = lam[k] - lam[k + 1]
    w = torch.where(gap > 0, (lam[k] - target) / torch.where(gap > 0, gap, 1.0), 0.0).clamp(0.0, 1.0)
    return k, w


def flow_to_ddpm_time(schedule: NoiseSchedule, t: torch.Tensor | float) -> torch.Tensor:
    """The continuous DDPM timestep with the straight path's signal-to-noise ratio at flow time t: tau in [0, T-1]
    with log-SNR(tau) = 2 log((1 - t) / t), the schedule's log-SNR interpolated linearly between integer timesteps
    (float64 on the CPU, shape of t). Times outside the schedule's range, t < ddpm_to_flow_time(0) or
    t > ddpm_to_flow_time(T-1), clamp to 0 or T-1."""
    tt = torch.as_tensor(t, dtype=torch.float64) if not isinstance(t, torch.Tensor) else t
    flat = check_flow_time(tt.reshape(-1), tt.reshape(-1)).detach().cpu().double()
    k, w = _ddpm_index(_host_tables(schedule)[2], flat)
    return (k + w).reshape(tt.shape)


class EpsAsVelocity(nn.Module):
    """A DDPM noise predictor ``eps_model(x_t, t)`` seen as a velocity model ``(x, t_flow) -> v`` of the straight path,
    so :func:`~diffusion_course.maths.flow.flow_sample` can sample it (module docstring).

    At flow time t, x is rescaled to the DDPM point x_ddpm = (alpha + sigma) x and the model is called at the
    continuous timestep tau that has alpha / sigma = (1 - t) / t: the schedule's log-SNR interpolated linearly between
    integer timesteps (:func:`flow_to_ddpm_time`), with alpha^2 + sigma^2 = 1. A network with a sinusoidal time
    embedding takes float timesteps. A model that takes only integer ones (the exact oracles ``GaussianEps`` and
    ``ExactDenoiser``) gets ``integer_timesteps=True``: it is called at the two neighbouring timesteps k and k + 1,
    each with its own alpha + sigma, and its predictions are interpolated linearly in the flow time between the two
    (2B rows per call; exact at the timesteps' own flow times).

    From eps_hat and x0_hat = (x_ddpm - sigma eps_hat) / alpha the velocity is v = (x - x0_hat) / t for t >= 1/2 and
    (eps_hat - x) / (1 - t) below: the same number, eps_hat - x0_hat, where both come from one prediction, and each
    formula divides by at least 1/2. Outside the schedule's range of times (above the last timestep's flow time, below
    the first's: 0.9937 and 0.0099 for the DDPM schedule) tau is clamped to T-1 or 0, so the last x0_hat (above) or
    eps_hat (below) is held and the sampler still runs from t = 1 to t = 0. t is clamped into [0, 1]; the call reads
    nothing back to the host.
    """

    def __init__(self, eps_model: EpsModel, schedule: NoiseSchedule, *, integer_timesteps: bool = False) -> None:
        super().__init__()
        self.eps_model, self.schedule, self.integer_timesteps = eps_model, schedule, bool(integer_timesteps)
        self.tables = _host_tables(schedule)  # host float64, cast to the input's dtype at each call (no float64 on MPS)

    def _predict(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(eps_hat, x0_hat) for the flow points x (B, ...) at times t (B,), in x's dtype."""
        shape = (-1, *([1] * (x.ndim - 1)))
        alpha_tab, sigma_tab, lam = self.tables.to(x.dtype).to(x.device)
        k, w = _ddpm_index(lam, t)
        k1 = (k + 1).clamp(max=lam.shape[0] - 1)
        if not self.integer_timesteps:
            lam_t = (1 - w) * lam[k] + w * lam[k1]  # = 2 log((1 - t) / t) inside the schedule's range of times
            alpha, sigma = torch.sigmoid(lam_t).sqrt().reshape(shape), torch.sigmoid(-lam_t).sqrt().reshape(shape)
            x_d = (alpha + sigma) * x
            eps = self.eps_model(x_d, (k + w).float()).to(x.dtype)
            return eps, (x_d - sigma * eps) / alpha
        kk = torch.cat([k, k1])  # (2B,) the two neighbouring timesteps
        alpha, sigma = alpha_tab[kk].reshape(shape), sigma_tab[kk].reshape(shape)
        x_d = (alpha + sigma) * torch.cat([x, x])
        eps = self.eps_model(x_d, kk).to(x.dtype)
        x0 = (x_d - sigma * eps) / alpha
        t_grid = sigma_tab / (alpha_tab + sigma_tab)  # each timestep's flow time
        gap = t_grid[k1] - t_grid[k]
        wb = torch.where(gap > 0, (t - t_grid[k]) / torch.where(gap > 0, gap, 1.0), 0.0).clamp(0.0, 1.0).reshape(shape)
        (e0, e1), (a0, a1) = eps.chunk(2), x0.chunk(2)
        return (1 - wb) * e0 + wb * e1, (1 - wb) * a0 + wb * a1

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.Tensor) or not torch.is_floating_point(t) or t.shape != (x.shape[0],):
            raise ValueError(f"t must be a float tensor of shape ({x.shape[0]},) with flow times in [0, 1]; got {getattr(t, 'shape', t)}")
        tt = t.to(x.device, x.dtype).clamp(0.0, 1.0)
        eps, x0 = self._predict(x, tt)
        tb = tt.reshape(-1, *([1] * (x.ndim - 1)))
        return torch.where(tb >= 0.5, (x - x0) / tb.clamp(min=0.5), (eps - x) / (1 - tb).clamp(min=0.5))


class VelocityAsEps(nn.Module):
    """A velocity model ``v_model(x, t_flow)`` of the straight path seen as a DDPM noise predictor
    ``(x_t, t) -> eps_hat`` (t integer timesteps in [0, T-1]), so :func:`~diffusion_course.maths.samplers.ddim_sample`
    and the other samplers of chapters 3-12 can sample it: x = x_t / (alpha_t + sigma_t) is the straight path's point at
    t_flow = sigma_t / (alpha_t + sigma_t) (module docstring), and eps_hat = x + (1 - t_flow) v_model(x, t_flow)."""

    def __init__(self, v_model: VelocityModel, schedule: NoiseSchedule) -> None:
        super().__init__()
        self.v_model, self.schedule = v_model, schedule
        self.tables = _host_tables(schedule)  # host float64, cast to the input's dtype at each call (no float64 on MPS)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = check_timesteps(t, self.schedule.T, x_t.shape[0]).to(x_t.device)
        alpha, sigma, _ = self.tables.to(x_t.dtype).to(x_t.device)
        shape = (-1, *([1] * (x_t.ndim - 1)))
        scale = alpha[t] + sigma[t]  # (B,)
        t_flow = sigma[t] / scale
        x = x_t / scale.reshape(shape)
        return x + (1 - t_flow.reshape(shape)) * self.v_model(x, t_flow).to(x_t.dtype)
