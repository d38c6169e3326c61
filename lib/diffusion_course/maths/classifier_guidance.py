"""Classifier guidance (chapter 14; Dhariwal & Nichol 2021, "Diffusion Models Beat GANs on Image Synthesis", section 4).

A classifier p_phi(y | x_t, t) trained on noised images turns an unconditional noise predictor into a conditional one.
By Bayes, grad log p(x_t | y) = grad log p(x_t) + grad log p(y | x_t), and eps = -sqrt(1 - alpha_bar_t) grad log p(x_t)
(the score view of chapter 8), so

    eps_hat'(x_t, t) = eps_hat(x_t, t) - s sqrt(1 - alpha_bar_t) grad_{x_t} log p_phi(y | x_t, t)

with gradient scale s (their section 4.3; s = 1 is the exact conditional when both models are exact, s > 1 sharpens).
DDIM with eps_hat' is their Algorithm 2 (section 4.2), the scale applied to the gradient as in their Algorithm 1 and
their code. Their Algorithm 1 (DDPM) shifts the step's mean by s Sigma grad log p instead; DDPM's step with eps_hat'
shifts it by s beta_t / sqrt(alpha_t) grad log p, the same up to the factor 1 / sqrt(1 - beta_t) (at most 1.0102 for
the DDPM schedule), so ``ddpm_sample(ClassifierGuidedModel(...), ...)`` samples Algorithm 1 to that factor.

The classifier must see x_t and t: one trained on clean images only reads noise as noise (chapter 11 shows why);
:class:`ExactMixtureClassifier` is the exact p(y | x_t) for a Gaussian mixture, the oracle the tests guide with.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._internal.types import EpsModel
from .._internal.validate import check_range, check_timesteps
from .losses import check_labels
from .samplers import ddim_sample
from .schedules import NoiseSchedule, extract

__all__ = ["classifier_log_prob_grad", "classifier_guided_eps", "ClassifierGuidedModel", "classifier_guided_sample", "ExactMixtureClassifier"]

# classifier(x_t, t) -> logits (B, K), t a LongTensor (B,)
NoisyClassifierFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _labels(y: torch.Tensor | int, batch: int) -> torch.Tensor:
    if isinstance(y, int) and not isinstance(y, bool):
        return torch.full((batch,), y, dtype=torch.long)
    return y


def classifier_log_prob_grad(
    classifier: NoisyClassifierFn, x_t: torch.Tensor, t: torch.Tensor | int, y: torch.Tensor | int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(grad_{x_t} log p_phi(y | x_t, t), log p_phi(y | x_t, t)): the gradient by autograd through the classifier's
    log-softmax (shape of x_t) and the log-probability (B,). Works inside ``torch.no_grad()``; the classifier's own
    parameters get no gradient. Examples are independent, so one backward pass of the sum gives every example's gradient
    (true for a classifier in eval mode; batch norm in training mode would mix them)."""
    B = x_t.shape[0]
    if isinstance(t, int) and not isinstance(t, bool):
        t = torch.full((B,), t, dtype=torch.long)
    if not isinstance(t, torch.Tensor) or t.dtype.is_floating_point or t.dtype == torch.bool or tuple(t.shape) != (B,):
        raise ValueError(f"t must be an int or an integer tensor of shape (B,) = ({B},); got {getattr(t, 'shape', type(t).__name__)}")
    with torch.enable_grad():
        x = x_t.detach().clone().requires_grad_(True)
        logits = classifier(x, t.to(x.device))
        if logits.ndim != 2 or logits.shape[0] != B:
            raise ValueError(f"classifier must return logits of shape (B, K) = ({B}, K); got {tuple(logits.shape)}")
        labels = check_labels(_labels(y, B), B, logits.shape[1]).to(x.device)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # a half-precision softmax loses the small gradients
        log_p = F.log_softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1)  # (B,)
        (grad,) = torch.autograd.grad(log_p.sum(), x)
    return grad, log_p.detach()


def classifier_guided_eps(
    model: EpsModel,
    classifier: NoisyClassifierFn,
    schedule: NoiseSchedule,
    x_t: torch.Tensor,
    t: torch.Tensor | int,
    y: torch.Tensor | int,
    scale: float,
) -> torch.Tensor:
    """eps_hat' = eps_theta(x_t, t) - scale sqrt(1 - alpha_bar_t) grad_{x_t} log p_phi(y | x_t, t) (Dhariwal & Nichol
    2021, Algorithm 2, with the gradient scale s). scale = 0 returns the model's prediction without calling the classifier."""
    check_range(scale, "scale", 0.0, float("inf"))
    t = check_timesteps(t, schedule.T, x_t.shape[0])
    eps_hat = model(x_t, t.to(x_t.device)).float()
    if scale == 0:
        return eps_hat
    grad, _ = classifier_log_prob_grad(classifier, x_t, t, y)
    return eps_hat - scale * extract(schedule.sqrt_one_minus_alpha_bar, t, x_t) * grad


