"""Losses against torch.distributions (an independent implementation) and against the identities of Ho et al. 2020:
KL between Gaussians, the decoder likelihoods, L_T, the ELBO terms with a perfect model, eq. 12's weight, L_simple."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from diffusion_course.maths.forward import q_sample
from diffusion_course.maths.losses import (
    discretized_gaussian_log_likelihood,
    elbo_terms,
    elbo_weight,
    gaussian_log_likelihood,
    normal_kl,
    prior_kl,
    simple_loss,
)
from diffusion_course.maths.posterior import q_posterior
from diffusion_course.maths.schedules import NoiseSchedule

pytestmark = pytest.mark.usefixtures("one_thread")


def test_normal_kl_matches_torch_distributions(gen: torch.Generator) -> None:
    m1, m2 = torch.randn(100, generator=gen, dtype=torch.float64), torch.randn(100, generator=gen, dtype=torch.float64)
    lv1, lv2 = torch.randn(100, generator=gen, dtype=torch.float64), torch.randn(100, generator=gen, dtype=torch.float64)
    ref = kl_divergence(Normal(m1, (0.5 * lv1).exp()), Normal(m2, (0.5 * lv2).exp()))
    torch.testing.assert_close(normal_kl(m1, lv1, m2, lv2), ref)
    assert torch.all(normal_kl(m1, lv1, m1, lv1).abs() < 1e-12)


def test_gaussian_log_likelihood_matches_torch(gen: torch.Generator) -> None:
    x, m = torch.randn(50, generator=gen, dtype=torch.float64), torch.randn(50, generator=gen, dtype=torch.float64)
    lv = torch.randn(50, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(gaussian_log_likelihood(x, m, lv), Normal(m, (0.5 * lv).exp()).log_prob(x))


@pytest.mark.parametrize("mean,log_scale", [(0.0, math.log(0.1)), (0.9, math.log(0.02)), (-0.99, math.log(0.5))])
def test_discretized_likelihood_is_a_distribution_over_256_levels(mean: float, log_scale: float) -> None:
    levels = torch.linspace(-1, 1, 256, dtype=torch.float64)  # the 8-bit values scaled to [-1, 1]
    means = torch.full_like(levels, mean)
    logp = discretized_gaussian_log_likelihood(levels, means, torch.full_like(levels, log_scale))
    # the bins tile the real line (open-ended edge bins), so the probabilities sum to 1
    assert float(logp.exp().sum()) == pytest.approx(1.0, abs=1e-6)
    # each interior bin holds about the exact Gaussian mass of [x - 1/255, x + 1/255] (tanh CDF approximation)
    d = Normal(mean, math.exp(log_scale))
    interior = slice(1, 255)
    exact = d.cdf(levels[interior] + 1 / 255) - d.cdf(levels[interior] - 1 / 255)
    assert (logp.exp()[interior] - exact).abs().max() < 1e-3


def test_prior_kl_is_small_for_ddpm_schedule(ddpm_schedule: NoiseSchedule) -> None:
    x0 = torch.tensor([[0.0, 1.0], [-1.0, 0.5]])
    ab = float(ddpm_schedule.alpha_bar.double()[-1])
    q = Normal(math.sqrt(ab) * x0.double(), math.sqrt(1 - ab))
    ref = kl_divergence(q, Normal(torch.zeros_like(x0.double()), 1.0)).mean(1)
    got = prior_kl(ddpm_schedule, x0)
    torch.testing.assert_close(got.double(), ref, rtol=1e-5, atol=0)
    assert float(got.max()) < 1e-4  # L_T is negligible: nothing to learn there


def _perfect_model(eps: torch.Tensor, delta: torch.Tensor | None = None):
    """A 'model' that returns the true noise (plus a chosen error), to check the bound's algebra."""
    return lambda x_t, t: eps + (0 if delta is None else delta)


