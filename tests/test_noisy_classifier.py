"""Chapter 14's classifier guidance: the noisy classifier and its training, accuracy by t against a closed form, the
gradient of log p(y | x_t) against finite differences, the guided eps against the exact conditional denoiser of a
Gaussian mixture, scale 0 against ddim_sample, and guided samples landing in the requested component."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from diffusion_course.maths.classifier_guidance import (
    ClassifierGuidedModel,
    ExactMixtureClassifier,
    classifier_guided_eps,
    classifier_guided_sample,
    classifier_log_prob_grad,
)
from diffusion_course.maths.oracles import ExactDenoiser
from diffusion_course.maths.samplers import ddim_sample, ddpm_sample
from diffusion_course.maths.schedules import NoiseSchedule
from diffusion_course.models.classifier import MNISTClassifier
from diffusion_course.models.noisy_classifier import NoisyClassifier, NoisyClassifierConfig, TimeIgnoring
from diffusion_course.training.noisy_classifier import noisy_accuracy_by_t, train_noisy_classifier

pytestmark = pytest.mark.usefixtures("one_thread")

G = lambda seed=0: torch.Generator().manual_seed(seed)  # noqa: E731
SHORT = NoiseSchedule.linear(100, 1e-3, 0.1)
TINY = NoisyClassifierConfig(width=4, time_dim=8, T=100)


def _tiny(seed: int = 0) -> NoisyClassifier:
    torch.manual_seed(seed)
    return NoisyClassifier(TINY).eval()


# --- the network ---------------------------------------------------------------------------------------------------


def test_noisy_classifier_shapes_and_time_dependence():
    model = _tiny()
    x = torch.randn(3, 1, 28, 28, generator=G(1))
    a, b = model(x, torch.tensor([0, 0, 0])), model(x, torch.tensor([50, 50, 50]))
    assert a.shape == (3, 10) and not torch.allclose(a, b)  # t changes the logits
    with pytest.raises(ValueError, match=r"\bt\b.*\[0, 99\]"):
        model(x, torch.tensor([0, 100, 0]))
    with pytest.raises(ValueError, match=r"\bx_t\b.*28"):
        model(torch.zeros(3, 1, 8, 8), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\btime_dim\b"):
        NoisyClassifierConfig(time_dim=7)
    clean = MNISTClassifier().eval()
    torch.testing.assert_close(TimeIgnoring(clean)(x, torch.tensor([1, 2, 3])), clean(x))


def _two_class_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Constant images at +0.5 (label 1) or -0.5 (label 0): the sign of the mean pixel is the Bayes rule."""
    y = torch.randint(0, 2, (n,), generator=G(seed))
    return (y.float() - 0.5).reshape(n, 1, 1, 1).expand(n, 1, 28, 28).clone(), y


class _MeanSign(nn.Module):
    """Logits (-m, m) of the mean pixel m: classifies by its sign, any t."""

    def forward(self, x_t, t):
        m = x_t.mean(dim=(1, 2, 3))
        return torch.stack([-m, m], 1)


def test_accuracy_by_t_matches_the_closed_form():
    """For the mean-sign rule on constant +-0.5 images, the mean of x_t is N(+-0.5 sqrt(alpha_bar_t), (1 - alpha_bar_t) / 784),
    so the accuracy is Phi(0.5 sqrt(alpha_bar_t) / sqrt((1 - alpha_bar_t) / 784)); checked within 4 binomial standard errors."""
    schedule = NoiseSchedule.linear(1000)
    x, y = _two_class_images(4000, 2)
    ts = [0, 400, 800, 950, 999]
    acc = noisy_accuracy_by_t(_MeanSign(), x, y, schedule, ts, generator=G(3))
    assert list(acc) == ts
    for t in ts:
        ab = float(schedule.alpha_bar.double()[t])
        p = 0.5 * (1 + math.erf(0.5 * math.sqrt(ab) / math.sqrt((1 - ab) / 784) / math.sqrt(2)))
        assert abs(acc[t] - p) <= 4 * math.sqrt(p * (1 - p) / 4000) + 1e-9, (t, acc[t], p)
    assert acc[0] == 1.0 and acc[999] < 0.7


