"""Noise drawing shared by the samplers, the forward process and the counter-examples: every draw happens on the
generator's device (a CPU generator gives the same numbers for a CPU and a CUDA model) and is then moved."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .validate import check_same_shape

__all__ = ["randn", "rand", "noise_like", "model_device", "start_noise"]


def _gen_device(generator: torch.Generator | None, device: torch.device) -> torch.device:
    return generator.device if generator is not None else device


def randn(shape: Sequence[int], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise of ``shape`` drawn with ``generator`` on its own device, moved to ``device``."""
    return torch.randn(tuple(shape), generator=generator, device=_gen_device(generator, device), dtype=dtype).to(device)


def rand(shape: Sequence[int], generator: torch.Generator | None, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform U[0, 1) noise of ``shape``, drawn as :func:`randn` draws."""
    return torch.rand(tuple(shape), generator=generator, device=_gen_device(generator, device), dtype=dtype).to(device)


def noise_like(x: torch.Tensor, eps: torch.Tensor | None, generator: torch.Generator | None, name: str = "eps") -> torch.Tensor:
    """``eps`` checked against x's shape, or fresh standard normal noise like ``x`` drawn with ``generator``."""
    if eps is None:
        return randn(x.shape, generator, x.device, x.dtype)
    check_same_shape(x, eps, "x", name)
    return eps


def model_device(model: object, x_T: torch.Tensor | None = None) -> torch.device:
    """Where sampling runs: x_T's device if given, else the model's first parameter's, else the CPU."""
    if x_T is not None:
        return x_T.device
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            return p.device
    return torch.device("cpu")


def start_noise(shape: Sequence[int], x_T: torch.Tensor | None, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """The sampler's starting point: ``x_T`` (checked against ``shape``) or fresh N(0, I) noise of ``shape``."""
    if x_T is None:
        return randn(shape, generator, device, torch.float32)
    if tuple(x_T.shape) != tuple(shape):
        raise ValueError(f"x_T must have shape {tuple(shape)}; got {tuple(x_T.shape)}")
    return x_T.to(device)
