"""The checker of chapter 12 (one DPM-Solver++(2M) update): it accepts the reference solution, written in two ways;
that solution, run as a sampling loop, is the package's dpm_solver_sample (so the exercise teaches the lib's update);
it says "not written yet" for a stub, and names every slip in its catalogue."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion_course.maths.oracles import GaussianEps
from diffusion_course.maths.samplers import ddim_timesteps
from diffusion_course.maths.schedules import NoiseSchedule
from diffusion_course.maths.solvers import dpm_solver_sample
from diffusion_course.teaching import exercises as ex

pytestmark = pytest.mark.usefixtures("one_thread")


def _tables(schedule: NoiseSchedule):
    return schedule.sqrt_alpha_bar, schedule.sqrt_one_minus_alpha_bar


def right(schedule, x_t, t, t_prev, x0_hat, t_last, x0_hat_last):
    """Lu et al. 2022, Algorithm 2 (DPM-Solver++(2M)), one update, written from the paper."""
    alpha, sigma = _tables(schedule)
    lam = lambda u: torch.log(alpha[u] / sigma[u])  # noqa: E731
    h = lam(t_prev) - lam(t)
    r = (lam(t) - lam(t_last)) / h
    D = (1 + 1 / (2 * r)) * x0_hat - 1 / (2 * r) * x0_hat_last
    return sigma[t_prev] / sigma[t] * x_t - alpha[t_prev] * (torch.exp(-h) - 1) * D


def right_in_floats(schedule, x_t, t, t_prev, x0_hat, t_last, x0_hat_last):
    """The same update from Python floats, with lambda as half the log-SNR of alpha_bar."""
    ab = schedule.alpha_bar.double()
    lam = {u: 0.5 * math.log(float(ab[u]) / (1 - float(ab[u]))) for u in (t, t_prev, t_last)}
    h, h_last = lam[t_prev] - lam[t], lam[t] - lam[t_last]
    a_p, s_p, s_t = math.sqrt(float(ab[t_prev])), math.sqrt(1 - float(ab[t_prev])), math.sqrt(1 - float(ab[t]))
    return s_p / s_t * x_t + a_p * (1 - math.exp(-h)) * ((1 + h / (2 * h_last)) * x0_hat - h / (2 * h_last) * x0_hat_last)


def test_the_reference_passes_in_both_spellings():
    for fn in (right, right_in_floats):
        r = ex.check_dpm_solver_step(fn, quiet=True)
        assert r and r.status == "correct" and r.cases_run == 16, r.message


def test_the_update_run_as_a_loop_is_dpm_solver_sample():
    """Steps of `right` chained as the sampler chains them (the first step and the step into the clean data first
    order, DDIM's, as Lu et al. and diffusers do) give dpm_solver_sample(order=2) on an exact Gaussian model."""
    schedule = NoiseSchedule.linear(1000)
    model = GaussianEps(schedule, torch.tensor([0.6, -0.3]), 0.5)
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    alpha, sigma = _tables(schedule)
    for steps, spacing in ((5, "trailing"), (12, "uniform"), (20, "trailing")):
        ts = ddim_timesteps(1000, steps, spacing).flip(0).tolist()
        x, last = x_T, None
        for i, t in enumerate(ts):
            x0 = (x - sigma[t] * model(x, torch.full((64,), t))) / alpha[t]
            if i == steps - 1:
                x = x0  # into sigma = 0: the update is x0_hat itself
            elif last is None:
                tp = ts[i + 1]
                x = sigma[tp] / sigma[t] * x + alpha[tp] * (1 - sigma[tp] / sigma[t] * alpha[t] / alpha[tp]) * x0  # first order
            else:
                x = right(schedule, x, t, ts[i + 1], x0, ts[i - 1], last)
            last = x0
        lib = dpm_solver_sample(model, schedule, x_T.shape, steps=steps, order=2, spacing=spacing, clip_x0=None, x_T=x_T)
        torch.testing.assert_close(x, lib, rtol=1e-5, atol=1e-5)


def _slip(kind):
    """`right` with one slip."""

    def fn(schedule, x_t, t, t_prev, x0_hat, t_last, x0_hat_last):
        alpha, sigma = _tables(schedule)
        if kind == "alpha_bar_for_alpha":
            alpha, sigma = schedule.alpha_bar, 1 - schedule.alpha_bar
        lam = lambda u: torch.log(alpha[u] / sigma[u]) * (2 if kind == "log_snr_for_lambda" else 1)  # noqa: E731
        h = lam(t_prev) - lam(t)
        r = (lam(t) - lam(t_last)) / h
        if kind == "r_inverted":
            r = 1 / r
        m0, m1 = (x0_hat_last, x0_hat) if kind == "swapped_predictions" else (x0_hat, x0_hat_last)
        D = {"first_order": m0, "no_half": m0 + (m0 - m1) / r}.get(kind, (1 + 1 / (2 * r)) * m0 - 1 / (2 * r) * m1)
        front = (alpha[t] if kind == "alpha_of_t" else alpha[t_prev]) * (1 - torch.exp(-h))
        ratio = sigma[t] / sigma[t_prev] if kind == "sigma_ratio_inverted" else sigma[t_prev] / sigma[t]
        if kind == "sign_of_d":
            front = -front
        if kind == "taylor_variant":  # diffusers' DPMSolverMultistepScheduler, solver_type="heun"
            return ratio * x_t + front * m0 + alpha[t_prev] * ((torch.exp(-h) - 1) / h + 1) * (m0 - m1) / r
        return ratio * x_t + front * D

    return fn


SLIPS = ["first_order", "no_half", "r_inverted", "log_snr_for_lambda", "alpha_bar_for_alpha", "alpha_of_t", "sigma_ratio_inverted",
         "sign_of_d", "swapped_predictions", "taylor_variant"]


@pytest.mark.parametrize("kind", SLIPS)
def test_each_slip_is_named(kind):
    r = ex.check_dpm_solver_step(_slip(kind), quiet=True)
    assert not r and r.status == "wrong" and r.mistakes == (kind,), r.message
    assert "First difference" in r.message and "Measured weights" in r.message and "Diagnosis:" in r.message


def test_the_taylor_variant_is_a_second_order_formula_too():
    """The checker calls the diffusers' "heun" formula wrong for this exercise, not for the maths: on the same
    history it agrees with Algorithm 2 up to the third power of the step (its weights differ by O(h^2))."""
    s = NoiseSchedule.linear(1000)
    x = torch.zeros(1, 1)
    for t_last, t, tp in ((520, 510, 500), (505, 500, 495)):
        m0, m1 = torch.ones(1, 1), torch.zeros(1, 1)
        a = right(s, x, t, tp, m0, t_last, m1) - right(s, x, t, tp, m1, t_last, m1)
        b = _slip("taylor_variant")(s, x, t, tp, m0, t_last, m1) - _slip("taylor_variant")(s, x, t, tp, m1, t_last, m1)
        h = float(torch.log(s.sqrt_alpha_bar[tp] / s.sqrt_one_minus_alpha_bar[tp]) - torch.log(s.sqrt_alpha_bar[t] / s.sqrt_one_minus_alpha_bar[t]))
        assert abs(float(a - b)) < 5 * h**2, (float(a - b), h)


def test_an_unknown_slip_shows_the_weights_and_names_none():
    r = ex.check_dpm_solver_step(lambda s, x, t, tp, m0, tl, m1: right(s, x, t, tp, m0, tl, m1) * 1.1, quiet=True)
    assert r.status == "wrong" and r.mistakes == () and "matches none of the slips" in r.message


def test_stub_error_shape_in_place_and_nonlinear():
    def stub(*args):
        raise NotImplementedError

    assert ex.check_dpm_solver_step(stub, quiet=True).status == "not written yet"
    assert ex.check_dpm_solver_step(lambda *a: None, quiet=True).status == "not written yet"
    assert ex.check_dpm_solver_step(3, quiet=True).mistakes == ("not_callable",)
    raised = ex.check_dpm_solver_step(lambda s, x, t, tp, m0, tl, m1: x.view(-1, 7), quiet=True)
    assert raised.status == "error" and "in your line" in raised.message
    assert ex.check_dpm_solver_step(lambda s, x, t, tp, m0, tl, m1: right(s, x, t, tp, m0, tl, m1).flatten(), quiet=True).mistakes == ("shape",)

    def in_place(s, x, t, tp, m0, tl, m1):
        out = right(s, x, t, tp, m0, tl, m1)
        return x.copy_(out)

    assert ex.check_dpm_solver_step(in_place, quiet=True).mistakes == ("in_place",)
    nonfinite = ex.check_dpm_solver_step(lambda s, x, t, tp, m0, tl, m1: x / 0, quiet=True)
    assert nonfinite.mistakes == ("nonfinite",) and "NaN or inf" in nonfinite.message
    clipped = ex.check_dpm_solver_step(lambda s, x, t, tp, m0, tl, m1: right(s, x, t, tp, m0.clamp(-0.5, 0.5), tl, m1), quiet=True)
    assert clipped.status == "wrong" and "not a fixed multiple" in clipped.message


def test_the_report_is_printed_unless_quiet(capsys):
    ex.check_dpm_solver_step(right)
    assert "dpm_solver_step: correct" in capsys.readouterr().out
    ex.check_dpm_solver_step(right, quiet=True)
    assert capsys.readouterr().out == ""
