"""The notebooks' helpers (every chapter): run profiles, plots, the explorers and the exercise checkers; the slides
and the student edition are commands (``python -m diffusion_course.teaching.slides``, ``...teaching.student``).
"""


from .beta_explorer import BetaExplorer, beta_explorer
from .beta_explorer_state import BETA_RANGE, COMPARE_CHOICES, T_RANGE, BetaExplorerState, ScheduleAtT, beta_explorer_state
from .ddim_explorer import DDIMExplorer, ddim_explorer, ddim_view
from .exercises import (
    CheckResult,
    check_channel_scaling,
    check_cross_attention,
    check_ddim_step,
    check_ddim_timesteps,
    check_dpm_solver_step,
    check_ema_update,
    check_flow_matching_loss,
    check_guidance,
    check_inpaint_step,
    check_posterior_mean,
    check_q_sample,
    check_resblock,
    check_reverse_step,
    check_sampling_loop,
    check_training_step,
)
from .guidance_explorer import W_RANGE, GuidanceExplorer, guidance_explorer, guided_grid
from .profiles import PROFILES, active_profile, active_sizes, describe, device, pick
from .solver_explorer import SOLVER_LABELS, SolverExplorer, solver_explorer, solver_view, steps_for_calls
from .unet_diagram import unet_diagram
from .viz import (
    animate_images,
    animate_points,
    generative_models_schematic,
    image_grid,
    plot_curve,
    plot_heatmap,
    plot_trajectories,
    scatter_2d,
    scatter_panels,
    show_image_rows,
    show_images,
)

__all__ = [
    "PROFILES", "active_profile", "active_sizes", "pick", "device", "describe", "image_grid", "show_images", "scatter_2d", "plot_trajectories",
    "animate_points", "animate_images", "plot_curve", "show_image_rows", "scatter_panels", "plot_heatmap", "generative_models_schematic",
    "BetaExplorer", "beta_explorer", "beta_explorer_state", "BetaExplorerState", "ScheduleAtT", "T_RANGE", "BETA_RANGE", "COMPARE_CHOICES",
    "DDIMExplorer", "ddim_explorer", "ddim_view", "W_RANGE", "GuidanceExplorer", "guidance_explorer", "guided_grid", "CheckResult",
    "check_q_sample", "check_posterior_mean", "check_reverse_step", "check_ddim_step", "check_channel_scaling", "check_guidance",
    "check_ema_update", "check_ddim_timesteps", "check_training_step", "check_sampling_loop", "check_resblock",
    "SOLVER_LABELS", "SolverExplorer", "solver_explorer", "solver_view", "steps_for_calls", "check_dpm_solver_step",
    "check_flow_matching_loss", "check_inpaint_step", "check_cross_attention", "unet_diagram",
]
