"""Chapter 1's warm-up before DDPM: train a network to undo :func:`~diffusion_course.forward.corrupt` (uniform-noise
mixing) by predicting the clean image, then sample by moving part of the way to that prediction, k times.

None of this is DDPM: the noise is uniform, the network never sees how much noise there is, it predicts x_0 directly,
and there is no probabilistic model behind the sampler. Chapter 4 replaces each piece.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from ._validate import check_positive_int
from .forward import corrupt

__all__ = ["x0_prediction_loss", "naive_mix_factors", "naive_sample"]

X0Model = Callable[[torch.Tensor], torch.Tensor]


def x0_prediction_loss(model: nn.Module, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """MSE between ``model(corrupt(x0, amount))`` and x0, amount ~ U[0, 1) per example (chapter 1's training objective).

    Matches :data:`~diffusion_course.train.LossFn`, so it plugs into ``train(model, data, config, loss_fn=...)``. The
    amounts and the noise are drawn with ``generator`` on its own device (a CPU generator also serves a CUDA model).
    """
    gen_device = generator.device if generator is not None else x0.device
    amount = torch.rand(x0.shape[0], generator=generator, device=gen_device, dtype=x0.dtype)  # (B,)
    x_noisy = corrupt(x0.to(gen_device), amount, generator=generator).to(x0.device)  # (B, C, H, W)
    x0_pred = model(x_noisy)
    if x0_pred.shape != x0.shape:
        raise ValueError(f"model output must have the shape of x0 {tuple(x0.shape)}; got {tuple(x0_pred.shape)}")
    return torch.mean((x0_pred.float() - x0) ** 2)


def naive_mix_factors(steps: int) -> list[float]:
    """The fraction of the way to the prediction taken at step i = 0..steps-1: 1 / (steps - i), ending at 1.

    With a prediction that never changed, these fractions would reach it exactly at the last step; ``steps = 1``
    jumps straight to the first prediction.
    """
    check_positive_int(steps, "steps", 1)
    return [1.0 / (steps - i) for i in range(steps)]


@torch.no_grad()
def naive_sample(
    model: X0Model,
    shape: tuple[int, ...],
    *,
    steps: int = 5,
    generator: torch.Generator | None = None,
    x_start: torch.Tensor | None = None,
    return_trajectory: bool = False,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chapter 1's naive k-step sampler: start from uniform noise x ~ U[0, 1) and repeat ``steps`` times
    x <- (1 - f_i) x + f_i model(x) with f_i = 1 / (steps - i) (see :func:`naive_mix_factors`).

    A heuristic, not a probabilistic model: it only trusts each x_0 prediction partly and lets the model look again.
    Returns the final x of ``shape``; with ``return_trajectory`` also CPU tensors (steps+1, *shape) of the inputs
    x (start first) and (steps, *shape) of the model's predictions.
    """
    factors = naive_mix_factors(steps)
    if x_start is None:
        device = next(model.parameters()).device if isinstance(model, nn.Module) else torch.device("cpu")
        gen_device = generator.device if generator is not None else device
        x = torch.rand(tuple(shape), generator=generator, device=gen_device).to(device)
    else:
        if tuple(x_start.shape) != tuple(shape):
            raise ValueError(f"x_start must have shape {tuple(shape)}; got {tuple(x_start.shape)}")
        x = x_start
    xs, preds = [x.cpu()], []
    for f in tqdm(factors, desc=f"naive sampling ({steps} steps)", disable=not progress, leave=False):
        pred = model(x).float()  # the model's guess of the clean image, (B, C, H, W)
        x = x * (1 - f) + pred * f  # move the fraction f of the way to the guess
        if return_trajectory:
            xs.append(x.cpu())
            preds.append(pred.cpu())
    if return_trajectory:
        return x, torch.stack(xs), torch.stack(preds)
    return x
