"""Samplers: single steps against their equations, DDIM(eta=0) determinism, DDIM(all steps, eta=1) = DDPM with the
posterior variance, the kept-timestep sequences, and whole sampling loops with the exact noise predictor of
Gaussian data (where the right answer is known in closed form)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from diffusion_course.maths.forward import predict_eps_from_x0, predict_x0_from_eps
from diffusion_course.maths.posterior import posterior_mean_from_eps
from diffusion_course.maths.respacing import RespacedModel, ddpm_sample_respaced, respaced_schedule
from diffusion_course.maths.samplers import DDIM_SPACINGS, ddim_invert, ddim_sample, ddim_step, ddim_timesteps, ddpm_sample, ddpm_step
from diffusion_course.maths.schedules import NoiseSchedule, extract

pytestmark = pytest.mark.usefixtures("one_thread")


# --- single steps ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variance", ["beta", "posterior"])
def test_ddpm_step_is_eq11_mean_plus_sigma_z(ddpm_schedule: NoiseSchedule, gen: torch.Generator, variance: str) -> None:
    s = ddpm_schedule
    x_t = torch.randn(6, 2, generator=gen)
    eps_hat = torch.randn(6, 2, generator=gen)
    noise = torch.randn(6, 2, generator=gen)
    t = torch.tensor([1, 2, 10, 300, 998, 999])
    out = ddpm_step(s, x_t, t, eps_hat, variance=variance, noise=noise)
    sigma2 = (s.beta if variance == "beta" else s.posterior_variance)[t][:, None]
    ref = posterior_mean_from_eps(s, x_t, t, eps_hat) + sigma2.sqrt() * noise  # Algorithm 2, line 4
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("variance", ["beta", "posterior"])
def test_ddpm_last_step_adds_no_noise(ddpm_schedule: NoiseSchedule, gen: torch.Generator, variance: str) -> None:
    x_t = torch.randn(4, 1, 3, 3, generator=gen)
    eps_hat = torch.randn(4, 1, 3, 3, generator=gen)
    a = ddpm_step(ddpm_schedule, x_t, 0, eps_hat, variance=variance, noise=torch.zeros_like(x_t))
    b = ddpm_step(ddpm_schedule, x_t, 0, eps_hat, variance=variance, noise=torch.randn(4, 1, 3, 3, generator=gen))
    assert torch.equal(a, b)
    # and the returned mean is x0_hat itself (posterior_mean_coef2 = 0 at code t = 0)
    torch.testing.assert_close(a, predict_x0_from_eps(ddpm_schedule, x_t, 0, eps_hat))


def test_ddpm_step_clip(ddpm_schedule: NoiseSchedule, gen: torch.Generator) -> None:
    x_t = 3 * torch.randn(8, 2, generator=gen)
    eps_hat = torch.zeros(8, 2)
    out = ddpm_step(ddpm_schedule, x_t, 0, eps_hat, clip_x0=1.0)  # at t = 0 the output is the (clipped) x0_hat
    assert out.abs().max() <= 1.0 and (out.abs() == 1.0).any()


def test_ddim_eta0_step_ignores_noise(ddpm_schedule: NoiseSchedule, gen: torch.Generator) -> None:
    x_t = torch.randn(5, 2, generator=gen)
    eps_hat = torch.randn(5, 2, generator=gen)
    a = ddim_step(ddpm_schedule, x_t, 500, 480, eps_hat, eta=0.0, noise=torch.randn(5, 2, generator=gen))
    b = ddim_step(ddpm_schedule, x_t, 500, 480, eps_hat, eta=0.0)
    assert torch.equal(a, b)
    # eq. 12 with sigma = 0: sqrt(ab_prev) x0_hat + sqrt(1 - ab_prev) eps_hat
    ab_prev = ddpm_schedule.alpha_bar[480]
    ref = ab_prev.sqrt() * predict_x0_from_eps(ddpm_schedule, x_t, 500, eps_hat) + (1 - ab_prev).sqrt() * eps_hat
    torch.testing.assert_close(a, ref)


def test_ddim_eta1_single_steps_equal_ddpm_posterior(ddpm_schedule: NoiseSchedule, gen: torch.Generator) -> None:
    """With t_prev = t - 1 and eta = 1, DDIM's sigma_t^2 (eq. 16) is tilde-beta_t: the step is DDPM's (Song et al. 2021, sec. 4.1)."""
    s = ddpm_schedule
    t = torch.arange(0, 1000)  # every timestep at once, one per example
    x_t = torch.randn(1000, 2, generator=gen)
    eps_hat = torch.randn(1000, 2, generator=gen)
    noise = torch.randn(1000, 2, generator=gen)
    ddim = ddim_step(s, x_t, t, t - 1, eps_hat, eta=1.0, noise=noise)
    ddpm = ddpm_step(s, x_t, t, eps_hat, variance="posterior", noise=noise)
    torch.testing.assert_close(ddim, ddpm, rtol=1e-4, atol=1e-4)
    # the noise coefficient itself: the difference made by the noise is sqrt(tilde-beta_t) * noise
    ddim_0 = ddim_step(s, x_t, t, t - 1, eps_hat, eta=1.0, noise=torch.zeros_like(noise))
    ddim_1 = ddim_step(s, x_t, t, t - 1, eps_hat, eta=1.0, noise=torch.ones_like(noise))
    sigma = (ddim_1 - ddim_0)[:, 0]
    assert float(sigma[0]) == 0.0  # t = 0 -> clean data: no noise on the last step
    torch.testing.assert_close(sigma[1:].double() ** 2, s.posterior_variance[1:].double(), rtol=2e-3, atol=1e-9)


# --- kept timesteps --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spacing", DDIM_SPACINGS)
@pytest.mark.parametrize("T", [1, 7, 50, 200, 1000])
def test_ddim_timesteps_properties(T: int, spacing: str) -> None:
    for steps in sorted({k for k in (1, 2, 3, T // 7, T // 2, 61, T - 1, T) if 1 <= k <= T}):
        ts = ddim_timesteps(T, steps, spacing)
        assert ts.dtype == torch.long and ts.shape == (steps,), (T, steps)
        assert int(ts.min()) >= 0 and int(ts.max()) <= T - 1, (T, steps, ts)
        assert (torch.diff(ts) > 0).all(), (T, steps, ts)  # ascending and unique
        if steps == T:
            assert ts.tolist() == list(range(T))  # keeping every step is the full chain
        if spacing in ("uniform", "trailing"):
            assert int(ts[-1]) == T - 1  # sampling starts from pure noise
        if spacing == "uniform" and steps > 1:
            assert int(ts[0]) == 0
        if spacing == "leading" and steps < T and T % steps == 0:
            assert int(ts[-1]) < T - 1 and int(ts[0]) == 0  # leading never reaches T-1 (chapter 8's point)


def test_uniform_timesteps_reproduce_floor_linspace() -> None:
    expected = np.floor(np.linspace(0, 199, 50)).astype(int).tolist()
    assert ddim_timesteps(200, 50, "uniform").tolist() == expected


def test_trailing_and_leading_examples() -> None:
    assert ddim_timesteps(1000, 10, "trailing").tolist() == [99, 199, 299, 399, 499, 599, 699, 799, 899, 999]
    assert ddim_timesteps(1000, 10, "leading").tolist() == [0, 100, 200, 300, 400, 500, 600, 700, 800, 900]
    # regression: a floating-point arange gave 62 timesteps, the first -1, for T = 1000 and 61 steps
    ts = ddim_timesteps(1000, 61, "trailing")
    assert ts.shape == (61,) and int(ts.min()) >= 0


def test_quadratic_timesteps_dense_near_zero() -> None:
    ts = ddim_timesteps(1000, 50, "quadratic").numpy()
    gaps = np.diff(ts)
    assert gaps[0] < gaps[-1]  # small steps where the image is nearly clean


# --- whole loops with an exact model ---------------------------------------------------------------------------------


def test_ddim_eta0_sample_is_deterministic(ddpm_schedule: NoiseSchedule, gaussian_eps_model) -> None:
    model = gaussian_eps_model(ddpm_schedule, torch.tensor([1.0, -0.5]), 0.5)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    a = ddim_sample(model, ddpm_schedule, (64, 2), steps=20, eta=0.0, x_T=x_T, generator=torch.Generator().manual_seed(1))
    b = ddim_sample(model, ddpm_schedule, (64, 2), steps=20, eta=0.0, x_T=x_T, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    c = ddim_sample(model, ddpm_schedule, (64, 2), steps=20, eta=0.5, x_T=x_T, generator=torch.Generator().manual_seed(1))
    d = ddim_sample(model, ddpm_schedule, (64, 2), steps=20, eta=0.5, x_T=x_T, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(c, d)  # with eta > 0 the generator matters


def test_ddim_all_steps_eta1_loop_equals_ddpm_posterior_loop(gaussian_eps_model) -> None:
    """Same seed, same draws: DDIM over every timestep with eta = 1 is DDPM with sigma^2 = tilde-beta, end to end."""
    s = NoiseSchedule.linear(100, 1e-3, 0.2)
    model = gaussian_eps_model(s, torch.tensor([0.5]), 0.3)
    a, traj_a = ddim_sample(model, s, (256, 1), steps=100, eta=1.0, generator=torch.Generator().manual_seed(9), return_trajectory=True)
    b, traj_b = ddpm_sample(model, s, (256, 1), variance="posterior", generator=torch.Generator().manual_seed(9), return_trajectory=True)
    assert traj_a.shape == traj_b.shape == (101, 256, 1)
    torch.testing.assert_close(traj_a, traj_b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_ddpm_sample_unit_variance_gaussian_is_exact(ddpm_schedule: NoiseSchedule, gaussian_eps_model, se_bounds) -> None:
    """For data N(m, 1) the true reverse conditional is N(tilde-mu(E[x_0|x_t], x_t), beta_t) (Ho et al. 2020, sec. 3.2:
    sigma^2 = beta_t is optimal for x_0 ~ N(0, I)), so Algorithm 2 with the exact eps samples N(m, 1) up to
    alpha_bar_T-sized terms."""
    m = torch.tensor([1.5, -2.0])
    model = gaussian_eps_model(ddpm_schedule, m, 1.0)
    n = 10_000
    x = ddpm_sample(model, ddpm_schedule, (n, 2), variance="beta", generator=torch.Generator().manual_seed(4)).double()
    tol_mean, tol_var = se_bounds(n, 1.0)
    assert (x.mean(0) - m.double()).abs().max() < tol_mean
    assert (x.var(0) - 1.0).abs().max() < tol_var


def test_ddpm_posterior_variance_trajectory_for_a_point_mass(ddpm_schedule: NoiseSchedule, gaussian_eps_model, se_bounds) -> None:
    """For data that is a single point m, sigma^2 = tilde-beta_t is the exact reverse variance (Ho et al. 2020, sec. 3.2):
    the chain's x_t is distributed as q(x_t | x_0 = m) = N(sqrt(ab_t) m, 1 - ab_t) at every t, and x_0 = m."""
    s = NoiseSchedule.linear(200, 1e-4, 0.1)
    m = torch.tensor([2.0])
    model = gaussian_eps_model(s, m, 0.0)
    n = 20_000
    x0, traj = ddpm_sample(model, s, (n, 1), variance="posterior", generator=torch.Generator().manual_seed(5), return_trajectory=True)
    torch.testing.assert_close(x0, torch.full_like(x0, 2.0), rtol=1e-4, atol=1e-4)
    for t in (150, 50, 5):
        xt = traj[s.T - 1 - t].double()  # traj[0] is x_T (code t = T-1); after k steps, traj[k] is at code t = T-1-k
        ab = float(s.alpha_bar.double()[t])
        tol_mean, tol_var = se_bounds(n, 1 - ab)
        assert abs(float(xt.mean()) - math.sqrt(ab) * 2.0) < tol_mean, t
        assert abs(float(xt.var()) - (1 - ab)) < tol_var, t


