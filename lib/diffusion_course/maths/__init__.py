"""Pure maths (chapters 1-14): tensors in, tensors out. Noise schedules, the forward process, the posterior, the losses,
the samplers, the ODE solvers, flow matching (with its exact velocities and its bridge to DDPM), respacing, interpolation,
exact denoisers, classifier-free guidance, editing (SDEdit, inpainting), classifier guidance and the counter-examples.
Imports nothing from the package but the private helpers: no networks, no files, no data.
"""

from .classifier_guidance import ClassifierGuidedModel, ExactMixtureClassifier, classifier_guided_eps, classifier_guided_sample, classifier_log_prob_grad
from .counterexamples import naive_mix_factors, naive_sample, simplified_sample, simplified_step, x0_prediction_loss
from .editing import EDIT_SAMPLERS, SDEDIT_SPACINGS, inpaint, inpaint_calls, inpaint_step, renoise, repaint_schedule, sdedit
from .flow import (
    FLOW_METHODS,
    T_SAMPLINGS,
    check_flow_time,
    flow_euler_step_unchecked,
    flow_matching_loss,
    flow_matching_loss_fn,
    flow_sample,
    flow_sigmas,
    sample_flow_t,
    shift_sigmas,
)
from .flow_oracles import ExactVelocity, GaussianVelocity, gaussian_flow_endpoint, gaussian_flow_loss_minimum, gaussian_flow_point
from .flow_paths import (
    EpsAsVelocity,
    VelocityAsEps,
    ddpm_to_flow_time,
    flow_to_ddpm_scale,
    flow_to_ddpm_time,
    flow_v_from_eps,
    flow_v_from_x0,
    flow_v_from_x0_eps,
    flow_x0_eps_from_v,
)
from .forward import (
    add_noise,
    corrupt,
    predict_eps_from_v,
    predict_eps_from_x0,
    predict_x0_from_eps,
    predict_x0_from_v,
    q_mean_variance,
    q_sample,
    q_step,
    v_from_x0_eps,
)
from .guidance import GuidedModel, guided_eps, guided_eps_unchecked, guided_sample
from .interpolation import INTERPOLATIONS, angle_between, interpolate, lerp, slerp
from .losses import (
    NATS_PER_BIT,
    ConditionalLossFn,
    LossFn,
    approx_standard_normal_cdf,
    check_labels,
    conditional_simple_loss,
    conditional_simple_loss_fn,
    discretized_gaussian_log_likelihood,
    elbo_terms,
    elbo_weight,
    gaussian_log_likelihood,
    l_simple_unchecked,
    mean_flat,
    min_snr_weight,
    normal_kl,
    null_label,
    prior_kl,
    simple_loss,
    simple_loss_fn,
)
from .oracles import ExactDenoiser, GaussianEps
from .posterior import posterior_mean_from_eps, q_posterior
from .respacing import RespacedModel, ddpm_sample_respaced, respaced_schedule
from .samplers import (
    DDIM_SPACINGS,
    DDPM_VARIANCES,
    ddim_invert,
    ddim_sample,
    ddim_step,
    ddim_step_unchecked,
    ddim_timesteps,
    ddpm_sample,
    ddpm_step,
    ddpm_step_unchecked,
)
from .schedules import SCHEDULE_KINDS, NoiseSchedule, cosine_betas, extract, linear_betas, make_betas, quadratic_betas, sigmoid_betas, snr
from .solvers import EDM_SIGMAS, SAMPLER_NAMES, dpm_solver_sample, euler_sample, heun_sample, karras_sigmas, network_calls, sigma_grid

__all__ = [
    "x0_prediction_loss", "naive_mix_factors", "naive_sample", "simplified_step", "simplified_sample", "corrupt", "q_step", "q_sample",
    "add_noise", "q_mean_variance", "predict_x0_from_eps", "predict_eps_from_x0", "v_from_x0_eps", "predict_x0_from_v",
    "predict_eps_from_v", "guided_eps_unchecked", "guided_eps", "GuidedModel", "guided_sample", "lerp", "slerp", "interpolate",
    "INTERPOLATIONS", "angle_between", "l_simple_unchecked", "LossFn", "normal_kl", "approx_standard_normal_cdf",
    "discretized_gaussian_log_likelihood", "gaussian_log_likelihood", "prior_kl", "elbo_terms", "elbo_weight", "simple_loss",
    "min_snr_weight", "mean_flat", "NATS_PER_BIT", "ConditionalLossFn", "null_label", "check_labels", "conditional_simple_loss",
    "conditional_simple_loss_fn", "simple_loss_fn", "GaussianEps", "ExactDenoiser", "q_posterior", "posterior_mean_from_eps",
    "respaced_schedule", "RespacedModel", "ddpm_sample_respaced", "ddpm_step_unchecked", "ddim_step_unchecked", "ddpm_step", "ddim_step",
    "ddpm_sample", "ddim_sample", "ddim_timesteps", "ddim_invert", "DDIM_SPACINGS", "DDPM_VARIANCES", "linear_betas", "cosine_betas",
    "quadratic_betas", "sigmoid_betas", "make_betas", "SCHEDULE_KINDS", "NoiseSchedule", "extract", "snr", "dpm_solver_sample",
    "heun_sample", "euler_sample", "karras_sigmas", "sigma_grid", "network_calls", "EDM_SIGMAS", "SAMPLER_NAMES",
    "flow_matching_loss", "flow_matching_loss_fn", "flow_sample", "flow_sigmas", "flow_euler_step_unchecked", "FLOW_METHODS", "T_SAMPLINGS",
    "sample_flow_t", "shift_sigmas", "check_flow_time", "ExactVelocity", "GaussianVelocity", "gaussian_flow_endpoint", "gaussian_flow_point",
    "gaussian_flow_loss_minimum", "flow_x0_eps_from_v", "flow_v_from_x0_eps", "flow_v_from_x0", "flow_v_from_eps", "ddpm_to_flow_time",
    "flow_to_ddpm_time", "flow_to_ddpm_scale", "EpsAsVelocity", "VelocityAsEps",
    "EDIT_SAMPLERS", "SDEDIT_SPACINGS", "sdedit", "renoise", "inpaint_step", "repaint_schedule", "inpaint_calls", "inpaint",
    "classifier_log_prob_grad", "classifier_guided_eps", "ClassifierGuidedModel", "classifier_guided_sample", "ExactMixtureClassifier",
]
