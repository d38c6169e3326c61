"""The sinusoidal time embedding (Vaswani et al. 2017, sec. 3.5) and the 2-D MLP noise predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusion_course.models.embeddings import SinusoidalEmbedding, sinusoidal_embedding
from diffusion_course.models.mlp import MLPConfig, MLPDenoiser


def test_embedding_shape_range_and_formula() -> None:
    t = torch.arange(1000)
    emb = sinusoidal_embedding(t, 32)
    assert emb.shape == (1000, 32) and emb.dtype == torch.float32
    assert emb.min() >= -1 and emb.max() <= 1
    # recomputed in float64 numpy: [sin(t w_i), cos(t w_i)], w_i = 10000^(-i/16)
    w = 10000.0 ** (-np.arange(16) / 16)
    ref = np.concatenate([np.sin(np.outer(np.arange(1000), w)), np.cos(np.outer(np.arange(1000), w))], axis=1)
    np.testing.assert_allclose(emb.numpy(), ref, atol=5e-4)  # float32 arguments up to t w_0 = 999
    # t = 0 is [0, ..., 0, 1, ..., 1]
    assert torch.equal(emb[0], torch.cat([torch.zeros(16), torch.ones(16)]))


def test_embedding_sin_cos_identity_and_distinct_rows() -> None:
    emb = sinusoidal_embedding(torch.arange(1000), 64).double()
    sin, cos = emb[:, :32], emb[:, 32:]
    torch.testing.assert_close(sin**2 + cos**2, torch.ones_like(sin), rtol=0, atol=1e-6)
    d = torch.cdist(emb, emb)
    d.fill_diagonal_(float("inf"))
    assert float(d.min()) > 1e-2  # every timestep gets its own vector
    # nearby timesteps are closer than distant ones
    assert float((emb[500] - emb[501]).norm()) < float((emb[500] - emb[900]).norm())


def test_embedding_module_equals_function() -> None:
    t = torch.tensor([0, 5, 999])
    assert torch.equal(SinusoidalEmbedding(16)(t), sinusoidal_embedding(t, 16))
    assert len(list(SinusoidalEmbedding(16).parameters())) == 0


def test_mlp_output_shape_and_time_dependence() -> None:
    torch.manual_seed(0)
    model = MLPDenoiser(MLPConfig(hidden=32, depth=2, time_dim=16))
    x = torch.randn(10, 2)
    out = model(x, torch.full((10,), 3))
    assert out.shape == (10, 2)
    assert not torch.allclose(out, model(x, torch.full((10,), 700)))  # t matters
    # other data dimensions
    model3 = MLPDenoiser(MLPConfig(data_dim=3, hidden=16))
    assert model3(torch.randn(4, 3), torch.zeros(4, dtype=torch.long)).shape == (4, 3)


def test_mlp_rows_are_independent() -> None:
    """No batch statistics: a point's prediction does not depend on the other points in the batch."""
    torch.manual_seed(0)
    model = MLPDenoiser(MLPConfig(hidden=32)).eval()
    x, t = torch.randn(8, 2), torch.arange(8) * 100
    full = model(x, t)
    for i in range(8):
        torch.testing.assert_close(model(x[i : i + 1], t[i : i + 1])[0], full[i])


def test_mlp_gradients_reach_every_parameter() -> None:
    torch.manual_seed(0)
    model = MLPDenoiser(MLPConfig(hidden=16, depth=2))
    model(torch.randn(5, 2), torch.randint(0, 1000, (5,))).pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("shape", [(4, 3), (4,), (4, 2, 1), (4, 1, 2, 2)])
def test_mlp_rejects_wrong_input_shape(shape: tuple[int, ...]) -> None:
    model = MLPDenoiser(MLPConfig(hidden=8))
    with pytest.raises(ValueError, match=r"\bx must have shape \(B, 2\)"):
        model(torch.zeros(shape), torch.zeros(4, dtype=torch.long))
