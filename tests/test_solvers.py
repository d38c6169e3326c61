"""Fast ODE samplers (chapter 12): DPM-Solver++ (1-3M), Heun and Euler in Karras et al.'s sigma parameterisation.

Oracles: on Gaussian data N(m, s^2 I) the exact noise predictor is known (maths.oracles.GaussianEps) and so is the
probability-flow ODE's solution, so the error against the number of network calls shows each method's order (about 1
for DDIM and Euler, about 2 for DPM-Solver++(2M) and Heun). diffusers is the reference implementation: its
DPMSolverMultistepScheduler, HeunDiscreteScheduler and EulerDiscreteScheduler, built from our betas and stepped on
the same timesteps from the same x_T, reach the same samples. Then properties (order 1 is DDIM, network calls,
trajectories, churn) and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler

from diffusion_course.maths.oracles import GaussianEps
from diffusion_course.maths.samplers import DDIM_SPACINGS, ddim_sample, ddim_timesteps
from diffusion_course.maths.schedules import NoiseSchedule, linear_betas
from diffusion_course.maths.solvers import (
    EDM_SIGMAS,
    SAMPLER_NAMES,
    dpm_solver_sample,
    euler_sample,
    heun_sample,
    karras_sigmas,
    network_calls,
    sigma_grid,
)

# diffusers turns its (here float64) torch tables into numpy with np.array(tensor), which numpy 2 warns about
pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")]

T = 1000
M, S_DATA = torch.tensor([0.6, -0.3]), 0.5  # the Gaussian data N(M, S_DATA^2 I)


def _log_snr_linear(T: int = T, lam_max: float = 5.0, lam_min: float = -5.0) -> NoiseSchedule:
    """A smooth schedule for the convergence tests: lambda_t = log(alpha_t / sigma_t) linear in t, so alpha_bar_t =
    sigmoid(2 lambda_t) (alpha_bar from 0.99995 to 4.5e-5, close to the DDPM schedule's ends). Uniform timesteps are
    then uniform steps in lambda: no step is much longer than the others, and the asymptotic order shows early."""
    ab = torch.sigmoid(2 * torch.linspace(lam_max, lam_min, T, dtype=torch.float64))
    return NoiseSchedule.from_betas(1 - ab / torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]]))


def _ode_solution(schedule: NoiseSchedule, x_T: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact answers from x_T at t = T-1, for data N(M, S_DATA^2 I).

    Along the probability-flow ODE x_t = alpha_t M + sqrt(alpha_t^2 s^2 + sigma_t^2) z for a fixed z, so
    z = (x_T - alpha_T M) / sqrt(alpha_T^2 s^2 + sigma_T^2) and the endpoint at sigma = 0 is M + s z. Every sampler
    here ends with x0_hat at the last kept timestep (t = 0 for the uniform spacing and for Karras' sigma_min), which is
    exact for the oracle: so the discretisation error alone is measured against the ODE solved exactly to t = 0 and
    then denoised, M + alpha_0 s^2 z / sqrt(alpha_0^2 s^2 + sigma_0^2). Returns (that target, the sigma = 0 endpoint)."""
    ab, one_minus_ab = schedule.alpha_bar.double(), schedule.sqrt_one_minus_alpha_bar.double() ** 2
    s2 = S_DATA**2
    z = (x_T.double() - ab[-1].sqrt() * M) / (ab[-1] * s2 + one_minus_ab[-1]).sqrt()
    return M + ab[0].sqrt() * s2 * z / (ab[0] * s2 + one_minus_ab[0]).sqrt(), M + S_DATA * z


def _rms(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).pow(2).mean().sqrt())


# --- order 1 is DDIM -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spacing", DDIM_SPACINGS)
@pytest.mark.parametrize("clip", [None, 1.0])
def test_order_1_is_ddim_eta_0(ddpm_schedule: NoiseSchedule, spacing: str, clip: float | None) -> None:
    model = GaussianEps(ddpm_schedule, M, S_DATA)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    for steps in (1, 7, 20):
        ours = dpm_solver_sample(model, ddpm_schedule, x_T.shape, steps=steps, order=1, spacing=spacing, clip_x0=clip, x_T=x_T)
        ddim = ddim_sample(model, ddpm_schedule, x_T.shape, steps=steps, eta=0.0, spacing=spacing, clip_x0=clip, x_T=x_T)
        assert torch.equal(ours, ddim), (spacing, steps, (ours - ddim).abs().max())