class ClassifierGuidedModel(nn.Module):
    """An unconditional noise predictor and a noisy classifier seen as one eps-model (x_t, t) -> eps_hat' for the
    labels ``y`` (B,) (or one int for every example) at guidance ``scale``, so the course's samplers run it unchanged."""

    def __init__(self, model: EpsModel, classifier: NoisyClassifierFn, schedule: NoiseSchedule, y: torch.Tensor | int, scale: float) -> None:
        super().__init__()
        check_range(scale, "scale", 0.0, float("inf"))
        if isinstance(y, bool) or not isinstance(y, (int, torch.Tensor)) or (isinstance(y, torch.Tensor) and (
                y.ndim != 1 or y.dtype.is_floating_point or y.dtype == torch.bool)):
            raise ValueError(f"y must be an int or an integer tensor of labels of shape (B,); got {getattr(y, 'shape', y)!r}")
        if (int(y) if isinstance(y, int) else int(y.min()) if y.numel() else 0) < 0:
            raise ValueError(f"y must hold class labels in [0, K - 1] (K: the classifier's number of classes); got {y!r}")
        # the labels' upper bound, K - 1, is checked against the classifier's K at every call
        self.model, self.classifier, self.schedule, self.y, self.scale = model, classifier, schedule, y, float(scale)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        y = _labels(self.y, x_t.shape[0])
        if y.shape[0] != x_t.shape[0]:
            raise ValueError(f"x_t holds {x_t.shape[0]} examples but the guided model has {y.shape[0]} labels y")
        return classifier_guided_eps(self.model, self.classifier, self.schedule, x_t, t, y, self.scale)


def classifier_guided_sample(
    model: EpsModel,
    classifier: NoisyClassifierFn,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    *,
    y: torch.Tensor | int,
    scale: float,
    steps: int = 50,
    eta: float = 0.0,
    spacing: str = "uniform",
    clip_x0: float | None = 1.0,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """DDIM with the classifier-guided eps_hat' (Dhariwal & Nichol 2021, Algorithm 2; eta > 0 adds DDIM's noise): samples
    of the classes ``y`` (B,) or one int, ``steps`` model calls and as many classifier gradients. scale = 0 is
    :func:`ddim_sample` itself, draw for draw."""
    guided = ClassifierGuidedModel(model, classifier, schedule, y, scale)
    if isinstance(guided.y, torch.Tensor) and guided.y.shape[0] != shape[0]:
        raise ValueError(f"y must hold one label per example, shape ({shape[0]},); got {tuple(guided.y.shape)}")
    return ddim_sample(guided, schedule, shape, steps=steps, eta=eta, spacing=spacing, clip_x0=clip_x0, generator=generator, x_T=x_T,
                       return_trajectory=return_trajectory, progress=progress)


class ExactMixtureClassifier:
    """The exact p(k | x_t) for data drawn with equal weights from Gaussians N(mu_k, s^2 I), k = 1..K (the data of
    :class:`ExactDenoiser`): under the forward process x_t given k is N(sqrt(alpha_bar_t) mu_k, v I) with
    v = alpha_bar_t s^2 + 1 - alpha_bar_t, so by Bayes the logits are -||x_t - sqrt(alpha_bar_t) mu_k||^2 / (2 v)
    (up to a constant per example). ``classifier(x_t, t)`` returns them (B, K); computed in float64, returned in x_t's
    dtype (differentiable, for guidance)."""

    def __init__(self, schedule: NoiseSchedule, centres: torch.Tensor, s: float = 0.0) -> None:
        check_range(s, "s", 0.0, float("inf"))
        if centres.ndim < 2 or centres.shape[0] < 2:
            raise ValueError(f"centres must have shape (K, ...) with K >= 2 classes; got {tuple(centres.shape)}")
        self.schedule = schedule
        self.point_shape = tuple(centres.shape[1:])
        self.centres = centres.double().reshape(len(centres), -1)  # (K, D)
        self.s = float(s)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Logits (B, K) of p(k | x_t) at timestep t (B,)."""
        if tuple(x_t.shape[1:]) != self.point_shape:
            raise ValueError(f"x_t must have shape (B, *{self.point_shape}) to match centres; got {tuple(x_t.shape)}")
        t = check_timesteps(t, self.schedule.T, x_t.shape[0])
        B = x_t.shape[0]
        ab = extract(self.schedule.alpha_bar, t, x_t).double().reshape(B, 1)
        one_minus_ab = extract(self.schedule.sqrt_one_minus_alpha_bar, t, x_t).double().reshape(B, 1) ** 2
        x = x_t.double().reshape(B, 1, -1)  # (B, 1, D)
        d2 = ((x - ab.sqrt()[:, :, None] * self.centres.to(x.device)[None]) ** 2).sum(-1)  # (B, K)
        return (-d2 / (2 * (ab * self.s**2 + one_minus_ab))).to(x_t.dtype)
