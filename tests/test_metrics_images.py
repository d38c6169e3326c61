"""The image quality score: the Frechet distance against closed forms and an eigenvalue oracle, and quality_report's
behaviour on real digits, noise and a single digit class (properties, not stored numbers)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from diffusion_course.models.classifier import ClassifierConfig, MNISTClassifier
from diffusion_course.scoring.distances import frechet_distance, gaussian_frechet_distance
from diffusion_course.scoring.quality import QualityReport, quality_report
from diffusion_course.training.classifier import random_shift


def _feats(n: int, d: int, seed: int, scale: float = 1.0, dist: int | None = None) -> torch.Tensor:
    """n correlated Gaussian features; the distribution (mixing matrix, mean) comes from ``dist`` (default: seed)."""
    gd = torch.Generator().manual_seed(seed if dist is None else dist)
    mix = torch.randn(d, d, generator=gd, dtype=torch.float64) / d**0.5
    mean = torch.randn(d, generator=gd, dtype=torch.float64)
    g = torch.Generator().manual_seed(10_000 + seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64) @ mix) * scale + mean


def _oracle(a: torch.Tensor, b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a) + Tr(S_b) - 2 sum sqrt(eig(S_a^1/2 S_b S_a^1/2)), without scipy.sqrtm."""
    a, b = a.double(), b.double()
    sa, sb = torch.cov(a.T), torch.cov(b.T)
    w, v = torch.linalg.eigh(sa)
    root_a = v @ torch.diag(w.clamp(min=0).sqrt()) @ v.T
    cross = torch.linalg.eigvalsh(root_a @ sb @ root_a).clamp(min=0).sqrt().sum()
    return float((a.mean(0) - b.mean(0)).square().sum() + sa.trace() + sb.trace() - 2 * cross)


def test_matches_eigenvalue_oracle() -> None:
    a, b = _feats(400, 6, 0), _feats(300, 6, 1, scale=1.7)
    assert frechet_distance(a, b) == pytest.approx(_oracle(a, b), rel=1e-8)


def test_identity_symmetry_and_translation() -> None:
    a, b = _feats(300, 5, 2), _feats(300, 5, 3)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-8)
    v = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0], dtype=torch.float64)
    assert frechet_distance(a, a + v) == pytest.approx(float(v @ v), rel=1e-8)  # same covariance: only the means differ


def test_one_dimension_closed_form() -> None:
    a, b = _feats(500, 1, 4), _feats(500, 1, 5, scale=3.0)
    mu_a, mu_b, s_a, s_b = a.mean(), b.mean(), a.std(), b.std()  # unbiased, like the covariance
    assert frechet_distance(a, b) == pytest.approx(float((mu_a - mu_b) ** 2 + (s_a - s_b) ** 2), rel=1e-8)


def test_diagonal_gaussians_closed_form() -> None:
    mu_a, mu_b = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    va, vb = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    expected = ((mu_a - mu_b) ** 2).sum() + ((np.sqrt(va) - np.sqrt(vb)) ** 2).sum()
    assert gaussian_frechet_distance(mu_a, np.diag(va), mu_b, np.diag(vb)) == pytest.approx(expected, rel=1e-12)


def test_float32_input_is_computed_in_float64() -> None:
    a, b = _feats(200, 8, 6), _feats(200, 8, 7)
    assert frechet_distance(a.float(), b.float()) == pytest.approx(frechet_distance(a, b), rel=1e-5)


def test_singular_covariances_stay_finite_without_warnings() -> None:
    """Fewer samples than features, or a feature that never varies (an always-black pixel): finite, no warning."""
    a, b = _feats(300, 6, 11), _feats(300, 6, 12)
    a[:, 0], b[:, 0] = -1.0, -1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = frechet_distance(_feats(10, 32, 8), _feats(12, 32, 9))
        d_const = frechet_distance(a, b)
    assert np.isfinite(d) and d >= 0
    assert d_const == pytest.approx(frechet_distance(a[:, 1:], b[:, 1:]), rel=1e-3)  # the constant feature adds nothing


def test_shrinks_with_sample_size() -> None:
    """Same distribution, more samples -> smaller distance: why the floor must use the same sample size."""
    big = _feats(4000, 8, 10, dist=0)
    small = [frechet_distance(_feats(50, 8, 20 + i, dist=0), big) for i in range(5)]
    large = [frechet_distance(_feats(1000, 8, 40 + i, dist=0), big) for i in range(5)]
    assert np.mean(large) < 0.2 * np.mean(small)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="same D"):
        frechet_distance(torch.zeros(5, 3), torch.zeros(5, 4))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(torch.zeros(1, 3), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="samples must have shape"):
        quality_report(torch.zeros(4, 1, 8, 8), classifier=MNISTClassifier(), reference=torch.zeros(5, 1, 28, 28), train_images=torch.zeros(5, 1, 28, 28))


