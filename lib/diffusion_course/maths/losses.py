"""Training objectives (chapter 3, used from chapter 4 on): the Gaussian KL, the discretised decoder likelihood
(Ho et al. 2020, eq. 13), the terms L_T, L_{t-1}, L_0 of the variational bound (eq. 5), its per-t weight on the noise
error (eq. 12), the simple noise-prediction loss L_simple (eq. 14, Algorithm 1) and min-SNR weights (Hang et al. 2023).
Functions that call a model take it first, then the schedule (as the samplers do)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .._internal.types import EpsModel
from .._internal.validate import check_choice, check_positive_int, check_range, check_same_shape, check_timesteps
from .forward import predict_x0_from_eps, q_sample
from .posterior import q_posterior
from .schedules import NoiseSchedule, extract

__all__ = ["l_simple_unchecked", "LossFn",
    "normal_kl",
    "approx_standard_normal_cdf",
    "discretized_gaussian_log_likelihood",
    "gaussian_log_likelihood",
    "prior_kl",
    "elbo_terms",
    "elbo_weight",
    "simple_loss",
    "min_snr_weight",
    "mean_flat",
    "NATS_PER_BIT",
    "ConditionalLossFn",
    "null_label",
    "check_labels",
    "conditional_simple_loss",
    "conditional_simple_loss_fn",
    "simple_loss_fn",
]

NATS_PER_BIT = math.log(2.0)


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over every axis but the batch axis: (B, ...) -> (B,)."""
    return x.reshape(x.shape[0], -1).mean(dim=1)


