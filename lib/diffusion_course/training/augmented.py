"""Chapter 10's augmented loss: each training batch cut afresh from whole photo regions (random crops and flips)."""

from __future__ import annotations

import torch
from torch import nn

from .._internal.validate import check_positive_int
from ..data.photos import crop_and_flip
from ..maths.losses import LossFn, simple_loss
from ..maths.schedules import NoiseSchedule

__all__ = ["augmented_loss"]


def augmented_loss(schedule: NoiseSchedule, size: int, *, flip: bool = True) -> LossFn:
    """A loss for :func:`train` whose ``data`` are whole training regions (P, 3, H, W): each batch is cut into fresh
    random crops (and flips), then L_simple (Ho et al. 2020, eq. 14) is taken on them. Crops, flips, t and noise all
    come from the loop's generator, so a run is reproducible and resumes exactly."""
    check_positive_int(size, "size", 1)

    def loss_fn(model: nn.Module, regions: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        crops = crop_and_flip(regions, size, generator, flip=flip)
        return simple_loss(model, schedule.to(crops.device), crops, generator=generator)

    return loss_fn