@pytest.mark.parametrize("spacing", ["uniform", "trailing"])
def test_euler_on_a_ddim_spacing_is_ddim(ddpm_schedule: NoiseSchedule, spacing: str) -> None:
    """The Euler step in x_bar = x / alpha and sigma is DDIM's eta = 0 update (Song et al. 2021, eq. 14)."""
    model = GaussianEps(ddpm_schedule, M, S_DATA)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    ours = euler_sample(model, ddpm_schedule, x_T.shape, steps=12, sigmas=spacing, x_T=x_T)
    ddim = ddim_sample(model, ddpm_schedule, x_T.shape, steps=12, eta=0.0, spacing=spacing, x_T=x_T)
    torch.testing.assert_close(ours, ddim, rtol=1e-5, atol=1e-5)


# --- convergence against the exact ODE solution ----------------------------------------------------------------------

CONVERGENCE = {
    # sampler: (run(model, schedule, x_T, steps), steps list, allowed slope range)
    "ddim": (lambda m, s, x, n: ddim_sample(m, s, x.shape, steps=n, eta=0.0, spacing="uniform", x_T=x), [8, 11, 16, 23, 32, 45, 64], (0.8, 1.3)),
    "euler": (lambda m, s, x, n: euler_sample(m, s, x.shape, steps=n, sigmas="karras", x_T=x), [8, 11, 16, 23, 32, 45, 64], (0.8, 1.3)),
    "dpm_solver": (lambda m, s, x, n: dpm_solver_sample(m, s, x.shape, steps=n, order=2, spacing="uniform", clip_x0=None, x_T=x),
                   [16, 23, 32, 45, 64], (1.6, 2.6)),
    "heun": (lambda m, s, x, n: heun_sample(m, s, x.shape, steps=n, sigmas="karras", x_T=x), [7, 10, 14, 20, 28], (1.6, 2.8)),
    "heun-uniform": (lambda m, s, x, n: heun_sample(m, s, x.shape, steps=n, sigmas="uniform", x_T=x), [7, 10, 14, 20, 28], (1.6, 2.8)),
}


def _errors(name: str) -> tuple[list[int], list[float]]:
    schedule = _log_snr_linear()
    model = GaussianEps(schedule, M, S_DATA)
    x_T = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    target, _ = _ode_solution(schedule, x_T)
    run, steps, _ = CONVERGENCE[name]
    calls = [network_calls(name.split("-")[0], n) for n in steps]
    return calls, [_rms(run(model, schedule, x_T, n), target) for n in steps]


@pytest.mark.parametrize("name", CONVERGENCE)
def test_error_falls_with_the_methods_order(name: str) -> None:
    calls, errors = _errors(name)
    slope = -np.polyfit(np.log(calls), np.log(errors), 1)[0]
    lo, hi = CONVERGENCE[name][2]
    assert lo < slope < hi, f"{name}: slope {slope:.2f} over calls {calls}, errors {[f'{e:.1e}' for e in errors]}"
    assert all(b < a for a, b in zip(errors, errors[1:])), errors  # monotone over the range
    assert min(errors) > 1e-4  # far above float32 rounding: the slope is the discretisation's


def test_second_order_beats_ddim_at_equal_calls() -> None:
    _, ddim = _errors("ddim")  # at 64 calls
    _, dpm = _errors("dpm_solver")  # at 64 calls
    _, heun = _errors("heun")  # 28 intervals = 55 calls
    assert dpm[-1] < ddim[-1] / 10 and heun[-1] < ddim[-1], (ddim[-1], dpm[-1], heun[-1])


