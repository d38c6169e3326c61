"""Chapter 13: exact velocities of the straight path for data whose distribution is known: no network, no training.

The path x_t = (1 - t) x0 + t eps (t = 0 data, t = 1 noise; :mod:`diffusion_course.maths.flow`) has, along one pair,
the velocity v = eps - x0. The best a network can do is its conditional mean, the marginal velocity

    u(x, t) = E[eps - x0 | x_t = x] = (x - E[x0 | x_t = x]) / t       (Lipman et al. 2023, eq. 8; Liu et al. 2022)

whose ODE d x / dt = u(x, t) carries N(0, I) at t = 1 to the data at t = 0. Given a component x0 ~ N(c, s^2 I), x_t
is Gaussian with mean (1 - t) c and variance (1 - t)^2 s^2 + t^2, so every quantity below is a closed form or a
softmax over the components. These are the flow-matching twins of :class:`diffusion_course.maths.oracles.ExactDenoiser`
and :class:`~diffusion_course.maths.oracles.GaussianEps`: computed in float64, returned in x_t's dtype.

At t = 0 the path gives x_t = x0 exactly, so E[x0 | x_0 = x] = x and u(x, 0) = E[eps] - x = -x (the value that
minimises the loss there); every t in (0, 1] uses the formulas as written.
"""

from __future__ import annotations

import math

import torch

from .._internal.validate import check_choice, check_range
from .flow import T_SAMPLINGS, check_flow_time

__all__ = ["ExactVelocity", "GaussianVelocity", "gaussian_flow_endpoint", "gaussian_flow_point", "gaussian_flow_loss_minimum"]


