"""Flow matching on the straight path x_t = (1 - t) x0 + t eps (chapter 13), checked against oracles.

Gaussian data N(M, S^2 I) has a closed-form velocity, ODE solution and loss minimum (maths.flow_oracles), so Euler's
and Heun's endpoint errors show their orders (1 and 2) and the loss at the exact velocity shows its minimum; a finite
data set's exact velocity is checked against a brute-force float64 posterior. diffusers' FlowMatchEulerDiscreteScheduler
is the reference for the time grid, the shift and the Euler step. The DDPM bridge (maths.flow_paths) is checked with
the exact oracles of both parameterisations on the same data: the converted models agree with each other, DDIM is the
Euler step of the straight path, and a DDPM oracle sampled as a flow reaches DDIM's endpoint as steps grow."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from diffusion_course.maths.flow import (
    check_flow_time,
    flow_euler_step_unchecked,
    flow_matching_loss,
    flow_matching_loss_fn,
    flow_sample,
    flow_sigmas,
    sample_flow_t,
    shift_sigmas,
)
from diffusion_course.maths.flow_oracles import ExactVelocity, GaussianVelocity, gaussian_flow_endpoint, gaussian_flow_loss_minimum, gaussian_flow_point
from diffusion_course.maths.flow_paths import (
    EpsAsVelocity,
    VelocityAsEps,
    ddpm_to_flow_time,
    flow_to_ddpm_scale,
    flow_to_ddpm_time,
    flow_v_from_eps,
    flow_v_from_x0,
    flow_v_from_x0_eps,
    flow_x0_eps_from_v,
)
from diffusion_course.maths.forward import q_sample
from diffusion_course.maths.oracles import ExactDenoiser, GaussianEps
from diffusion_course.maths.samplers import ddim_sample, ddim_step
from diffusion_course.maths.schedules import NoiseSchedule
from diffusion_course.models.flow_time import FlowTime

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

M, S_DATA = torch.tensor([0.6, -0.3], dtype=torch.float64), 0.5  # the Gaussian data N(M, S_DATA^2 I)


def _rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).pow(2).mean().sqrt())


def _noise(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# --- Gaussian data: the exact ODE, the orders of Euler and Heun --------------------------------------------------------


def test_gaussian_flow_point_solves_the_ode_of_gaussian_velocity() -> None:
    x1 = _noise(64, 2)
    u = GaussianVelocity(M, S_DATA)
    for t in (0.05, 0.3, 0.5, 0.8, 0.97):
        h = 1e-5
        dx = (gaussian_flow_point(x1, t + h, M, S_DATA) - gaussian_flow_point(x1, t - h, M, S_DATA)) / (2 * h)  # central difference
        torch.testing.assert_close(dx, u(gaussian_flow_point(x1, t, M, S_DATA), t), rtol=1e-7, atol=1e-8)
    torch.testing.assert_close(gaussian_flow_point(x1, 1.0, M, S_DATA), x1)
    torch.testing.assert_close(gaussian_flow_point(x1, 0.0, M, S_DATA), gaussian_flow_endpoint(x1, M, S_DATA))
    torch.testing.assert_close(gaussian_flow_endpoint(x1, M, S_DATA), M + S_DATA * x1)


ORDERS = {"euler": ([8, 11, 16, 23, 32, 45, 64], (0.8, 1.3)), "heun": ([4, 6, 8, 11, 16, 23, 32], (1.7, 2.6))}


@pytest.mark.parametrize("method", ORDERS)
def test_endpoint_error_falls_with_the_methods_order(method: str) -> None:
    x1 = _noise(256, 2)
    target = gaussian_flow_endpoint(x1, M, S_DATA)
    steps, (lo, hi) = ORDERS[method]
    errors = [_rms(flow_sample(GaussianVelocity(M, S_DATA), x1.shape, steps=n, method=method, x_T=x1), target) for n in steps]
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert lo < slope < hi, f"{method}: slope {slope:.2f} over steps {steps}, errors {[f'{e:.1e}' for e in errors]}"
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert min(errors) > 1e-5  # far above the float32 velocity's rounding: the slope is the discretisation's


# --- the loss at the exact velocity is its analytic minimum ----------------------------------------------------------


def test_uniform_loss_minimum_is_the_integral_of_the_conditional_variance() -> None:
    t = torch.linspace(0, 1, 200_001, dtype=torch.float64)
    for s in (0.05, 0.5, 1.0, 3.0):
        integral = float(torch.trapezoid(s**2 / ((1 - t) ** 2 * s**2 + t**2), t))
        assert gaussian_flow_loss_minimum(s) == pytest.approx(integral, rel=1e-6)
    assert gaussian_flow_loss_minimum(0.0) == 0.0 == gaussian_flow_loss_minimum(0.0, t_sampling="logit_normal")
    # a narrow logit-normal puts every t near sigmoid(m): the average tends to the conditional variance there
    s, tm = 0.5, 1 / (1 + math.exp(-0.4))
    assert gaussian_flow_loss_minimum(s, t_sampling="logit_normal", logit_mean=0.4, logit_std=1e-3) == pytest.approx(
        s**2 / ((1 - tm) ** 2 * s**2 + tm**2), rel=1e-5)


@pytest.mark.parametrize("t_sampling,kw", [("uniform", {}), ("logit_normal", {"logit_mean": 0.3, "logit_std": 0.8})], ids=["uniform", "logit_normal"])
def test_loss_at_the_exact_velocity_is_the_analytic_minimum(t_sampling: str, kw: dict) -> None:
    mean = torch.tensor([[[0.6, -0.3], [0.1, 0.9]]], dtype=torch.float64)  # images (1, 2, 2): the minimum is per pixel
    g = torch.Generator().manual_seed(3)
    model = GaussianVelocity(mean, S_DATA)
    losses = []
    for _ in range(50):
        x0 = mean + S_DATA * torch.randn(2000, 1, 2, 2, generator=g, dtype=torch.float64)
        losses.append(float(flow_matching_loss(model, x0, t_sampling=t_sampling, generator=g, **kw)))
    mc, se = float(np.mean(losses)), float(np.std(losses, ddof=1) / math.sqrt(len(losses)))
    assert abs(mc - gaussian_flow_loss_minimum(S_DATA, t_sampling=t_sampling, **kw)) < 4 * se, (mc, se)


def test_any_other_model_scores_higher_by_its_distance_to_the_exact_velocity() -> None:
    # L(f) = L(u) + E||u - f||^2 (the cross term has mean 0 because u is the conditional mean of the target)
    g = torch.Generator().manual_seed(4)
    n = 200_000
    x0 = M + S_DATA * torch.randn(n, 2, generator=g, dtype=torch.float64)
    t = torch.rand(n, generator=g, dtype=torch.float64)
    eps = torch.randn(n, 2, generator=g, dtype=torch.float64)
    exact = GaussianVelocity(M, S_DATA)
    base = float(flow_matching_loss(exact, x0, t=t, eps=eps))
    x_t = (1 - t[:, None]) * x0 + t[:, None] * eps
    others = {
        "wrong mean": GaussianVelocity(M + 0.2, S_DATA),
        "wrong std": GaussianVelocity(M, 1.5 * S_DATA),
        "exact + 0.1": lambda x, tt: exact(x, tt) + 0.1,
        "a single data point": ExactVelocity(M[None]),
    }
    for name, f in others.items():
        excess = float(flow_matching_loss(f, x0, t=t, eps=eps)) - base
        gap = float((exact(x_t, t) - f(x_t, t)).pow(2).mean())
        assert excess > 0, name
        assert excess == pytest.approx(gap, rel=0.1), name


def test_loss_fn_draws_exactly_as_the_loss() -> None:
    x0 = (M + S_DATA * _noise(64, 2, seed=5)).float()
    model = GaussianVelocity(M, S_DATA)
    for kw in ({}, {"t_sampling": "logit_normal", "logit_mean": -0.5, "logit_std": 1.3}):
        a = flow_matching_loss_fn(**kw)(model, x0, torch.Generator().manual_seed(7))
        b = flow_matching_loss(model, x0, generator=torch.Generator().manual_seed(7), **kw)
        assert torch.equal(a, b), kw


def test_logit_normal_times(se_bounds) -> None:
    n, m, s = 40_000, 0.7, 1.2
    t = sample_flow_t(n, t_sampling="logit_normal", logit_mean=m, logit_std=s, generator=torch.Generator().manual_seed(0)).double()
    assert 0 < float(t.min()) and float(t.max()) < 1
    logit = torch.log(t) - torch.log1p(-t)  # logit(t) = m + s u exactly, u ~ N(0, 1)
    tol_mean, tol_var = se_bounds(n, s**2)
    assert abs(float(logit.mean()) - m) < tol_mean and abs(float(logit.var()) - s**2) < tol_var
    # the median of a monotone map of N(m, s^2) is the map of m; its standard error is 1 / (2 f(median) sqrt(n))
    med = 1 / (1 + math.exp(-m))
    density = 1 / (math.sqrt(2 * math.pi) * s * med * (1 - med))  # of t at its median: the normal's peak through dt / du
    assert abs(float(t.median()) - med) < 5 / (2 * density * math.sqrt(n))
    u = sample_flow_t(n, generator=torch.Generator().manual_seed(1)).double()
    tol_mean, tol_var = se_bounds(n, 1 / 12)
    assert abs(float(u.mean()) - 0.5) < tol_mean and abs(float(u.var()) - 1 / 12) < tol_var


# --- the exact velocity of a finite data set -------------------------------------------------------------------------


def _brute_force_velocity(data: torch.Tensor, x: torch.Tensor, t: float, s: float) -> torch.Tensor:
    """E[eps - x0 | x_t = x] for the mixture of N(c_i, s^2 I), component by component in float64 numpy: the weights
    p(i | x) from the Gaussian densities written out, each component's velocity by the regression of v on x_t."""
    c = data.reshape(len(data), -1).double().numpy()
    xs = x.reshape(len(x), -1).double().numpy()
    a, var = 1 - t, (1 - t) ** 2 * s**2 + t**2
    out = np.zeros_like(xs)
    for b in range(len(xs)):
        log_p = np.array([-np.sum((xs[b] - a * ci) ** 2) / (2 * var) for ci in c])
        p = np.exp(log_p - log_p.max())
        p /= p.sum()
        per_component = [-ci + (t - a * s**2) / var * (xs[b] - a * ci) for ci in c]  # E[v | x, i]
        out[b] = sum(pi * ui for pi, ui in zip(p, per_component))
    return torch.from_numpy(out).reshape(x.shape)