def test_the_target_is_the_ode_endpoint_up_to_the_last_denoising() -> None:
    """The closed-form endpoint M + s z differs from the sampled target only by the last step's x0_hat at t = 0
    (relative size ~ sigma_0^2 / (2 alpha_0^2 s^2) = 2e-4 here), and many DPM-Solver++ steps land on it."""
    schedule = _log_snr_linear()
    x_T = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    target, endpoint = _ode_solution(schedule, x_T)
    assert _rms(target, endpoint) < 1e-3
    x = dpm_solver_sample(GaussianEps(schedule, M, S_DATA), schedule, x_T.shape, steps=200, spacing="uniform", clip_x0=None, x_T=x_T)
    assert _rms(x, endpoint) < 2e-3


# --- diffusers as the reference ----------------------------------------------------------------------------------------


def _in_float64(ref):
    """diffusers' scheduler with its tables recomputed in float64 from the same linear betas (diffusers keeps
    alphas_cumprod in float32, whose 1 - alpha_bar near t = 0 keeps ~4 digits; see test_diffusers_parity.py)."""
    betas = linear_betas(T)
    ref.betas, ref.alphas, ref.alphas_cumprod = betas, 1 - betas, torch.cumprod(1 - betas, 0)
    if isinstance(ref, DPMSolverMultistepScheduler):
        ref.alpha_t, ref.sigma_t = ref.alphas_cumprod.sqrt(), (1 - ref.alphas_cumprod).sqrt()
        ref.lambda_t = ref.alpha_t.log() - ref.sigma_t.log()
    return ref


def _call(model, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """diffusers hands the model its timestep as a (float) scalar; ours take a LongTensor (B,)."""
    return model(x, torch.full((x.shape[0],), int(round(float(t))), dtype=torch.long))


DPM_CASES = [(order, steps, spacing) for order in (2, 3) for steps in (5, 10, 20) for spacing in DDIM_SPACINGS]


@pytest.mark.parametrize("order,steps,spacing", DPM_CASES, ids=[f"{o}M-{n}-{s}" for o, n, s in DPM_CASES])
def test_dpm_solver_matches_diffusers(ddpm_schedule: NoiseSchedule, order: int, steps: int, spacing: str) -> None:
    ref = _in_float64(DPMSolverMultistepScheduler(
        num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", algorithm_type="dpmsolver++",
        solver_order=order, solver_type="midpoint", lower_order_final=True, final_sigmas_type="zero", timestep_spacing="trailing"))
    if spacing == "trailing":
        ref.set_timesteps(steps)  # diffusers' own trailing spacing is ours
    else:
        ref.set_timesteps(timesteps=ddim_timesteps(T, steps, spacing).flip(0).tolist())
    assert ref.timesteps.tolist() == ddim_timesteps(T, steps, spacing).flip(0).tolist()
    model = GaussianEps(ddpm_schedule, M, S_DATA)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(steps))
    x = x_T.clone()
    for t in ref.timesteps:
        x = ref.step(_call(model, x, t), t, x).prev_sample
    ours = dpm_solver_sample(model, ddpm_schedule, x_T.shape, steps=steps, order=order, spacing=spacing, clip_x0=None, x_T=x_T)
    torch.testing.assert_close(ours, x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("lower_order_final", [True, False])
@pytest.mark.parametrize("steps", [6, 10, 16])
def test_dpm_solver_with_clipping_and_final_orders_matches_diffusers(ddpm_schedule: NoiseSchedule, order: int, lower_order_final: bool,
                                                                     steps: int) -> None:
    """Clipping x0_hat to [-1, 1] is diffusers' thresholding with sample_max_value = 1 (its quantile threshold is
    clamped to at least 1); image-shaped data, and data with mass outside [-1, 1] so that the clip acts."""
    ref = _in_float64(DPMSolverMultistepScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, solver_order=order,
                                                  lower_order_final=lower_order_final, timestep_spacing="trailing", thresholding=True,
                                                  sample_max_value=1.0))
    ref.set_timesteps(steps)
    model = GaussianEps(ddpm_schedule, torch.full((1, 4, 4), 0.6), S_DATA)
    x_T = torch.randn(16, 1, 4, 4, generator=torch.Generator().manual_seed(3))
    x = x_T.clone()
    for t in ref.timesteps:
        x = ref.step(_call(model, x, t), t, x).prev_sample
    ours = dpm_solver_sample(model, ddpm_schedule, x_T.shape, steps=steps, order=order, clip_x0=1.0, lower_order_final=lower_order_final,
                             x_T=x_T)
    torch.testing.assert_close(ours, x, rtol=1e-5, atol=1e-5)
    assert float(ours.abs().max()) == 1.0  # the clip acted (the last step returns the clipped x0_hat)