def test_accuracy_by_t_is_seeded_and_takes_a_clean_classifier():
    x, y = _two_class_images(64, 4)
    clean = TimeIgnoring(MNISTClassifier())
    a = noisy_accuracy_by_t(clean, x, y, SHORT, [0, 50], generator=G(5), batch_size=10)
    b = noisy_accuracy_by_t(clean, x, y, SHORT, [0, 50], generator=G(5))
    assert a == b
    with pytest.raises(ValueError, match=r"\bts\b.*\[0, 99\]"):
        noisy_accuracy_by_t(clean, x, y, SHORT, [0, 100])


def test_training_learns_noisy_digits_and_is_seeded():
    """A tiny network on two classes of noisy synthetic images (a bright left or right half): the loss falls and the
    trained classifier beats chance clearly at a moderate t; the same seed gives the same weights."""
    n = 256
    y = torch.randint(0, 2, (n,), generator=G(6))
    x = -torch.ones(n, 1, 28, 28)
    x[y == 0, :, :, :14] = 1.0
    x[y == 1, :, :, 14:] = 1.0
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = NoisyClassifier(NoisyClassifierConfig(width=4, time_dim=8, num_classes=2, T=100))
        _, losses, _ = train_noisy_classifier(model, x, y, SHORT, steps=60, batch_size=32, lr=5e-3, seed=7, progress=False)
        runs.append((model, losses))
    assert sum(runs[0][1][-10:]) / 10 < 0.5 * sum(runs[0][1][:10]) / 10
    for p, q in zip(runs[0][0].parameters(), runs[1][0].parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    acc = noisy_accuracy_by_t(runs[0][0], x, y, SHORT, [0, 60], generator=G(8))
    assert acc[0] > 0.95 and acc[60] > 0.8, acc


def test_training_checks_its_arguments():
    model = _tiny()
    x, y = torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long)
    with pytest.raises(ValueError, match=r"\bsteps\b"):
        train_noisy_classifier(model, x, y, SHORT, steps=0)
    with pytest.raises(ValueError, match=r"\blr\b"):
        train_noisy_classifier(model, x, y, SHORT, steps=1, lr=0.0)
    with pytest.raises(ValueError, match=r"\bimages\b"):
        train_noisy_classifier(model, x, y[:3], SHORT, steps=1)


# --- the gradient and the guided eps -------------------------------------------------------------------------------


