"""Training the noise-aware classifier of chapter 14 (Dhariwal & Nichol 2021, section 4) and measuring any classifier's
accuracy on digits noised to a chosen timestep.

Each batch is noised with q(x_t | x_0) (Ho et al. 2020, eq. 4) at a timestep drawn uniformly from 0..T-1 per image and
the classifier is trained on it with cross-entropy, Adam, cosine LR decay and random shifts of a pixel or two.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .._internal.progress import progress_bar
from .._internal.validate import check_positive_int, check_range, check_timesteps
from ..maths.forward import q_sample
from ..maths.schedules import NoiseSchedule
from .classifier import random_shift

__all__ = ["train_noisy_classifier", "noisy_accuracy_by_t"]


def _check_data(images: torch.Tensor, labels: torch.Tensor) -> None:
    if images.ndim != 4 or labels.ndim != 1 or images.shape[0] != labels.shape[0] or images.shape[0] == 0:
        raise ValueError(f"images (N, C, H, W) and labels (N,) must have the same N >= 1; got {tuple(images.shape)}, {tuple(labels.shape)}")


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def train_noisy_classifier(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    schedule: NoiseSchedule,
    *,
    steps: int = 2000,
    batch_size: int = 128,
    lr: float = 2e-3,
    max_shift: int = 2,
    seed: int = 0,
    progress: bool = True,
) -> tuple[nn.Module, list[float], float]:
    """Train ``model(x_t, t) -> logits`` in place on noised ``images`` (N, 1, 28, 28) in [-1, 1]: per step a batch,
    shifted by up to ``max_shift`` pixels, each image noised at its own t ~ U{0, ..., T-1}, cross-entropy on the
    labels. Adam with cosine decay of ``lr``. Seeded: the same arguments and initial weights give the same result on
    the CPU. Runs on the model's device. Returns (model in eval mode, losses, seconds). The defaults train the default
    :class:`NoisyClassifier` on the 4,000 offline training digits in a few CPU minutes."""
    _check_data(images, labels)
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    check_range(lr, "lr", 0.0, 1.0, open_low=True)
    check_positive_int(max_shift, "max_shift", 0)
    device = _device(model)
    schedule = schedule.to(device)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses: list[float] = []
    model.train()
    start = time.perf_counter()
    for step in progress_bar(range(steps), desc="training the noisy classifier", disable=not progress):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(0, images.shape[0], (batch_size,), generator=gen)
        x0 = random_shift(images[idx], max_shift, gen)
        t = torch.randint(0, schedule.T, (batch_size,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        x_t = q_sample(schedule, x0.to(device), t.to(device), eps=eps.to(device))
        loss = F.cross_entropy(model(x_t, t.to(device)), labels[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return model, losses, time.perf_counter() - start


@torch.no_grad()
def noisy_accuracy_by_t(
    classifier: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    schedule: NoiseSchedule,
    ts: Sequence[int],
    *,
    generator: torch.Generator | None = None,
    batch_size: int = 500,
) -> dict[int, float]:
    """{t: accuracy of ``classifier(x_t, t)`` on ``images`` noised to timestep t with q(x_t | x_0)} for each t in ``ts``
    (fresh noise per t from ``generator``). A clean-image classifier is measured through ``TimeIgnoring(classifier)``.
    A module is put in eval mode."""
    _check_data(images, labels)
    check_positive_int(batch_size, "batch_size")
    ts = [int(t) for t in ts]
    check_timesteps(torch.tensor(ts, dtype=torch.long), schedule.T, name="ts")
    if isinstance(classifier, nn.Module):
        classifier.eval()
        device = _device(classifier) if any(True for _ in classifier.parameters()) else images.device
    else:
        device = images.device
    out: dict[int, float] = {}
    for t in ts:
        correct = 0
        for i in range(0, len(images), batch_size):
            x0, y = images[i : i + batch_size].to(device), labels[i : i + batch_size].to(device)
            eps = torch.randn(x0.shape, generator=generator, device=generator.device if generator is not None else device).to(device)
            tt = torch.full((x0.shape[0],), t, dtype=torch.long, device=device)
            correct += int((classifier(q_sample(schedule, x0, tt, eps=eps), tt).argmax(1) == y).sum())
        out[t] = correct / len(images)
    return out