EDM_CASES = [(k, sig, n) for k in ("heun", "euler") for sig in ("trailing", "leading", "uniform", "karras") for n in (4, 10)]


@pytest.mark.parametrize("kind,sigmas,steps", EDM_CASES, ids=[f"{k}-{s}-{n}" for k, s, n in EDM_CASES])
def test_heun_and_euler_match_diffusers(ddpm_schedule: NoiseSchedule, kind: str, sigmas: str, steps: int) -> None:
    cls, sampler = (HeunDiscreteScheduler, heun_sample) if kind == "heun" else (EulerDiscreteScheduler, euler_sample)
    spacing = sigmas if sigmas in ("trailing", "leading") else "linspace"
    ref = _in_float64(cls(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", timestep_spacing=spacing))
    ts, sig = sigma_grid(ddpm_schedule, steps, sigmas=sigmas)
    if spacing == "linspace":  # diffusers' linspace is fractional; our uniform and (snapped) Karras levels go in as timesteps
        ref.set_timesteps(timesteps=ts.tolist())
    else:
        ref.set_timesteps(steps)
    assert torch.unique_consecutive(ref.timesteps).long().tolist() == ts.tolist()
    torch.testing.assert_close(torch.unique_consecutive(ref.sigmas).double(), sig, rtol=1e-6, atol=0)
    model = GaussianEps(ddpm_schedule, torch.full((1, 4, 4), 0.6), S_DATA)
    x_T = torch.randn(16, 1, 4, 4, generator=torch.Generator().manual_seed(4))
    x, calls = x_T * math.sqrt(1 + float(sig[0]) ** 2), 0  # diffusers' sample is x_bar = x / alpha
    for t in ref.timesteps:
        x = ref.step(_call(model, ref.scale_model_input(x, t), t), t, x).prev_sample
        calls += 1
    assert calls == network_calls(kind, steps)
    ours = sampler(model, ddpm_schedule, x_T.shape, steps=steps, sigmas=sigmas, x_T=x_T)
    torch.testing.assert_close(ours, x, rtol=1e-5, atol=1e-4)


def test_heun_clipping_matches_diffusers(ddpm_schedule: NoiseSchedule) -> None:
    ref = _in_float64(HeunDiscreteScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, timestep_spacing="trailing",
                                            clip_sample=True, clip_sample_range=1.0))
    ref.set_timesteps(8)
    model = GaussianEps(ddpm_schedule, torch.full((1, 4, 4), 0.6), S_DATA)
    x_T = torch.randn(16, 1, 4, 4, generator=torch.Generator().manual_seed(5))
    x = x_T * math.sqrt(1 + float(ref.sigmas[0]) ** 2)
    for t in ref.timesteps:
        x = ref.step(_call(model, ref.scale_model_input(x, t), t), t, x).prev_sample
    ours = heun_sample(model, ddpm_schedule, x_T.shape, steps=8, sigmas="trailing", clip_x0=1.0, x_T=x_T)
    torch.testing.assert_close(ours, x, rtol=1e-5, atol=1e-4)
    assert float(ours.abs().max()) == 1.0


@pytest.mark.parametrize("steps", [2, 5, 10, 25])
def test_karras_sigmas_and_timesteps_match_diffusers(ddpm_schedule: NoiseSchedule, steps: int) -> None:
    """(Not steps = 1: diffusers then takes sigma_min and sigma_max from its single spaced timestep, t = 0.)"""
    ref = _in_float64(HeunDiscreteScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, use_karras_sigmas=True))
    ref.set_timesteps(steps)
    ours = karras_sigmas(ddpm_schedule, steps)
    theirs = ref.sigmas[[0, *range(1, len(ref.sigmas), 2)]].double()  # diffusers' Heun repeats each inner sigma
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=0)
    # the timesteps: diffusers' DPM-Solver rounds the same log-sigma interpolation that sigma_grid rounds
    dpm = _in_float64(DPMSolverMultistepScheduler(num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, use_karras_sigmas=True))
    dpm.set_timesteps(steps)
    assert sigma_grid(ddpm_schedule, steps)[0].tolist() == dpm.timesteps.tolist()