def test_ddim_invert_then_sample_reconstructs(ddpm_schedule: NoiseSchedule, gaussian_eps_model) -> None:
    """Data N(m, s^2) with its exact eps: every DDIM step is linear in z = x_0 - m, so invert-then-sample is
    x_0 -> m + F z with F computed here in closed form. Each interval contributes C^2 / (v_p v_t) <= 1 (Cauchy-Schwarz),
    C = s^2 sqrt(ab_p ab_t) + sqrt((1 - ab_p)(1 - ab_t)), v = ab s^2 + 1 - ab: F < 1 and F -> 1 as steps grow."""
    m, s_data = torch.tensor([1.0, -0.5]), 0.5
    model = gaussian_eps_model(ddpm_schedule, m, s_data)
    x0 = m + s_data * torch.randn(256, 2, generator=torch.Generator().manual_seed(6))
    ab_all = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))  # float64, independent of the lib
    errors = {}
    for steps in (10, 50, 250):
        ab = ab_all[np.floor(np.linspace(0, 999, steps)).astype(int)]
        v = ab * s_data**2 + 1 - ab
        c = s_data**2 * np.sqrt(ab[:-1] * ab[1:]) + np.sqrt((1 - ab[:-1]) * (1 - ab[1:]))
        # the first inversion step starts from the clean x_0 and uses eps_theta(x_0, tau_1)
        first_up = np.sqrt(ab[0]) + (1 - ab[0]) / v[0]
        last_down = s_data**2 * np.sqrt(ab[0]) / v[0]
        a_T = first_up * np.prod(c / v[:-1])
        F = first_up * last_down * np.prod(c**2 / (v[:-1] * v[1:]))
        x_T = ddim_invert(model, ddpm_schedule, x0, steps=steps)
        torch.testing.assert_close(x_T, math.sqrt(ab[-1]) * m + float(a_T) * (x0 - m), rtol=0, atol=3e-5)
        back = ddim_sample(model, ddpm_schedule, x0.shape, steps=steps, eta=0.0, x_T=x_T)
        torch.testing.assert_close(back, m + float(F) * (x0 - m), rtol=0, atol=3e-5)
        errors[steps] = float((back - x0).abs().max())
    # reconstruction error shrinks, at first order in 1/steps (5x the steps, about 5x smaller)
    assert errors[10] > errors[50] > errors[250], errors
    assert 3 < errors[50] / errors[250] < 7, errors
    # many steps approach the continuous Gaussian flow: x_T = sqrt(ab_T) m + sqrt(v_T) (x_0 - m) / s
    x_T = ddim_invert(model, ddpm_schedule, x0, steps=250)
    v_T = ab_all[-1] * s_data**2 + 1 - ab_all[-1]
    ref = math.sqrt(ab_all[-1]) * m + math.sqrt(v_T) * (x0 - m) / s_data
    assert float((x_T - ref).abs().max()) < 0.05


