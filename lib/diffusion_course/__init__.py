"""diffusion_course: the maths and training code behind the notebooks of "Diffusion from Scratch".

Module map (chapter that teaches it; what it computes):

    pure maths, no networks, no files
      schedules      02  beta schedules, NoiseSchedule (alpha, alpha_bar, posterior coefficients), SNR
      forward        01-02  corrupt, q_step, q_sample (Ho et al. eq. 4), x0 / eps / v conversions
      posterior      03  q(x_{t-1} | x_t, x_0) (eqs. 6-7)
      losses         03, 06  Gaussian KL, discretised decoder, ELBO terms, L_simple (eq. 14), min-SNR weights
      samplers       04, 06, 08  DDPM step and loop (Algorithm 2), DDIM step and loop (eq. 12), spacings, inversion
      respacing      08  DDPM on kept timesteps (the sigma-hat row of the DDIM paper's Table 1)
      interpolation  08  lerp and slerp of noises
      oracles        03, 08  exact noise predictors of Gaussian and finite data (no training)
      simplified     04  a counter-example: the "simplified" reverse step that collapses
      corruption     01  chapter 1's x0-predicting warm-up (not DDPM)
    models and training
      models/        04-05  sinusoidal embedding, 2-D MLP, BasicUNet and the time-conditioned UNet
      ema            07  EMA with warm-up, decay as a half-life
      train          04-11  one loop for every model (Algorithm 1): clipping, EMA, LR schedule, checkpoints, resume, labels
      guidance       11  label-dropout loss, classifier-free guidance (Ho & Salimans eq. 6), guided samplers, its report
      checkpoints    06  atomic checkpoints, safetensors weights with a JSON card
    data, scores, shipped files
      data           all  2-D sets, 8x8 digits, MNIST with its offline fallback
      classifier     06  the MNIST classifier whose features score samples
      metrics        04, 06-08  sliced Wasserstein, MMD, Frechet distance, floors, quality reports, nearest-neighbour distance
      evaluation     06-08  sampler settings of the shipped model's card and the DDIM steps x eta table
      pretrained     06-09, 11  loading the shipped weights, samples and tables; the `make weights` commands
      colour         10  photo crops, per-channel scaling, augmentation, the colour U-Net's memorisation study
      diffusers_bridge  09  diffusers' models in our loops, their schedules as ours
    the notebooks' helpers
      profiles       00  COURSE_PROFILE: smoke | cpu | gpu
      viz, widgets   all, 02, 11  plots, grids, animations; the beta_t explorer, the guidance explorer
      exercises      02-04, 08, 10-11  checkers that explain a learner's first difference
"""

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
