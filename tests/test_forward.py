"""The forward process: Monte Carlo moments against the closed form q(x_t | x_0) (Ho et al. 2020, eq. 4),
1,000 iterated single steps (eq. 2) against the same closed form, and the x_0 / eps / v conversions."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion_course.maths.forward import (
    add_noise,
    corrupt,
    predict_eps_from_v,
    predict_eps_from_x0,
    predict_x0_from_eps,
    predict_x0_from_v,
    q_mean_variance,
    q_sample,
    q_step,
    v_from_x0_eps,
)
from diffusion_course.maths.schedules import NoiseSchedule

pytestmark = pytest.mark.usefixtures("one_thread")

X0 = torch.tensor([-1.5, 0.3, 2.0])  # one fixed data point, 3 coordinates


@pytest.mark.parametrize("t", [0, 10, 250, 999])
def test_q_sample_moments(ddpm_schedule: NoiseSchedule, gen: torch.Generator, se_bounds, t: int) -> None:
    n = 200_000
    x0 = X0.expand(n, 3).contiguous()
    xt = q_sample(ddpm_schedule, x0, t, generator=gen).double()
    ab = float(ddpm_schedule.alpha_bar.double()[t])
    mean_ref, var_ref = math.sqrt(ab) * X0.double(), 1 - ab
    tol_mean, tol_var = se_bounds(n, var_ref)
    assert (xt.mean(0) - mean_ref).abs().max() < tol_mean
    assert (xt.var(0) - var_ref).abs().max() < tol_var
    mean, var = q_mean_variance(ddpm_schedule, X0[None], t)
    torch.testing.assert_close(mean[0].double(), mean_ref, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(var[0].double(), torch.full((3,), var_ref, dtype=torch.float64), rtol=1e-5, atol=1e-7)


def test_iterated_q_step_matches_closed_form(ddpm_schedule: NoiseSchedule, gen: torch.Generator, se_bounds) -> None:
    """1,000 single steps x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps reach the same law as eq. 4 (by induction)."""
    n = 20_000
    x = X0.expand(n, 3).contiguous()
    checkpoints = {0: None, 99: None, 499: None, 999: None}
    for t in range(ddpm_schedule.T):
        x = q_step(ddpm_schedule, x, t, generator=gen)
        if t in checkpoints:
            checkpoints[t] = x.double()
    for t, xt in checkpoints.items():
        ab = float(ddpm_schedule.alpha_bar.double()[t])
        var_ref = 1 - ab
        tol_mean, tol_var = se_bounds(n, var_ref)
        assert (xt.mean(0) - math.sqrt(ab) * X0.double()).abs().max() < tol_mean, t
        assert (xt.var(0) - var_ref).abs().max() < tol_var, t
    # the coordinates stay uncorrelated (isotropic noise) -- the sample correlation is within 5 / sqrt(n) of 0
    corr = torch.corrcoef(checkpoints[999].T)
    assert (corr - torch.eye(3, dtype=torch.float64)).abs().max() < 5 / math.sqrt(n)


def test_q_step_keeps_unit_variance(ddpm_schedule: NoiseSchedule, gen: torch.Generator, se_bounds) -> None:
    """Why sqrt(1 - beta_t): a unit-variance input stays at unit variance after any step."""
    n = 200_000
    x = torch.randn(n, 1, generator=gen)
    for t in (0, 500, 999):
        y = q_step(ddpm_schedule, x, t, generator=gen).double()
        _, tol_var = se_bounds(n, 1.0)
        assert abs(float(y.var()) - 1.0) < tol_var + 5 * math.sqrt(2 / n)  # input variance is itself a sample


def test_q_step_and_q_sample_with_given_eps(ddpm_schedule: NoiseSchedule, gen: torch.Generator) -> None:
    x0 = torch.randn(6, 2, generator=gen)
    eps = torch.randn(6, 2, generator=gen)
    t = torch.tensor([0, 1, 2, 500, 998, 999])
    s = ddpm_schedule
    step = q_step(s, x0, t, eps=eps)
    closed = q_sample(s, x0, t, eps=eps)
    for i, ti in enumerate(t.tolist()):
        torch.testing.assert_close(step[i], s.alpha[ti].sqrt() * x0[i] + s.beta[ti].sqrt() * eps[i])
        torch.testing.assert_close(closed[i], s.alpha_bar[ti].sqrt() * x0[i] + (1 - s.alpha_bar.double()[ti]).sqrt().float() * eps[i])
    # at code t = 0 one step and the closed form coincide
    torch.testing.assert_close(step[0], closed[0])
    assert torch.equal(add_noise(s, x0, t, eps), closed)


def test_int_t_equals_tensor_t_and_generator_reproducible(ddpm_schedule: NoiseSchedule) -> None:
    x0 = torch.zeros(4, 1, 3, 3)
    a = q_sample(ddpm_schedule, x0, 7, generator=torch.Generator().manual_seed(5))
    b = q_sample(ddpm_schedule, x0, torch.full((4,), 7), generator=torch.Generator().manual_seed(5))
    c = q_sample(ddpm_schedule, x0, 7, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_conversions_round_trip(ddpm_schedule: NoiseSchedule, gen: torch.Generator) -> None:
    s = ddpm_schedule
    x0 = torch.randn(5, 1, 4, 4, generator=gen)
    eps = torch.randn(5, 1, 4, 4, generator=gen)
    t = torch.tensor([0, 10, 100, 500, 900])  # not 999: there x0 is scaled by 1/sqrt(4e-5) and float32 error grows
    xt = q_sample(s, x0, t, eps=eps)
    torch.testing.assert_close(predict_x0_from_eps(s, xt, t, eps), x0, rtol=1e-4, atol=2e-4)
    torch.testing.assert_close(predict_eps_from_x0(s, xt, t, x0), eps, rtol=1e-4, atol=2e-3)
    v = v_from_x0_eps(s, x0, t, eps)
    torch.testing.assert_close(predict_x0_from_v(s, xt, t, v), x0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(predict_eps_from_v(s, xt, t, v), eps, rtol=1e-5, atol=1e-5)
    # v is a rotation of (x0, eps): x_t^2 + v^2 = x0^2 + eps^2 elementwise
    torch.testing.assert_close(xt**2 + v**2, x0**2 + eps**2, rtol=1e-5, atol=1e-5)


# --- corrupt (chapter 1) -------------------------------------------------------------------------------------------


def test_corrupt_endpoints_and_broadcast(gen: torch.Generator) -> None:
    x = torch.rand(3, 1, 8, 8, generator=gen) * 2 - 1
    assert torch.equal(corrupt(x, 0.0, generator=gen), x)
    pure = corrupt(x, 1.0, generator=gen)
    assert pure.min() >= 0 and pure.max() < 1
    amount = torch.tensor([0.0, 0.5, 1.0])
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    mixed = corrupt(x, amount, generator=g1)
    noise = torch.rand(x.shape, generator=g2)
    for b in range(3):
        torch.testing.assert_close(mixed[b], (1 - amount[b]) * x[b] + amount[b] * noise[b])


def test_corrupt_mean(gen: torch.Generator) -> None:
    n, a = 200_000, 0.3
    x = torch.full((n, 1), 0.8)
    y = corrupt(x, a, generator=gen).double()
    # (1 - a) x + a U, U ~ U[0, 1): mean (1 - a) x + a / 2, variance a^2 / 12
    sd = a / math.sqrt(12)
    assert abs(float(y.mean()) - ((1 - a) * 0.8 + a / 2)) < 5 * sd / math.sqrt(n)
    assert abs(float(y.std()) - sd) < 0.01 * sd


def test_add_noise_and_v_take_t_before_eps_and_refuse_the_swapped_order() -> None:
    """The package's order is (schedule, data, t, noise); diffusers' (data, noise, t) order swapped into it is refused
    with an error naming t, never read silently."""
    s = NoiseSchedule.linear(50)
    g = torch.Generator().manual_seed(3)
    x0, eps = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    t = torch.tensor([0, 7, 20, 33, 49])
    new = add_noise(s, x0, t, eps)
    assert torch.equal(new, q_sample(s, x0, t, eps=eps))
    assert torch.equal(add_noise(s, x0, 7, eps), q_sample(s, x0, 7, eps=eps))  # a plain int t
    assert not torch.equal(add_noise(s, x0, t, eps), add_noise(s, x0, t, eps.flip(0)))  # eps is used, not ignored
    for fn in (add_noise, v_from_x0_eps):
        with pytest.raises((ValueError, TypeError), match=r"\bt\b"):
            fn(s, x0, eps, t)