def normal_kl(mean1: torch.Tensor, logvar1: torch.Tensor, mean2: torch.Tensor, logvar2: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(N(mean1, e^logvar1) || N(mean2, e^logvar2)) in nats (closed form for two Gaussians; Ho et al. 2020, eq. 5)."""
    return 0.5 * (logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2) - 1.0)


def approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """Tanh approximation of the standard normal CDF (Page 1977), as used by Ho et al. 2020's decoder."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(x: torch.Tensor, means: torch.Tensor, log_scales: torch.Tensor) -> torch.Tensor:
    """Elementwise log-probability of 8-bit data x in [-1, 1] under N(means, e^{2 log_scales}) integrated over each
    pixel's bin of width 2/255, with open-ended edge bins (Ho et al. 2020, eq. 13). Returns nats, shape of x."""
    check_same_shape(x, means, "x", "means")
    if (x < -1 - 1e-6).any() or (x > 1 + 1e-6).any():
        raise ValueError("x must lie in [-1, 1] for the discretised decoder (8-bit data scaled to [-1, 1])")
    centred = x - means
    inv_std = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_std * (centred + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_std * (centred - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    cdf_delta = cdf_plus - cdf_min
    return torch.where(
        x < -0.999,
        log_cdf_plus,
        torch.where(x > 0.999, log_one_minus_cdf_min, torch.log(cdf_delta.clamp(min=1e-12))),
    )


def gaussian_log_likelihood(x: torch.Tensor, means: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """Elementwise continuous Gaussian log-density log N(x; means, e^log_var) in nats (decoder for continuous 2-D data)."""
    check_same_shape(x, means, "x", "means")
    return -0.5 * (math.log(2 * math.pi) + log_var + (x - means) ** 2 * torch.exp(-log_var))


def prior_kl(schedule: NoiseSchedule, x0: torch.Tensor) -> torch.Tensor:
    """L_T = KL(q(x_T | x_0) || N(0, I)) per example, nats per dimension (Ho et al. 2020, eq. 5). No trainable parameter."""
    # float64 inside: L_T is ~1e-5 nats, the sum of terms of order 1 that cancel, so float32 keeps only 2-3 digits.
    x = x0.double()
    t = torch.full((x0.shape[0],), schedule.T - 1, dtype=torch.long, device=x0.device)
    alpha_bar_T = extract(schedule.alpha_bar, t, x)
    mean = alpha_bar_T.sqrt() * x
    log_var = torch.log1p(-alpha_bar_T).expand_as(x)
    zeros = torch.zeros_like(x)
    return mean_flat(normal_kl(mean, log_var, zeros, zeros)).to(x0.dtype)


def _model_log_variance(schedule: NoiseSchedule, t: torch.Tensor, x: torch.Tensor, variance: str) -> torch.Tensor:
    """log sigma_t^2 for the two fixed choices: sigma_t^2 = beta_t ("beta") or tilde-beta_t ("posterior")."""
    check_choice(variance, ("beta", "posterior"), "variance")
    if variance == "beta":
        # At code t = 0 the table holds tilde-beta at code t = 1 (5.5e-5 for the linear schedule), not beta_1 (1e-4) as the
        # paper's sigma_1^2 = beta_1 reads: improved-diffusion's FIXED_LARGE does the same, "to get a better decoder log
        # likelihood". Chapter 3 states it and measures the difference in L_0.
        log_beta = torch.log(torch.cat([schedule.posterior_variance[1:2], schedule.beta[1:]]))
        return extract(log_beta, t, x).expand_as(x)
    return extract(schedule.posterior_log_variance_clipped, t, x).expand_as(x)


def _model_then_schedule(model: object, schedule: object) -> tuple[EpsModel, NoiseSchedule]:
    """(model, schedule), also from the older (schedule, model) order; a TypeError names what is missing."""
    if isinstance(model, NoiseSchedule) and not isinstance(schedule, NoiseSchedule):
        model, schedule = schedule, model
    if not isinstance(schedule, NoiseSchedule):
        raise TypeError(f"schedule must be a NoiseSchedule; got {type(schedule).__name__}")
    if not callable(model):
        raise TypeError(f"model must be callable as model(x_t, t); got {type(model).__name__}")
    return model, schedule  # type: ignore[return-value]


def elbo_terms(
    model: EpsModel,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    t: torch.Tensor | int,
    *,
    variance: str = "posterior",
    decoder: str = "discretized",
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One term of the variational bound per example, nats per dimension (Ho et al. 2020, eq. 5):
    L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) for code t >= 1, and L_0 = -log p(x_0 | x_1) for t = 0.

    ``decoder`` is "discretized" (8-bit images in [-1, 1], eq. 13) or "gaussian" (continuous data such as 2-D points).
    Model first, then schedule, as in :func:`simple_loss` and the samplers; the older order ``(schedule, model, ...)``
    is accepted too (a NoiseSchedule is never a model).
    """
    model, schedule = _model_then_schedule(model, schedule)
    check_choice(decoder, ("discretized", "gaussian"), "decoder")
    t = check_timesteps(t, schedule.T, x0.shape[0])
    if decoder == "discretized" and ((x0 < -1 - 1e-6).any() or (x0 > 1 + 1e-6).any()):
        raise ValueError(
            f"x0 must lie in [-1, 1] for decoder='discretized' (8-bit images); got values in "
            f"[{float(x0.min()):.3g}, {float(x0.max()):.3g}]. Use decoder='gaussian' for continuous data such as 2-D points."
        )
    x_t = q_sample(schedule, x0, t, eps=eps, generator=generator)
    eps_hat = model(x_t, t)
    check_same_shape(x_t, eps_hat, "x_t", "model output")
    x0_hat = predict_x0_from_eps(schedule, x_t, t, eps_hat)
    model_mean, _, _ = q_posterior(schedule, x0_hat, x_t, t)
    model_log_var = _model_log_variance(schedule, t, x_t, variance)
    true_mean, _, true_log_var = q_posterior(schedule, x0, x_t, t)
    kl = mean_flat(normal_kl(true_mean, true_log_var, model_mean, model_log_var))
    if decoder == "discretized":
        nll = -mean_flat(discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_log_var))
    else:
        nll = -mean_flat(gaussian_log_likelihood(x0, model_mean, model_log_var))
    return torch.where(t == 0, nll, kl)


def elbo_weight(schedule: NoiseSchedule, t: torch.Tensor, variance: str = "posterior") -> torch.Tensor:
    """Weight lambda_t that turns ||eps - eps_hat||^2 into L_{t-1}: beta_t^2 / (2 sigma_t^2 alpha_t (1 - alpha_bar_t))
    (Ho et al. 2020, eq. 12). L_simple drops it (sets it to 1), which is the paper's eq. 14. Shape (B,)."""
    t = check_timesteps(t, schedule.T)
    check_choice(variance, ("beta", "posterior"), "variance")
    sigma2 = schedule.beta if variance == "beta" else schedule.posterior_variance
    sigma2 = torch.where(sigma2 > 0, sigma2, schedule.beta)  # t=0 (paper t=1) has tilde-beta = 0; use beta_1 there
    w = schedule.beta**2 / (2 * sigma2 * schedule.alpha * schedule.sqrt_one_minus_alpha_bar**2)  # = 1 - alpha_bar, precisely
    return w.to(t.device)[t]


def min_snr_weight(schedule: NoiseSchedule, t: torch.Tensor, gamma: float) -> torch.Tensor:
    """Min-SNR-gamma weight of the eps-prediction loss (Hang et al. 2023, eq. 10 divided by SNR for eps targets):
    w_t = min(SNR(t), gamma) / SNR(t). It is 1 where the image is noisy (SNR <= gamma) and shrinks the easy,
    almost-clean timesteps, whose gradients otherwise dominate and conflict with the rest. Returns (B,)."""
    check_range(gamma, "gamma", 0.0, float("inf"), open_low=True)
    t = check_timesteps(t, schedule.T)  # a (B,) LongTensor in [0, T-1]: a negative t would read the table from its end
    snr_t = schedule.snr().to(t.device)[t]
    return snr_t.clamp(max=gamma) / snr_t


def _draw_t(T: int, x0: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """t ~ U{0, ..., T-1}, one per example, drawn on the generator's device (x0's without one), then moved to x0's."""
    dev = x0.device if generator is None else generator.device
    return torch.randint(0, T, (x0.shape[0],), generator=generator, device=dev).to(x0.device)


def _draw_eps(x0: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """eps ~ N(0, I) shaped like x0, drawn as :func:`_draw_t` draws."""
    dev = x0.device if generator is None else generator.device
    return torch.randn(x0.shape, generator=generator, device=dev, dtype=x0.dtype).to(x0.device)


def _draw_drop(x0: torch.Tensor, p_uncond: float, generator: torch.Generator | None) -> torch.Tensor:
    """The label-dropout mask, True with probability p_uncond per example, drawn as :func:`_draw_t` draws."""
    dev = x0.device if generator is None else generator.device
    return torch.rand(x0.shape[0], generator=generator, device=dev).to(x0.device) < p_uncond


def _min_snr_table(schedule: NoiseSchedule, gamma: float) -> torch.Tensor:
    """The (T,) table of :func:`min_snr_weight`, min(SNR(t), gamma) / SNR(t), for every t at once (no checks)."""
    return schedule.snr().clamp(max=gamma) / schedule.snr()


def l_simple_unchecked(
    predict: EpsModel,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
    weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """The arithmetic of L_simple, written once for the four loss functions below (Ho et al. 2020, eqs. 4 and 14):
    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, then the mean of (eps - predict(x_t, t))^2, each example
    weighted by ``weight[t]`` when a (T,) table is given (min-SNR). No checks and no host syncs: the callers have
    checked (or built) t, a LongTensor (B,) in [0, T), and eps, shaped like x0."""
    shape = (-1,) + (1,) * (x0.ndim - 1)
    t_x = t.to(x0.device)  # a no-op when t is already there (the training loop)
    sqrt_ab = schedule.sqrt_alpha_bar.to(x0.device)[t_x].to(x0.dtype).reshape(shape)
    sqrt_1m_ab = schedule.sqrt_one_minus_alpha_bar.to(x0.device)[t_x].to(x0.dtype).reshape(shape)
    x_t = sqrt_ab * x0 + sqrt_1m_ab * eps  # eq. 4
    err = (eps - predict(x_t, t).float()) ** 2  # eq. 14, per element
    if weight is None:
        return torch.mean(err)
    return torch.mean(weight.to(err.device)[t_x] * err.mean(dim=tuple(range(1, err.ndim))))


def simple_loss(
    model: EpsModel,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    *,
    t: torch.Tensor | None = None,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    snr_gamma: float | None = None,
) -> torch.Tensor:
    """L_simple = E_{t, x_0, eps} ||eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t)||^2
    (Ho et al. 2020, eq. 14; Algorithm 1). t is drawn uniformly from [0, T) unless given. Returns a scalar.
    With ``snr_gamma`` each example is weighted by :func:`min_snr_weight` (Hang et al. 2023)."""
    if snr_gamma is not None:
        check_range(snr_gamma, "snr_gamma", 0.0, math.inf, open_low=True)
    t = check_timesteps(_draw_t(schedule.T, x0, generator) if t is None else t, schedule.T, x0.shape[0])
    if eps is None:
        eps = _draw_eps(x0, generator)
    check_same_shape(x0, eps, "x0", "eps")

    def eps_theta(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps_hat = model(x_t, t)
        check_same_shape(eps, eps_hat, "eps", "model output")
        return eps_hat

    weight = None if snr_gamma is None else _min_snr_table(schedule, snr_gamma)
    return l_simple_unchecked(eps_theta, schedule, x0, t, eps, weight)


# loss_fn(model, x0, y, generator) -> scalar loss: the training loop's loss with labels (see train(labels=...)).
ConditionalLossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def null_label(model: nn.Module) -> int:
    try:
        null = getattr(model, "null_label", None)
    except ValueError:  # a UNet without num_classes
        null = None
    if not isinstance(null, int):
        raise ValueError(f"model must be class-conditional (a UNet with config.num_classes set); got {type(model).__name__}")
    return null


def check_labels(y: torch.Tensor, batch: int | None, null: int, name: str = "y") -> torch.Tensor:
    """``y`` as a LongTensor of class labels in [0, null - 1] and shape (batch,) (any length when ``batch`` is None);
    ``null`` is the "no label" token of a class-conditional model, one past the last class."""
    if batch is not None:
        check_positive_int(batch, "batch", 0)
    check_positive_int(null, "null", 1)
    if batch is None and isinstance(y, torch.Tensor) and y.ndim == 1:
        batch = y.shape[0]
    if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool or y.is_complex():
        raise ValueError(f"{name} must be an integer tensor of labels; got {type(y).__name__} {getattr(y, 'dtype', '')}")
    if y.ndim != 1 or y.shape[0] != batch:
        raise ValueError(f"{name} must have shape (B,){f' = ({batch},)' if batch is not None else ''}; got {tuple(y.shape)}")
    if batch and (int(y.min()) < 0 or int(y.max()) >= null):
        raise ValueError(f"{name} must hold class labels in [0, {null - 1}]; got values in [{int(y.min())}, {int(y.max())}]")
    return y.long()


def conditional_simple_loss(
    model: nn.Module,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    y: torch.Tensor,
    *,
    p_uncond: float = 0.1,
    t: torch.Tensor | None = None,
    eps: torch.Tensor | None = None,
    drop: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L_simple of a class-conditional model with label dropout (Ho & Salimans 2022, Algorithm 1):
    E ||eps - eps_theta(sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, t, y')||^2, where y' is the null label with
    probability ``p_uncond`` and y otherwise. Draws t, then eps, then the dropout mask (each unless given)."""
    null = null_label(model)
    check_range(p_uncond, "p_uncond", 0.0, 1.0)
    y = check_labels(y, x0.shape[0], null)
    t = check_timesteps(_draw_t(schedule.T, x0, generator) if t is None else t, schedule.T, x0.shape[0])
    if eps is None:
        eps = _draw_eps(x0, generator)
    check_same_shape(x0, eps, "x0", "eps")
    if drop is None:
        drop = _draw_drop(x0, p_uncond, generator)
    if drop.shape != y.shape or drop.dtype != torch.bool:
        raise ValueError(f"drop must be a bool tensor of shape {tuple(y.shape)}; got {drop.dtype} {tuple(drop.shape)}")
    y_in = torch.where(drop.to(y.device), torch.full_like(y, null), y.to(x0.device))  # y' of the docstring

    def eps_theta(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        eps_hat = model(x_t, t, y_in)
        check_same_shape(eps, eps_hat, "eps", "model output")
        return eps_hat

    return l_simple_unchecked(eps_theta, schedule, x0, t, eps)


def conditional_simple_loss_fn(schedule: NoiseSchedule, p_uncond: float, null: int) -> ConditionalLossFn:
    """The hot-loop version of :func:`conditional_simple_loss`: the same draws (t, eps, dropout mask) and arithmetic,
    without the per-call checks, which :func:`diffusion_course.train.train` does once before the loop."""
    check_range(p_uncond, "p_uncond", 0.0, 1.0)
    check_positive_int(null, "null", 1)

    def loss_fn(model: nn.Module, x0: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        t = _draw_t(schedule.T, x0, g)  # Algorithm 1, line 3
        eps = _draw_eps(x0, g)  # line 4
        drop = _draw_drop(x0, p_uncond, g)  # label dropout: y' = null with probability p_uncond
        y_in = torch.where(drop, torch.full_like(y, null), y)
        return l_simple_unchecked(lambda x_t, t: model(x_t, t, y_in), schedule, x0, t, eps)  # the loss inside line 5

    return loss_fn


def simple_loss_fn(schedule: NoiseSchedule, snr_gamma: float | None) -> LossFn:
    """L_simple for the hot loop: the same draws and arithmetic as :func:`losses.simple_loss` (t first, then eps, from
    the loop's generator), without its per-call argument checks, which :func:`train` does once before the loop."""
    if snr_gamma is not None:
        check_range(snr_gamma, "snr_gamma", 0.0, math.inf, open_low=True)
    weight = None if snr_gamma is None else _min_snr_table(schedule, snr_gamma)

    def loss_fn(model: nn.Module, x0: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        t = _draw_t(schedule.T, x0, g)  # Algorithm 1, line 3: t ~ U{1, ..., T} (code 0 .. T-1)
        eps = _draw_eps(x0, g)  # line 4: eps ~ N(0, I)
        # the loss inside line 5: ||eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t)||^2
        return l_simple_unchecked(model, schedule, x0, t, eps, weight)

    return loss_fn


# loss_fn(model, x0, generator) -> scalar loss; the generator is a CPU torch.Generator owned by the loop.
LossFn = Callable[[nn.Module, torch.Tensor, torch.Generator], torch.Tensor]
