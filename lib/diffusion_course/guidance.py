"""Class conditioning and classifier-free guidance (Ho & Salimans 2022), chapter 11.

A class-conditional noise predictor eps_theta(x_t, t, y) (``UNet`` with ``num_classes`` set) is trained with label
dropout: each label is replaced by the "no label" token with probability p_uncond, so one network learns both
eps_theta(x_t, t, y) and the unconditional eps_theta(x_t, t, null). Sampling then uses

    eps_tilde = (1 + w) eps_theta(x_t, t, y) - w eps_theta(x_t, t, null)        (Ho & Salimans 2022, eq. 6)

with guidance scale w >= 0: w = 0 is the plain conditional model, larger w pushes samples towards what makes y likely
and away from the unconditional average (sharper, more typical, less diverse). ``GuidedModel`` wraps a conditional
model and labels into an ordinary eps-model (x_t, t) -> eps_tilde, so the course's DDPM and DDIM loops sample with it
unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from ._validate import check_choice, check_positive_int, check_range, check_same_shape, check_timesteps
from .data import mnist
from .forward import q_sample
from .pretrained import load_classifier
from .quality import CONFIDENT, classifier_outputs, quality_report
from .samplers import ddim_sample, ddpm_sample
from .schedules import NoiseSchedule

__all__ = ["conditional_simple_loss", "guided_eps", "GuidedModel", "guided_sample", "guidance_report", "guided_grid", "ConditionalLossFn"]

# loss_fn(model, x0, y, generator) -> scalar loss: the training loop's loss with labels (see train(labels=...)).
ConditionalLossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor]


def _null_label(model: nn.Module) -> int:
    try:
        null = getattr(model, "null_label", None)
    except ValueError:  # a UNet without num_classes
        null = None
    if not isinstance(null, int):
        raise ValueError(f"model must be class-conditional (a UNet with config.num_classes set); got {type(model).__name__}")
    return null


def _check_labels(y: torch.Tensor, batch: int, null: int, name: str = "y") -> torch.Tensor:
    if not isinstance(y, torch.Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool or y.is_complex():
        raise ValueError(f"{name} must be an integer tensor of labels; got {type(y).__name__} {getattr(y, 'dtype', '')}")
    if y.ndim != 1 or y.shape[0] != batch:
        raise ValueError(f"{name} must have shape (B,) = ({batch},); got {tuple(y.shape)}")
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
    null = _null_label(model)
    check_range(p_uncond, "p_uncond", 0.0, 1.0)
    y = _check_labels(y, x0.shape[0], null)
    dev = x0.device if generator is None else generator.device
    if t is None:
        t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator, device=dev).to(x0.device)
    t = check_timesteps(t, schedule.T, x0.shape[0])
    if eps is None:
        eps = torch.randn(x0.shape, generator=generator, device=dev, dtype=x0.dtype).to(x0.device)
    check_same_shape(x0, eps, "x0", "eps")
    if drop is None:
        drop = torch.rand(x0.shape[0], generator=generator, device=dev).to(x0.device) < p_uncond
    if drop.shape != y.shape or drop.dtype != torch.bool:
        raise ValueError(f"drop must be a bool tensor of shape {tuple(y.shape)}; got {drop.dtype} {tuple(drop.shape)}")
    y_in = torch.where(drop.to(y.device), torch.full_like(y, null), y.to(x0.device))
    eps_hat = model(q_sample(schedule, x0, t, eps=eps), t, y_in)
    check_same_shape(eps, eps_hat, "eps", "model output")
    return torch.mean((eps - eps_hat.float()) ** 2)


def _conditional_loss_unchecked(schedule: NoiseSchedule, p_uncond: float, null: int) -> ConditionalLossFn:
    """The hot-loop version of :func:`conditional_simple_loss`: the same draws (t, eps, dropout mask) and arithmetic,
    without the per-call checks, which :func:`diffusion_course.train.train` does once before the loop."""
    sqrt_ab, sqrt_1m_ab = schedule.sqrt_alpha_bar, schedule.sqrt_one_minus_alpha_bar

    def loss_fn(model: nn.Module, x0: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        t = torch.randint(0, schedule.T, (x0.shape[0],), generator=g, device=g.device).to(x0.device)
        eps = torch.randn(x0.shape, generator=g, device=g.device, dtype=x0.dtype).to(x0.device)
        drop = (torch.rand(x0.shape[0], generator=g, device=g.device) < p_uncond).to(x0.device)
        shape = (-1,) + (1,) * (x0.ndim - 1)
        x_t = sqrt_ab[t].to(x0.dtype).reshape(shape) * x0 + sqrt_1m_ab[t].to(x0.dtype).reshape(shape) * eps
        y_in = torch.where(drop, torch.full_like(y, null), y)
        return torch.mean((eps - model(x_t, t, y_in).float()) ** 2)

    return loss_fn


def guided_eps(model: nn.Module, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor, w: float) -> torch.Tensor:
    """eps_tilde = (1 + w) eps_theta(x_t, t, y) - w eps_theta(x_t, t, null) (Ho & Salimans 2022, eq. 6). For w != 0
    the conditional and unconditional predictions come from one batched call of size 2B."""
    null = _null_label(model)
    check_range(w, "w", 0.0, float("inf"))
    y = _check_labels(y, x_t.shape[0], null).to(x_t.device)
    if w == 0:
        return model(x_t, t, y)
    if t.ndim == 0:
        t = t.expand(x_t.shape[0])
    both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, null)]))
    cond, uncond = both.chunk(2)
    return (1 + w) * cond - w * uncond


class GuidedModel(nn.Module):
    """A class-conditional model with fixed labels ``y`` (B,) and guidance scale ``w``, seen as an ordinary noise
    predictor (x_t, t) -> eps_tilde, so ``ddpm_sample`` / ``ddim_sample`` sample class y with guidance w."""

    def __init__(self, model: nn.Module, y: torch.Tensor, w: float) -> None:
        super().__init__()
        null = _null_label(model)
        check_range(w, "w", 0.0, float("inf"))
        self.model = model
        self.y = _check_labels(y, y.shape[0] if isinstance(y, torch.Tensor) and y.ndim == 1 else -1, null)
        self.w = float(w)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x_t.shape[0] != self.y.shape[0]:
            raise ValueError(f"x_t holds {x_t.shape[0]} images but the guided model has {self.y.shape[0]} labels")
        return guided_eps(self.model, x_t, t, self.y, self.w)


@torch.no_grad()
def guided_sample(
    model: nn.Module,
    schedule: NoiseSchedule,
    y: torch.Tensor,
    *,
    w: float,
    item_shape: Sequence[int] = (1, 28, 28),
    sampler: str = "ddim",
    steps: int = 20,
    eta: float = 0.0,
    spacing: str = "leading",
    clip_x0: float | None = 1.0,
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Samples of the classes ``y`` (B,) with guidance scale ``w``: DDIM (``steps`` model calls, each of batch 2B when
    w != 0) or DDPM (``sampler="ddpm"``, all T steps, sigma^2 = beta). Returns x_0 of shape (B, *item_shape)."""
    check_choice(sampler, ("ddim", "ddpm"), "sampler")
    guided = GuidedModel(model, y, w)
    shape = (guided.y.shape[0], *item_shape)
    if sampler == "ddpm":
        return ddpm_sample(guided, schedule, shape, clip_x0=clip_x0, generator=generator, x_T=x_T, progress=progress)
    return ddim_sample(guided, schedule, shape, steps=steps, eta=eta, spacing=spacing, clip_x0=clip_x0, generator=generator, x_T=x_T,
                       progress=progress)