def _flow_inputs(x_t: torch.Tensor, t: torch.Tensor | float, point_shape: tuple[int, ...], what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t as float64 (B, D) and t as float64 (B, 1), both checked."""
    if not isinstance(x_t, torch.Tensor) or tuple(x_t.shape[1:]) != point_shape:
        raise ValueError(f"x_t must have shape (B, *{point_shape}) to match {what}; got {tuple(getattr(x_t, 'shape', ()))}")
    t = check_flow_time(t, x_t)
    return x_t.double().reshape(x_t.shape[0], -1), t.to(x_t.device, torch.float64).reshape(-1, 1)


class ExactVelocity:
    """The exact velocity ``model(x_t, t)`` of the straight path for data drawn with equal weights from Gaussians
    N(c_i, s^2 I), i = 1..N; s = 0 (the default) makes it the finite data set {c_i} itself, and ``data`` may hold 2-D
    points (N, 2) or images (N, C, H, W). It minimises the flow-matching loss for that data.

    With a = 1 - t and var = a^2 s^2 + t^2 (the variance of x_t given the component):
    p(i | x_t) is proportional to exp(-||x_t - a c_i||^2 / (2 var)), a softmax computed after subtracting the nearest
    component's distance (so no t, however small, overflows it); m = sum_i p(i | x_t) c_i;
    E[x0 | x_t] = m + (a s^2 / var)(x_t - a m), and u = (x_t - E[x0 | x_t]) / t = -m + (t - a s^2) / var (x_t - a m).
    At t = 1 the weights are equal and u = x_t - mean(c); at t = 0, u = -x_t (module docstring). Memory: B x N floats.
    """

    def __init__(self, data: torch.Tensor, s: float = 0.0) -> None:
        check_range(s, "s", 0.0, math.inf)
        if not isinstance(data, torch.Tensor) or data.ndim < 2 or data.shape[0] < 1:
            raise ValueError(f"data must be a tensor of shape (N, ...) with N >= 1 points; got {tuple(getattr(data, 'shape', ()))}")
        self.point_shape = tuple(data.shape[1:])
        self.data = data.detach().double().reshape(len(data), -1)  # (N, D)
        self.sq_norms = (self.data**2).sum(1)  # (N,)
        self.s = float(s)

    def _weighted_centre(self, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """m = sum_i p(i | x_t) c_i (B, D) and var (B, 1)."""
        c, sq = self.data.to(x.device), self.sq_norms.to(x.device)
        a = 1 - t
        var = a**2 * self.s**2 + t**2
        # ||x - a c_i||^2 = ||x||^2 - 2 a x.c_i + a^2 ||c_i||^2; ||x||^2 is the same for every i and cancels in the softmax
        d2 = a**2 * sq - 2 * a * (x @ c.T)  # (B, N)
        d2 = d2 - d2.min(dim=1, keepdim=True).values  # the nearest component at 0
        w = torch.softmax(-d2 / (2 * var.clamp_min(torch.finfo(torch.float64).tiny)), dim=1)  # p(i | x_t)
        return w @ c, var

    def x0_hat(self, x_t: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """E[x0 | x_t] (the posterior mean of the clean point), same shape as x_t; t (B,) or a float in [0, 1]."""
        x, tt = _flow_inputs(x_t, t, self.point_shape, "data")
        m, var = self._weighted_centre(x, tt)
        a = 1 - tt
        x0 = m + torch.where(var > 0, a * self.s**2 / var.clamp_min(1e-300), 0.0) * (x - a * m)
        x0 = torch.where(tt > 0, x0, x)  # t = 0: x_t is x0
        return x0.reshape(x_t.shape).to(x_t.dtype)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """u(x_t, t) = E[eps - x0 | x_t] (class docstring), same shape and dtype as x_t."""
        x, tt = _flow_inputs(x_t, t, self.point_shape, "data")
        m, var = self._weighted_centre(x, tt)
        a = 1 - tt
        u = -m + (tt - a * self.s**2) / var.clamp_min(1e-300) * (x - a * m)
        u = torch.where(tt > 0, u, -x)  # t = 0: u = E[eps] - x0 = -x_t
        return u.reshape(x_t.shape).to(x_t.dtype)


class GaussianVelocity:
    """The exact velocity ``model(x_t, t)`` for data x0 ~ N(mean, std^2 I); ``mean`` has the shape of one data point
    (e.g. (2,) or (1, 28, 28)). x_t and v = eps - x0 are jointly Gaussian, with E[x_t] = (1 - t) mean,
    Var(x_t) = (1 - t)^2 std^2 + t^2, E[v] = -mean and Cov(v, x_t) = t - (1 - t) std^2 per pixel, so the regression of v
    on x_t is the conditional mean:

        u(x, t) = -mean + (t - (1 - t) std^2) / ((1 - t)^2 std^2 + t^2) * (x - (1 - t) mean).

    At t = 1, u = x - mean; at t = 0, u = -x (for std = 0 as well, where the formula's 0 / 0 is that limit along the
    path). Computed in float64, returned in x_t's dtype."""

    def __init__(self, mean: torch.Tensor, std: float) -> None:
        check_range(std, "std", 0.0, math.inf)
        self.mean = torch.as_tensor(mean, dtype=torch.float64)
        self.std = float(std)

    def _parts(self, x_t: torch.Tensor, t: torch.Tensor | float) -> tuple[torch.Tensor, ...]:
        x, tt = _flow_inputs(x_t, t, tuple(self.mean.shape), "mean")
        mu = self.mean.to(x.device).reshape(1, -1)
        a = 1 - tt
        var = a**2 * self.std**2 + tt**2  # Var(x_t), per pixel
        return x, tt, mu, a, var, x - a * mu  # the last: x - E[x_t]

    def x0_hat(self, x_t: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """E[x0 | x_t] = mean + (1 - t) std^2 / Var(x_t) * (x_t - (1 - t) mean); x_t itself at t = 0."""
        x, tt, mu, a, var, y = self._parts(x_t, t)
        x0 = torch.where(tt > 0, mu + a * self.std**2 / var.clamp_min(1e-300) * y, x)
        return x0.reshape(x_t.shape).to(x_t.dtype)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
        """u(x_t, t) = E[v] + Cov(v, x_t) / Var(x_t) (x_t - E[x_t]) (class docstring)."""
        x, tt, mu, a, var, y = self._parts(x_t, t)
        u = torch.where(tt > 0, -mu + (tt - a * self.std**2) / var.clamp_min(1e-300) * y, -x)
        return u.reshape(x_t.shape).to(x_t.dtype)


def _gaussian_args(x1: torch.Tensor, mean: torch.Tensor, std: float) -> tuple[torch.Tensor, torch.Tensor]:
    check_range(std, "std", 0.0, math.inf)
    mean = torch.as_tensor(mean, dtype=torch.float64)
    if not isinstance(x1, torch.Tensor) or x1.ndim < 1 or tuple(x1.shape[1:]) != tuple(mean.shape):
        raise ValueError(f"x1 must have shape (B, *{tuple(mean.shape)}) to match mean; got {tuple(getattr(x1, 'shape', ()))}")
    return x1.double(), mean.to(x1.device)


def gaussian_flow_point(x1: torch.Tensor, t: torch.Tensor | float, mean: torch.Tensor, std: float) -> torch.Tensor:
    """The exact ODE trajectory for data N(mean, std^2 I) through the noise x1 at t = 1, at time t:
    x_t = (1 - t) mean + sqrt((1 - t)^2 std^2 + t^2) x1. It keeps z = (x_t - E[x_t]) / sqrt(Var(x_t)) fixed, and its
    time derivative is :class:`GaussianVelocity` at x_t (differentiate: -mean + (t - (1 - t) std^2) / sqrt(Var) z)."""
    x, mu = _gaussian_args(x1, mean, std)
    tt = check_flow_time(t, x1).to(x1.device, torch.float64).reshape(-1, *([1] * (x1.ndim - 1)))
    a = 1 - tt
    return (a * mu + (a**2 * std**2 + tt**2).sqrt() * x).to(x1.dtype)


def gaussian_flow_endpoint(x1: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    """Where the exact flow ODE for data N(mean, std^2 I) carries the noise x1 (B, ...) from t = 1 to t = 0:
    mean + std x1 (:func:`gaussian_flow_point` at t = 0). A sampler's endpoint error is measured against it."""
    x, mu = _gaussian_args(x1, mean, std)
    return (mu + std * x).to(x1.dtype)


def gaussian_flow_loss_minimum(std: float, *, t_sampling: str = "uniform", logit_mean: float = 0.0, logit_std: float = 1.0) -> float:
    """The smallest possible flow-matching loss (mean over pixels) for data N(mean, std^2 I): the loss of
    :class:`GaussianVelocity`, whatever the mean and the number of pixels.

    Per pixel at time t it is the conditional variance Var(v | x_t) = Var(v) - Cov(v, x_t)^2 / Var(x_t)
    = (1 + s^2) - (t - (1 - t) s^2)^2 / ((1 - t)^2 s^2 + t^2) = s^2 / ((1 - t)^2 s^2 + t^2), s = std. Averaged over t:

    - ``"uniform"``: closed form. With 1 + s^2 = A, the denominator is A (t - s^2 / A)^2 + s^2 / A, so the integral
      over [0, 1] is s (arctan(1 / s) + arctan(s)) = pi s / 2 (0 for s = 0);
    - ``"logit_normal"`` (t = sigmoid(m + sigma u), u ~ N(0, 1)): no closed form; high-accuracy quadrature, the
      trapezoid rule in u on [-12, 12] with 4,801 nodes (the integrand is smooth and decays like the normal density,
      for which the trapezoid rule converges geometrically: the result is exact to about 1e-12)."""
    check_range(std, "std", 0.0, math.inf)
    check_choice(t_sampling, T_SAMPLINGS, "t_sampling")
    check_range(logit_mean, "logit_mean", -math.inf, math.inf)
    check_range(logit_std, "logit_std", 0.0, math.inf, open_low=True)
    s2 = float(std) ** 2
    if s2 == 0.0:
        return 0.0
    if t_sampling == "uniform":
        return math.pi * float(std) / 2
    u = torch.linspace(-12.0, 12.0, 4801, dtype=torch.float64)
    t = torch.sigmoid(logit_mean + logit_std * u)
    cond_var = s2 / ((1 - t) ** 2 * s2 + t**2)
    density = torch.exp(-0.5 * u**2) / math.sqrt(2 * math.pi)
    return float(torch.trapezoid(cond_var * density, u))
