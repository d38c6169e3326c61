"""The unpaired comparisons (chapter 15 compares a latent-space and a pixel-space model, whose noises differ): the
bootstrap interval of a difference of means against its normal approximation, and the unpaired KID difference on real
digits (not separated) and on digits against noise (separated), wider than the paired one."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion_course import compare_paired, compare_unpaired, mnist, unpaired_mean_difference


def test_unpaired_mean_difference_matches_the_normal_approximation() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = (torch.rand(4000, generator=g) < 0.7).double(), (torch.rand(3000, generator=g) < 0.6).double()
    d = unpaired_mean_difference(a, b, resamples=2000)
    assert d.estimate == pytest.approx(float(a.mean() - b.mean()))
    half = 1.96 * math.sqrt(a.var() / len(a) + b.var() / len(b))
    assert (d.hi - d.lo) / 2 == pytest.approx(half, rel=0.1)
    assert d.excludes_zero
    with pytest.raises(ValueError, match="a and b"):
        unpaired_mean_difference(a[:1], b)


def test_unpaired_kid_difference_reads_real_digits_and_noise() -> None:
    x, _ = mnist("train", source="subset")
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(1))
    a, b = x[perm[:300]], x[perm[300:600]]
    same = compare_unpaired(a, b, resamples=200)
    assert same.lo < 0 < same.hi  # two draws of real digits: not separated
    noise = torch.rand(300, 1, 28, 28, generator=torch.Generator().manual_seed(2)) * 2 - 1
    worse = compare_unpaired(noise, a, resamples=200)
    assert worse.lo > 0  # noise is further from the digits, beyond the interval
    self_unpaired, self_paired = compare_unpaired(a, a, resamples=200), compare_paired(a, a, resamples=200)
    assert self_unpaired.estimate == pytest.approx(0.0, abs=1e-12) and self_paired.lo == self_paired.hi == 0.0
    assert self_unpaired.hi - self_unpaired.lo > 0  # resampling each set on its own: no pairing to cancel the noise
    with pytest.raises(ValueError, match="samples_b"):
        compare_unpaired(a, torch.zeros(3, 1, 8, 8))
