"""Beta schedules and NoiseSchedule: recomputed independently in float64 (numpy), plus shape properties."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from diffusion_course.maths.schedules import SCHEDULE_KINDS, NoiseSchedule, cosine_betas, extract, linear_betas, make_betas, quadratic_betas, sigmoid_betas, snr


def _rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.abs(b)))


# --- the DDPM linear schedule -------------------------------------------------------------------------------------


def test_linear_alpha_bar_T_matches_float64_product(ddpm_schedule: NoiseSchedule) -> None:
    ref = np.prod(1.0 - np.linspace(1e-4, 0.02, 1000))  # independent of torch
    got = float(ddpm_schedule.alpha_bar[-1])
    assert _rel(got, ref) < 1e-5
    assert 3.9e-5 < got < 4.1e-5  # "alpha_bar_T is about 4.0e-5"


def test_linear_alpha_bar_T_is_about_e_minus_10(ddpm_schedule: NoiseSchedule) -> None:
    beta = np.linspace(1e-4, 0.02, 1000)
    log_ab = math.log(float(ddpm_schedule.alpha_bar[-1]))
    # log(1 - b) = -b - b^2/2 - ..., so log alpha_bar_T = -sum(beta) + O(sum beta^2): the e^-10 estimate
    # (sum beta = 10.05) is right to first order, and the error is bounded by the second-order term.
    assert beta.sum() == pytest.approx(10.05)
    assert abs(log_ab + beta.sum()) <= (beta**2).sum()
    assert abs(log_ab - (-10.0)) < 0.2  # within a factor e^0.2 of e^-10


def test_linear_betas_endpoints_and_spacing() -> None:
    b = linear_betas(1000).numpy()
    assert b.dtype == np.float64 and b.shape == (1000,)
    assert b[0] == pytest.approx(1e-4) and b[-1] == pytest.approx(0.02)
    np.testing.assert_allclose(np.diff(b), (0.02 - 1e-4) / 999, rtol=1e-9)


# --- cosine (Nichol & Dhariwal 2021, eq. 17) ----------------------------------------------------------------------


def _cosine_f(T: int, s: float) -> np.ndarray:
    tau = np.arange(T + 1, dtype=np.float64) / T
    return np.cos((tau + s) / (1 + s) * np.pi / 2) ** 2


@pytest.mark.parametrize("T", [10, 1000])
def test_cosine_alpha_bar_matches_formula(T: int) -> None:
    s = 0.008
    f = _cosine_f(T, s)
    alpha_bar_ref = f[1:] / f[0]  # alpha_bar of code t = paper t+1
    sched = NoiseSchedule.cosine(T)
    got = sched.alpha_bar.double().numpy()
    # Until the last step no beta reaches 0.999, so alpha_bar is exactly f(t)/f(0).
    raw_beta = 1 - f[1:] / f[:-1]
    clipped = raw_beta > 0.999
    assert clipped.tolist() == [False] * (T - 1) + [True]  # only the last beta is clipped (f(T) = cos^2(pi/2) = 0)
    np.testing.assert_allclose(got[:-1], alpha_bar_ref[:-1], rtol=2e-5)
    # The clipped last step keeps 1 - 0.999 of the previous alpha_bar instead of dropping to 0.
    assert got[-1] == pytest.approx(alpha_bar_ref[-2] * (1 - 0.999), rel=2e-5)


def test_cosine_betas_clip_at_max_beta() -> None:
    T = 1000
    f = _cosine_f(T, 0.008)
    raw = 1 - f[1:] / f[:-1]
    for max_beta in (0.999, 0.05):
        b = cosine_betas(T, max_beta=max_beta).numpy()
        np.testing.assert_allclose(b, np.minimum(raw, max_beta), rtol=1e-12)
        assert b.max() == pytest.approx(max_beta)
    assert (cosine_betas(T, max_beta=0.05).numpy() == 0.05).sum() > 1  # a low cap really bites on many steps


def test_cosine_slower_than_linear_at_start() -> None:
    # The point of the cosine schedule: less signal is destroyed early on (Nichol & Dhariwal 2021, Figure 5).
    lin, cos = NoiseSchedule.linear(1000), NoiseSchedule.cosine(1000)
    assert (cos.alpha_bar[100:900] > lin.alpha_bar[100:900]).all()


# --- quadratic and sigmoid ----------------------------------------------------------------------------------------


def test_quadratic_shape() -> None:
    b = quadratic_betas(1000, 1e-4, 0.02).numpy()
    assert b[0] == pytest.approx(1e-4) and b[-1] == pytest.approx(0.02)
    assert (np.diff(b) > 0).all()  # increasing
    assert (np.diff(b, 2) > 0).all()  # convex
    np.testing.assert_allclose(np.diff(np.sqrt(b), 2), 0, atol=1e-12)  # sqrt(beta) is linear in t


def test_sigmoid_shape() -> None:
    b1, bT = 1e-4, 0.02
    b = sigmoid_betas(1000, b1, bT).numpy()
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    assert b[0] == pytest.approx(b1 + (bT - b1) * sig(-6)) and b[-1] == pytest.approx(b1 + (bT - b1) * sig(6))
    assert (np.diff(b) > 0).all()
    np.testing.assert_allclose(b + b[::-1], b1 + bT, rtol=1e-12)  # point-symmetric about the middle step
    assert b1 < b.min() and b.max() < bT


@pytest.mark.parametrize("kind", SCHEDULE_KINDS)
def test_make_betas_dispatch(kind: str) -> None:
    expected = {
        "linear": lambda: linear_betas(50, 1e-3, 0.05),
        "quadratic": lambda: quadratic_betas(50, 1e-3, 0.05),
        "sigmoid": lambda: sigmoid_betas(50, 1e-3, 0.05),
        "cosine": lambda: cosine_betas(50),
    }[kind]()
    got = make_betas(kind, 50, 1e-3, 0.05)
    assert got.dtype == torch.float64 and got.shape == (50,)
    assert torch.equal(got, expected)
    assert ((got > 0) & (got < 1)).all()


# --- NoiseSchedule --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", SCHEDULE_KINDS)
def test_schedule_coefficients_match_float64_recomputation(kind: str) -> None:
    b = make_betas(kind, 200).numpy()
    a = 1 - b
    ab = np.cumprod(a)
    ab_prev = np.concatenate([[1.0], ab[:-1]])
    sched = NoiseSchedule.from_betas(torch.from_numpy(b))
    expected = {
        "beta": b,
        "alpha": a,
        "alpha_bar": ab,
        "alpha_bar_prev": ab_prev,
        "sqrt_alpha_bar": np.sqrt(ab),
        "sqrt_one_minus_alpha_bar": np.sqrt(1 - ab),
        "posterior_mean_coef1": np.sqrt(ab_prev) * b / (1 - ab),
        "posterior_mean_coef2": np.sqrt(a) * (1 - ab_prev) / (1 - ab),
    }
    for name, ref in expected.items():
        got = getattr(sched, name)
        assert got.dtype == torch.float32 and got.shape == (200,), name
        np.testing.assert_allclose(got.double().numpy(), ref, rtol=2e-6, atol=1e-30, err_msg=name)
    post = (1 - ab_prev) / (1 - ab) * b
    np.testing.assert_allclose(sched.posterior_variance.double().numpy(), post, rtol=2e-6, atol=1e-30)
    log_clip = np.log(np.concatenate([[post[1]], post[1:]]))
    np.testing.assert_allclose(sched.posterior_log_variance_clipped.double().numpy(), log_clip, rtol=2e-6)


def test_schedule_conventions(ddpm_schedule: NoiseSchedule) -> None:
    s = ddpm_schedule
    assert s.T == 1000
    assert float(s.alpha_bar_prev[0]) == 1.0  # code t=0 is the paper's t=1; its predecessor is the clean data
    assert float(s.posterior_variance[0]) == 0.0  # q(x_0 | x_1, x_0) is a point mass
    assert torch.isfinite(s.posterior_log_variance_clipped).all()
    assert (torch.diff(s.alpha_bar) < 0).all()
    assert (s.posterior_variance[1:] < s.beta[1:]).all()  # tilde-beta_t < beta_t for t >= 1
    assert (torch.diff(s.snr()) < 0).all()
    ab64 = torch.cumprod(1 - linear_betas(1000), 0)
    torch.testing.assert_close(snr(s).double(), ab64 / (1 - ab64), rtol=1e-6, atol=0)  # precise even at t = 0
    # precisions add: 1 / tilde-beta_t = alpha_t / beta_t + 1 / (1 - alpha_bar_{t-1}) (Bayes for two Gaussians)
    # (1 - alpha_bar_prev) is formed from the float64 betas: subtracting float32 alpha_bar ~ 1 - 1e-4 from 1 would
    # lose 3 of float32's 7 digits at t = 1, which is why the schedule stores sqrt_one_minus_alpha_bar itself.
    b = linear_betas(1000)
    one_minus_ab_prev = 1 - torch.cumprod(1 - b, 0)[:-1]
    lhs = 1 / s.posterior_variance[1:].double()
    rhs = (1 - b[1:]) / b[1:] + 1 / one_minus_ab_prev
    torch.testing.assert_close(lhs, rhs, rtol=1e-5, atol=0)


def test_schedule_is_frozen_and_to_is_a_noop_on_same_device(ddpm_schedule: NoiseSchedule) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ddpm_schedule.beta = torch.zeros(3)  # type: ignore[misc]
    assert ddpm_schedule.to("cpu") is ddpm_schedule
    assert ddpm_schedule.device == torch.device("cpu")


def test_schedule_with_one_step() -> None:
    s = NoiseSchedule.from_betas(torch.tensor([0.3], dtype=torch.float64))
    assert s.T == 1 and float(s.alpha_bar[0]) == pytest.approx(0.7)
    assert torch.isfinite(s.posterior_log_variance_clipped).all()


# --- extract: the one broadcast helper ------------------------------------------------------------------------------


def test_extract_on_points_and_images() -> None:
    values = torch.arange(10, dtype=torch.float32) * 0.5
    t = torch.tensor([0, 3, 9])
    for x in (torch.ones(3, 2), torch.ones(3, 1, 4, 5)):
        out = extract(values, t, x)
        assert out.shape == (3,) + (1,) * (x.ndim - 1)
        assert out.flatten().tolist() == [0.0, 1.5, 4.5]
        # broadcasting multiplies example b by values[t[b]] everywhere in that example
        prod = out * x
        for b in range(3):
            assert torch.all(prod[b] == values[t[b]])


def test_extract_follows_x_dtype() -> None:
    values = torch.linspace(0, 1, 5, dtype=torch.float32)
    x = torch.zeros(2, 3, dtype=torch.float64)
    assert extract(values, torch.tensor([1, 4]), x).dtype == torch.float64


def test_schedules_compare_by_value() -> None:
    a, b = NoiseSchedule.linear(50), NoiseSchedule.linear(50)
    assert a == b and hash(a) == hash(b) and a is not b
    assert a != NoiseSchedule.linear(51) and a != NoiseSchedule.cosine(50)
    assert (a == "linear") is False
