"""The exact Gaussian noise predictor: eq. 4 inverted for a point mass, and the posterior mean for a Gaussian
(checked by the orthogonality of its error, by Monte Carlo), plus shapes and errors."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion_course.maths.forward import predict_eps_from_x0, q_sample
from diffusion_course.maths.oracles import ExactDenoiser, GaussianEps
from diffusion_course.maths.samplers import ddpm_sample
from diffusion_course.maths.schedules import NoiseSchedule


def test_point_mass_is_eq4_solved_for_eps(ddpm_schedule, gen) -> None:
    x0 = torch.tensor([1.5, -0.5])
    model = GaussianEps(ddpm_schedule, x0, 0.0)
    t = torch.tensor([0, 1, 300, 999])
    x_t = torch.randn(4, 2, generator=gen)
    torch.testing.assert_close(model(x_t, t), predict_eps_from_x0(ddpm_schedule, x_t, t, x0.expand(4, 2)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("t", [0, 100, 500, 999])
def test_gaussian_oracle_is_the_posterior_mean(ddpm_schedule, t: int) -> None:
    # E[eps | x_t] is the best predictor: its error is uncorrelated with x_t and has mean 0, and its MSE equals the
    # closed-form posterior variance 1 - (1 - ab) / (ab s^2 + 1 - ab), well below a naive predictor's.
    m, s, n = torch.tensor([2.0, -1.0]), 0.5, 200_000
    g = torch.Generator().manual_seed(t)
    x0 = m + s * torch.randn(n, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(n, 2, generator=g, dtype=torch.float64)
    tt = torch.full((n,), t)
    x_t = q_sample(ddpm_schedule, x0, tt, eps=eps)
    err = eps - GaussianEps(ddpm_schedule, m, s)(x_t, tt)
    se = 5 / math.sqrt(n)
    assert err.mean(0).abs().max().item() < se
    centred = x_t - x_t.mean(0)
    corr = (err * centred).mean(0) / (err.std(0) * centred.std(0))
    assert corr.abs().max().item() < se
    ab = float(ddpm_schedule.alpha_bar[t])
    mse_expected = 1 - (1 - ab) / (ab * s**2 + 1 - ab)
    assert abs((err**2).mean().item() - mse_expected) < 0.02 * max(mse_expected, 0.05)


def test_ddpm_with_the_oracle_reproduces_the_gaussian(gen) -> None:
    from diffusion_course.maths.schedules import NoiseSchedule

    schedule = NoiseSchedule.linear(200, 5e-4, 0.1)
    m, s = torch.tensor([1.0, -2.0]), 0.4
    x = ddpm_sample(GaussianEps(schedule, m, s), schedule, (20_000, 2), generator=gen)
    assert (x.mean(0) - m).abs().max().item() < 0.02
    assert (x.std(0) - s).abs().max().item() < 0.02


def test_shapes_dtype_and_errors(ddpm_schedule) -> None:
    model = GaussianEps(ddpm_schedule, torch.zeros(1, 4, 4), 0.3)
    x = torch.randn(3, 1, 4, 4)
    out = model(x, torch.tensor([0, 5, 999]))
    assert out.shape == x.shape and out.dtype == torch.float32
    with pytest.raises(ValueError, match="x_t must have shape"):
        model(torch.randn(3, 2), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\[0, 999\]"):
        model(x, torch.tensor([0, 1, 1000]))
    with pytest.raises(ValueError, match="std must lie in"):
        GaussianEps(ddpm_schedule, torch.zeros(2), -1.0)


def test_exact_denoiser_with_one_gaussian_is_the_gaussian_oracle() -> None:

    schedule = NoiseSchedule.linear(1000)
    mean = torch.tensor([0.3, -1.2])
    exact, gauss = ExactDenoiser(schedule, mean[None], s=0.7), GaussianEps(schedule, mean, 0.7)
    x_t = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    t = torch.randint(0, 1000, (64,), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(exact(x_t, t), gauss(x_t, t), rtol=1e-5, atol=1e-5)


def test_exact_denoiser_of_a_finite_set_samples_its_points() -> None:

    schedule = NoiseSchedule.linear(1000)
    points = torch.tensor([[-1.0, 0.0], [1.0, 0.5], [0.0, -1.5]])
    x = ddpm_sample(ExactDenoiser(schedule, points), schedule, (300, 2), variance="posterior",
                    generator=torch.Generator().manual_seed(2))
    nearest = torch.cdist(x, points).min(1)
    assert nearest.values.max() < 0.05  # every sample lands on a data point
    shares = torch.bincount(nearest.indices, minlength=3).float() / 300
    assert (shares - 1 / 3).abs().max() < 5 * (1 / 3 * 2 / 3 / 300) ** 0.5  # each point about equally often


def test_exact_denoiser_rejects_mismatched_shapes() -> None:

    schedule = NoiseSchedule.linear(10)
    with pytest.raises(ValueError, match="x_t"):
        ExactDenoiser(schedule, torch.zeros(3, 2))(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="s"):
        ExactDenoiser(schedule, torch.zeros(3, 2), s=-1.0)
