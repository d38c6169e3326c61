"""Chapter 8: interpolating between two noises x_T: straight lines (lerp) and great circles (slerp; Shoemake 1985,
as used between DDIM latents by Song et al. 2021).

A standard Gaussian vector in D dimensions has norm close to sqrt(D), and two independent ones are nearly orthogonal.
The straight line between them passes through vectors of norm about sqrt(D / 2) at its midpoint, which the model
never saw as an x_T; the great circle keeps the norm, so every point on it looks like a typical x_T. That is why the
DDIM paper interpolates its latents with slerp (Song et al. 2021, Appendix D.5).

Each item along dim 0 of a (B, ...) tensor is one vector (so a batch holds B independent pairs); a 1-D tensor is
one vector.
"""

from __future__ import annotations

import torch

from .._internal.validate import check_choice, check_positive_int, check_range, check_same_shape

__all__ = ["lerp", "slerp", "interpolate", "INTERPOLATIONS", "angle_between"]

INTERPOLATIONS = ("lerp", "slerp")


def _flat(z: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B, D); a 1-D vector (D,) -> (1, D)."""
    return z.reshape(1, -1) if z.ndim == 1 else z.reshape(z.shape[0], -1)


def _check_pair(z0: torch.Tensor, z1: torch.Tensor) -> None:
    check_same_shape(z0, z1, "z0", "z1")
    if z0.ndim == 0 or z0.numel() == 0:
        raise ValueError(f"z0 and z1 must be non-empty tensors of shape (D,) or (B, ...); got shape {tuple(z0.shape)}")


def angle_between(z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
    """Angle theta = arccos(<z0, z1> / (||z0|| ||z1||)) in radians between matching items, shape (B,) (or (1,) for 1-D)."""
    _check_pair(z0, z1)
    a, b = _flat(z0).double(), _flat(z1).double()
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp(min=1e-300)
    return torch.arccos(cos.clamp(-1.0, 1.0)).to(z0.dtype)


def lerp(z0: torch.Tensor, z1: torch.Tensor, w: float) -> torch.Tensor:
    """Linear interpolation (1 - w) z0 + w z1, w in [0, 1]; same shape as z0."""
    _check_pair(z0, z1)
    check_range(w, "w", 0.0, 1.0)
    return (1 - w) * z0 + w * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, w: float, *, eps: float = 1e-6) -> torch.Tensor:
    """Spherical interpolation sin((1-w) theta)/sin(theta) z0 + sin(w theta)/sin(theta) z1, w in [0, 1]
    (Shoemake 1985; used on x_T by Song et al. 2021, Appendix D.5, eq. 67). Same shape as z0.

    theta is the angle between z0 and z1 (per item along dim 0). When theta < ``eps`` the two vectors point the same
    way and slerp falls back to lerp (the limit of the formula). Opposite vectors (theta = pi) have no unique great
    circle and raise ``ValueError``.
    """
    check_range(eps, "eps", 0.0, 1.0, open_low=True, open_high=True)
    _check_pair(z0, z1)
    check_range(w, "w", 0.0, 1.0)
    theta = angle_between(z0, z1).double()  # (B,)
    if (theta > torch.pi - eps).any():
        raise ValueError("z0 and z1 must not point in opposite directions (angle pi): the great circle is not unique")
    small = theta < eps
    sin = torch.sin(theta)
    safe = torch.where(small, torch.ones_like(sin), sin)
    c0 = torch.where(small, torch.full_like(theta, 1 - w), torch.sin((1 - w) * theta) / safe)
    c1 = torch.where(small, torch.full_like(theta, w), torch.sin(w * theta) / safe)
    shape = (-1,) + (1,) * (z0.ndim - 1)  # (B, 1, ..., 1); a 1-D vector gets shape (1,)
    c0, c1 = c0.to(z0.dtype).reshape(shape), c1.to(z0.dtype).reshape(shape)
    return c0 * z0 + c1 * z1


def interpolate(z0: torch.Tensor, z1: torch.Tensor, n: int, kind: str = "slerp") -> torch.Tensor:
    """``n`` evenly spaced points from z0 (w = 0) to z1 (w = 1) by ``kind`` ("lerp" or "slerp"): shape (n, *z0.shape)."""
    check_choice(kind, INTERPOLATIONS, "kind")
    check_positive_int(n, "n", 2)
    fn = slerp if kind == "slerp" else lerp
    return torch.stack([fn(z0, z1, float(w)) for w in torch.linspace(0, 1, n, dtype=torch.float64)])
