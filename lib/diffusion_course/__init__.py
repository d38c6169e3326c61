"""diffusion_course: the maths and training code behind the notebooks of "Diffusion from Scratch".

Module map, one line per module (chapters that teach it; what it holds). Papers: Ho et al. 2020 (DDPM), Song et al.
2021 (DDIM), Nichol & Dhariwal 2021 (improved DDPM), Ho & Salimans 2022 (classifier-free guidance). The imports
between these modules form no cycle, and the pure-maths group imports nothing from the groups below it
(tests/test_layout.py checks both, and that this list matches the files).

    pure maths: tensors in, tensors out; no networks, no files, nothing from models, train, data, pretrained or quality
      schedules                  02       beta schedules (linear, cosine, ...), NoiseSchedule (alpha, alpha_bar, posterior coefficients), SNR
      forward                    01-02    corrupt, q(x_t | x_{t-1}) (Ho eq. 2), q_sample and add_noise (Ho eq. 4), x0 / eps / v conversions (Ho eq. 15)
      posterior                  03       q(x_{t-1} | x_t, x_0): tilde-mu and tilde-beta (Ho eqs. 6-7), the mean from eps_hat (Ho eq. 11)
      losses                     03-07    Gaussian KL, discretised decoder (Ho eq. 13), ELBO terms (Ho eq. 5), L_simple (Ho eq. 14), min-SNR weights
      samplers                   03-08    DDPM step and loop (Ho Algorithm 2), DDIM step and loop (Song eq. 12, sigma(eta) eq. 16), spacings, inversion
      respacing                  08       DDPM on kept timesteps (Nichol & Dhariwal section 4; the sigma-hat row of Song's Table 1)
      interpolation              08       lerp and slerp between noises x_T
      oracles                    03,08    exact noise predictors of Gaussian and finite data (no training)
      metrics                    04-10    distances between sample sets: sliced Wasserstein, MMD, Frechet (FID's formula), nearest-neighbour
      counterexamples            01,04    chapter 1's x0-predicting warm-up and naive sampler; chapter 4's "simplified" reverse step that collapses
      corruption                 01       old name: re-exports chapter 1's warm-up from counterexamples
      simplified                 04       old name: re-exports the simplified step from counterexamples
    models and training
      models                     01-11    the networks (package): time embedding, 2-D MLP, BasicUNet and the time-conditioned UNet
      models.embeddings          04       sinusoidal timestep embedding (Vaswani et al. 2017, as used by Ho et al. Appendix B)
      models.mlp                 04       eps_theta(x_t, t) for 2-D points: an MLP with the time embedding
      models.unet                01,05    BasicUNet (chapter 1's x0-predictor) and UNet (Ho Appendix B; scale-shift, attention, labels)
      ema                        07       exponential moving average of the weights, with warm-up; decay as a half-life
      checkpoints                04-11    atomic training checkpoints (resume); safetensors weights with a JSON card
      train                      01-11    one loop for every model (Ho Algorithm 1): clipping, EMA, LR schedule, checkpoints, resume, labels
      guidance                   11       label dropout, classifier-free guidance (Ho & Salimans eq. 6), guided samplers, the guidance report
      diffusers_bridge           09       diffusers' models in our loops, their schedules as ours
    data, scores, shipped files
      data                       01-11    2-D sets, 8x8 digits, MNIST with its offline fallback
      classifier                 06       the MNIST classifier whose features score samples
      pretrained                 05-11    loading the shipped weights, samples and tables (loading only)
      quality                    04-11    scoring against real data: classifier features, floors, MNIST quality reports, the 2-D floor
      evaluation                 06-08    sampler settings of the shipped model's card; the DDIM steps x eta table (Song Table 1)
      make_weights               06-11    the commands of `make weights` (python -m diffusion_course.make_weights): train, score, write cards
      colour                     10       photo crops, per-channel scaling, augmentation, the colour U-Net's memorisation study
    the notebooks' helpers
      profiles                   00-11    COURSE_PROFILE: smoke | cpu | gpu, and the sizes each picks
      viz                        01-11    plots, image grids, animations (every figure titled, axes labelled)
      widgets                    02,08,11 the beta_t explorer, the DDIM explorer, the guidance explorer
      slides                     all      slide types for every notebook cell and the offline reveal.js export (make slides)
      student                    all      the student edition: solutions stripped (make student)
      exercises                  00-11    checkers that explain a learner's first difference (package)
      exercises.channel_scaling  10       per-channel scaling to [-1, 1] and back
      exercises.ddim_step        08       one DDIM step (Song eq. 12)
      exercises.ddim_timesteps   08       the kept timesteps of a DDIM sampler
      exercises.ema_update       07       one EMA update
      exercises.guidance         11       classifier-free guidance (Ho & Salimans eq. 6)
      exercises.posterior_mean   03       the mean of q(x_{t-1} | x_t, x_0) (Ho eq. 7)
      exercises.q_sample         02       q_sample (Ho eq. 4)
      exercises.resblock         05       a time-conditioned residual block's forward pass
      exercises.reverse_step     03-04    one DDPM reverse step (Ho Algorithm 2, line 4)
      exercises.sampling_loop    04       the whole DDPM sampling loop (Ho Algorithm 2)
      exercises.training_step    04       one DDPM training step (Ho Algorithm 1)
    private helpers (not for the notebooks)
      _validate                  -        argument checks: every error names the argument and its allowed range
      _types                     -        the EpsModel type: model(x_t, t) -> eps_hat
      _noise                     -        noise drawn on the generator's device; the samplers' starting x_T
      _progress                  -        the one progress bar: plain text (tqdm.std), stored as text in a saved notebook
      _provenance                -        the git commit and tree state written into every card
      exercises._engine          -        the probes, comparison and diagnosis shared by the exercise checkers
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