def guided_grid(model: nn.Module, schedule: NoiseSchedule, digit: int, w: float, *, n: int = 16, steps: int = 20, seed: int = 0,
                classifier: nn.Module | None = None) -> dict:
    """What the guidance explorer shows: ``n`` DDIM samples (eta = 0, leading spacing, x0 clipped) of ``digit`` at
    guidance scale ``w`` from the same seeded x_T whatever w is (so changing w changes the same noises), and how the
    classifier reads them. Returns {"samples", "seconds", "read_as_digit", "confident"} (counts out of n)."""
    null = _null_label(model)
    check_positive_int(digit, "digit", 0, null - 1)
    check_positive_int(n, "n", 1)
    check_positive_int(steps, "steps", 1, schedule.T)
    dev = next(model.parameters()).device
    x_T = torch.randn((n, 1, 28, 28), generator=torch.Generator().manual_seed(seed)).to(dev)
    t0 = time.perf_counter()
    with torch.inference_mode():
        x = guided_sample(model, schedule, torch.full((n,), digit), w=w, steps=steps, x_T=x_T).cpu()
    seconds = time.perf_counter() - t0
    out = {"samples": x, "seconds": seconds}
    if classifier is not None:
        _, p = classifier_outputs(classifier, x)
        conf, pred = p.max(1)
        out["read_as_digit"] = int((pred == digit).sum())
        out["confident"] = int(((pred == digit) & (conf > CONFIDENT)).sum())
    return out


def guidance_report(samples: torch.Tensor, labels: torch.Tensor | None, *, classifier: nn.Module | None = None,
                    per_class_frechet: bool = True) -> dict:
    """How well guided MNIST samples (N, 1, 28, 28) show the digits ``labels`` (N,) asked for, read by the course's
    classifier: accuracy (top class = requested), the share read as the requested digit with probability > 0.9, the
    mean probability of the requested digit, per-class accuracy; the pooled Frechet / floor of all samples
    (:func:`.quality.quality_report`); and per class, the Frechet / floor of that class's samples against that class's
    test digits (floor: that class's training digits), which falls when samples get sharper and rises again when they
    lose variety. With ``labels=None`` (unconditional samples) only the pooled numbers. ``per_class_frechet=False``
    skips the per-class distances (they need 128 samples of each class)."""
    if classifier is None:
        classifier = load_classifier()[0]
    out: dict = {"n": int(samples.shape[0]), "pooled": quality_report(samples, classifier=classifier).as_dict()}
    if labels is None:
        return out
    labels = _check_labels(labels, samples.shape[0], 10, "labels")
    _, p = classifier_outputs(classifier, samples.detach().float().cpu().clamp(-1, 1))
    conf, pred = p.max(1)
    right = pred == labels
    k = p.shape[1]
    out.update(
        accuracy=round(float(right.double().mean()), 4),
        confident_correct_share=round(float((right & (conf > CONFIDENT)).double().mean()), 4),
        mean_probability_of_requested=round(float(p[torch.arange(len(labels)), labels].mean()), 4),
        per_class_accuracy=[round(float(right[labels == c].double().mean()), 4) if (labels == c).any() else None for c in range(k)],
    )
    if not per_class_frechet:
        return out
    x_tr, y_tr = mnist("train")
    x_te, y_te = mnist("test")
    ratios, spreads = [], []
    for c in range(k):
        mine = samples[labels == c]
        if mine.shape[0] == 0:
            continue
        r = quality_report(mine, classifier=classifier, reference=x_te[y_te == c], train_images=x_tr[y_tr == c])
        ratios.append(round(r.ratio, 4))
        spreads.append(round(r.ratio_spread, 4))
    if ratios:
        out["per_class_ratio"] = {"mean": round(sum(ratios) / len(ratios), 4), "min": min(ratios), "max": max(ratios), "each": ratios,
                                  "spread_each": spreads}
    return out
