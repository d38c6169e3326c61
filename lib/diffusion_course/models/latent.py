"""Chapter 15: sampling in an autoencoder's latent space (latent diffusion, Rombach et al. 2022). The diffusion model
runs on z = scale_factor * (a latent of the autoencoder); a sample z_0 is divided by the scale factor and decoded.
Diffusers' Stable Diffusion pipeline does the same with ``vae.config.scaling_factor`` (0.18215 for SD 1.x)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._internal.validate import check_positive_int, check_range
from ..maths.guidance import guided_sample
from ..maths.samplers import ddim_sample
from ..maths.schedules import NoiseSchedule
from .autoencoder import KLAutoencoder

__all__ = ["latent_sample", "decode_latents"]


@torch.no_grad()
def decode_latents(autoencoder: KLAutoencoder, z: torch.Tensor, scale_factor: float, *, batch: int = 500) -> torch.Tensor:
    """Images (B, C, H, W) from scaled latents z (B, c, h, w): decode(z / scale_factor), in batches, on the autoencoder's
    device; the result on the CPU, clamped to [-1, 1]."""
    check_range(scale_factor, "scale_factor", 0.0, float("inf"), open_low=True)
    check_positive_int(batch, "batch", 1)
    dev = next(autoencoder.parameters()).device
    parts = [autoencoder.decode(z[i : i + batch].to(dev) / scale_factor).clamp(-1, 1).cpu() for i in range(0, len(z), batch)]
    return torch.cat(parts)


@torch.no_grad()
def latent_sample(
    model: nn.Module,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    *,
    autoencoder: KLAutoencoder,
    scale_factor: float,
    y: torch.Tensor | None = None,
    w: float = 0.0,
    steps: int = 50,
    eta: float = 0.0,
    spacing: str = "leading",
    generator: torch.Generator | None = None,
    x_T: torch.Tensor | None = None,
    return_latents: bool = False,
    progress: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Images from a latent noise predictor: DDIM with ``steps`` calls in the latent space of shape ``shape`` (B, c, h, w),
    then :func:`decode_latents`. With labels ``y`` (B,) the model is label-conditional and ``w`` is the
    classifier-free guidance scale (2 calls per step when w != 0; w = 0 is the conditional model alone); without
    ``y``, ``model(z, t)`` is called (an unconditional model, or a conditional one's null label inside it).
    No x0 clipping: a latent has no fixed range. ``return_latents`` also returns z_0 (B, c, h, w)."""
    check_range(w, "w", 0.0, float("inf"))
    if y is None:
        if w != 0.0:
            raise ValueError(f"w must be 0 without labels y (guidance needs the label to guide towards); got w={w}")
        z = ddim_sample(model, schedule, shape, steps=steps, eta=eta, spacing=spacing, generator=generator, x_T=x_T, progress=progress)
    else:
        if len(shape) != 4 or y.shape != (shape[0],):
            raise ValueError(f"y must have shape (B,) = ({shape[0]},) for shape {tuple(shape)}; got {tuple(y.shape)}")
        z = guided_sample(model, schedule, y, w=w, item_shape=tuple(shape[1:]), steps=steps, eta=eta, spacing=spacing, clip_x0=None,
                          generator=generator, x_T=x_T, progress=progress)
    images = decode_latents(autoencoder, z, scale_factor)
    return (images, z.cpu()) if return_latents else images