# --- properties --------------------------------------------------------------------------------------------------------


def test_karras_sigmas_formula(ddpm_schedule: NoiseSchedule) -> None:
    sig_table = ddpm_schedule.sqrt_one_minus_alpha_bar.double() / ddpm_schedule.sqrt_alpha_bar.double()
    for rho in (1.0, 3.0, 7.0):
        s = karras_sigmas(ddpm_schedule, 6, rho=rho)
        assert s.dtype == torch.float64 and s.shape == (7,) and float(s[-1]) == 0.0
        assert (torch.diff(s) < 0).all()
        torch.testing.assert_close(s[[0, 5]], sig_table[[-1, 0]], rtol=1e-6, atol=0)
        inner = s[:-1] ** (1 / rho)  # equally spaced in sigma^(1/rho)
        torch.testing.assert_close(torch.diff(inner), torch.full((5,), float(inner[1] - inner[0]), dtype=torch.float64))
    assert karras_sigmas(ddpm_schedule, 1).tolist() == [pytest.approx(float(sig_table[-1]), rel=1e-6), 0.0]


@pytest.mark.parametrize("sigmas", EDM_SIGMAS)
def test_sigma_grid(ddpm_schedule: NoiseSchedule, sigmas: str) -> None:
    sig_table = ddpm_schedule.sqrt_one_minus_alpha_bar.double() / ddpm_schedule.sqrt_alpha_bar.double()
    ts, sig = sigma_grid(ddpm_schedule, 12, sigmas=sigmas)
    assert ts.dtype == torch.long and ts.shape == (12,) and sig.shape == (13,) and float(sig[-1]) == 0.0
    assert (torch.diff(ts) <= 0).all() and int(ts.max()) <= T - 1 and int(ts.min()) >= 0
    torch.testing.assert_close(sig[:-1], sig_table[ts], rtol=1e-12, atol=0)  # each level is its timestep's own sigma
    if sigmas != "karras":
        assert ts.tolist() == ddim_timesteps(T, 12, sigmas).flip(0).tolist()
    else:  # the timestep nearest to each of Karras' levels, in log sigma
        target = karras_sigmas(ddpm_schedule, 12)[:-1].log()
        assert ts.tolist() == (sig_table.log()[None, :] - target[:, None]).abs().argmin(1).tolist()


