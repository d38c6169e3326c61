"""Chapter 9: a thin bridge to Hugging Face diffusers: their models in our loops, their schedules as ours.

- :class:`DiffusersEps` wraps a diffusers ``UNet2DModel`` (or any module called as ``unet(sample, timestep)`` that
  returns an object with ``.sample``, a tuple, or a tensor) so it is called like every model of the course,
  ``model(x_t, t) -> eps_hat``; it then plugs into :func:`diffusion_course.train` and the samplers unchanged.
- :func:`diffusers_schedule_config` names our schedules in diffusers' terms; :func:`schedule_from_diffusers` turns a
  diffusers scheduler's betas into a :class:`NoiseSchedule`.

diffusers is imported only inside the functions that need it, so ``import diffusion_course`` stays fast. Nothing here
downloads anything: build diffusers models from a config, never with ``from_pretrained``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .._internal.validate import check_choice, check_positive_int, check_range, check_same_shape
from ..maths.schedules import SCHEDULE_KINDS, NoiseSchedule

__all__ = ["DiffusersEps", "DIFFUSERS_BETA_SCHEDULES", "diffusers_schedule_config", "schedule_from_diffusers"]

# our schedule kind -> diffusers' ``beta_schedule`` name
DIFFUSERS_BETA_SCHEDULES = {
    "linear": "linear",  # Ho et al. 2020
    "cosine": "squaredcos_cap_v2",  # Nichol & Dhariwal 2021 (s = 0.008, beta capped at 0.999)
    "quadratic": "scaled_linear",  # sqrt(beta) linear (latent diffusion's schedule)
    "sigmoid": "sigmoid",  # GeoDiff
}


class DiffusersEps(nn.Module):
    """Adapter: ``DiffusersEps(unet)(x_t, t)`` returns ``unet(x_t, t).sample``, the noise prediction eps_hat (B, C, H, W).

    t is our code timestep 0..T-1, which is also diffusers' timestep index, so it is passed through unchanged.
    The wrapped module stays reachable as ``.unet`` (its parameters are this module's parameters).
    """

    def __init__(self, unet: nn.Module) -> None:
        super().__init__()
        if not isinstance(unet, nn.Module):
            raise ValueError(f"unet must be a torch.nn.Module (e.g. diffusers.UNet2DModel); got {type(unet).__name__}")
        self.unet = unet

    @property
    def config(self) -> Any:
        """The wrapped model's config (diffusers models carry one); used to describe the architecture in checkpoints."""
        return getattr(self.unet, "config", None)

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.Tensor) or t.ndim != 1 or t.shape[0] != x_t.shape[0]:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"t must be a tensor of shape (B,) with B = x_t.shape[0] = {x_t.shape[0]}; got {got}")
        if t.dtype.is_floating_point or t.dtype == torch.bool:
            raise ValueError(f"t must hold integer timesteps (code index 0..T-1); got dtype {t.dtype}")
        out = self.unet(x_t, t)
        if hasattr(out, "sample"):
            out = out.sample
        elif isinstance(out, (tuple, list)):
            out = out[0]
        check_same_shape(x_t, out, "x_t", "the wrapped model's output")
        return out


def diffusers_schedule_config(kind: str, T: int = 1000, beta_1: float = 1e-4, beta_T: float = 0.02) -> dict[str, Any]:
    """Keyword arguments that make a diffusers scheduler (``DDPMScheduler(**cfg)``) use the same betas as
    ``NoiseSchedule.from_betas(make_betas(kind, T, beta_1, beta_T))`` (up to diffusers' float32 arithmetic)."""
    check_choice(kind, SCHEDULE_KINDS, "kind")
    check_positive_int(T, "T")
    check_range(beta_1, "beta_1", 0.0, 1.0, open_low=True, open_high=True)
    check_range(beta_T, "beta_T", 0.0, 1.0, open_low=True, open_high=True)
    return {"num_train_timesteps": T, "beta_start": beta_1, "beta_end": beta_T, "beta_schedule": DIFFUSERS_BETA_SCHEDULES[kind]}


def schedule_from_diffusers(scheduler: Any) -> NoiseSchedule:
    """The :class:`NoiseSchedule` of a diffusers scheduler (anything with a ``betas`` tensor of shape (T,)).

    Coefficients are recomputed in float64 from diffusers' float32 betas, so they agree with the scheduler's own
    ``alphas_cumprod`` to float32 precision.
    """
    betas = getattr(scheduler, "betas", None)
    if not isinstance(betas, torch.Tensor):
        raise ValueError(f"scheduler must have a tensor attribute 'betas' (a diffusers scheduler); got {type(scheduler).__name__}")
    return NoiseSchedule.from_betas(betas.detach().cpu().to(torch.float64))
