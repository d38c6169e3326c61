"""Training the MNIST classifier of the course's yardstick (chapter 6): shifted digits, Adam, accuracy on test digits."""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F
from torch import nn

from .._internal.progress import progress_bar
from .._internal.validate import check_positive_int, check_range
from ..models.classifier import ClassifierConfig, MNISTClassifier

__all__ = ["random_shift", "accuracy", "train_classifier"]


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Translate each image (B, C, H, W) by a random whole number of pixels in [-max_shift, max_shift] along each axis,
    filling with -1 (black): cheap data augmentation for digits."""
    check_positive_int(max_shift, "max_shift", 0)
    if max_shift == 0:
        return x
    B, _, H, W = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, B), generator=generator).tolist()
    return torch.stack([padded[i, :, dy[i] : dy[i] + H, dx[i] : dx[i] + W] for i in range(B)])


@torch.no_grad()
def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Fraction of ``images`` whose arg-max class equals ``labels``."""
    check_positive_int(batch_size, "batch_size")
    model.eval()
    correct = 0
    for i in range(0, len(images), batch_size):
        correct += int((model(images[i : i + batch_size]).argmax(1) == labels[i : i + batch_size]).sum())
    return correct / max(1, len(images))


def train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    config: ClassifierConfig | None = None,
    steps: int = 1500,
    batch_size: int = 64,
    lr: float = 2e-3,
    max_shift: int = 2,
    seed: int = 0,
    progress: bool = True,
) -> tuple[MNISTClassifier, list[float], float]:
    """Train a :class:`MNISTClassifier` with cross-entropy, Adam, cosine LR decay and random shifts of up to
    ``max_shift`` pixels. Seeded: the same arguments give the same weights on the CPU. Returns (model, losses, seconds)."""
    if images.ndim != 4 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"images (N, 1, 28, 28) and labels (N,) must have the same N; got {tuple(images.shape)}, {tuple(labels.shape)}")
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    check_range(lr, "lr", 0.0, 1.0, open_low=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # initial weights
        model = MNISTClassifier(config)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses: list[float] = []
    model.train()
    t0 = time.perf_counter()
    for step in progress_bar(range(steps), desc="training the classifier", disable=not progress):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(0, images.shape[0], (batch_size,), generator=gen)
        x = random_shift(images[idx], max_shift, gen)
        loss = F.cross_entropy(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return model, losses, time.perf_counter() - t0
