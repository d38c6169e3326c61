"""Distances between sets of samples, pure maths on tensors (chapters 4, 6-8): sliced Wasserstein and MMD between point
clouds, the Frechet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, eq. 6: FID's formula),
the kernel inception distance with bootstrap intervals, alone and as a paired difference of two sample sets
(Binkowski et al. 2018), and the nearest-training-image distance that spots copies. Nothing here loads data or weights: scoring generated
MNIST digits with the shipped classifier, beside a floor measured on real digits, is :mod:`.quality`.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from .._internal.validate import check_positive_int

__all__ = [
    "sliced_wasserstein", "mmd_rbf", "frechet_distance", "gaussian_frechet_distance", "nearest_train_distances",
    "polynomial_kernel", "kernel_distance", "KernelDistance", "kernel_distance_interval", "paired_kernel_distance_difference", "paired_mean_difference",
    "unpaired_kernel_distance_difference", "unpaired_mean_difference",
]


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, *, n_projections: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-2 distance between two point clouds (N, D) and (M, D) (Rabin et al. 2011; Bonneel et al. 2015).

    Both clouds are projected on ``n_projections`` random unit directions; each 1-D W2 compares sorted projections
    (quantiles when N != M). Returns sqrt(mean over directions of W2^2).
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have shapes (N, D) and (M, D) with the same D; got {tuple(a.shape)} and {tuple(b.shape)}")
    check_positive_int(n_projections, "n_projections")
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(a.shape[1], n_projections, generator=g, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    pa = torch.sort(a.double().cpu() @ dirs, dim=0).values
    pb = torch.sort(b.double().cpu() @ dirs, dim=0).values
    if pa.shape[0] != pb.shape[0]:
        q = torch.linspace(0, 1, max(pa.shape[0], pb.shape[0]), dtype=torch.float64)
        pa = torch.quantile(pa, q, dim=0)
        pb = torch.quantile(pb, q, dim=0)
    return float(((pa - pb) ** 2).mean().sqrt())


def mmd_rbf(a: torch.Tensor, b: torch.Tensor, *, bandwidths: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0)) -> float:
    """Unbiased squared maximum mean discrepancy with a sum of RBF kernels (Gretton et al. 2012, eq. 3)."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have shapes (N, D) and (M, D) with the same D; got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.double().cpu(), b.double().cpu()

    def k(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        d2 = torch.cdist(x, y) ** 2
        return sum(torch.exp(-d2 / (2 * h**2)) for h in bandwidths)

    n, m = a.shape[0], b.shape[0]
    kaa, kbb, kab = k(a, a), k(b, b), k(a, b)
    return float((kaa.sum() - kaa.diag().sum()) / (n * (n - 1)) + (kbb.sum() - kbb.diag().sum()) / (m * (m - 1)) - 2 * kab.mean())


# ------------------------------------------------------------------------------------------------ images


def _sqrtm_product(cov_a: np.ndarray, cov_b: np.ndarray) -> tuple[np.ndarray, bool]:
    """(cov_a cov_b)^(1/2), real, and whether the offset below was needed. When either covariance is singular (fewer samples than features, or a feature that
    never varies, such as an always-black corner pixel) or the root does not square back to the product, both
    covariances are nudged by 1e-6 I, as pytorch-fid does, and the root is taken again. An imaginary part on the
    diagonal larger than 1e-3 means the root is wrong, not rounded: it raises (pytorch-fid raises too)."""
    from scipy import linalg

    def singular(c: np.ndarray) -> bool:
        eig = np.linalg.eigvalsh((c + c.T) / 2)
        return bool(eig.min() <= 1e-10 * max(eig.max(), 1e-300))

    def root(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
        prod = a @ b
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SciPy's own singularity warning: judged below by the residual instead
            r = linalg.sqrtm(prod)
        if not np.isfinite(r).all():
            return r, np.inf
        return r, float(np.linalg.norm(r @ r - prod) / max(np.linalg.norm(prod), 1e-300))

    covmean, residual = root(cov_a, cov_b)
    offset_used = singular(cov_a) or singular(cov_b) or residual > 1e-6
    if offset_used:
        offset = np.eye(cov_a.shape[0]) * 1e-6
        covmean, residual = root(cov_a + offset, cov_b + offset)
    if not np.isfinite(covmean).all():
        raise FloatingPointError("the matrix square root of the covariance product is not finite, even after adding 1e-6 I")
    if np.iscomplexobj(covmean):
        imag = float(np.abs(np.diagonal(covmean).imag).max())
        if imag > 1e-3:
            raise ValueError(f"the square root of the covariance product has an imaginary part of {imag:.3g} on its diagonal "
                             "(larger than 1e-3): the covariances are not valid (not symmetric positive semi-definite)")
        covmean = covmean.real  # round-off leaves tiny imaginary parts
    return covmean, offset_used


def gaussian_frechet_distance(mu_a: np.ndarray, cov_a: np.ndarray, mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    """Frechet (2-Wasserstein squared) distance between N(mu_a, cov_a) and N(mu_b, cov_b), in float64:
    ||mu_a - mu_b||^2 + Tr(cov_a + cov_b - 2 (cov_a cov_b)^(1/2))  (Dowson & Landau 1982; FID, Heusel et al. 2017, eq. 6)."""
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    cov_a, cov_b = np.atleast_2d(np.asarray(cov_a, np.float64)), np.atleast_2d(np.asarray(cov_b, np.float64))
    if mu_a.shape != mu_b.shape or cov_a.shape != cov_b.shape or cov_a.shape != (mu_a.size, mu_a.size):
        raise ValueError(f"means (D,) and covariances (D, D) must agree; got {mu_a.shape}, {cov_a.shape}, {mu_b.shape}, {cov_b.shape}")
    covmean, _ = _sqrtm_product(cov_a, cov_b)
    diff = mu_a - mu_b
    return float(max(0.0, diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean)))


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted (mean, unbiased covariance) to two feature sets (N, D) and (M, D),
    computed in float64 (Heusel et al. 2017, eq. 6). 0 for identical sets; it shrinks as N and M grow, so always compare
    it with a floor measured at the same sample sizes."""
    if feats_a.ndim != 2 or feats_b.ndim != 2 or feats_a.shape[1] != feats_b.shape[1]:
        raise ValueError(f"feats_a and feats_b must have shapes (N, D) and (M, D) with the same D; got {tuple(feats_a.shape)} and {tuple(feats_b.shape)}")
    if feats_a.shape[0] < 2 or feats_b.shape[0] < 2:
        raise ValueError(f"need at least 2 feature vectors per set for a covariance; got N={feats_a.shape[0]}, M={feats_b.shape[0]}")
    a = feats_a.detach().cpu().double().numpy()
    b = feats_b.detach().cpu().double().numpy()
    return gaussian_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def nearest_train_distances(images: torch.Tensor, train_images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """For each image (N, C, H, W), the Euclidean pixel distance to its nearest training image: a sample that copies a
    training digit sits near 0; compare the median with that of held-out test digits (a model that generalises lands
    about as far from the training set as new real digits do)."""
    if images.ndim != 4 or train_images.ndim != 4 or images.shape[1:] != train_images.shape[1:]:
        raise ValueError(
            f"images and train_images must have shapes (N, C, H, W) with the same C, H, W; got {tuple(images.shape)} and {tuple(train_images.shape)}"
        )
    check_positive_int(batch_size, "batch_size")
    tr = train_images.detach().float().cpu().flatten(1)
    out = []
    for i in range(0, images.shape[0], batch_size):
        x = images[i : i + batch_size].detach().float().cpu().clamp(-1, 1).flatten(1)
        out.append(torch.cdist(x, tr, compute_mode="donot_use_mm_for_euclid_dist").min(1).values)  # exact near 0
    return torch.cat(out)


# --- the kernel inception distance (Binkowski et al. 2018) -----------------------------------------------------------
# KID is the unbiased estimate of the squared maximum mean discrepancy between two feature sets under the cubic
# polynomial kernel k(x, y) = (x . y / d + 1)^3 (d the feature dimension; Binkowski et al. 2018, section 3). Unlike the
# Frechet distance it has no bias in the sample count: its mean over draws of real-vs-real sets is 0 at every n.


def polynomial_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """k(a_i, b_j) = (a_i . b_j / d + 1)^3 for feature sets (N, d) and (M, d), in float64: an (N, M) matrix."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must have shapes (N, D) and (M, D) with the same D; got {tuple(a.shape)} and {tuple(b.shape)}")
    a, b = a.double().cpu(), b.double().cpu()
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _mmd2_from_counts(k_aa: torch.Tensor, k_bb: torch.Tensor, k_ab: torch.Tensor, c_a: torch.Tensor, c_b: torch.Tensor) -> torch.Tensor:
    """The unbiased MMD^2 of weighted sets given by counts (R, N) and (R, M) over the points behind the kernel matrices:
    each row of counts is one bootstrap resample (a count of 1 everywhere is the plain estimate). The within-set means
    run over pairs of two different points, weighted by their counts (a point drawn twice is never paired with itself:
    that pair would add k(x, x), the bias the unbiased estimate exists to remove)."""
    def within(k: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        pairs = c.sum(1) ** 2 - (c * c).sum(1)
        return (((c @ k) * c).sum(1) - (c * c) @ k.diagonal()) / pairs

    cross = ((c_a @ k_ab) * c_b).sum(1) / (c_a.sum(1) * c_b.sum(1))
    return within(k_aa, c_a) + within(k_bb, c_b) - 2 * cross


def kernel_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """KID: the unbiased MMD^2 between feature sets (N, d) and (M, d) under :func:`polynomial_kernel` (Binkowski et al.
    2018). 0 in expectation for two samples of one distribution, whatever N and M; it can come out slightly negative."""
    if feats_a.shape[0] < 2 or feats_b.shape[0] < 2:
        raise ValueError(f"feats_a and feats_b must hold at least 2 rows each; got {feats_a.shape[0]} and {feats_b.shape[0]}")
    k_aa, k_bb, k_ab = polynomial_kernel(feats_a, feats_a), polynomial_kernel(feats_b, feats_b), polynomial_kernel(feats_a, feats_b)
    ones_a = torch.ones(1, feats_a.shape[0], dtype=torch.float64)
    ones_b = torch.ones(1, feats_b.shape[0], dtype=torch.float64)
    return float(_mmd2_from_counts(k_aa, k_bb, k_ab, ones_a, ones_b)[0])


class KernelDistance(tuple):
    """(estimate, lo, hi): a KID or a difference of two KIDs with its bootstrap interval at ``level``."""

    __slots__ = ()

    def __new__(cls, estimate: float, lo: float, hi: float) -> KernelDistance:
        return super().__new__(cls, (estimate, lo, hi))

    estimate = property(lambda self: self[0])
    lo = property(lambda self: self[1])
    hi = property(lambda self: self[2])

    @property
    def excludes_zero(self) -> bool:
        """True when the interval lies wholly on one side of 0 (the two settings are separated)."""
        return self.lo > 0 or self.hi < 0

    def __str__(self) -> str:
        return f"{self.estimate:.5f} [{self.lo:.5f}, {self.hi:.5f}]"


def _counts(generator: torch.Generator, resamples: int, n: int) -> torch.Tensor:
    idx = torch.randint(0, n, (resamples, n), generator=generator)
    return torch.zeros(resamples, n, dtype=torch.float64).scatter_add_(1, idx, torch.ones(resamples, n, dtype=torch.float64))


def _check_interval_args(resamples: int, level: float) -> None:
    check_positive_int(resamples, "resamples", 10)
    if not 0.5 <= level < 1:
        raise ValueError(f"level must lie in [0.5, 1); got {level!r}")


def _percentiles(values: torch.Tensor, level: float) -> tuple[float, float]:
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    lo, hi = torch.quantile(values, q)
    return float(lo), float(hi)


def kernel_distance_interval(feats: torch.Tensor, feats_ref: torch.Tensor, *, resamples: int = 1000, level: float = 0.95,
                             seed: int = 0) -> KernelDistance:
    """KID of ``feats`` against ``feats_ref`` with a percentile bootstrap interval: both sets resampled with replacement
    ``resamples`` times (seeded), the unbiased estimate recomputed on each resample."""
    _check_interval_args(resamples, level)
    est = kernel_distance(feats, feats_ref)
    k_aa, k_bb, k_ab = polynomial_kernel(feats, feats), polynomial_kernel(feats_ref, feats_ref), polynomial_kernel(feats, feats_ref)
    g = torch.Generator().manual_seed(seed)
    boot = _mmd2_from_counts(k_aa, k_bb, k_ab, _counts(g, resamples, feats.shape[0]), _counts(g, resamples, feats_ref.shape[0]))
    return KernelDistance(est, *_percentiles(boot, level))


def paired_kernel_distance_difference(feats_a: torch.Tensor, feats_b: torch.Tensor, feats_ref: torch.Tensor, *, resamples: int = 1000,
                                      level: float = 0.95, seed: int = 0) -> KernelDistance:
    """KID(a) - KID(b) against one reference, with a paired bootstrap interval: sample i of ``feats_a`` and of
    ``feats_b`` came from the same starting noise, so each resample draws the same indices i for both (and one
    resample of the reference for both). A negative difference whose interval excludes 0 says a is better than b."""
    if feats_a.shape != feats_b.shape:
        raise ValueError(f"feats_a and feats_b must be paired (same shape); got {tuple(feats_a.shape)} and {tuple(feats_b.shape)}")
    _check_interval_args(resamples, level)
    k_rr = polynomial_kernel(feats_ref, feats_ref)
    mats = [(polynomial_kernel(f, f), polynomial_kernel(f, feats_ref)) for f in (feats_a, feats_b)]
    g = torch.Generator().manual_seed(seed)
    c_s, c_r = _counts(g, resamples, feats_a.shape[0]), _counts(g, resamples, feats_ref.shape[0])
    ones_s = torch.ones(1, feats_a.shape[0], dtype=torch.float64)
    ones_r = torch.ones(1, feats_ref.shape[0], dtype=torch.float64)
    est = [float(_mmd2_from_counts(k_ss, k_rr, k_sr, ones_s, ones_r)[0]) for k_ss, k_sr in mats]
    boot = [_mmd2_from_counts(k_ss, k_rr, k_sr, c_s, c_r) for k_ss, k_sr in mats]
    return KernelDistance(est[0] - est[1], *_percentiles(boot[0] - boot[1], level))


def paired_mean_difference(a: torch.Tensor, b: torch.Tensor, *, resamples: int = 1000, level: float = 0.95, seed: int = 0) -> KernelDistance:
    """mean(a) - mean(b) for paired per-sample values (e.g. 1.0 where the classifier reads sample i as the digit asked
    for), with a paired bootstrap interval: each resample draws the same indices i for both. The same (estimate, lo,
    hi) tuple as the KID differences, so ``.excludes_zero`` reads the same way."""
    if a.ndim != 1 or a.shape != b.shape or a.shape[0] < 2:
        raise ValueError(f"a and b must be paired 1-D tensors of one length >= 2; got {tuple(a.shape)} and {tuple(b.shape)}")
    _check_interval_args(resamples, level)
    d = (a.double() - b.double()).cpu()
    g = torch.Generator().manual_seed(seed)
    boot = (_counts(g, resamples, d.shape[0]) @ d) / d.shape[0]
    return KernelDistance(float(d.mean()), *_percentiles(boot, level))


def unpaired_kernel_distance_difference(feats_a: torch.Tensor, feats_b: torch.Tensor, feats_ref: torch.Tensor, *, resamples: int = 1000,
                                        level: float = 0.95, seed: int = 0) -> KernelDistance:
    """KID(a) - KID(b) against one reference for two *unrelated* sample sets (different models or shapes of noise, so
    sample i of a has nothing to do with sample i of b): each resample draws a and b independently, and one resample
    of the reference for both. Wider than the paired interval of two settings that share their noises."""
    _check_interval_args(resamples, level)
    k_rr = polynomial_kernel(feats_ref, feats_ref)
    g = torch.Generator().manual_seed(seed)
    c_r = _counts(g, resamples, feats_ref.shape[0])
    ones_r = torch.ones(1, feats_ref.shape[0], dtype=torch.float64)
    est, boot = [], []
    for f in (feats_a, feats_b):
        k_ss, k_sr = polynomial_kernel(f, f), polynomial_kernel(f, feats_ref)
        est.append(float(_mmd2_from_counts(k_ss, k_rr, k_sr, torch.ones(1, f.shape[0], dtype=torch.float64), ones_r)[0]))
        boot.append(_mmd2_from_counts(k_ss, k_rr, k_sr, _counts(g, resamples, f.shape[0]), c_r))
    return KernelDistance(est[0] - est[1], *_percentiles(boot[0] - boot[1], level))


def unpaired_mean_difference(a: torch.Tensor, b: torch.Tensor, *, resamples: int = 1000, level: float = 0.95, seed: int = 0) -> KernelDistance:
    """mean(a) - mean(b) for two unrelated sets of per-sample values (e.g. 1.0 where a sample is read as the digit asked
    for), each resampled on its own, with a percentile bootstrap interval."""
    if a.ndim != 1 or b.ndim != 1 or a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(f"a and b must be 1-D tensors of length >= 2; got {tuple(a.shape)} and {tuple(b.shape)}")
    _check_interval_args(resamples, level)
    g = torch.Generator().manual_seed(seed)
    boot = [(_counts(g, resamples, v.shape[0]) @ v.double().cpu()) / v.shape[0] for v in (a, b)]
    return KernelDistance(float(a.double().mean() - b.double().mean()), *_percentiles(boot[0] - boot[1], level))
