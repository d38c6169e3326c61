"""diffusion_course: the maths and training code behind the notebooks of "Diffusion from Scratch"."""

from .forward import add_noise, corrupt, q_sample, q_step
from .posterior import q_posterior
from .profiles import pick
from .samplers import ddim_invert, ddim_sample, ddim_timesteps, ddpm_sample
from .schedules import NoiseSchedule, cosine_betas, linear_betas, quadratic_betas, sigmoid_betas

__version__ = "0.1.0"

__all__ = [
    "NoiseSchedule",
    "linear_betas",
    "cosine_betas",
    "quadratic_betas",
    "sigmoid_betas",
    "corrupt",
    "q_step",
    "q_sample",
    "add_noise",
    "q_posterior",
    "ddpm_sample",
    "ddim_sample",
    "ddim_timesteps",
    "ddim_invert",
    "pick",
]
