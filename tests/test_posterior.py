"""The posterior q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eqs. 6-7) against brute force: in 1-D, the product
q(x_t | x_{t-1}) q(x_{t-1} | x_0), as a function of x_{t-1}, normalised numerically on a dense float64 grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusion_course.maths.forward import q_sample
from diffusion_course.maths.posterior import posterior_mean_from_eps, q_posterior
from diffusion_course.maths.schedules import NoiseSchedule, linear_betas

pytestmark = pytest.mark.usefixtures("one_thread")


def _brute_force_posterior(t: int, x0: float, x_t: float, T: int = 1000) -> tuple[float, float]:
    """Mean and variance of x_{t-1} given (x_t, x_0) by numerical integration on a grid (code t >= 1)."""
    beta = linear_betas(T).numpy()  # float64, independent of NoiseSchedule's derived tables
    alpha_bar = np.cumprod(1 - beta)
    ab_prev = alpha_bar[t - 1]
    # prior of y = x_{t-1}: q(y | x_0) = N(sqrt(ab_prev) x_0, 1 - ab_prev)
    m_prior, sd_prior = np.sqrt(ab_prev) * x0, np.sqrt(1 - ab_prev)
    # likelihood of y: q(x_t | y) = N(x_t; sqrt(alpha_t) y, beta_t), i.e. peaked at y = x_t / sqrt(alpha_t)
    a, b = 1 - beta[t], beta[t]
    m_lik, sd_lik = x_t / np.sqrt(a), np.sqrt(b / a)
    # a grid wide enough for both factors, fine enough for the narrower one
    lo = min(m_prior - 12 * sd_prior, m_lik - 12 * sd_lik)
    hi = max(m_prior + 12 * sd_prior, m_lik + 12 * sd_lik)
    y = np.linspace(lo, hi, 400_001)
    log_w = -((x_t - np.sqrt(a) * y) ** 2) / (2 * b) - (y - m_prior) ** 2 / (2 * sd_prior**2)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    mean = float((w * y).sum())
    var = float((w * (y - mean) ** 2).sum())
    # the grid must resolve the posterior: at least ~100 points per standard deviation
    assert np.sqrt(var) / (y[1] - y[0]) > 100
    return mean, var


@pytest.mark.parametrize("t", [1, 2, 50, 500, 998, 999])
def test_q_posterior_matches_brute_force(ddpm_schedule: NoiseSchedule, t: int) -> None:
    g = torch.Generator().manual_seed(t)
    x0 = torch.tensor([[-1.0], [0.2], [1.7], [3.0]])
    x_t = q_sample(ddpm_schedule, x0, t, generator=g)
    mean, var, log_var = q_posterior(ddpm_schedule, x0, x_t, t)
    for i in range(x0.shape[0]):
        m_ref, v_ref = _brute_force_posterior(t, float(x0[i]), float(x_t[i]))
        assert float(mean[i]) == pytest.approx(m_ref, rel=1e-4, abs=1e-5)
        assert float(var[i]) == pytest.approx(v_ref, rel=1e-4)
        assert float(log_var[i]) == pytest.approx(np.log(v_ref), abs=1e-4)


def test_q_posterior_at_t0_is_the_data(ddpm_schedule: NoiseSchedule, gen: torch.Generator) -> None:
    """Code t = 0 (paper t = 1): x_{t-1} is x_0 itself, a point mass (zero variance, finite clipped log-variance)."""
    x0 = torch.randn(8, 2, generator=gen)
    x_t = q_sample(ddpm_schedule, x0, 0, generator=gen)
    mean, var, log_var = q_posterior(ddpm_schedule, x0, x_t, 0)
    torch.testing.assert_close(mean, x0, rtol=1e-5, atol=1e-5)
    assert torch.all(var == 0)
    assert torch.all(log_var == ddpm_schedule.posterior_log_variance_clipped[1])


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_posterior_mean_from_true_eps_is_the_posterior_mean(kind: str, gen: torch.Generator) -> None:
    s = NoiseSchedule.linear(1000) if kind == "linear" else NoiseSchedule.cosine(1000)
    n = 64
    x0 = torch.randn(n, 1, 2, 2, generator=gen)
    eps = torch.randn(n, 1, 2, 2, generator=gen)
    t = torch.randint(0, 1000, (n,), generator=gen)
    t[:3] = torch.tensor([0, 1, 999])
    x_t = q_sample(s, x0, t, eps=eps)
    mean, _, _ = q_posterior(s, x0, x_t, t)
    torch.testing.assert_close(posterior_mean_from_eps(s, x_t, t, eps), mean, rtol=1e-4, atol=1e-4)


def test_posterior_is_per_example(ddpm_schedule: NoiseSchedule, gen: torch.Generator) -> None:
    """A batch with mixed t gives each example its own t's coefficients (no accidental broadcasting across rows)."""
    x0 = torch.randn(3, 2, generator=gen)
    x_t = torch.randn(3, 2, generator=gen)
    t = torch.tensor([5, 600, 999])
    mean, var, _ = q_posterior(ddpm_schedule, x0, x_t, t)
    for i in range(3):
        m_i, v_i, _ = q_posterior(ddpm_schedule, x0[i : i + 1], x_t[i : i + 1], int(t[i]))
        assert torch.equal(mean[i], m_i[0]) and torch.equal(var[i], v_i[0])