def _counting(model):
    calls = {"n": 0}

    def counted(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        assert t.dtype == torch.long and t.shape == (x.shape[0],)
        calls["n"] += 1
        return model(x, t)

    return counted, calls


SAMPLERS = {
    "dpm_solver": lambda m, s, n, **kw: dpm_solver_sample(m, s, (8, 2), steps=n, order=min(3, n), **kw),
    "heun": lambda m, s, n, **kw: heun_sample(m, s, (8, 2), steps=n, **kw),
    "euler": lambda m, s, n, **kw: euler_sample(m, s, (8, 2), steps=n, **kw),
    "ddim": lambda m, s, n, **kw: ddim_sample(m, s, (8, 2), steps=n, **kw),
}


@pytest.mark.parametrize("name", SAMPLER_NAMES)
def test_network_calls_are_counted_right(ddpm_schedule: NoiseSchedule, name: str) -> None:
    for steps in (1, 2, 3, 10, 17):
        model, calls = _counting(GaussianEps(ddpm_schedule, M, S_DATA))
        SAMPLERS[name](model, ddpm_schedule, steps, generator=torch.Generator().manual_seed(0))
        assert calls["n"] == network_calls(name, steps), (name, steps)
    assert network_calls("heun", 10) == 19 and network_calls("dpm_solver", 10) == 10


@pytest.mark.parametrize("name", ["dpm_solver", "heun", "euler"])
def test_trajectory_and_determinism(ddpm_schedule: NoiseSchedule, name: str) -> None:
    model = GaussianEps(ddpm_schedule, M, S_DATA)
    x_T = torch.randn(8, 2, generator=torch.Generator().manual_seed(2))
    x, traj = SAMPLERS[name](model, ddpm_schedule, 6, x_T=x_T, return_trajectory=True, generator=torch.Generator().manual_seed(1))
    assert traj.shape == (7, 8, 2) and traj.device.type == "cpu"
    assert torch.equal(traj[0], x_T) and torch.equal(traj[-1], x)
    again = SAMPLERS[name](model, ddpm_schedule, 6, x_T=x_T, generator=torch.Generator().manual_seed(2))
    assert torch.equal(x, again)  # deterministic: the generator is not used
    assert traj[1:].abs().max() < 10 and traj[-2].std() < traj[1].std()  # noise leaves, x stays on the VP scale


def test_churn_draws_noise_and_still_samples_the_data(ddpm_schedule: NoiseSchedule) -> None:
    """Algorithm 2: with s_churn > 0 the generator matters, and the samples still follow the data distribution (the
    churn's own discretisation error is larger than Algorithm 1's: at 25 steps it widens the samples by ~9%, at 100
    steps by ~0.5%)."""
    model = GaussianEps(ddpm_schedule, M, S_DATA)
    x_T = torch.randn(4000, 2, generator=torch.Generator().manual_seed(6))
    kw = dict(steps=100, s_churn=10.0, s_tmin=0.05, s_tmax=50.0, x_T=x_T)
    a = heun_sample(model, ddpm_schedule, x_T.shape, generator=torch.Generator().manual_seed(1), **kw)
    b = heun_sample(model, ddpm_schedule, x_T.shape, generator=torch.Generator().manual_seed(2), **kw)
    assert not torch.equal(a, b)
    # 5 standard errors of a mean (5 * 0.5 / sqrt(4000) = 0.040) and of a standard deviation (5 * 0.5 / sqrt(8000) = 0.028)
    torch.testing.assert_close(a.mean(0), M, atol=0.045, rtol=0)
    torch.testing.assert_close(a.std(0), torch.full((2,), S_DATA), atol=0.035, rtol=0)
    # no level inside [s_tmin, s_tmax]: no churn, Algorithm 1 exactly
    plain = heun_sample(model, ddpm_schedule, x_T.shape, steps=100, x_T=x_T)
    off = heun_sample(model, ddpm_schedule, x_T.shape, steps=100, s_churn=10.0, s_tmin=1e3, s_tmax=2e3, x_T=x_T,
                      generator=torch.Generator().manual_seed(1))
    assert torch.equal(plain, off)
    assert _rms(a, plain) > 0.05  # the churn changed the samples


def _plain_model(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A fixed linear function of (x, t) that reads nothing back to the host."""
    return 0.5 * x + (t.to(x.dtype) / 1000).reshape(-1, *([1] * (x.ndim - 1)))


@pytest.mark.parametrize("name", ["dpm_solver", "heun", "euler"])
def test_the_loops_read_values_back_once_per_call_not_once_per_step(ddpm_schedule: NoiseSchedule, name: str,
                                                                     host_reads: dict[str, int]) -> None:
    reads = []
    kw = dict(clip_x0=1.0, generator=torch.Generator().manual_seed(0)) | ({} if name == "dpm_solver" else dict(s_churn=5.0))
    for steps in (5, 10, 20):
        host_reads["reads"] = 0
        SAMPLERS[name](_plain_model, ddpm_schedule, steps, **kw)
        reads.append(host_reads["reads"])
    assert reads[0] == reads[1] == reads[2], reads


# --- bad input ---------------------------------------------------------------------------------------------------------

SMALL = NoiseSchedule.linear(20, 1e-3, 0.2)
ZERO = lambda x, t: torch.zeros_like(x)  # noqa: E731
BAD_CASES = [
    ("order", r"\border\b.*\[1, 3\]", lambda: dpm_solver_sample(ZERO, SMALL, (4, 2), steps=5, order=0)),
    ("order", r"\border\b.*\[1, 3\]", lambda: dpm_solver_sample(ZERO, SMALL, (4, 2), steps=5, order=4)),
    ("steps", r"\bsteps\b.*\[3, 20\]", lambda: dpm_solver_sample(ZERO, SMALL, (4, 2), steps=2, order=3)),
    ("steps", r"\bsteps\b.*\[1, 20\]", lambda: dpm_solver_sample(ZERO, SMALL, (4, 2), steps=0, order=1)),
    ("steps", r"\bsteps\b.*\[2, 20\]", lambda: dpm_solver_sample(ZERO, SMALL, (4, 2), steps=21)),
    ("spacing", r"\bspacing\b.*one of", lambda: dpm_solver_sample(ZERO, SMALL, (4, 2), steps=5, spacing="linspace")),
    ("clip_x0", r"\bclip_x0\b.*\(0", lambda: dpm_solver_sample(ZERO, SMALL, (4, 2), steps=5, clip_x0=0.0)),
    ("x_T", r"\bx_T\b", lambda: dpm_solver_sample(ZERO, SMALL, (4, 2), steps=5, x_T=torch.zeros(4, 3))),
    ("sigmas", r"\bsigmas\b.*one of", lambda: heun_sample(ZERO, SMALL, (4, 2), steps=5, sigmas="exponential")),
    ("sigmas", r"\bsigmas\b.*one of", lambda: euler_sample(ZERO, SMALL, (4, 2), steps=5, sigmas="linspace")),
    ("sigmas", r"\bsigmas\b.*one of", lambda: sigma_grid(SMALL, 5, sigmas="")),
    ("steps", r"\bsteps\b.*\[1, 20\]", lambda: heun_sample(ZERO, SMALL, (4, 2), steps=0)),
    ("steps", r"\bsteps\b.*\[1, 20\]", lambda: euler_sample(ZERO, SMALL, (4, 2), steps=21)),
    ("steps", r"\bsteps\b.*\[1, inf\]", lambda: karras_sigmas(SMALL, 0)),
    ("s_churn", r"\bs_churn\b.*\[0", lambda: heun_sample(ZERO, SMALL, (4, 2), steps=5, s_churn=-1.0)),
    ("s_churn", r"\bs_churn\b.*\[0", lambda: euler_sample(ZERO, SMALL, (4, 2), steps=5, s_churn=-0.1)),
    ("s_tmax", r"\bs_tmax\b.*\[2\.0", lambda: heun_sample(ZERO, SMALL, (4, 2), steps=5, s_tmin=2.0, s_tmax=1.0)),
    ("s_noise", r"\bs_noise\b.*\[0", lambda: heun_sample(ZERO, SMALL, (4, 2), steps=5, s_noise=-1.0)),
    ("rho", r"\brho\b.*\(0", lambda: heun_sample(ZERO, SMALL, (4, 2), steps=5, rho=0.0)),
    ("rho", r"\brho\b.*\(0", lambda: euler_sample(ZERO, SMALL, (4, 2), steps=5, rho=-7.0)),
    ("rho", r"\brho\b.*\(0", lambda: karras_sigmas(SMALL, 5, rho=0.0)),
    ("rho", r"\brho\b.*\(0", lambda: sigma_grid(SMALL, 5, rho=-1.0)),
    ("clip_x0", r"\bclip_x0\b.*\(0", lambda: heun_sample(ZERO, SMALL, (4, 2), steps=5, clip_x0=-1.0)),
    ("sampler", r"\bsampler\b.*one of", lambda: network_calls("ddpm", 5)),
    ("steps", r"\bsteps\b.*\[1, inf\]", lambda: network_calls("heun", 0)),
]


@pytest.mark.parametrize("arg,pattern,call", BAD_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CASES)])
def test_bad_input_names_the_argument_and_its_range(arg: str, pattern: str, call) -> None:
    with pytest.raises(ValueError, match=pattern):
        call()
