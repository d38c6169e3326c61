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

from collections.abc import Sequence

import torch
from torch import nn

from .._internal.validate import check_choice, check_range
from .losses import check_labels, null_label
from .samplers import ddim_sample, ddpm_sample
from .schedules import NoiseSchedule

__all__ = ["guided_eps_unchecked", "guided_eps", "GuidedModel", "guided_sample"]


def guided_eps(model: nn.Module, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor, w: float) -> torch.Tensor:
    """eps_tilde = (1 + w) eps_theta(x_t, t, y) - w eps_theta(x_t, t, null) (Ho & Salimans 2022, eq. 6). For w != 0
    the conditional and unconditional predictions come from one batched call of size 2B. This checks its arguments
    (the labels are read back to the host), then runs :func:`guided_eps_unchecked`, which :class:`GuidedModel` calls directly."""
    null = null_label(model)
    check_range(w, "w", 0.0, float("inf"))
    y = check_labels(y, x_t.shape[0], null).to(x_t.device)
    return guided_eps_unchecked(model, x_t, t, y, w, null)


def guided_eps_unchecked(model: nn.Module, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor, w: float, null: int) -> torch.Tensor:
    """:func:`guided_eps` without its checks: y is a checked LongTensor (B,) of labels on x_t's device."""
    if w == 0:
        return model(x_t, t, y)
    if t.ndim == 0:
        t = t.expand(x_t.shape[0])
    both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, torch.full_like(y, null)]))
    cond, uncond = both.chunk(2)
    return (1 + w) * cond - w * uncond


class GuidedModel(nn.Module):
    """A class-conditional model with fixed labels ``y`` (B,) and guidance scale ``w``, seen as an ordinary noise
    predictor (x_t, t) -> eps_tilde, so ``ddpm_sample`` / ``ddim_sample`` sample class y with guidance w. The labels
    and w are checked once, here; each call then runs the unchecked :func:`guided_eps_unchecked` (no read-back per step)."""

    def __init__(self, model: nn.Module, y: torch.Tensor, w: float) -> None:
        super().__init__()
        self.null = null_label(model)
        check_range(w, "w", 0.0, float("inf"))
        self.model = model
        self.y = check_labels(y, None, self.null)
        self.w = float(w)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x_t.shape[0] != self.y.shape[0]:
            raise ValueError(f"x_t holds {x_t.shape[0]} images but the guided model has {self.y.shape[0]} labels")
        if self.y.device != x_t.device:
            self.y = self.y.to(x_t.device)  # moved once, on the first call, not copied at every step
        return guided_eps_unchecked(self.model, x_t, t, self.y, self.w, self.null)


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
