"""A classifier of noised MNIST digits p_phi(y | x_t, t) for classifier guidance (chapter 14; Dhariwal & Nichol 2021,
section 4, who train theirs on noised images for the same reason), and a wrapper that lets a clean classifier be
called the same way.

The yardstick's :class:`MNISTClassifier` has only ever seen clean digits: at t = 400 its input is mostly noise and it
guesses. This network gets t through the sinusoidal embedding of chapter 4 (Vaswani et al. 2017, section 3.5), which
scales and shifts the channels of each stage (as the U-Net's scale-shift conditioning does), so it can learn what a
digit looks like at every noise level. SiLU and average pooling keep grad_x log p smooth, which guidance follows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._internal.validate import check_positive_int, check_timesteps
from .embeddings import SinusoidalEmbedding

__all__ = ["NoisyClassifierConfig", "NoisyClassifier", "TimeIgnoring"]


@dataclass(kw_only=True)
class NoisyClassifierConfig:
    """Sizes of :class:`NoisyClassifier`."""

    width: int = 16  # channels of the first stage; the second and third have 2 * width (16: 79,514 parameters)
    time_dim: int = 64  # size of the sinusoidal embedding of t (even)
    num_classes: int = 10  # digits 0..9
    T: int = 1000  # timesteps of the schedule it is trained on: t must lie in [0, T-1]

    def __post_init__(self) -> None:
        check_positive_int(self.width, "width")
        check_positive_int(self.time_dim, "time_dim", 2)
        if self.time_dim % 2:
            raise ValueError(f"time_dim must be an even int in [2, inf); got {self.time_dim}")
        check_positive_int(self.num_classes, "num_classes", 2)
        check_positive_int(self.T, "T")


class _Stage(nn.Module):
    """conv -> scale-shift by the time embedding -> SiLU -> conv -> SiLU: (B, c_in, H, W) -> (B, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, temb_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(temb_dim, 2 * c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(temb)[:, :, None, None].chunk(2, dim=1)  # (B, c_out, 1, 1) each
        h = F.silu(self.conv1(x) * (1 + scale) + shift)
        return F.silu(self.conv2(h))


class NoisyClassifier(nn.Module):
    """(x_t (B, 1, 28, 28), t (B,)) -> logits (B, num_classes): three stages (28 -> 14 -> 7, average pooling between),
    each conditioned on t, then a linear read-out of the flattened 7 x 7 map."""

    def __init__(self, config: NoisyClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or NoisyClassifierConfig()
        w = c.width
        self.time_embedding = SinusoidalEmbedding(c.time_dim)
        self.time_mlp = nn.Sequential(nn.Linear(c.time_dim, 2 * c.time_dim), nn.SiLU())
        temb = 2 * c.time_dim
        self.stages = nn.ModuleList([_Stage(1, w, temb), _Stage(w, 2 * w, temb), _Stage(2 * w, 2 * w, temb)])
        self.head = nn.Linear(2 * w * 49, c.num_classes)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if x_t.ndim != 4 or tuple(x_t.shape[1:]) != (1, 28, 28):
            raise ValueError(f"x_t must have shape (B, 1, 28, 28) (noised MNIST images); got {tuple(x_t.shape)}")
        t = check_timesteps(t, self.config.T, x_t.shape[0]).to(x_t.device)
        temb = self.time_mlp(self.time_embedding(t).to(x_t.dtype))  # (B, 2 time_dim)
        h = self.stages[0](x_t, temb)  # (B, w, 28, 28)
        h = self.stages[1](F.avg_pool2d(h, 2), temb)  # (B, 2w, 14, 14)
        h = self.stages[2](F.avg_pool2d(h, 2), temb)  # (B, 2w, 7, 7)
        return self.head(h.flatten(1))  # (B, num_classes)


class TimeIgnoring(nn.Module):
    """A classifier of clean images ``classifier(x) -> logits`` called as ``(x_t, t) -> logits``, t ignored: so the
    yardstick's classifier can be measured (``noisy_accuracy_by_t``) or guide beside a noise-aware one."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x_t: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        return self.classifier(x_t)
