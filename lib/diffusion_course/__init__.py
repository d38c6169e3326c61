"""diffusion_course: the maths and training code behind the notebooks of "Diffusion from Scratch".

Learners import every name from here (``from diffusion_course import ddim_sample, EMA, load_pretrained_unet``); each
name is looked up in its group on first use, so ``import diffusion_course`` alone loads nothing heavy. Papers: Ho et al.
2020 (DDPM), Song et al. 2021 (DDIM), Nichol & Dhariwal 2021 (improved DDPM), Ho & Salimans 2022 (guidance).

Groups, from the bottom up: a module imports from its own group and from the groups listed before its own, never
from a later one, and the imports form no cycle (tests/test_layout.py checks both, counting every import, and that
this map lists exactly the modules on disk). Where the next chapters' code goes: flow matching in ``maths`` beside the
ODE solvers (pure maths on a model callable), an autoencoder in ``models``, its training in ``training``.
Module map, one line per module (chapters; what it holds):

    _internal                    -        private helpers of the whole package (not for the notebooks); import nothing from it
      _internal.validate         -        argument checks: every error names the argument and its allowed range
      _internal.types            -        the EpsModel type: model(x_t, t) -> eps_hat
      _internal.devices          -        the one device rule: COURSE_DEVICE, else CUDA, MPS, CPU; float64 stays on the CPU
      _internal.noise            -        noise drawn on the generator's device; the samplers' starting x_T
      _internal.progress         -        the one progress bar: plain text (tqdm.std), stored as text in a saved notebook
    maths                        01-13    tensors in, tensors out: no networks, no files, no data
      maths.schedules            02       beta schedules (linear, cosine, ...), NoiseSchedule (alpha, alpha_bar, posterior coefficients), SNR
      maths.forward              01-02    corrupt, q(x_t | x_{t-1}) (Ho eq. 2), q_sample and add_noise (Ho eq. 4), x0 / eps / v conversions (Ho eq. 15)
      maths.posterior            03       q(x_{t-1} | x_t, x_0): tilde-mu and tilde-beta (Ho eqs. 6-7), the mean from eps_hat (Ho eq. 11)
      maths.losses               03-11    Gaussian KL, discretised decoder (Ho eq. 13), ELBO terms (Ho eq. 5), L_simple (Ho eq. 14) and its conditional form
      maths.samplers             03-08    DDPM step and loop (Ho Algorithm 2), DDIM step and loop (Song eq. 12, sigma(eta) eq. 16), spacings, inversion
      maths.solvers              12       fast ODE samplers: DPM-Solver++ (1-3M), Heun and Euler with Karras sigmas (Karras Algorithms 1-2), network calls
      maths.flow                 13       flow matching on the straight path: the loss (Lipman et al. 2023), Euler / Heun sampling, SD3's t-sampling and shift
      maths.flow_oracles         13       exact velocities of the straight path: a finite data set (ExactDenoiser's twin), Gaussian data, its loss minimum
      maths.flow_paths           13       v / x0 / eps on the straight path; DDPM <-> flow time and scale; an eps-model as a velocity and back
      maths.respacing            08       DDPM on kept timesteps (Nichol & Dhariwal section 4; the sigma-hat row of Song's Table 1)
      maths.interpolation        08       lerp and slerp between noises x_T
      maths.oracles              03,08    exact noise predictors of Gaussian and finite data (no training)
      maths.guidance             11       classifier-free guidance (Ho & Salimans eq. 6): the guided eps, GuidedModel, guided sampling
      maths.editing              14       SDEdit (Meng et al. 2022), inpainting by replacement with RePaint's resampling and jumps (Lugmayr et al. 2022)
      maths.classifier_guidance  14       classifier guidance (Dhariwal & Nichol Algorithm 2): grad log p(y | x_t), the guided eps and sampler, a Bayes oracle
      maths.counterexamples      01,04    chapter 1's x0-predicting warm-up and naive sampler; chapter 4's wrong reverse step that collapses
    data                         01-11    every data set offline, and where the shipped files live
      data.locations             01-11    the data folder (DIFFUSION_COURSE_DATA, the source tree, an installed copy); finding a shipped file
      data.sets                  01-11    2-D sets, 8x8 digits, MNIST and Fashion-MNIST with the offline MNIST fallback
      data.encoding              06-11    images as uint8 and back (the shipped sample files)
      data.photos                10       scikit-learn's photos as crops, per-channel scaling to [-1, 1], random crops and flips
    models                       01-13    the networks
      models.embeddings          04       sinusoidal timestep embedding (Vaswani et al. 2017, as used by Ho et al. Appendix B)
      models.mlp                 04       eps_theta(x_t, t) for 2-D points: an MLP with the time embedding
      models.basic_unet          01       BasicUNet: chapter 1's x0-predictor, no time input
      models.unet                05-15    UNet (Ho Appendix B; scale-shift, attention, labels added or by cross-attention)
      models.sizes               05       conv / pool / transposed-conv output sizes and a convolution's parameter count
      models.flow_time           13       FlowTime: a U-Net of integer timesteps called on flow matching's t in [0, 1]
      models.autoencoder         15       KLAutoencoder (28x28 -> 4x7x7), its Gaussian KL and loss: latent diffusion's first stage
      models.cross_attention     15       cross-attention to context tokens with diffusers' parameter names; labels as tokens
      models.latent              15       latent_sample: DDIM (with guidance) in the latent, then decode
      models.classifier          06       the MNIST classifier network whose features score samples
      models.noisy_classifier    14       p(y | x_t, t): a classifier of noised digits with the time embedding; a clean classifier called as (x_t, t)
      models.diffusers_bridge    09       diffusers' models in our loops, their schedules as ours
    training                     01-11    one loop for every model; never imports scoring or weights
      training.loop              01-11    the loop (Ho Algorithm 1): clipping, EMA, LR schedule, checkpoints, exact resume, labels, NaN guard
      training.ema               07       exponential moving average of the weights, with warm-up; decay as a half-life
      training.checkpoints       04-11    atomic training checkpoints (resume); safetensors weights with a JSON card
      training.classifier        06       training the MNIST classifier (shifted digits) and its accuracy
      training.augmented         10       the augmented loss: fresh random crops and flips of whole photo regions every batch
      training.noisy_classifier  14       training the noisy classifier (uniform t, q(x_t | x_0)) and any classifier's accuracy by t
      training.distributed       06-11    the loop on several processes (torchrun; gloo / NCCL): each its rows of a batch, gradients summed, files on rank 0
    scoring                      04-11    how good samples are, measured against real data
      scoring.distances          04-10    distances between sample sets: sliced Wasserstein, MMD, Frechet (FID's formula), nearest-neighbour
      scoring.reference          06-11    the yardstick's classifier, loaded from its shipped file
      scoring.quality            04-11    scoring against real data: classifier features, floors, MNIST quality reports, the 2-D floor
      scoring.comparisons        06-08    sampler settings of the shipped model's card; the DDIM steps x eta table (Song Table 1)
      scoring.guidance_report    11       guided samples read by the classifier: accuracy, confidence, per-class quality
      scoring.memorisation       10       nearest-training-crop distances of samples beside held-out crops; the copying table
    weights                      05-13    the shipped files and the commands that make them
      weights.shipped            05-11    loading the shipped U-Nets, samples and tables with their cards (loading only)
      weights.provenance         06-11    the command, commit, device and time written into every card
      weights.make_mnist         06-08    make weights: the classifier, its floors, the MNIST U-Net, its card and the DDIM table
      weights.make_flow          13       make weights: the flow-matching U-Net
      weights.make_editing       14       make weights: the noise-aware classifier, its accuracy by t and the classifier-guidance sweep
      weights.make_guidance      11       make weights: the conditional U-Net and its guidance sweep
      weights.goals              06,12    the MNIST U-Net's goals from its card: met, short by how much, and what limits them
      weights.make_latent        15       make weights: the autoencoder, its latent scale factor and the latent U-Net
      weights.colour_study       10       make weights: the colour U-Nets and the copying study on 8 to 64 crops
      weights.make               06-11    the command line of make weights: python -m diffusion_course.weights.make
    teaching                     00-11    the notebooks' helpers
      teaching.profiles          00-11    COURSE_PROFILE: smoke | cpu | gpu, and the sizes each picks
      teaching.viz               01-11    plots, image grids, animations (every figure titled, axes labelled)
      teaching.unet_diagram      05       a U-Net drawn as a U from one forward pass: every block's output shape, the skips
      teaching.explorer_display  02,08,11 showing an explorer in a notebook; images as PNG bytes
      teaching.beta_explorer     02       the beta_t explorer's controls and wiring
      teaching.beta_explorer_state 02     the beta_t explorer's numbers: a pure function of its settings (tested against formulas)
      teaching.beta_explorer_figure 02    the beta_t explorer's figure: panels drawn from the state, partial redraws
      teaching.ddim_explorer     08       the DDIM explorer
      teaching.guidance_explorer 11       the guidance explorer and the grid it shows
      teaching.solver_explorer   12       the fast-solver explorer: DDIM, DPM-Solver++(2M), Heun or Euler at a chosen number of network calls
      teaching.slide_rule        all      the slide type of every notebook cell (RISE / reveal.js) and tagging the files with it
      teaching.slides_export     all      the offline reveal.js export: widget snapshots, vendored assets, no remote references
      teaching.slides            all      the slides' command line: tag | export (make slides, make tidy)
      teaching.student           all      the student edition: solutions stripped (make student)
      teaching.exercises         00-11    checkers that explain a learner's first difference (package)
      teaching.exercises._engine -        the probes, comparison and diagnosis shared by the exercise checkers
      teaching.exercises._diagnosis -     the coefficient measurement and the catalogue of known slips (the linear exercises' specs, tolerances, error hints)
      teaching.exercises.channel_scaling 10  per-channel scaling to [-1, 1] and back
      teaching.exercises.ddim_step 08     one DDIM step (Song eq. 12)
      teaching.exercises.ddim_timesteps 08  the kept timesteps of a DDIM sampler
      teaching.exercises.dpm_solver_step 12  one DPM-Solver++(2M) update (Lu Algorithm 2)
      teaching.exercises.ema_update 07    one EMA update
      teaching.exercises.flow_loss 13     the flow-matching loss on the straight path (Lipman et al. 2023), target eps - x0
      teaching.exercises.guidance 11      classifier-free guidance (Ho & Salimans eq. 6)
      teaching.exercises.inpaint_step 14  one replacement-inpainting step (Lugmayr et al. eq. 8a-8c)
      teaching.exercises.cross_attention 15  the attention of a cross-attention layer, softmax(q k^T / sqrt(d)) v
      teaching.exercises.posterior_mean 03  the mean of q(x_{t-1} | x_t, x_0) (Ho eq. 7)
      teaching.exercises.q_sample 02      q_sample (Ho eq. 4)
      teaching.exercises.resblock 05      a time-conditioned residual block's forward pass
      teaching.exercises.reverse_step 03-04  one DDPM reverse step (Ho Algorithm 2, line 4)
      teaching.exercises.sampling_loop 04  the whole DDPM sampling loop (Ho Algorithm 2)
      teaching.exercises.training_step 04  one DDPM training step (Ho Algorithm 1)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Every public name of the groups -> the group that holds it (tests/test_layout.py checks this table against the
# groups' __all__, so a name added to a group is importable from here).
_EXPORTS: dict[str, str] = {
    "flow_matching_loss": "maths", "flow_matching_loss_fn": "maths", "flow_sample": "maths", "flow_sigmas": "maths",
    "flow_euler_step_unchecked": "maths", "FLOW_METHODS": "maths", "T_SAMPLINGS": "maths", "sample_flow_t": "maths", "shift_sigmas": "maths",
    "check_flow_time": "maths", "ExactVelocity": "maths", "GaussianVelocity": "maths", "gaussian_flow_endpoint": "maths", "gaussian_flow_point": "maths",
    "gaussian_flow_loss_minimum": "maths", "flow_x0_eps_from_v": "maths", "flow_v_from_x0_eps": "maths", "flow_v_from_x0": "maths",
    "flow_v_from_eps": "maths", "ddpm_to_flow_time": "maths", "flow_to_ddpm_time": "maths", "flow_to_ddpm_scale": "maths",
    "EpsAsVelocity": "maths", "VelocityAsEps": "maths",
    "FlowTime": "models", "FLOW_TIME_SCALE": "models", "AutoencoderConfig": "models", "KLAutoencoder": "models", "autoencoder_loss": "models",
    "autoencoder_loss_fn": "models", "gaussian_kl": "models", "CrossAttention": "models", "CrossAttentionBlock": "models", "LabelTokens": "models",
    "LABEL_CONDITIONINGS": "models", "latent_sample": "models", "decode_latents": "models",
    "AUTOENCODER_FILE": "weights", "AUTOENCODER_CONFIG": "weights", "LATENT_UNET_FILE": "weights", "LATENT_UNET_RAW_FILE": "weights",
    "LATENT_UNET_CONFIG": "weights", "load_pretrained_autoencoder": "weights", "load_pretrained_latent_unet": "weights",
    "LATENT_SAMPLES_FILE": "weights", "load_latent_samples": "weights",
    "encode_posterior": "weights", "latent_scale_factor": "weights", "latent_loss_fn": "weights", "paired_mean_difference": "scoring",
    "EDIT_SAMPLERS": "maths", "SDEDIT_SPACINGS": "maths", "sdedit": "maths", "renoise": "maths", "inpaint_step": "maths",
    "repaint_schedule": "maths", "inpaint_calls": "maths", "inpaint": "maths", "classifier_log_prob_grad": "maths",
    "classifier_guided_eps": "maths", "ClassifierGuidedModel": "maths", "classifier_guided_sample": "maths", "ExactMixtureClassifier": "maths",
    "NoisyClassifierConfig": "models", "NoisyClassifier": "models", "TimeIgnoring": "models",
    "x0_prediction_loss": "maths", "naive_mix_factors": "maths", "naive_sample": "maths", "simplified_step": "maths", "simplified_sample": "maths",
    "corrupt": "maths", "q_step": "maths", "q_sample": "maths", "add_noise": "maths", "q_mean_variance": "maths", "predict_x0_from_eps": "maths",
    "predict_eps_from_x0": "maths", "v_from_x0_eps": "maths", "predict_x0_from_v": "maths", "predict_eps_from_v": "maths",
    "guided_eps_unchecked": "maths", "guided_eps": "maths", "GuidedModel": "maths", "guided_sample": "maths", "lerp": "maths", "slerp": "maths",
    "interpolate": "maths", "INTERPOLATIONS": "maths", "angle_between": "maths", "l_simple_unchecked": "maths", "LossFn": "maths",
    "normal_kl": "maths", "approx_standard_normal_cdf": "maths", "discretized_gaussian_log_likelihood": "maths", "gaussian_log_likelihood": "maths",
    "prior_kl": "maths", "elbo_terms": "maths", "elbo_weight": "maths", "simple_loss": "maths", "min_snr_weight": "maths", "mean_flat": "maths",
    "NATS_PER_BIT": "maths", "ConditionalLossFn": "maths", "null_label": "maths", "check_labels": "maths", "conditional_simple_loss": "maths",
    "conditional_simple_loss_fn": "maths", "simple_loss_fn": "maths", "GaussianEps": "maths", "ExactDenoiser": "maths", "q_posterior": "maths",
    "posterior_mean_from_eps": "maths", "respaced_schedule": "maths", "RespacedModel": "maths", "ddpm_sample_respaced": "maths",
    "ddpm_step_unchecked": "maths", "ddim_step_unchecked": "maths", "ddpm_step": "maths", "ddim_step": "maths", "ddpm_sample": "maths",
    "ddim_sample": "maths", "ddim_timesteps": "maths", "ddim_invert": "maths", "DDIM_SPACINGS": "maths", "DDPM_VARIANCES": "maths",
    "linear_betas": "maths", "cosine_betas": "maths", "quadratic_betas": "maths", "sigmoid_betas": "maths", "make_betas": "maths",
    "SCHEDULE_KINDS": "maths", "NoiseSchedule": "maths", "extract": "maths", "snr": "maths",
    "dpm_solver_sample": "maths", "heun_sample": "maths", "euler_sample": "maths", "karras_sigmas": "maths", "sigma_grid": "maths",
    "network_calls": "maths", "EDM_SIGMAS": "maths", "SAMPLER_NAMES": "maths",
    "to_uint8": "data", "from_uint8": "data", "DATA_DIR": "data", "SHIPPED_MARKER": "data", "find_data_dir": "data", "find_shipped": "data",
    "PHOTO_NAMES": "data", "CropSet": "data", "load_photos": "data", "grid_crops": "data", "make_crops": "data", "channel_stats": "data",
    "channel_range": "data", "scale_per_channel": "data", "unscale_per_channel": "data", "to_display": "data", "crop_and_flip": "data",
    "random_crops": "data", "dense_reference": "data", "RandomCropSet": "data", "crops_overlap": "data", "random_crop_sets": "data",
    "TOY_2D": "data", "toy_2d": "data", "swiss_roll": "data", "moons": "data", "rings": "data",
    "gaussian_mixture": "data", "digits": "data", "MNIST_SOURCES": "data", "mnist": "data", "fashion_mnist": "data",
    "ClassifierConfig": "models", "MNISTClassifier": "models", "DiffusersEps": "models", "DIFFUSERS_BETA_SCHEDULES": "models",
    "diffusers_schedule_config": "models", "schedule_from_diffusers": "models", "sinusoidal_embedding": "models", "SinusoidalEmbedding": "models",
    "MLPConfig": "models", "MLPDenoiser": "models", "MLPBlock": "models", "conv2d_output_size": "models", "conv_transpose2d_output_size": "models",
    "conv2d_parameter_count": "models", "BasicUNet": "models", "UNetConfig": "models", "UNet": "models", "ResBlock": "models",
    "SelfAttention": "models", "Downsample": "models", "Upsample": "models", "TIME_CONDITIONINGS": "models",
    "augmented_loss": "training", "CheckpointError": "training", "atomic_save": "training", "load_checkpoint": "training",
    "architecture_of": "training", "save_weights": "training", "load_weights": "training", "read_card": "training", "replace_atomically": "training",
    "random_shift": "training", "accuracy": "training", "train_classifier": "training", "EMA": "training", "ema_decay_at": "training",
    "decay_half_life": "training", "TrainConfig": "training", "TrainResult": "training", "train": "training", "training_loop": "training",
    "StepHook": "training",
    "init_distributed": "training", "is_main_process": "training", "process_rank": "training", "process_count": "training",
    "main_process_first": "training", "BatchSplit": "training", "batch_split": "training", "ShardedModel": "training",
    "train_noisy_classifier": "training", "noisy_accuracy_by_t": "training",
    "TableCell": "scoring", "QualityTable": "scoring", "ddim_table": "scoring", "sample_in_batches": "scoring", "SIGMA_HAT": "scoring",
    "SamplerSetting": "scoring", "CARD_SETTINGS": "scoring", "table_settings": "scoring", "sample_setting": "scoring",
    "calls_settings": "scoring", "CALLS_BUDGETS": "scoring", "CALLS_SAMPLERS": "scoring", "HEUN_CHURN": "scoring",
    "sliced_wasserstein": "scoring", "mmd_rbf": "scoring", "frechet_distance": "scoring", "gaussian_frechet_distance": "scoring",
    "nearest_train_distances": "scoring", "polynomial_kernel": "scoring", "kernel_distance": "scoring", "KernelDistance": "scoring",
    "kernel_distance_interval": "scoring", "paired_kernel_distance_difference": "scoring", "guidance_report": "scoring",
    "distance_summary": "scoring", "memorisation_row": "scoring", "median_ratio_interval": "scoring", "near_copy_share": "scoring",
    "copying_row": "scoring", "QualityReport": "scoring", "quality_report": "scoring",
    "classifier_outputs": "scoring", "floor_draws": "scoring", "frechet_floor": "scoring", "floor_table": "scoring",
    "toy_2d_reference_and_floor": "scoring", "FLOOR_DRAWS": "scoring", "MIN_SAMPLES_PER_FEATURE": "scoring", "CONFIDENT": "scoring",
    "REFERENCE_SET": "scoring", "reference_splits": "scoring", "compare_paired": "scoring", "compare_unpaired": "scoring",
    "unpaired_kernel_distance_difference": "scoring", "unpaired_mean_difference": "scoring", "kid_features": "scoring", "KID_RESAMPLES": "scoring",
    "CLASSIFIER_FILE": "scoring", "load_classifier": "scoring", "shipped_classifier": "scoring",
    "COLOUR_UNET_FILE": "weights", "COLOUR_FIXED_FILE": "weights", "COLOUR_TINY_SAMPLES_FILE": "weights", "COLOUR_UNET_CONFIG": "weights",
    "TINY_UNET_CONFIG": "weights", "load_colour_unet": "weights", "load_tiny_samples": "weights", "UNET_EMA_FILE": "weights",
    "UNET_RAW_FILE": "weights", "SHIPPED_UNET_CONFIG": "weights", "load_pretrained_unet": "weights", "schedule_from_card": "weights",
    "load_card_samples": "weights", "load_ddim_table": "weights", "SAMPLES_FILE": "weights", "TABLE_FILE": "weights", "COND_UNET_FILE": "weights",
    "COND_SAMPLES_FILE": "weights", "GUIDANCE_SCALES": "weights", "load_pretrained_cond_unet": "weights", "load_guidance_samples": "weights",
    "FLOW_EMA_FILE": "weights", "FLOW_RAW_FILE": "weights", "FLOW_SAMPLES_FILE": "weights", "load_pretrained_flow_unet": "weights",
    "load_flow_samples": "weights", "CALLS_TABLE_FILE": "weights", "load_calls_table": "weights",
    "NOISY_CLASSIFIER_FILE": "weights", "CG_SAMPLES_FILE": "weights", "load_noisy_classifier": "weights",
    "load_classifier_guidance_samples": "weights", "CG_SETTINGS": "weights", "CG_PAIRS": "weights", "ACCURACY_TS": "weights",
    "classifier_guidance_paired_differences": "weights",
    "StudySettings": "weights", "memorisation_study": "weights", "train_colour_cmd": "weights", "COPYING_FILE": "weights",
    "CopyingSettings": "weights", "copying_study": "weights", "load_copying_study": "weights",
    "PROFILES": "teaching", "active_profile": "teaching", "active_sizes": "teaching",
    "pick": "teaching", "device": "teaching", "describe": "teaching", "image_grid": "teaching",
    "show_images": "teaching", "scatter_2d": "teaching", "plot_trajectories": "teaching", "animate_points": "teaching", "animate_images": "teaching",
    "plot_curve": "teaching", "show_image_rows": "teaching", "scatter_panels": "teaching", "plot_heatmap": "teaching",
    "generative_models_schematic": "teaching", "BetaExplorer": "teaching", "beta_explorer": "teaching", "beta_explorer_state": "teaching",
    "BetaExplorerState": "teaching", "ScheduleAtT": "teaching", "T_RANGE": "teaching", "BETA_RANGE": "teaching", "COMPARE_CHOICES": "teaching",
    "DDIMExplorer": "teaching", "ddim_explorer": "teaching", "ddim_view": "teaching", "W_RANGE": "teaching", "GuidanceExplorer": "teaching",
    "guidance_explorer": "teaching", "guided_grid": "teaching", "CheckResult": "teaching", "check_q_sample": "teaching",
    "check_posterior_mean": "teaching", "check_reverse_step": "teaching", "check_ddim_step": "teaching", "check_channel_scaling": "teaching",
    "check_guidance": "teaching", "check_ema_update": "teaching", "check_ddim_timesteps": "teaching", "check_training_step": "teaching",
    "check_sampling_loop": "teaching", "check_resblock": "teaching",
    "SOLVER_LABELS": "teaching", "SolverExplorer": "teaching", "solver_explorer": "teaching", "solver_view": "teaching",
    "steps_for_calls": "teaching", "check_dpm_solver_step": "teaching", "check_flow_matching_loss": "teaching",
    "check_inpaint_step": "teaching", "check_cross_attention": "teaching", "unet_diagram": "teaching",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    """The public names of the groups, imported from their group on first use (PEP 562)."""
    group = _EXPORTS.get(name)
    if group is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{group}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