def test_elbo_terms_with_perfect_model(ddpm_schedule: NoiseSchedule, gen: torch.Generator) -> None:
    s = ddpm_schedule
    x0 = torch.randn(16, 2, generator=gen)
    eps = torch.randn(16, 2, generator=gen)
    t = torch.arange(1, 1000, 64)[:16]
    # variance "posterior": the model's Gaussian is the true posterior, so every L_{t-1} is 0
    kl = elbo_terms(_perfect_model(eps), s, x0, t, variance="posterior", decoder="gaussian", eps=eps)
    assert kl.abs().max() < 1e-4
    # variance "beta": the means agree, the KL is the variance mismatch 0.5 (log(beta/tb) + tb/beta - 1)
    kl_beta = elbo_terms(_perfect_model(eps), s, x0, t, variance="beta", decoder="gaussian", eps=eps)
    tb, b = s.posterior_variance[t].double(), s.beta[t].double()
    ref = 0.5 * (torch.log(b / tb) + tb / b - 1)
    torch.testing.assert_close(kl_beta.double(), ref, rtol=1e-3, atol=1e-6)


def test_elbo_weight_turns_eps_error_into_kl(ddpm_schedule: NoiseSchedule, gen: torch.Generator) -> None:
    """Ho et al. 2020, eq. 12: L_{t-1} = beta_t^2 / (2 sigma_t^2 alpha_t (1 - alpha_bar_t)) ||eps - eps_hat||^2."""
    s = ddpm_schedule
    x0 = torch.randn(20, 3, generator=gen)
    eps = torch.randn(20, 3, generator=gen)
    delta = 0.1 * torch.randn(20, 3, generator=gen)
    t = torch.randint(1, 1000, (20,), generator=gen)
    kl = elbo_terms(_perfect_model(eps, delta), s, x0, t, variance="posterior", decoder="gaussian", eps=eps)
    ref = elbo_weight(s, t, "posterior") * (delta**2).mean(1)
    torch.testing.assert_close(kl, ref, rtol=2e-3, atol=1e-7)


def test_l0_is_the_decoder_nll(ddpm_schedule: NoiseSchedule, gen: torch.Generator) -> None:
    s = ddpm_schedule
    x0 = torch.rand(4, 3, generator=gen) * 2 - 1
    eps = torch.randn(4, 3, generator=gen)
    delta = 0.5 * torch.randn(4, 3, generator=gen)
    model = _perfect_model(eps, delta)
    t = torch.zeros(4, dtype=torch.long)
    x_t = q_sample(s, x0, t, eps=eps)
    x0_hat = (x_t - s.sqrt_one_minus_alpha_bar[0] * (eps + delta)) / s.sqrt_alpha_bar[0]
    mean, _, _ = q_posterior(s, x0_hat, x_t, t)
    log_var = s.posterior_log_variance_clipped[0]  # the "posterior" choice at t=0 uses tilde-beta_2 (finite)
    ref = -Normal(mean.double(), float((0.5 * log_var).exp())).log_prob(x0.double()).mean(1)
    got = elbo_terms(model, s, x0, t, variance="posterior", decoder="gaussian", eps=eps)
    torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-4)


