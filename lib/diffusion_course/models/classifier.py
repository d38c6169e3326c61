"""A small MNIST classifier (chapter 6), trained by the lib, whose features score generated digits (see :mod:`diffusion_course.scoring.quality`).

Inception-v3 weights (what FID uses) cannot be downloaded offline, and they were never meant for 28x28 digits; a
classifier trained on MNIST itself plays their part: its penultimate layer gives the features of the Frechet distance,
and its softmax says how confidently each sample reads as a digit and which one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .._internal.validate import check_positive_int

__all__ = ["ClassifierConfig", "MNISTClassifier"]


@dataclass(kw_only=True)
class ClassifierConfig:
    """Sizes of :class:`MNISTClassifier`."""

    width: int = 16  # channels of the first two convs; the next two have 2 * width
    feature_dim: int = 32  # size of the penultimate layer, the features of the Frechet distance
    num_classes: int = 10  # digits 0..9

    def __post_init__(self) -> None:
        check_positive_int(self.width, "width")
        check_positive_int(self.feature_dim, "feature_dim")
        check_positive_int(self.num_classes, "num_classes", 2)


class MNISTClassifier(nn.Module):
    """(B, 1, 28, 28) images in [-1, 1] -> (B, num_classes) logits: two conv-conv-maxpool stages (28 -> 14 -> 7), a
    linear layer to ``feature_dim`` features, ReLU, and a linear read-out."""

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or ClassifierConfig()
        w = c.width
        self.body = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1), nn.ReLU(), nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, w, 14, 14)
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 2w, 7, 7)
            nn.Flatten(),  # (B, 2w * 49)
        )
        self.to_features = nn.Linear(2 * w * 49, c.feature_dim)
        self.head = nn.Linear(c.feature_dim, c.num_classes)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"x must have shape (B, 1, 28, 28) (MNIST images in [-1, 1]); got {tuple(x.shape)}")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (B, feature_dim), taken before the ReLU so that no unit is constantly 0."""
        self._check(x)
        return self.to_features(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.features(x)))  # (B, num_classes)
