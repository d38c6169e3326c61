"""Shared fixtures of the unit, property and oracle tests.

Every test is CPU-only and seeded: randomness comes from a ``torch.Generator`` passed explicitly, never from the
global RNG, so a failing test reproduces exactly.
"""

from __future__ import annotations

import math

import pytest
import torch

from diffusion_course.maths.schedules import NoiseSchedule


@pytest.fixture(scope="session")
def ddpm_schedule() -> NoiseSchedule:
    """The DDPM paper's schedule: T = 1000, beta linear from 1e-4 to 0.02 (Ho et al. 2020, section 4)."""
    return NoiseSchedule.linear(1000)


@pytest.fixture()
def gen() -> torch.Generator:
    """A fresh CPU generator with a fixed seed for each test."""
    return torch.Generator().manual_seed(1234)


@pytest.fixture()
def one_thread():
    """Run a test on one intra-op thread: the unit tests' tensors are small, and on a busy (CI or shared) machine a
    second OpenMP thread makes each tiny op wait for a core -- 1,000 small steps went from 1 s to 80 s here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _gaussian_eps_model(schedule: NoiseSchedule, m: torch.Tensor, s: float):
    """The exact (Bayes-optimal) noise predictor for data x_0 ~ N(m, s^2 I).

    x_t = sqrt(ab) x_0 + sqrt(1 - ab) eps is Gaussian with mean sqrt(ab) m and variance v = ab s^2 + 1 - ab, so
    E[eps | x_t] = sqrt(1 - ab) (x_t - sqrt(ab) m) / v. ``m`` has the shape of one data point.
    """
    alpha_bar = schedule.alpha_bar.double()
    one_minus_alpha_bar = schedule.sqrt_one_minus_alpha_bar.double() ** 2  # precise near t = 0, unlike 1 - alpha_bar

    def model(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shape = (-1, *([1] * (x_t.ndim - 1)))
        ab, one_minus_ab = alpha_bar[t].reshape(shape), one_minus_alpha_bar[t].reshape(shape)
        v = ab * s**2 + one_minus_ab
        eps = one_minus_ab.sqrt() * (x_t.double() - ab.sqrt() * m.double()) / v
        return eps.to(x_t.dtype)

    return model


def _standard_error_bounds(n: int, var: float, k: float = 5.0) -> tuple[float, float]:
    """k standard errors of a sample mean and of a sample variance of n Gaussian draws with variance ``var``."""
    return k * math.sqrt(var / n), k * var * math.sqrt(2.0 / (n - 1))


@pytest.fixture(scope="session")
def gaussian_eps_model():
    """Factory ``(schedule, m, s) -> model(x_t, t)``: the exact noise predictor for x_0 ~ N(m, s^2 I)."""
    return _gaussian_eps_model


@pytest.fixture(scope="session")
def se_bounds():
    """Factory ``(n, var, k=5) -> (tol_mean, tol_var)``: k standard errors of a sample mean and a sample variance."""
    return _standard_error_bounds


@pytest.fixture()
def host_reads(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts every read of a tensor's value by Python (int(t), bool(t), float(t), .item(), .tolist()) while the test
    runs: on a GPU each one makes the CPU wait for the GPU."""
    counts = {"reads": 0}
    for name in ("__bool__", "__int__", "__float__", "__index__", "item", "tolist"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, **kwargs):
            counts["reads"] += 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counts
