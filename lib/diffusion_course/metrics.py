"""Sample-quality numbers, always reported beside a floor measured the same way on real data."""

from __future__ import annotations

import torch

from ._validate import check_positive_int

__all__ = ["sliced_wasserstein", "mmd_rbf"]


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
