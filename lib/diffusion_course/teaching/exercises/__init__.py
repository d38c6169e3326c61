"""Checkers for the exercises: run a learner's function against the lib and explain the first difference in words.

Each checker calls the learner's function on random inputs (2-D points and 4-D images, several timesteps including
0 and T-1, two schedules, a seeded generator), compares with the lib, and prints one report:

- "correct", with what was tested;
- "not written yet" for a stub (raises NotImplementedError, or returns None / Ellipsis); the notebook keeps running;
- otherwise the first difference (which case, which element, expected vs got), then a term-by-term diagnosis: every
  function checked here is, at a fixed timestep, a linear combination of its tensor inputs, so the checker measures
  each coefficient (by feeding a one in that input and zeros in the others) and compares it with the right one and with
  known wrong ones: a variance where the standard deviation belongs, alpha where alpha_bar belongs, an off-by-one t,
  a missing square root, noise added at t = 0, a flipped sign, swapped arguments.

Learner signatures (t and t_prev are LongTensors of shape (B,), one timestep per example, code index 0..T-1):

====================  ===============================================  ==================================================
checker               your function                                    returns
====================  ===============================================  ==================================================
check_q_sample        fn(schedule, x0, t, eps)                         x_t (Ho et al. 2020, eq. 4)
check_posterior_mean  fn(schedule, x0, x_t, t)                         tilde-mu_t (Ho et al. 2020, eq. 7)
check_reverse_step    fn(schedule, x_t, t, eps_hat, z)                 x_{t-1} (Ho et al. 2020, Algorithm 2, line 4)
check_ddim_step       fn(schedule, x_t, t, t_prev, eps_hat, eta, z)    x_{t_prev} (Song et al. 2021, eq. 12)
check_channel_scaling fn(x, lo, hi), fn(y, lo, hi)                       per-channel scaling to [-1, 1] and back (chapter 10)
check_guidance        fn(eps_cond, eps_uncond, w)                      (1 + w) eps_cond - w eps_uncond (Ho & Salimans 2022, eq. 6)
check_training_step   fn(model, schedule, x0, generator)               the L_simple loss of one step (Ho et al. 2020, Algorithm 1; chapter 4)
check_sampling_loop   fn(model, schedule, shape, generator)            x_0 after T reverse steps (Ho et al. 2020, Algorithm 2; chapter 4)
check_resblock        block_cls(in_ch, out_ch, temb_dim, groups, ...)  a time-conditioned residual block's forward(x, temb) (chapter 5)
check_ema_update      fn(shadow, model, decay, num_updates)            the in-place EMA update with the lib's warm-up (chapter 7)
check_ddim_timesteps  fn(T, S, spacing)                                the kept timesteps, for four spacings (chapter 8)
check_dpm_solver_step fn(schedule, x_t, t, t_prev, x0_hat, t_last,      x_{t_prev}, one DPM-Solver++(2M) update (Lu et al. 2022,
                         x0_hat_last)                                  Algorithm 2; chapter 12)
check_flow_matching_loss fn(model, x0, generator)                      the flow-matching loss on x_t = (1 - t) x0 + t eps, target
                                                                       eps - x0 (Lipman et al. 2023; chapter 13)
check_inpaint_step    fn(schedule, x_t, t, eps_hat, known, mask, z,    x_{t-1}, one replacement-inpainting step: DDPM's step where
                         z_known)                                      mask == 0, q(x_{t-1} | known) where mask == 1 (Lugmayr et
                                                                       al. 2022, eq. 8a-8c; chapter 14)
check_cross_attention fn(q, k, v)                                      softmax(q k^T / sqrt(d)) v, the attention of a cross-
                                                                       attention layer (Vaswani et al. 2017, eq. 1; chapter 15)
====================  ===============================================  ==================================================

Each checker returns a :class:`CheckResult`, true when the function is correct.

Layout: ``_engine`` holds the probes, the comparison and the diagnosis shared by the linear exercises; each exercise has
its own module (``q_sample`` chapter 2, ``posterior_mean`` and ``reverse_step`` chapter 3, ``training_step`` and
``sampling_loop`` chapter 4, ``resblock`` chapter 5, ``ema_update`` chapter 7, ``ddim_step`` and ``ddim_timesteps``
chapter 8, ``channel_scaling`` chapter 10, ``guidance`` chapter 11, ``dpm_solver_step`` chapter 12, ``flow_loss`` chapter 13,
``inpaint_step`` chapter 14, ``cross_attention`` chapter 15), and this package re-exports every ``check_*``.
The last six compare against the lib with checks of their own (a reference run on a seeded generator, then a catalogue
of known slips), as ``channel_scaling`` and ``guidance`` do.
"""

from ._engine import CheckResult
from .channel_scaling import check_channel_scaling
from .cross_attention import check_cross_attention
from .ddim_step import check_ddim_step
from .ddim_timesteps import check_ddim_timesteps
from .dpm_solver_step import check_dpm_solver_step
from .ema_update import check_ema_update
from .flow_loss import check_flow_matching_loss
from .guidance import check_guidance
from .inpaint_step import check_inpaint_step
from .posterior_mean import check_posterior_mean
from .q_sample import check_q_sample
from .resblock import check_resblock
from .reverse_step import check_reverse_step
from .sampling_loop import check_sampling_loop
from .training_step import check_training_step

__all__ = ["CheckResult", "check_q_sample", "check_posterior_mean", "check_reverse_step", "check_ddim_step",
           "check_channel_scaling", "check_guidance"]
__all__ += ["check_ema_update", "check_ddim_timesteps"]
__all__ += ["check_training_step", "check_sampling_loop", "check_resblock"]
__all__ += ["check_dpm_solver_step"]
__all__ += ["check_flow_matching_loss"]
__all__ += ["check_inpaint_step"]
__all__ += ["check_cross_attention"]
