"""lerp / slerp between noises: endpoints, norms of high-dimensional Gaussians, the geometry of the great circle."""

from __future__ import annotations

import math

import pytest
import torch

from diffusion_course.maths.interpolation import angle_between, interpolate, lerp, slerp


def _pair(gen: torch.Generator, shape=(8, 1, 28, 28)) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(shape, generator=gen, dtype=torch.float64), torch.randn(shape, generator=gen, dtype=torch.float64)


@pytest.mark.parametrize("fn", [lerp, slerp])
def test_endpoints_are_the_inputs(fn, gen) -> None:
    z0, z1 = _pair(gen)
    torch.testing.assert_close(fn(z0, z1, 0.0), z0)
    torch.testing.assert_close(fn(z0, z1, 1.0), z1)


@pytest.mark.parametrize("kind", ["lerp", "slerp"])
def test_interpolate_path_shape_and_ends(kind, gen) -> None:
    z0, z1 = _pair(gen, (3, 5))
    path = interpolate(z0, z1, 7, kind)
    assert path.shape == (7, 3, 5)
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[-1], z1)


def test_lerp_midpoint_norm_shrinks_by_sqrt2(gen) -> None:
    # independent standard Gaussians in D = 784: ||(z0 + z1)/2|| = ||N(0, I/2)|| ~ sqrt(D/2) = ||z|| / sqrt(2)
    z0, z1 = _pair(gen, (64, 784))
    mid = lerp(z0, z1, 0.5).norm(dim=1)
    ends = 0.5 * (z0.norm(dim=1) + z1.norm(dim=1))
    ratio = (mid / ends).mean().item()
    assert abs(ratio - 1 / math.sqrt(2)) < 0.02
    assert abs(mid.mean().item() - math.sqrt(784 / 2)) < 0.5


def test_slerp_preserves_norm_of_high_dimensional_gaussians(gen) -> None:
    z0, z1 = _pair(gen, (64, 784))
    n0, n1 = z0.norm(dim=1), z1.norm(dim=1)
    for w in (0.1, 0.25, 0.5, 0.75, 0.9):
        n = slerp(z0, z1, w).norm(dim=1)
        # the norm stays between the two endpoint norms (up to a hair), never drops like lerp's
        assert bool((n >= torch.minimum(n0, n1) * 0.995).all()) and bool((n <= torch.maximum(n0, n1) * 1.005).all())
        assert abs((n / math.sqrt(784)).mean().item() - 1.0) < 0.02


def test_slerp_keeps_equal_norms_exactly_and_moves_at_constant_angle(gen) -> None:
    z0, z1 = _pair(gen, (16, 50))
    z1 = z1 / z1.norm(dim=1, keepdim=True) * z0.norm(dim=1, keepdim=True)  # equal norms: slerp stays on the sphere
    theta = angle_between(z0, z1)
    for w in (0.2, 0.5, 0.8):
        z = slerp(z0, z1, w)
        torch.testing.assert_close(z.norm(dim=1), z0.norm(dim=1))
        torch.testing.assert_close(angle_between(z0, z), w * theta)  # a great circle at constant speed
        torch.testing.assert_close(angle_between(z, z1), (1 - w) * theta)


def test_slerp_of_orthogonal_unit_vectors_is_cos_sin() -> None:
    e0, e1 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    for w in (0.0, 0.3, 0.5, 1.0):
        expected = torch.tensor([math.cos(w * math.pi / 2), math.sin(w * math.pi / 2)], dtype=torch.float64)
        torch.testing.assert_close(slerp(e0, e1, w), expected)


def test_slerp_of_parallel_vectors_falls_back_to_lerp(gen) -> None:
    z0 = torch.randn(4, 10, generator=gen, dtype=torch.float64)
    z1 = 2.0 * z0  # angle 0: the formula is 0/0, the limit is lerp
    torch.testing.assert_close(slerp(z0, z1, 0.3), lerp(z0, z1, 0.3))
    assert torch.isfinite(slerp(z0, z1, 0.3)).all()


def test_slerp_is_per_item_along_dim0(gen) -> None:
    z0, z1 = _pair(gen, (5, 2, 3))
    batch = slerp(z0, z1, 0.4)
    for i in range(5):
        torch.testing.assert_close(batch[i], slerp(z0[i].flatten(), z1[i].flatten(), 0.4).reshape(2, 3))


def test_bad_inputs_raise_value_errors(gen) -> None:
    z0, z1 = _pair(gen, (2, 3))
    with pytest.raises(ValueError, match="w must lie in"):
        slerp(z0, z1, 1.5)
    with pytest.raises(ValueError, match="w must lie in"):
        lerp(z0, z1, -0.1)
    with pytest.raises(ValueError, match="z1 must have the same shape"):
        slerp(z0, z1[:, :2], 0.5)
    with pytest.raises(ValueError, match="opposite"):
        slerp(z0, -z0, 0.5)
    with pytest.raises(ValueError, match="kind must be one of"):
        interpolate(z0, z1, 5, "cubic")
    with pytest.raises(ValueError, match="n must lie in"):
        interpolate(z0, z1, 1)
