"""diffusers as a reference implementation: schedules, add_noise, DDPMScheduler.step and DDIMScheduler.step
(single steps and whole loops) against ours. Schedulers are built directly from their config: no network needed.

diffusers' timestep index is 0-based like ours (its t = 999 is alpha_bar_T). diffusers computes in float32 and we
in float64 (then store float32), so the comparisons allow ~1e-5 relative error."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler

from diffusion_course.maths.forward import add_noise, q_sample
from diffusion_course.maths.samplers import ddim_sample, ddim_step, ddim_timesteps, ddpm_sample, ddpm_step
from diffusion_course.maths.schedules import NoiseSchedule, cosine_betas, linear_betas, quadratic_betas, sigmoid_betas

pytestmark = pytest.mark.usefixtures("one_thread")

T = 1000
RTOL, ATOL = 1e-5, 1e-5


def _ddpm(beta_schedule: str = "linear", **kw) -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule=beta_schedule, **kw)


def _in_float64(ref: DDPMScheduler | DDIMScheduler) -> DDPMScheduler | DDIMScheduler:
    """The same diffusers scheduler with its linear tables recomputed in float64.

    diffusers keeps alphas_cumprod in float32, so near t = 0, where alpha_bar = 1 - 1e-4, its 1 - alpha_bar keeps only
    ~4 digits (relative error ~1e-4). In float64 it becomes a precise oracle for the algorithm itself."""
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    ref.betas = betas
    ref.alphas = 1 - betas
    ref.alphas_cumprod = torch.cumprod(1 - betas, 0)
    one = torch.tensor(1.0, dtype=torch.float64)
    if isinstance(ref, DDPMScheduler):
        ref.one = one
    else:
        ref.final_alpha_cumprod = one
    return ref


# diffusers as shipped (float32 tables) agrees to ~1e-4 relative; its float64 version to float32 rounding (~1e-6)
PRECISIONS = {"float32": (1e-4, 1e-5), "float64": (1e-5, 1e-6)}


def _ddim(**kw) -> DDIMScheduler:
    cfg = dict(
        num_train_timesteps=T,
        beta_start=1e-4,
        beta_end=0.02,
        beta_schedule="linear",
        set_alpha_to_one=True,
        steps_offset=0,
        timestep_spacing="leading",
        clip_sample=False,
    )
    cfg.update(kw)
    return DDIMScheduler(**cfg)


@pytest.mark.parametrize(
    "ours,theirs",
    [
        (lambda: linear_betas(T), "linear"),
        (lambda: cosine_betas(T), "squaredcos_cap_v2"),
        (lambda: quadratic_betas(T), "scaled_linear"),
        (lambda: sigmoid_betas(T), "sigmoid"),
    ],
    ids=["linear", "cosine", "quadratic", "sigmoid"],
)
def test_betas_and_alpha_bar_match(ours, theirs: str) -> None:
    ref = _ddpm(theirs)
    sched = NoiseSchedule.from_betas(ours())
    torch.testing.assert_close(sched.beta, ref.betas, rtol=RTOL, atol=1e-8)
    torch.testing.assert_close(sched.alpha_bar, ref.alphas_cumprod, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_posterior_variance_matches_fixed_small(ddpm_schedule: NoiseSchedule, precision: str) -> None:
    ref = _ddpm() if precision == "float32" else _in_float64(_ddpm())
    theirs = torch.stack([ref._get_variance(t, variance_type="fixed_small") for t in range(1, T)])
    rtol = {"float32": 1e-3, "float64": 1e-6}[precision]  # float32 tilde-beta_1 = (1 - ab_0)/(1 - ab_1) beta: 4e-4 off
    torch.testing.assert_close(ddpm_schedule.posterior_variance[1:].double(), theirs.double(), rtol=rtol, atol=0)


def test_q_sample_equals_add_noise(ddpm_schedule: NoiseSchedule, gen: torch.Generator) -> None:
    x0 = torch.randn(6, 1, 8, 8, generator=gen)
    eps = torch.randn(6, 1, 8, 8, generator=gen)
    t = torch.tensor([0, 1, 50, 500, 998, 999])
    theirs = _ddpm().add_noise(x0, eps, t)
    torch.testing.assert_close(q_sample(ddpm_schedule, x0, t, eps=eps), theirs, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(add_noise(ddpm_schedule, x0, t, eps), theirs, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize(
    "variance,variance_type,clip",
    [("beta", "fixed_large", None), ("posterior", "fixed_small", None), ("beta", "fixed_large", 1.0), ("posterior", "fixed_small", 1.0)],
)
@pytest.mark.parametrize("t", [0, 1, 10, 500, 999])
def test_ddpm_step_matches(
    ddpm_schedule: NoiseSchedule, variance: str, variance_type: str, clip: float | None, t: int, precision: str
) -> None:
    dtype = getattr(torch, precision)
    g = torch.Generator().manual_seed(100 + t)
    x_t = 1.5 * torch.randn(4, 1, 8, 8, generator=g, dtype=dtype)
    eps_hat = torch.randn(4, 1, 8, 8, generator=g, dtype=dtype)
    ref = _ddpm(variance_type=variance_type, clip_sample=clip is not None, clip_sample_range=clip or 1.0)
    if precision == "float64":
        ref = _in_float64(ref)
    theirs = ref.step(eps_hat, t, x_t, generator=torch.Generator().manual_seed(7)).prev_sample
    # diffusers draws its noise (only when t > 0) as torch.randn(shape, generator, dtype) on the CPU: reproduce it
    noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(7), dtype=dtype)
    ours = ddpm_step(ddpm_schedule, x_t.float(), t, eps_hat.float(), variance=variance, clip_x0=clip, noise=noise.float())
    rtol, atol = PRECISIONS[precision]
    torch.testing.assert_close(ours.double(), theirs.double(), rtol=rtol, atol=atol)
    if clip is not None and t >= 500:
        x0_hat = (x_t - ddpm_schedule.sqrt_one_minus_alpha_bar[t] * eps_hat) / ddpm_schedule.sqrt_alpha_bar[t]
        assert x0_hat.abs().max() > 1  # the clipped variant really clipped something


def test_ddpm_loop_matches_with_same_seed(ddpm_schedule: NoiseSchedule, gaussian_eps_model) -> None:
    """Whole Algorithm 2 loops: x_T and every step's noise come from the same generator stream in both."""
    model = gaussian_eps_model(ddpm_schedule, torch.tensor([0.7, -0.2]), 0.6)
    shape = (16, 2)
    ours = ddpm_sample(model, ddpm_schedule, shape, variance="beta", generator=torch.Generator().manual_seed(21))
    ref = _ddpm(variance_type="fixed_large", clip_sample=False)
    g = torch.Generator().manual_seed(21)
    x = torch.randn(shape, generator=g)
    for t in range(T - 1, -1, -1):
        x = ref.step(model(x, torch.full((shape[0],), t)), t, x, generator=g).prev_sample
    torch.testing.assert_close(ours, x, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("clip", [None, 1.0])
def test_ddim_steps_match(ddpm_schedule: NoiseSchedule, eta: float, clip: float | None, precision: str) -> None:
    dtype = getattr(torch, precision)
    steps = 50
    ref = _ddim(clip_sample=clip is not None)
    if precision == "float64":
        ref = _in_float64(ref)
    ref.set_timesteps(steps)
    assert ref.timesteps.tolist() == ddim_timesteps(T, steps, "leading").flip(0).tolist()
    rtol, atol = PRECISIONS[precision]
    g = torch.Generator().manual_seed(3)
    clipped = 0
    for t in ref.timesteps.tolist():
        x_t = 1.5 * torch.randn(4, 1, 6, 6, generator=g, dtype=dtype)
        eps_hat = torch.randn(4, 1, 6, 6, generator=g, dtype=dtype)
        noise = torch.randn(4, 1, 6, 6, generator=g, dtype=dtype)
        theirs = ref.step(
            eps_hat, t, x_t, eta=eta, use_clipped_model_output=clip is not None, variance_noise=noise if eta > 0 else None
        ).prev_sample
        t_prev = t - T // steps  # diffusers' "leading" predecessor; below 0 means the clean data
        ours = ddim_step(ddpm_schedule, x_t.float(), t, max(t_prev, -1), eps_hat.float(), eta=eta, clip_x0=clip, noise=noise.float())
        torch.testing.assert_close(ours.double(), theirs.double(), rtol=rtol, atol=atol, msg=lambda m, t=t: f"t={t}: {m}")
        clipped += int((ref.step(eps_hat, t, x_t, eta=0.0).pred_original_sample.abs() == (clip or -1)).sum())
    assert clip is None or clipped > 0


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_timesteps_match_diffusers(spacing: str) -> None:
    for steps in (1, 10, 50, 250, 1000):
        ref = _ddim(timestep_spacing=spacing)
        ref.set_timesteps(steps)
        assert ddim_timesteps(T, steps, spacing).flip(0).tolist() == ref.timesteps.tolist(), steps


def test_ddim_loop_matches(ddpm_schedule: NoiseSchedule, gaussian_eps_model) -> None:
    model = gaussian_eps_model(ddpm_schedule, torch.tensor([0.7, -0.2]), 0.6)
    x_T = torch.randn(16, 2, generator=torch.Generator().manual_seed(11))
    ours = ddim_sample(model, ddpm_schedule, x_T.shape, steps=50, eta=0.0, spacing="leading", x_T=x_T)
    ref = _ddim()
    ref.set_timesteps(50)
    x = x_T.clone()
    for t in ref.timesteps.tolist():
        x = ref.step(model(x, torch.full((16,), t)), t, x, eta=0.0).prev_sample
    torch.testing.assert_close(ours, x, rtol=1e-4, atol=1e-4)
