"""Chapter 7: exponential moving average of a model's weights (Polyak averaging; used by Ho et al. 2020 with
decay 0.9999)."""

from __future__ import annotations

import copy
import math
import numbers

import torch
from torch import nn

from .._internal.validate import check_range

__all__ = ["EMA", "ema_decay_at", "decay_half_life"]


def ema_decay_at(step: int, decay: float, warmup: bool = True) -> float:
    """Decay of the EMA update that follows ``step`` earlier updates (0 for the first): min(decay, (1 + step) / (10 + step))
    with warm-up, so early averages are not dominated by the random initialisation (TensorFlow's ExponentialMovingAverage
    num_updates rule; diffusers' EMAModel uses the same). Without warm-up it is ``decay`` itself."""
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
        raise ValueError(f"step must be an int >= 0 (updates done so far); got {step!r}")
    check_range(decay, "decay", 0.0, 1.0)
    return min(decay, (1 + step) / (10 + step)) if warmup else decay


def decay_half_life(decay: float) -> float:
    """Number of updates after which a weight's contribution has halved: ln(0.5) / ln(decay). 0.999 -> about 693 steps."""
    check_range(decay, "decay", 0.0, 1.0, open_low=True, open_high=True)
    return math.log(0.5) / math.log(decay)


class EMA:
    """Shadow copy of ``model`` updated as shadow <- d * shadow + (1 - d) * weights after each optimiser step.

    Floating-point parameters and buffers are averaged; integer buffers (e.g. BatchNorm's step counter) are copied.
    decay = 0 makes the shadow a copy of the model. With ``warmup=False``, decay = 1 freezes it at its initial value;
    with the warm-up (the default) the decay actually used is min(decay, (1 + n) / (10 + n)) after n updates, so even
    decay = 1 follows the model early on and slows down as n grows (see :func:`ema_decay_at`).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, *, warmup: bool = True) -> None:
        check_range(decay, "decay", 0.0, 1.0)
        self.decay = float(decay)
        self.warmup = warmup
        self.num_updates = 0
        self.shadow = copy.deepcopy(model).eval()
        for p in self.shadow.parameters():
            p.requires_grad_(False)

    def current_decay(self) -> float:
        """Decay that the next :meth:`update` will use."""
        return ema_decay_at(self.num_updates, self.decay, self.warmup)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the model's current weights into the shadow."""
        d = self.current_decay()
        self.num_updates += 1
        src = model.state_dict()
        mine = self.shadow.state_dict()
        if src.keys() != mine.keys():
            diff = sorted(set(mine) ^ set(src))[:3]
            raise ValueError(f"model must have the same parameters and buffers as the EMA shadow; these differ: {diff}")
        for name, shadow in mine.items():
            value = src[name].detach().to(shadow.device)
            if shadow.dtype.is_floating_point:
                shadow.mul_(d).add_(value.to(shadow.dtype), alpha=1 - d)
            else:
                shadow.copy_(value)

    def state_dict(self) -> dict:
        """Shadow weights plus the update count (for exact resume)."""
        return {"shadow": self.shadow.state_dict(), "num_updates": self.num_updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.shadow.load_state_dict(state["shadow"])
        self.num_updates = int(state["num_updates"])
        self.decay = float(state["decay"])