class _TinyPointClassifier(nn.Module):
    """A small smooth classifier of 2-D points and t (three classes)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 3))

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None].to(x.dtype) / 100], 1))


def _finite_difference(fn, x: torch.Tensor, h: float = 1e-6) -> torch.Tensor:
    grad = torch.zeros_like(x)
    for idx in range(x[0].numel()):
        e = torch.zeros_like(x).reshape(x.shape[0], -1)
        e[:, idx] = h
        e = e.reshape(x.shape)
        grad.reshape(x.shape[0], -1)[:, idx] = (fn(x + e) - fn(x - e)) / (2 * h)
    return grad


def test_the_gradient_is_a_finite_difference_of_log_p():
    clf = _TinyPointClassifier().double()
    x = torch.randn(5, 2, dtype=torch.float64, generator=G(9))
    t, y = torch.tensor([0, 10, 50, 90, 99]), torch.tensor([0, 1, 2, 1, 0])
    grad, log_p = classifier_log_prob_grad(clf, x, t, y)
    logp = lambda z: torch.log_softmax(clf(z, t), 1).gather(1, y[:, None]).squeeze(1)  # noqa: E731
    torch.testing.assert_close(log_p, logp(x).detach())
    with torch.no_grad():
        torch.testing.assert_close(grad, _finite_difference(logp, x), rtol=1e-6, atol=1e-8)
    # on images, through the noisy classifier, at a few pixels
    net = _tiny().double()
    img = torch.randn(2, 1, 28, 28, dtype=torch.float64, generator=G(10))
    tt, yy = torch.tensor([5, 70]), torch.tensor([3, 8])
    g_img, _ = classifier_log_prob_grad(net, img, tt, yy)
    lp = lambda z: torch.log_softmax(net(z, tt), 1).gather(1, yy[:, None]).squeeze(1)  # noqa: E731
    for (r, c) in ((0, 0), (13, 14), (27, 5)):
        e = torch.zeros_like(img)
        e[:, 0, r, c] = 1e-6
        with torch.no_grad():
            fd = (lp(img + e) - lp(img - e)) / 2e-6
        torch.testing.assert_close(g_img[:, 0, r, c], fd, rtol=1e-5, atol=1e-8)
    assert not any(p.grad is not None for p in net.parameters())  # the classifier's weights get no gradient


def _mixture(d: int = 2):
    centres = torch.tensor([[-2.0, 1.0], [2.0, -0.5]])[:, :d]
    return centres, 0.4


def test_the_exact_mixture_classifier_is_bayes_rule():
    """Against the brute-force posterior from torch.distributions: p(k | x_t) proportional to N(x_t; sqrt(alpha_bar) mu_k, v I)."""
    centres, s = _mixture()
    clf = ExactMixtureClassifier(SHORT, centres, s)
    x = torch.randn(50, 2, dtype=torch.float64, generator=G(11)) * 2
    t = torch.randint(0, 100, (50,), generator=G(12))
    ab = SHORT.alpha_bar.double()[t][:, None]
    v = ab * s**2 + (1 - ab)
    logs = torch.stack([torch.distributions.Normal(ab.sqrt() * mu, v.sqrt()).log_prob(x).sum(1) for mu in centres.double()], 1)
    torch.testing.assert_close(torch.softmax(clf(x, t), 1), torch.softmax(logs, 1), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("y", [0, 1])
def test_guided_eps_with_scale_1_is_the_exact_conditional_denoiser(y):
    """grad log p(x_t | y) = grad log p(x_t) + grad log p(y | x_t): the unconditional exact denoiser of the mixture,
    guided by the exact classifier at scale 1, is the exact denoiser of component y alone."""
    centres, s = _mixture()
    model, clf = ExactDenoiser(SHORT, centres, s), ExactMixtureClassifier(SHORT, centres, s)
    x = torch.randn(40, 2, dtype=torch.float64, generator=G(13)) * 2
    t = torch.randint(0, 100, (40,), generator=G(14))
    guided = classifier_guided_eps(model, clf, SHORT, x.float(), t, y, 1.0)
    want = ExactDenoiser(SHORT, centres[y : y + 1], s)(x.float(), t)
    torch.testing.assert_close(guided, want, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(classifier_guided_eps(model, clf, SHORT, x.float(), t, y, 0.0), model(x.float(), t))


def test_scale_zero_is_ddim_sample_draw_for_draw():
    centres, s = _mixture()
    model, clf = ExactDenoiser(SHORT, centres, s), ExactMixtureClassifier(SHORT, centres, s)
    x_T = torch.randn(16, 2, generator=G(15))
    for eta in (0.0, 1.0):
        a = classifier_guided_sample(model, clf, SHORT, (16, 2), y=1, scale=0.0, steps=10, eta=eta, clip_x0=None, x_T=x_T, generator=G(16))
        b = ddim_sample(model, SHORT, (16, 2), steps=10, eta=eta, x_T=x_T, generator=G(16))
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_guided_sampling_draws_the_requested_component(ddpm_schedule, eta):
    """Exact denoiser + exact classifier, scale 1, DDIM with 250 steps on the DDPM schedule: the samples are those of
    the exact conditional model (same x_T, same draws) and of N(mu_y, s^2 I): mean within 5 standard errors, spread
    within 8% (DDIM's own discretisation error at 250 steps is a few percent), every sample nearer mu_y."""
    centres, s = _mixture()
    model, clf = ExactDenoiser(ddpm_schedule, centres, s), ExactMixtureClassifier(ddpm_schedule, centres, s)
    n = 2000
    y = torch.arange(n) % 2
    x_T = torch.randn(n, 2, generator=G(17))
    out = classifier_guided_sample(model, clf, ddpm_schedule, (n, 2), y=y, scale=1.0, steps=250, eta=eta, clip_x0=None, x_T=x_T, generator=G(18))
    for k in (0, 1):
        pts = out[y == k].double()
        exact = ddim_sample(ExactDenoiser(ddpm_schedule, centres[k : k + 1], s), ddpm_schedule, (n, 2), steps=250, eta=eta, x_T=x_T,
                            generator=G(18))[y == k]
        torch.testing.assert_close(pts.float(), exact, rtol=1e-3, atol=1e-3)
        assert ((pts - centres[k]).norm(dim=1) < (pts - centres[1 - k]).norm(dim=1)).all()
        assert ((pts.mean(0) - centres[k]).abs() < 5 * s / math.sqrt(len(pts))).all(), pts.mean(0)
        assert ((pts.std(0) / s - 1).abs() < 0.08).all(), pts.std(0)
    unguided = ddim_sample(model, ddpm_schedule, (n, 2), steps=250, eta=eta, x_T=x_T, generator=G(18))
    assert 0.4 < float((unguided[:, 0] > 0).double().mean()) < 0.6  # without guidance, half of each


def test_guided_ddpm_sampling_draws_the_requested_component(ddpm_schedule):
    """ddpm_sample with the guided model: Algorithm 1's mean shift up to 1 / sqrt(alpha_t)."""
    centres, s = _mixture()
    S = ddpm_schedule
    guided = ClassifierGuidedModel(ExactDenoiser(S, centres, s), ExactMixtureClassifier(S, centres, s), S, 0, 1.0)
    out = ddpm_sample(guided, S, (1000, 2), generator=G(19)).double()
    assert ((out - centres[0]).norm(dim=1) < (out - centres[1]).norm(dim=1)).all()
    assert ((out.mean(0) - centres[0]).abs() < 5 * s / math.sqrt(1000)).all()


def test_guidance_checks_its_arguments():
    centres, s = _mixture()
    model, clf = ExactDenoiser(SHORT, centres, s), ExactMixtureClassifier(SHORT, centres, s)
    with pytest.raises(ValueError, match=r"\bscale\b.*\[0"):
        classifier_guided_sample(model, clf, SHORT, (4, 2), y=0, scale=-1.0)
    with pytest.raises(ValueError, match=r"\by\b.*\[0, 1\]"):
        classifier_guided_sample(model, clf, SHORT, (4, 2), y=2, scale=1.0, steps=2)
    with pytest.raises(ValueError, match=r"\by\b.*\(4,\)"):
        classifier_guided_sample(model, clf, SHORT, (4, 2), y=torch.tensor([0, 1]), scale=1.0, steps=2)
    with pytest.raises(ValueError, match=r"\by\b"):
        ClassifierGuidedModel(model, clf, SHORT, torch.tensor([0.5]), 1.0)
    with pytest.raises(ValueError, match=r"\bclassifier\b.*\(B, K\)"):
        classifier_log_prob_grad(lambda x, t: x.sum(1), torch.zeros(3, 2), 0, 0)
    with pytest.raises(ValueError, match=r"\bt\b.*\(3,\)"):
        classifier_log_prob_grad(clf, torch.zeros(3, 2), torch.zeros(2, dtype=torch.long), 0)