@pytest.mark.parametrize("s", [0.0, 0.3])
@pytest.mark.parametrize("shape", [(2,), (1, 3, 3)], ids=["points", "images"])
def test_exact_velocity_matches_brute_force(s: float, shape: tuple[int, ...]) -> None:
    data, x = _noise(7, *shape, seed=1), 1.2 * _noise(5, *shape, seed=2)
    model = ExactVelocity(data, s)
    for t in (0.02, 0.3, 0.7, 1.0):
        torch.testing.assert_close(model(x, t), _brute_force_velocity(data, x, t, s), rtol=1e-9, atol=1e-9)
        x0_hat = x - t * model(x, t)  # flow_x0_eps_from_v's x0 = x_t - t v
        torch.testing.assert_close(model.x0_hat(x, t), x0_hat, rtol=1e-9, atol=1e-9)


def test_exact_velocity_of_one_point_and_of_one_gaussian() -> None:
    c, x, t = M[None], _noise(32, 2), torch.rand(32, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 0.98 + 0.01
    torch.testing.assert_close(ExactVelocity(c)(x, t), (x - c) / t[:, None])  # one point: the straight line through it
    torch.testing.assert_close(ExactVelocity(c, S_DATA)(x, t), GaussianVelocity(M, S_DATA)(x, t))
    torch.testing.assert_close(ExactVelocity(c, S_DATA).x0_hat(x, t), GaussianVelocity(M, S_DATA).x0_hat(x, t))
    torch.testing.assert_close(GaussianVelocity(M, 0.0)(x, t), (x - M) / t[:, None])


def test_exact_velocity_at_the_ends_of_the_path() -> None:
    data, x = _noise(5, 1, 4, 4, seed=3), _noise(3, 1, 4, 4, seed=4)
    model = ExactVelocity(data)
    torch.testing.assert_close(model(x, 1.0), x - data.mean(0))  # pure noise: equal weights
    torch.testing.assert_close(model(x, 0.0), -x)  # x_0 is x0: u = E[eps] - x0
    torch.testing.assert_close(GaussianVelocity(M, S_DATA)(_noise(4, 2), 0.0), -_noise(4, 2))
    torch.testing.assert_close(GaussianVelocity(M, 0.0)(_noise(4, 2), 0.0), -_noise(4, 2))
    for t in (1e-30, 1e-8, 1e-3):
        assert torch.isfinite(model(x, t)).all() and torch.isfinite(model.x0_hat(x, t)).all(), t
        nearest = data[((x[:, None] - data[None]) ** 2).flatten(2).sum(2).argmin(1)]
        torch.testing.assert_close(model.x0_hat(x, t), nearest)  # the posterior has collapsed onto the nearest point
    assert model(x.float(), torch.full((3,), 0.5)).dtype == torch.float32


def test_exact_velocity_of_many_gaussian_points_approaches_gaussian_velocity() -> None:
    g = torch.Generator().manual_seed(0)
    data = M + S_DATA * torch.randn(25_600, 2, generator=g, dtype=torch.float64)
    model, exact = ExactVelocity(data), GaussianVelocity(M, S_DATA)
    for t in (0.6, 0.9):
        x = (1 - t) * (M + S_DATA * torch.randn(512, 2, generator=g, dtype=torch.float64)) + t * torch.randn(512, 2, generator=g, dtype=torch.float64)
        assert _rms(model(x, t), exact(x, t)) < 0.02  # against a typical velocity of size 1: a loose bound, sampling error


def test_sampling_the_exact_velocity_lands_on_the_data() -> None:
    data = _noise(5, 2, seed=6)
    x = flow_sample(ExactVelocity(data), (200, 2), steps=50, generator=torch.Generator().manual_seed(0))
    nearest = ((x.double()[:, None] - data[None]) ** 2).sum(2).min(1).values.sqrt()
    assert float(nearest.max()) < 1e-4  # a finite set's exact flow reproduces the set


# --- diffusers' FlowMatchEulerDiscreteScheduler -----------------------------------------------------------------------


def test_time_grid_and_euler_loop_match_diffusers() -> None:
    model = GaussianVelocity(M, S_DATA)
    x1 = _noise(16, 2, seed=8).float()
    for n in (1, 4, 13):
        sched = FlowMatchEulerDiscreteScheduler(shift=1.0)
        sched.set_timesteps(sigmas=flow_sigmas(n)[:-1].tolist())  # diffusers appends the final 0 itself
        torch.testing.assert_close(sched.sigmas.double(), flow_sigmas(n), rtol=0, atol=1e-7)
        x = x1.clone()
        for ts in sched.timesteps:  # diffusers hands the network sigma * 1000; this model takes sigma itself
            x = sched.step(model(x, (ts / 1000).expand(len(x))), ts, x).prev_sample
        torch.testing.assert_close(flow_sample(model, x1.shape, steps=n, x_T=x1), x, rtol=1e-5, atol=1e-6)
    sched.set_timesteps(8)  # diffusers' own default grid stops at 1 / num_train_timesteps before the final 0 (flow_sigmas' docstring)
    assert float(sched.sigmas[-2]) == pytest.approx(1 / sched.config.num_train_timesteps) and float(sched.sigmas[-1]) == 0.0


def test_one_euler_step_matches_diffusers() -> None:
    sched = FlowMatchEulerDiscreteScheduler(shift=1.0)
    sched.set_timesteps(sigmas=flow_sigmas(10)[:-1].tolist())
    x, v = _noise(8, 2, seed=9).float(), _noise(8, 2, seed=10).float()
    ts = flow_sigmas(10).tolist()
    ours = flow_euler_step_unchecked(x, v, ts[3], ts[4])
    torch.testing.assert_close(sched.step(v, sched.timesteps[3], x).prev_sample, ours, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shift", [0.5, 3.0])
def test_shift_matches_diffusers(shift: float) -> None:
    n = 12
    sched = FlowMatchEulerDiscreteScheduler(shift=shift)
    sched.set_timesteps(sigmas=flow_sigmas(n)[:-1].tolist())  # diffusers shifts the sigmas it is given
    torch.testing.assert_close(sched.sigmas.double(), flow_sigmas(n, shift=shift), rtol=0, atol=1e-6)
    sigmas = torch.rand(100, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(shift_sigmas(sigmas, shift), shift * sigmas / (1 + (shift - 1) * sigmas))
    assert torch.equal(shift_sigmas(sigmas, 1.0), sigmas)


# --- conversions on the straight path and to DDPM ----------------------------------------------------------------------


def test_straight_path_conversions_round_trip() -> None:
    x0, eps = _noise(32, 1, 2, 2, seed=1), _noise(32, 1, 2, 2, seed=2)
    t = torch.rand(32, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 0.98 + 0.01
    x_t = (1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * eps
    v = flow_v_from_x0_eps(x0, eps)
    x0_hat, eps_hat = flow_x0_eps_from_v(v, x_t, t)
    torch.testing.assert_close(x0_hat, x0)
    torch.testing.assert_close(eps_hat, eps)
    torch.testing.assert_close(flow_v_from_x0(x0, x_t, t), v)
    torch.testing.assert_close(flow_v_from_eps(eps, x_t, t), v)
    torch.testing.assert_close(flow_x0_eps_from_v(v, x_t, 0.0)[0], x_t)  # a float t is one time for the batch


def test_a_ddpm_point_is_a_straight_path_point(ddpm_schedule: NoiseSchedule) -> None:
    x0, eps = _noise(64, 2, seed=1), _noise(64, 2, seed=2)
    k = torch.randint(0, ddpm_schedule.T, (64,), generator=torch.Generator().manual_seed(3))
    alpha, sigma = ddpm_schedule.sqrt_alpha_bar.double()[k, None], ddpm_schedule.sqrt_one_minus_alpha_bar.double()[k, None]
    t = ddpm_to_flow_time(ddpm_schedule, k)
    torch.testing.assert_close(q_sample(ddpm_schedule, x0, k, eps=eps) / (alpha + sigma), (1 - t[:, None]) * x0 + t[:, None] * eps)
    torch.testing.assert_close(flow_to_ddpm_scale(t)[:, None], alpha + sigma, rtol=1e-6, atol=0)  # alpha^2 + sigma^2 = 1 to float32
    torch.testing.assert_close(flow_to_ddpm_time(ddpm_schedule, t), k.double(), rtol=0, atol=1e-9)
    grid = ddpm_to_flow_time(ddpm_schedule, torch.arange(ddpm_schedule.T))
    assert bool((grid.diff() > 0).all()) and 0.0098 < float(grid[0]) < 0.0101 and 0.9935 < float(grid[-1]) < 0.9939
    assert float(ddpm_to_flow_time(ddpm_schedule, 0)) == float(grid[0])
    ends = flow_to_ddpm_time(ddpm_schedule, torch.tensor([0.0, 0.005, 0.999, 1.0], dtype=torch.float64))
    assert ends.tolist() == [0.0, 0.0, 999.0, 999.0]  # clamped outside the schedule's times
    mid = flow_to_ddpm_time(ddpm_schedule, 0.5 * (grid[:-1] + grid[1:]))
    assert bool((mid > torch.arange(999)).all()) and bool((mid < torch.arange(1, 1000)).all())


def test_converted_exact_oracles_agree(ddpm_schedule: NoiseSchedule) -> None:
    data = _noise(6, 2, seed=1)
    velocity, denoiser = ExactVelocity(data), ExactDenoiser(ddpm_schedule, data)
    k = torch.randint(0, ddpm_schedule.T, (64,), generator=torch.Generator().manual_seed(2))
    x = 1.3 * _noise(64, 2, seed=3)
    eps = denoiser(x, k)
    torch.testing.assert_close(VelocityAsEps(velocity, ddpm_schedule)(x, k), eps, rtol=1e-6, atol=1e-6 * float(eps.abs().max()))
    t = ddpm_to_flow_time(ddpm_schedule, k)
    v = velocity(x, t)
    torch.testing.assert_close(EpsAsVelocity(denoiser, ddpm_schedule, integer_timesteps=True)(x, t), v, rtol=1e-6, atol=1e-6 * float(v.abs().max()))
    # between the timesteps: linear interpolation of the predictions, accurate to second order in the spacing
    t_between = torch.rand(64, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 0.98 + 0.01
    torch.testing.assert_close(EpsAsVelocity(GaussianEps(ddpm_schedule, M, S_DATA), ddpm_schedule, integer_timesteps=True)(x, t_between),
                               GaussianVelocity(M, S_DATA)(x, t_between), rtol=0, atol=1e-4)


def test_eps_as_velocity_calls_the_continuous_timestep(ddpm_schedule: NoiseSchedule) -> None:
    """A Gaussian eps-oracle of continuous DDPM time (alpha_bar(tau) from the log-SNR table interpolated by numpy here)
    seen through EpsAsVelocity is the Gaussian velocity: right tau, right rescaling, right conversion."""
    lam = (2 * (ddpm_schedule.sqrt_alpha_bar.double().log() - ddpm_schedule.sqrt_one_minus_alpha_bar.double().log())).numpy()
    seen = []

    def eps_of_tau(x_d: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        seen.append(tau)
        ab = torch.sigmoid(torch.from_numpy(np.interp(tau.double().numpy(), np.arange(len(lam)), lam)))[:, None]
        return ((1 - ab).sqrt() * (x_d.double() - ab.sqrt() * M) / (ab * S_DATA**2 + 1 - ab)).to(x_d.dtype)

    x = _noise(64, 2, seed=1)
    t = torch.rand(64, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.98 + 0.0105
    torch.testing.assert_close(EpsAsVelocity(eps_of_tau, ddpm_schedule)(x, t), GaussianVelocity(M, S_DATA)(x, t), rtol=0, atol=1e-5)
    assert seen[0].dtype == torch.float32 and not bool((seen[0] == seen[0].round()).all())
    torch.testing.assert_close(seen[0].double(), flow_to_ddpm_time(ddpm_schedule, t), rtol=1e-6, atol=0)


def test_ddim_is_euler_on_the_straight_path(ddpm_schedule: NoiseSchedule) -> None:
    """Any eps-model: one DDIM step (eta = 0) from k to k' is one Euler step of the converted velocity from t_k to t_k',
    in the straight path's coordinates (x divided by alpha + sigma)."""
    weight = _noise(2, 2, seed=5)

    def eps_model(x_d: torch.Tensor, k: torch.Tensor) -> torch.Tensor:  # an arbitrary (untrained) predictor
        return torch.tanh(x_d @ weight) * (1 + k[:, None].double() / 1000)

    alpha, sigma = ddpm_schedule.sqrt_alpha_bar.double(), ddpm_schedule.sqrt_one_minus_alpha_bar.double()
    x_d = _noise(16, 2, seed=6)
    for k, k_next in ((999, 949), (500, 480), (30, 0)):
        ddim = ddim_step(ddpm_schedule, x_d, k, k_next, eps_model(x_d, torch.full((16,), k)))
        t, t_next = float(ddpm_to_flow_time(ddpm_schedule, k)), float(ddpm_to_flow_time(ddpm_schedule, k_next))
        x = x_d / (alpha[k] + sigma[k])
        v = EpsAsVelocity(eps_model, ddpm_schedule, integer_timesteps=True)(x, torch.full((16,), t, dtype=torch.float64))
        torch.testing.assert_close(flow_euler_step_unchecked(x, v, t, t_next) * (alpha[k_next] + sigma[k_next]), ddim, rtol=1e-6, atol=1e-6)


def test_a_ddpm_oracle_sampled_as_a_flow_reaches_ddims_endpoint(ddpm_schedule: NoiseSchedule) -> None:
    """From the same noise z: DDIM starts at the exact ODE state at T-1, alpha_T M + sqrt(alpha_T^2 s^2 + sigma_T^2) z,
    the flow at z itself (t = 1). Both approach the exact endpoint M + s z as steps grow (DDIM at order 1, Heun at
    order 2 down to the small error of holding x0_hat above the schedule's last time and eps_hat below its first), and
    so each other."""
    z = _noise(256, 2, seed=7)
    exact = gaussian_flow_endpoint(z, M, S_DATA)
    alpha_T, sigma_T = ddpm_schedule.sqrt_alpha_bar.double()[-1], ddpm_schedule.sqrt_one_minus_alpha_bar.double()[-1]
    x_T = alpha_T * M + (alpha_T**2 * S_DATA**2 + sigma_T**2).sqrt() * z
    eps_model = GaussianEps(ddpm_schedule, M, S_DATA)
    as_flow = EpsAsVelocity(eps_model, ddpm_schedule, integer_timesteps=True)
    ddim = {n: ddim_sample(eps_model, ddpm_schedule, z.shape, steps=n, x_T=x_T) for n in (10, 40, 160, 1000)}
    euler = {n: flow_sample(as_flow, z.shape, steps=n, x_T=z) for n in (10, 40, 160)}
    heun = {n: flow_sample(as_flow, z.shape, steps=n, method="heun", x_T=z) for n in (10, 40, 160)}
    ddim_err = [_rms(x, exact) for x in ddim.values()]
    heun_err = [_rms(x, exact) for x in heun.values()]
    gap = [_rms(euler[n], ddim[n]) for n in euler]
    assert all(b < a for a, b in zip(ddim_err, ddim_err[1:])) and ddim_err[-1] < 2e-3, ddim_err
    assert all(b < a for a, b in zip(heun_err, heun_err[1:])) and heun_err[-1] < 3e-4, heun_err
    assert all(b < a for a, b in zip(gap, gap[1:])), gap
    assert _rms(heun[160], ddim[1000]) < 2e-3


def test_a_velocity_oracle_sampled_by_ddim_is_the_ddpm_oracle(ddpm_schedule: NoiseSchedule) -> None:
    x_T = _noise(64, 2, seed=8)
    ours = ddim_sample(VelocityAsEps(GaussianVelocity(M, S_DATA), ddpm_schedule), ddpm_schedule, x_T.shape, steps=25, x_T=x_T)
    torch.testing.assert_close(ours, ddim_sample(GaussianEps(ddpm_schedule, M, S_DATA), ddpm_schedule, x_T.shape, steps=25, x_T=x_T),
                               rtol=1e-5, atol=1e-5)


class _NoFloat64(TorchFunctionMode):
    """Records any torch call that makes a float64 tensor out of float32 ones (MPS has no float64)."""

    def __init__(self) -> None:
        super().__init__()
        self.offences: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        ins = [a for a in tree_flatten((args, kwargs or {}))[0] if isinstance(a, torch.Tensor) and a.is_floating_point()]
        outs = [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)]
        if any(o.dtype == torch.float64 for o in outs) and any(a.dtype != torch.float64 for a in ins):
            self.offences.append(getattr(func, "__name__", str(func)))
        return out


@pytest.mark.parametrize("integer_timesteps", [False, True])
def test_the_bridges_keep_a_float32_model_in_float32(ddpm_schedule: NoiseSchedule, integer_timesteps: bool) -> None:
    seen = []

    def model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append((x.dtype, t.dtype))
        return torch.tanh(x)

    as_flow, as_eps = EpsAsVelocity(model, ddpm_schedule, integer_timesteps=integer_timesteps), VelocityAsEps(model, ddpm_schedule)
    with _NoFloat64() as guard:  # the wrappers' tables were made on the host, in float64, when they were built
        x = flow_sample(as_flow, (4, 2), steps=3, method="heun", generator=torch.Generator().manual_seed(0))
        y = ddim_sample(as_eps, ddpm_schedule, (4, 2), steps=3, generator=torch.Generator().manual_seed(0))
        flow_x0_eps_from_v(x, y, 0.5)
    assert not guard.offences, guard.offences
    assert x.dtype == y.dtype == torch.float32 and {d for d, _ in seen} == {torch.float32}
    assert {d for _, d in seen} <= {torch.float32, torch.int64}


# --- FlowTime ------------------------------------------------------------------------------------------------------------


class _Recorder(torch.nn.Module):
    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.t, self.y = t, y
        return x * 0


def test_flow_time_passes_scaled_time_to_the_net() -> None:
    net = _Recorder()
    x, t = torch.zeros(3, 1, 4, 4), torch.tensor([0.0, 0.25, 1.0])
    FlowTime(net)(x, t)
    assert torch.equal(net.t, t * 1000) and net.t.dtype == torch.float32 and net.y is None
    y = torch.tensor([1, 2, 3])
    FlowTime(net, scale=999.0)(x, t.double(), y)
    assert torch.equal(net.t, (t * 999).float()) and net.y is y


# --- bad input ---------------------------------------------------------------------------------------------------------

S20 = NoiseSchedule.linear(20, 1e-3, 0.2)
X = torch.zeros(4, 2)
BAD_CASES = [
    ("t", lambda: check_flow_time(torch.tensor([0.1, 1.5, 0.2, 0.3]), X)),
    ("t", lambda: check_flow_time(torch.tensor([1, 0, 0, 0]), X)),
    ("t", lambda: check_flow_time(torch.full((3,), 0.5), X)),
    ("t", lambda: check_flow_time(float("nan"), X)),
    ("t", lambda: flow_matching_loss(GaussianVelocity(M, 1.0), X, t=torch.full((4,), -0.1))),
    ("eps", lambda: flow_matching_loss(GaussianVelocity(M, 1.0), X, eps=torch.zeros(4, 3))),
    ("x0", lambda: flow_matching_loss(GaussianVelocity(M, 1.0), torch.zeros(4))),
    ("t_sampling", lambda: flow_matching_loss_fn(t_sampling="beta")),
    ("logit_std", lambda: sample_flow_t(4, t_sampling="logit_normal", logit_std=0.0)),
    ("n", lambda: sample_flow_t(0)),
    ("method", lambda: flow_sample(GaussianVelocity(M, 1.0), (4, 2), method="rk4")),
    ("steps", lambda: flow_sample(GaussianVelocity(M, 1.0), (4, 2), steps=0)),
    ("shift", lambda: flow_sigmas(5, shift=0.0)),
    ("x_T", lambda: flow_sample(GaussianVelocity(M, 1.0), (4, 2), x_T=torch.zeros(4, 3))),
    ("data", lambda: ExactVelocity(torch.zeros(5))),
    ("s", lambda: ExactVelocity(torch.zeros(5, 2), s=-1.0)),
    ("x_t", lambda: ExactVelocity(torch.zeros(5, 2))(torch.zeros(4, 3), 0.5)),
    ("t", lambda: ExactVelocity(torch.zeros(5, 2))(X, 1.5)),
    ("std", lambda: GaussianVelocity(M, -0.1)),
    ("x_t", lambda: GaussianVelocity(M, 1.0)(torch.zeros(4, 1, 2), 0.5)),
    ("x1", lambda: gaussian_flow_endpoint(torch.zeros(4, 3), M, 1.0)),
    ("std", lambda: gaussian_flow_loss_minimum(float("nan"))),
    ("t_sampling", lambda: gaussian_flow_loss_minimum(1.0, t_sampling="normal")),
    ("v", lambda: flow_x0_eps_from_v(torch.zeros(4, 3), X, 0.5)),
    ("t", lambda: flow_v_from_x0(X, X, torch.tensor([0.0, 0.5, 0.5, 0.5]))),
    ("t", lambda: flow_v_from_eps(X, X, 1.0)),
    ("t", lambda: ddpm_to_flow_time(S20, 20)),
    ("t", lambda: flow_to_ddpm_scale(1.01)),
    ("t", lambda: flow_to_ddpm_time(S20, torch.tensor([-0.5]))),
    ("t", lambda: EpsAsVelocity(lambda x, t: x, S20)(X, torch.zeros(3))),
    ("t", lambda: VelocityAsEps(GaussianVelocity(M, 1.0), S20)(X, torch.full((4,), 20))),
    ("t", lambda: FlowTime(_Recorder())(torch.zeros(2, 1, 4, 4), torch.zeros(3))),
    ("scale", lambda: FlowTime(_Recorder(), scale=0.0)),
]


@pytest.mark.parametrize("arg,call", BAD_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CASES)])
def test_bad_input_is_named(arg: str, call) -> None:
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        call()