def test_random_shift() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.full((6, 1, 28, 28), -1.0)
    x[:, :, 10:18, 10:18] = 1.0  # a square well inside the frame
    y = random_shift(x, 2, g)
    assert y.shape == x.shape
    assert torch.equal((y + 1).sum(dim=(1, 2, 3)), (x + 1).sum(dim=(1, 2, 3)))  # the square is moved, not cut
    assert torch.equal(random_shift(x, 0, g), x)


def _tiny_report(samples: torch.Tensor, ref: torch.Tensor, train: torch.Tensor) -> QualityReport:
    torch.manual_seed(0)
    clf = MNISTClassifier(ClassifierConfig(width=4, feature_dim=8)).eval()
    return quality_report(samples, classifier=clf, reference=ref, train_images=train, floor_repeats=3)


def test_report_fields_with_an_untrained_classifier() -> None:
    g = torch.Generator().manual_seed(1)
    ref, train = torch.rand(300, 1, 28, 28, generator=g) * 2 - 1, torch.rand(300, 1, 28, 28, generator=g) * 2 - 1
    samples = torch.rand(50, 1, 28, 28, generator=g) * 3 - 1.5  # a third of the pixels outside [-1, 1]
    r = _tiny_report(samples, ref, train)
    assert r.n == 50 and r.ratio == pytest.approx(r.frechet / r.floor)
    assert sum(r.class_shares) == pytest.approx(1.0, abs=1e-3) and len(r.class_shares) == 10
    assert 0.0 <= r.class_entropy <= 1.0 and 0.1 <= r.confidence <= 1.0
    assert r.out_of_range == pytest.approx(1 / 3, abs=0.02)
    assert "ratio" in r.summary()
    with pytest.raises(ValueError, match="at most 300"):
        _tiny_report(torch.zeros(301, 1, 28, 28), ref, train)


# ------------------------------------------------------------------ with the shipped classifier and real digits


@pytest.fixture(scope="module")
def mnist_splits():
    from diffusion_course.data.sets import mnist

    return mnist("train"), mnist("test")


@pytest.fixture(scope="module")
def classifier():
    from diffusion_course.scoring.reference import load_classifier

    return load_classifier()[0]


def test_real_digits_score_near_the_floor(mnist_splits, classifier) -> None:
    (x_train, _), (x_test, _) = mnist_splits
    # the offline test set is sorted by digit: split it at random, not by position
    perm = torch.randperm(len(x_test), generator=torch.Generator().manual_seed(0))
    r = quality_report(x_test[perm[:200]], classifier=classifier, reference=x_test[perm[200:]], train_images=x_train)
    assert 0.4 < r.ratio < 2.0
    assert r.confidence > 0.9 and r.class_entropy > 0.95


def test_noise_scores_far_above_the_floor(mnist_splits, classifier) -> None:
    (x_train, _), (x_test, _) = mnist_splits
    noise = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * 2 - 1
    r = quality_report(noise, classifier=classifier, reference=x_test, train_images=x_train)
    assert r.ratio > 20


def test_a_single_digit_is_unbalanced(mnist_splits, classifier) -> None:
    (x_train, y_train), (x_test, _) = mnist_splits
    threes = x_train[y_train == 3][:200]
    r = quality_report(threes, classifier=classifier, reference=x_test, train_images=x_train)
    assert max(r.class_shares) > 0.9 and r.class_entropy < 0.25
    assert r.ratio > 3  # mode collapse shows in the Frechet distance too


# ------------------------------------------------------------------ honest statistics: floors, minimum n, the square root


def test_floor_draws_are_disjoint_within_a_pass() -> None:
    from diffusion_course.scoring.quality import floor_draws

    draws = floor_draws(4000, 200, 20, seed=3)
    assert len(draws) == 20 and all(len(d) == 200 for d in draws)
    assert len(torch.cat(draws).unique()) == 4000  # 20 x 200 = the whole pool, each image once
    draws = floor_draws(4000, 1000, 20, seed=3)  # 4 per pass, 5 passes
    for p in range(5):
        block = torch.cat(draws[4 * p : 4 * p + 4])
        assert len(block.unique()) == 4000
    assert not torch.equal(draws[0], draws[4])  # a new permutation for the next pass
    with pytest.raises(ValueError, match="n"):
        floor_draws(100, 101, 3)


