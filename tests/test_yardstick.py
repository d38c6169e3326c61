"""The course's yardstick holds still: the kernel inception distance against a brute-force oracle, unbiased in the
sample count where the Frechet distance is not, bootstrap intervals that cover the truth, paired differences, and a
score that does not change when a full MNIST appears in the data folder (the reference set is the shipped subset)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion_course import (
    REFERENCE_SET,
    compare_paired,
    frechet_distance,
    kernel_distance,
    kernel_distance_interval,
    mnist,
    paired_kernel_distance_difference,
    quality_report,
    reference_splits,
)
from diffusion_course.data import sets as data_sets


def _brute_force_kid(a: torch.Tensor, b: torch.Tensor) -> float:
    """Binkowski et al. 2018's unbiased MMD^2 with k(x, y) = (x . y / d + 1)^3, written as three plain double loops."""
    a, b = a.double().numpy(), b.double().numpy()
    d = a.shape[1]
    k = lambda x, y: (float(np.dot(x, y)) / d + 1.0) ** 3
    n, m = len(a), len(b)
    aa = sum(k(a[i], a[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    bb = sum(k(b[i], b[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    ab = sum(k(a[i], b[j]) for i in range(n) for j in range(m)) / (n * m)
    return aa + bb - 2 * ab


def test_kid_matches_the_brute_force_formula() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(23, 6, generator=g, dtype=torch.float64)
    b = torch.randn(17, 6, generator=g, dtype=torch.float64) * 1.3 + 0.2
    assert kernel_distance(a, b) == pytest.approx(_brute_force_kid(a, b), rel=1e-12, abs=1e-12)
    assert kernel_distance(a, b) == pytest.approx(kernel_distance(b, a), rel=1e-12)


def test_kid_is_unbiased_in_n_where_frechet_is_not() -> None:
    """Two samples of one Gaussian: KID's mean over draws is 0 (within 3 standard errors) at n = 40 and n = 320, while
    the Frechet distance's mean falls with n (its bias ~ 1/n), so a Frechet number depends on how many samples made it."""
    g = torch.Generator().manual_seed(1)
    d, draws = 4, 120
    kid_means, fd_means = {}, {}
    for n in (40, 320):
        kids, fds = [], []
        for _ in range(draws):
            a, b = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randn(n, d, generator=g, dtype=torch.float64)
            kids.append(kernel_distance(a, b))
            fds.append(frechet_distance(a, b))
        kids = np.array(kids)
        kid_means[n], fd_means[n] = kids.mean(), float(np.mean(fds))
        assert abs(kids.mean()) < 3 * kids.std(ddof=1) / np.sqrt(draws), (n, kids.mean(), kids.std(ddof=1))
    assert fd_means[40] > 4 * fd_means[320], fd_means  # bias ~ 1/n: eight times the samples, about an eighth of the distance


def test_kid_interval_covers_the_truth() -> None:
    """95% bootstrap intervals of KID between two samples of one distribution (true value 0) cover 0 in most repeats,
    and an interval for a shifted distribution lies above 0."""
    g = torch.Generator().manual_seed(2)
    covered = 0
    repeats = 40
    for r in range(repeats):
        a, b = torch.randn(120, 4, generator=g), torch.randn(150, 4, generator=g)
        iv = kernel_distance_interval(a, b, resamples=300, seed=r)
        assert iv.lo <= iv.hi
        covered += iv.lo <= 0.0 <= iv.hi
    assert covered >= 0.85 * repeats, covered
    shifted = kernel_distance_interval(torch.randn(200, 4, generator=g) + 0.6, torch.randn(200, 4, generator=g), resamples=300)
    assert shifted.lo > 0 and shifted.excludes_zero


def test_paired_difference_is_zero_for_one_set_and_signed_for_two() -> None:
    g = torch.Generator().manual_seed(3)
    ref = torch.randn(200, 4, generator=g)
    a = torch.randn(200, 4, generator=g)
    same = paired_kernel_distance_difference(a, a.clone(), ref, resamples=200)
    assert same.estimate == 0.0 and same.lo == 0.0 and same.hi == 0.0 and not same.excludes_zero
    worse = a * 1.6 + 0.4  # each sample of b made from the same draw as sample i of a, further from the reference
    d = paired_kernel_distance_difference(a, worse, ref, resamples=200)
    assert d.estimate == pytest.approx(kernel_distance(a, ref) - kernel_distance(worse, ref), rel=1e-12)
    assert d.hi < 0, d  # a is better, and the interval says so
    with pytest.raises(ValueError, match="feats_a and feats_b"):
        paired_kernel_distance_difference(a, worse[:-1], ref)
    with pytest.raises(ValueError, match="resamples"):
        paired_kernel_distance_difference(a, worse, ref, resamples=5)
    with pytest.raises(ValueError, match="level"):
        kernel_distance_interval(a, ref, level=1.5)


def test_real_digits_score_kid_near_zero_at_every_n() -> None:
    """Real test digits against the other test digits, at n = 100 and 400: the KID interval contains 0 at both n (the
    Frechet distance of the same sets is not near 0 and shrinks with n)."""
    _, test = reference_splits()
    perm = torch.randperm(test.shape[0], generator=torch.Generator().manual_seed(0))
    reference = test[perm[:500]]
    fds = {}
    for n in (150, 400):
        r = quality_report(test[perm[500 : 500 + n]], reference=reference, floor_repeats=3, kid_resamples=300)
        assert r.kid_lo <= 0.0 <= r.kid_hi, (n, r.kid, r.kid_lo, r.kid_hi)
        fds[n] = r.frechet
    assert fds[150] > fds[400] > 0


def _write_idx(path: Path, array: np.ndarray) -> None:
    """One file in MNIST's IDX format (big-endian magic, sizes, then the bytes), as torchvision reads it."""
    magic = 0x0803 if array.ndim == 3 else 0x0801
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic))
        for s in array.shape:
            f.write(struct.pack(">I", s))
        f.write(array.astype(np.uint8).tobytes())


def test_a_full_mnist_in_the_data_folder_does_not_change_the_score(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plant a fake torchvision-format MNIST (1,200 training and 300 test digits of a different look) in a temporary
    data folder: `mnist()` now loads it by default, as it would on a connected machine, but the score of the same
    samples is unchanged, because every score compares against the shipped subset (REFERENCE_SET)."""
    pytest.importorskip("torchvision")
    samples = reference_splits()[1][:300].flip(-1)  # some fixed images: mirrored test digits
    before = quality_report(samples, floor_repeats=3, kid_resamples=100).as_dict()

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 1200), ("t10k", 300)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, (n,)))
    monkeypatch.setattr(data_sets, "DATA_DIR", tmp_path)
    planted, _ = mnist("train")
    assert planted.shape[0] == 1200  # the default now reads the planted set, as a connected laptop would read the full one
    reference_splits.cache_clear()
    try:
        after = quality_report(samples, floor_repeats=3, kid_resamples=100).as_dict()
        assert reference_splits()[0].shape[0] == 4000 and reference_splits()[1].shape[0] == 1000
    finally:
        reference_splits.cache_clear()
    assert after == before
    assert after["reference"] == REFERENCE_SET


def test_compare_paired_needs_paired_sets() -> None:
    _, test = reference_splits()
    d = compare_paired(test[:200], test[:200], resamples=50)
    assert d.estimate == 0.0
    with pytest.raises(ValueError, match="samples_a and samples_b"):
        compare_paired(test[:200], test[:199])