def test_samplers_reproducible_and_trajectory_layout(ddpm_schedule: NoiseSchedule, gaussian_eps_model) -> None:
    model = gaussian_eps_model(ddpm_schedule, torch.zeros(2), 1.0)
    a = ddpm_sample(model, ddpm_schedule, (8, 2), generator=torch.Generator().manual_seed(3))
    b = ddpm_sample(model, ddpm_schedule, (8, 2), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    out, traj = ddim_sample(model, ddpm_schedule, (8, 2), steps=25, eta=0.3, generator=torch.Generator().manual_seed(3), return_trajectory=True)
    assert traj.shape == (26, 8, 2) and traj.device.type == "cpu"
    assert torch.equal(traj[-1], out)
    x_T = torch.randn(8, 2, generator=torch.Generator().manual_seed(3))
    assert torch.equal(traj[0], x_T)  # x_T is the first draw of the generator


def test_ddim_invert_clip_x0(ddpm_schedule: NoiseSchedule, gaussian_eps_model) -> None:
    """clip_x0 in the encoder works as in ddim_step: a bound no x0_hat reaches changes nothing; a bound that acts
    changes the latent; a bad bound is refused by name."""
    m, s_data = torch.tensor([1.0, -0.5]), 0.5
    model = gaussian_eps_model(ddpm_schedule, m, s_data)
    x0 = m + s_data * torch.randn(64, 2, generator=torch.Generator().manual_seed(7))
    plain = ddim_invert(model, ddpm_schedule, x0, steps=20)
    torch.testing.assert_close(ddim_invert(model, ddpm_schedule, x0, steps=20, clip_x0=1e6), plain, rtol=1e-5, atol=1e-5)  # eps re-derived: rounding only
    tight = ddim_invert(model, ddpm_schedule, x0, steps=20, clip_x0=0.2)
    assert torch.isfinite(tight).all() and not torch.allclose(tight, plain)
    with pytest.raises(ValueError, match="clip_x0"):
        ddim_invert(model, ddpm_schedule, x0, steps=20, clip_x0=0.0)


# --- the loops validate once, then step unchecked: the same numbers as stepping with the public functions ------------

SHORT = NoiseSchedule.linear(40, 1e-3, 0.2)


def _points_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return 0.3 * x + 0.01 * (t.float() / 40).reshape(-1, *([1] * (x.ndim - 1)))


def _image_model() -> torch.nn.Module:
    from diffusion_course.models.unet import UNet, UNetConfig

    torch.manual_seed(0)
    m = UNet(UNetConfig(base_channels=8, norm_groups=4, channel_mults=(1, 2), attention_levels=(1,), num_res_blocks=1, dropout=0.0))
    with torch.no_grad():  # off the zero initialisation, so eps_hat depends on x_t and t
        for p in m.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return m.eval()


def _model_and_shape(kind: str):
    return (_points_model, (16, 2)) if kind == "points" else (_image_model(), (3, 1, 8, 8))


def _ddpm_by_hand(model, s: NoiseSchedule, shape, variance: str, clip_x0: float | None, seed: int) -> torch.Tensor:
    """Algorithm 2 stepped with the public (checked) ddpm_step, drawing from the generator as ddpm_sample does."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g)
    with torch.no_grad():
        for i in range(s.T - 1, -1, -1):
            t = torch.full((shape[0],), i, dtype=torch.long)
            noise = None if i > 0 else torch.zeros_like(x)  # the last step adds no noise and draws none
            x = ddpm_step(s, x, t, model(x, t).float(), variance=variance, clip_x0=clip_x0, noise=noise, generator=g)
    return x


@pytest.mark.parametrize("kind", ["points", "images"])
@pytest.mark.parametrize("variance, clip_x0", [("beta", None), ("posterior", 1.0)])
def test_ddpm_loop_equals_stepping_with_the_public_step(kind: str, variance: str, clip_x0: float | None) -> None:
    model, shape = _model_and_shape(kind)
    got = ddpm_sample(model, SHORT, shape, variance=variance, clip_x0=clip_x0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(got, _ddpm_by_hand(model, SHORT, shape, variance, clip_x0, seed=3))


@pytest.mark.parametrize("kind", ["points", "images"])
@pytest.mark.parametrize("eta, clip_x0, spacing", [(0.0, None, "uniform"), (0.5, 1.0, "trailing"), (1.0, None, "leading")])
def test_ddim_loop_equals_stepping_with_the_public_step(kind: str, eta: float, clip_x0: float | None, spacing: str) -> None:
    model, shape = _model_and_shape(kind)
    got = ddim_sample(model, SHORT, shape, steps=7, eta=eta, spacing=spacing, clip_x0=clip_x0, generator=torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    x = torch.randn(shape, generator=g)
    ts = ddim_timesteps(SHORT.T, 7, spacing).tolist()
    with torch.no_grad():
        for k in range(len(ts) - 1, -1, -1):
            t = torch.full((shape[0],), ts[k], dtype=torch.long)
            t_prev = ts[k - 1] if k > 0 else -1
            x = ddim_step(SHORT, x, t, t_prev, model(x, t).float(), eta=eta, clip_x0=clip_x0, generator=g)
    assert torch.equal(got, x)


@pytest.mark.parametrize("kind", ["points", "images"])
def test_respaced_loop_equals_stepping_with_the_public_step(kind: str) -> None:
    model, shape = _model_and_shape(kind)
    got = ddpm_sample_respaced(model, SHORT, shape, steps=9, clip_x0=1.0, generator=torch.Generator().manual_seed(5))
    ts = ddim_timesteps(SHORT.T, 9, "uniform")
    assert torch.equal(got, _ddpm_by_hand(RespacedModel(model, ts), respaced_schedule(SHORT, ts), shape, "beta", 1.0, seed=5))


@pytest.mark.parametrize("kind", ["points", "images"])
@pytest.mark.parametrize("clip_x0", [None, 0.5])
def test_ddim_invert_equals_its_update_written_with_the_public_functions(kind: str, clip_x0: float | None) -> None:
    model, shape = _model_and_shape(kind)
    x0 = torch.randn(shape, generator=torch.Generator().manual_seed(6)).clamp(-1, 1)
    got = ddim_invert(model, SHORT, x0, steps=6, clip_x0=clip_x0)
    ts = ddim_timesteps(SHORT.T, 6, "uniform").tolist()
    x = x0
    with torch.no_grad():
        for k in range(len(ts)):
            t_next = torch.full((shape[0],), ts[k], dtype=torch.long)
            t_cur = torch.full((shape[0],), ts[max(k - 1, 0)], dtype=torch.long)
            eps_hat = model(x, t_next if k == 0 else t_cur).float()
            x0_hat = x
            if k > 0:
                x0_hat = predict_x0_from_eps(SHORT, x, t_cur, eps_hat)
                if clip_x0 is not None:
                    x0_hat = x0_hat.clamp(-clip_x0, clip_x0)
                    eps_hat = predict_eps_from_x0(SHORT, x, t_cur, x0_hat)
            x = extract(SHORT.sqrt_alpha_bar, t_next, x) * x0_hat + extract(SHORT.sqrt_one_minus_alpha_bar, t_next, x) * eps_hat
    assert torch.equal(got, x)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "ddim_invert", "respaced"])
def test_the_loops_read_values_back_once_per_call_not_once_per_step(sampler: str, host_reads: dict[str, int]) -> None:
    """The step functions check t (reading it back) on every call; the loops check once and step unchecked, so how
    often a sampling call reads values back does not grow with its number of steps."""

    def run(steps: int) -> None:
        g = torch.Generator().manual_seed(0)
        if sampler == "ddpm":
            ddpm_sample(_points_model, NoiseSchedule.linear(steps, 1e-3, 0.2), (8, 2), clip_x0=1.0, generator=g)
        elif sampler == "ddim":
            ddim_sample(_points_model, SHORT, (8, 2), steps=steps, eta=0.5, clip_x0=1.0, generator=g)
        elif sampler == "ddim_invert":
            ddim_invert(_points_model, SHORT, torch.zeros(8, 2), steps=steps, clip_x0=1.0)
        else:
            ddpm_sample_respaced(_points_model, SHORT, (8, 2), steps=steps, generator=g)

    reads = []
    for steps in (5, 10, 20):
        host_reads["reads"] = 0
        run(steps)
        reads.append(host_reads["reads"])
    assert reads[0] == reads[1] == reads[2], reads
    # the public step, by contrast, reads t back on every call
    host_reads["reads"] = 0
    ddpm_step(SHORT, torch.zeros(8, 2), 5, torch.zeros(8, 2), generator=torch.Generator().manual_seed(0))
    assert host_reads["reads"] > 0