def test_report_refuses_fewer_than_four_samples_per_feature() -> None:
    g = torch.Generator().manual_seed(1)
    ref, train = torch.rand(300, 1, 28, 28, generator=g) * 2 - 1, torch.rand(300, 1, 28, 28, generator=g) * 2 - 1
    with pytest.raises(ValueError, match="min_per_feature x feature dimension = 4 x 8 = 32"):
        _tiny_report(torch.rand(31, 1, 28, 28, generator=g), ref, train)
    assert _tiny_report(torch.rand(32, 1, 28, 28, generator=g), ref, train).n == 32


def test_singular_covariances_take_the_offset_path_and_stay_right() -> None:
    # a feature that never varies (an always-black corner): cov_a is singular; the exact answer is still known
    # in closed form for diagonal covariances: sum (sqrt(a_i) - sqrt(b_i))^2
    a = np.array([0.0, 1.0, 4.0])
    b = np.array([1.0, 1.0, 9.0])
    got = gaussian_frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b))
    want = float(((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    # the 1e-6 I offset moves sqrt(0) to 1e-3, so the zero-variance feature is off by about 2e-3 (pytorch-fid's bias too)
    assert got == pytest.approx(want, abs=5e-3)


def test_fallback_really_runs_for_singular_covariances() -> None:
    from diffusion_course.scoring.distances import _sqrtm_product

    root, offset_used = _sqrtm_product(np.diag([0.0, 1.0]), np.eye(2))
    assert offset_used, "the 1e-6 I offset was not applied to a singular covariance"
    np.testing.assert_allclose(root, np.diag([1e-3, 1.0]), atol=1e-5)
    root, offset_used = _sqrtm_product(np.diag([2.0, 1.0]), np.diag([1.0, 3.0]))
    assert not offset_used, "the offset was applied to well-conditioned covariances"
    np.testing.assert_allclose(root, np.diag([np.sqrt(2.0), np.sqrt(3.0)]), rtol=1e-10)


def test_a_large_imaginary_part_raises() -> None:
    # a "covariance" with a negative eigenvalue has no real square root: pytorch-fid raises here, and so do we
    with pytest.raises(ValueError, match="imaginary part"):
        gaussian_frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))


def test_nearest_train_distances_against_brute_force() -> None:
    from diffusion_course.scoring.distances import nearest_train_distances

    g = torch.Generator().manual_seed(0)
    train = torch.rand(40, 1, 4, 4, generator=g) * 2 - 1
    x = torch.cat([train[:3], torch.rand(5, 1, 4, 4, generator=g) * 2 - 1])
    got = nearest_train_distances(x, train, batch_size=3)
    want = torch.tensor([min(float((xi - tj).norm()) for tj in train) for xi in x])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert torch.all(got[:3] < 1e-3)  # copies of training images sit at distance 0


def test_stored_floors_match_a_recomputation(classifier) -> None:
    from diffusion_course.scoring.quality import floor_table
    from diffusion_course.scoring.reference import load_classifier

    stored = load_classifier()[1].get("floors")
    assert stored, "the classifier card holds no floors: run `python -m diffusion_course.weights.make floors`"
    fresh = floor_table((500,), classifier=classifier, draws=stored["500"]["draws"])
    assert fresh["500"]["mean"] == pytest.approx(stored["500"]["mean"], rel=1e-6)
    assert fresh["500"]["std"] == pytest.approx(stored["500"]["std"], rel=1e-6)
    # and the floor shrinks with n, as a Frechet distance of finite samples must
    means = [stored[k]["mean"] for k in sorted(stored, key=int)]
    assert all(a > b for a, b in zip(means, means[1:]))


def test_report_dict_and_ratio_spread() -> None:
    g = torch.Generator().manual_seed(2)
    ref, train = torch.rand(300, 1, 28, 28, generator=g) * 2 - 1, torch.rand(300, 1, 28, 28, generator=g) * 2 - 1
    r = _tiny_report(torch.rand(40, 1, 28, 28, generator=g) * 2 - 1, ref, train)
    assert r.floor_draws == 3 and r.floor_std > 0
    assert r.ratio_spread == pytest.approx(r.ratio * r.floor_std / r.floor)
    d = r.as_dict()
    assert d["n"] == 40 and d["ratio"] == pytest.approx(r.ratio, abs=1e-4) and d["ratio_spread"] == pytest.approx(r.ratio_spread, abs=1e-4)
    assert 0.0 <= d["confident_share"] <= 1.0 and 0.0 <= d["reference_confident_share"] <= 1.0