def test_simple_loss(ddpm_schedule: NoiseSchedule) -> None:
    x0 = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    # a model that knows nothing (predicts 0) pays E||eps||^2; with a given eps that is exactly mean(eps^2)
    eps = torch.randn(32, 2, generator=torch.Generator().manual_seed(1))
    zero = lambda x_t, t: torch.zeros_like(x_t)  # noqa: E731
    assert float(simple_loss(zero, ddpm_schedule, x0, eps=eps, generator=torch.Generator().manual_seed(2))) == pytest.approx(
        float((eps**2).mean()), rel=1e-6
    )
    # an oracle that returns the true eps has zero loss
    assert float(simple_loss(_perfect_model(eps), ddpm_schedule, x0, eps=eps, t=torch.zeros(32, dtype=torch.long))) == 0.0
    # same generator seed, same loss; the t given is the t the model sees
    seen: list[torch.Tensor] = []

    def spy(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        seen.append(t)
        return torch.zeros_like(x_t)

    a = simple_loss(spy, ddpm_schedule, x0, generator=torch.Generator().manual_seed(3))
    b = simple_loss(spy, ddpm_schedule, x0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and torch.equal(seen[0], seen[1])
    assert seen[0].dtype == torch.long and int(seen[0].min()) >= 0 and int(seen[0].max()) < 1000


def test_min_snr_weight_by_brute_force(ddpm_schedule: NoiseSchedule) -> None:
    from diffusion_course.maths.losses import min_snr_weight

    t = torch.tensor([0, 10, 100, 300, 999])
    ab = ddpm_schedule.alpha_bar.double()
    for gamma in (1.0, 5.0):
        want = torch.tensor([min(float(ab[k] / (1 - ab[k])), gamma) / float(ab[k] / (1 - ab[k])) for k in t.tolist()], dtype=torch.float64)
        torch.testing.assert_close(min_snr_weight(ddpm_schedule, t, gamma).double(), want, rtol=1e-3, atol=0)  # float32 SNR near t = 0
    w = min_snr_weight(ddpm_schedule, torch.arange(1000), 5.0)
    assert float(w.max()) == pytest.approx(1.0) and float(w[0]) < 1e-3  # noisy steps keep weight 1, clean ones shrink
    with pytest.raises(ValueError, match="gamma"):
        min_snr_weight(ddpm_schedule, t, 0.0)


def test_simple_loss_with_min_snr(ddpm_schedule: NoiseSchedule) -> None:
    from diffusion_course.maths.losses import min_snr_weight

    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(16, 2, generator=g), torch.randn(16, 2, generator=g)
    t = torch.randint(0, 1000, (16,), generator=g)
    zero = lambda x_t, t: torch.zeros_like(x_t)  # noqa: E731
    got = simple_loss(zero, ddpm_schedule, x0, t=t, eps=eps, snr_gamma=5.0)
    want = (min_snr_weight(ddpm_schedule, t, 5.0) * (eps**2).mean(dim=1)).mean()
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    # a gamma above every SNR changes nothing
    huge = simple_loss(zero, ddpm_schedule, x0, t=t, eps=eps, snr_gamma=1e12)
    assert float(huge) == pytest.approx(float(simple_loss(zero, ddpm_schedule, x0, t=t, eps=eps)), rel=1e-6)


def test_elbo_terms_takes_model_first_and_accepts_the_old_order() -> None:
    """Model first, then schedule, as simple_loss and the samplers; (schedule, model, ...) gives the same terms."""

    s = NoiseSchedule.linear(30)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(6, 2, generator=g), torch.randn(6, 2, generator=g)
    model = lambda x, t: 0.5 * x  # noqa: E731
    t = torch.tensor([0, 1, 5, 10, 20, 29])
    new = elbo_terms(model, s, x0, t, decoder="gaussian", eps=eps)
    assert torch.equal(elbo_terms(s, model, x0, t, decoder="gaussian", eps=eps), new)
    with pytest.raises(TypeError, match="schedule must be a NoiseSchedule"):
        elbo_terms(model, model, x0, t, decoder="gaussian")


# --- one L_simple: the hot-loop versions are the checked ones, bit for bit -------------------------------------------


class _PointsModel(torch.nn.Module):
    """A small noise predictor for 2-D points, class-conditional when ``num_classes`` is set (label ``num_classes`` is
    the null label, as in the U-Net)."""

    def __init__(self, num_classes: int | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.SiLU(), torch.nn.Linear(32, 2))
        self.num_classes = num_classes
        self.embed = torch.nn.Embedding(num_classes + 1, 2) if num_classes is not None else None

    @property
    def null_label(self) -> int | None:
        return self.num_classes

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.net(torch.cat([x, t.float()[:, None] / 1000], dim=1))
        return h if y is None else h + self.embed(y)


def _image_model(num_classes: int | None = None) -> torch.nn.Module:
    from diffusion_course.models.unet import UNet, UNetConfig

    torch.manual_seed(0)
    m = UNet(UNetConfig(base_channels=8, norm_groups=4, channel_mults=(1, 2), attention_levels=(1,), num_res_blocks=1, dropout=0.0,
                        num_classes=num_classes))
    with torch.no_grad():  # move every weight off its zero initialisation, so eps_hat depends on x_t, t and y
        for p in m.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return m.eval()


def _data(kind: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    return torch.randn(64, 2, generator=g) if kind == "points" else torch.randn(16, 1, 8, 8, generator=g).clamp(-1, 1)


@pytest.mark.parametrize("kind", ["points", "images"])
@pytest.mark.parametrize("gamma", [None, 5.0])
def test_hot_loop_simple_loss_is_bit_identical_to_the_checked_one(ddpm_schedule: NoiseSchedule, kind: str, gamma: float | None) -> None:
    """simple_loss_fn (train's loss) and simple_loss share one arithmetic and draw t, then eps, from the same generator:
    the same numbers to the last bit, and the generator left in the same state."""
    from diffusion_course.maths.losses import simple_loss_fn

    model = _PointsModel() if kind == "points" else _image_model()
    x0 = _data(kind)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    with torch.no_grad():
        fast = simple_loss_fn(ddpm_schedule, gamma)(model, x0, g1)
        checked = simple_loss(model, ddpm_schedule, x0, generator=g2, snr_gamma=gamma)
    assert torch.equal(fast, checked)
    assert torch.equal(g1.get_state(), g2.get_state())


@pytest.mark.parametrize("kind", ["points", "images"])
@pytest.mark.parametrize("gamma", [None, 5.0])
def test_simple_loss_is_eq14_bit_for_bit(ddpm_schedule: NoiseSchedule, kind: str, gamma: float | None) -> None:
    """The shared arithmetic gives exactly what the loss computed before it was shared: q_sample (eq. 4), the mean
    squared noise error (eq. 14) and, with gamma, min_snr_weight times the per-example mean."""
    from diffusion_course.maths.losses import mean_flat, min_snr_weight

    model = _PointsModel() if kind == "points" else _image_model()
    x0 = _data(kind)
    g = torch.Generator().manual_seed(8)
    t = torch.randint(0, ddpm_schedule.T, (x0.shape[0],), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    with torch.no_grad():
        err = (eps - model(q_sample(ddpm_schedule, x0, t, eps=eps), t).float()) ** 2
        want = err.mean() if gamma is None else (min_snr_weight(ddpm_schedule, t, gamma) * mean_flat(err)).mean()
        got = simple_loss(model, ddpm_schedule, x0, generator=torch.Generator().manual_seed(8), snr_gamma=gamma)
    assert torch.equal(got, want)


@pytest.mark.parametrize("kind", ["points", "images"])
@pytest.mark.parametrize("p_uncond", [0.0, 0.5, 1.0])
def test_hot_loop_conditional_loss_is_bit_identical_to_the_checked_one(ddpm_schedule: NoiseSchedule, kind: str, p_uncond: float) -> None:
    """conditional_simple_loss_fn and conditional_simple_loss: the same draws (t, eps, then the dropout mask) and the
    same numbers, on 2-D points and on images."""
    from diffusion_course.maths.losses import conditional_simple_loss, conditional_simple_loss_fn

    model = _PointsModel(num_classes=3) if kind == "points" else _image_model(num_classes=3)
    x0 = _data(kind)
    y = torch.arange(x0.shape[0]) % 3
    g1, g2 = torch.Generator().manual_seed(6), torch.Generator().manual_seed(6)
    with torch.no_grad():
        fast = conditional_simple_loss_fn(ddpm_schedule, p_uncond, 3)(model, x0, y, g1)
        checked = conditional_simple_loss(model, ddpm_schedule, x0, y, p_uncond=p_uncond, generator=g2)
        # and the formula, with the same draws made by hand
        g = torch.Generator().manual_seed(6)
        t = torch.randint(0, ddpm_schedule.T, (x0.shape[0],), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        y_in = torch.where(torch.rand(x0.shape[0], generator=g) < p_uncond, torch.full_like(y, 3), y)
        want = ((eps - model(q_sample(ddpm_schedule, x0, t, eps=eps), t, y_in).float()) ** 2).mean()
    assert torch.equal(fast, checked) and torch.equal(checked, want)
    assert torch.equal(g1.get_state(), g2.get_state()) and torch.equal(g1.get_state(), g.get_state())
