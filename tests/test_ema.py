"""EMA: the update rule against a float64 oracle, the limits decay = 0 (copy) and decay = 1 (frozen), buffers,
warm-up and half-life."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from diffusion_course.training.ema import EMA, decay_half_life, ema_decay_at


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


def _step(model: nn.Module, seed: int) -> None:
    """Move every weight and float buffer and bump the integer buffer, as a training step would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g))
    model.train()
    model(torch.randn(8, 3, generator=g))  # BatchNorm updates running_mean / running_var / num_batches_tracked


def test_decay_zero_copies_the_model() -> None:
    model = _net()
    ema = EMA(model, decay=0.0)
    for k in range(3):
        _step(model, k)
        ema.update(model)
        for (name, a), b in zip(ema.shadow.state_dict().items(), model.state_dict().values()):
            assert torch.equal(a, b), name


def test_decay_one_without_warmup_freezes_the_shadow() -> None:
    model = _net()
    ema = EMA(model, decay=1.0, warmup=False)
    start = {k: v.clone() for k, v in ema.shadow.state_dict().items()}
    for k in range(3):
        _step(model, k)
        ema.update(model)
    for name, v in ema.shadow.state_dict().items():
        if v.dtype.is_floating_point:
            assert torch.equal(v, start[name]), name
    # integer buffers cannot be averaged: they follow the model
    assert int(ema.shadow.state_dict()["1.num_batches_tracked"]) == 3


def test_decay_one_with_warmup_still_moves_early() -> None:
    """The warm-up caps the decay at (1 + n) / (10 + n), so even decay = 1 follows the model at first."""
    model = _net()
    ema = EMA(model, decay=1.0)
    before = ema.shadow[0].weight.clone()
    _step(model, 0)
    ema.update(model)
    torch.testing.assert_close(ema.shadow[0].weight, 0.1 * before + 0.9 * model[0].weight)


@pytest.mark.parametrize("warmup", [True, False])
def test_update_matches_float64_oracle(warmup: bool) -> None:
    """shadow_n = d_n shadow_{n-1} + (1 - d_n) w_n with d_n = ema_decay_at(n - 1), on parameters and float buffers."""
    model = _net()
    ema = EMA(model, decay=0.9, warmup=warmup)
    oracle = {k: v.double().clone() for k, v in model.state_dict().items() if v.dtype.is_floating_point}
    for n in range(25):
        _step(model, n)
        d = min(0.9, (1 + n) / (10 + n)) if warmup else 0.9
        assert ema.current_decay() == pytest.approx(d)
        ema.update(model)
        for k in oracle:
            oracle[k] = d * oracle[k] + (1 - d) * model.state_dict()[k].double()
    shadow = ema.shadow.state_dict()
    for k, v in oracle.items():
        torch.testing.assert_close(shadow[k].double(), v, rtol=1e-5, atol=1e-6)
    assert "1.running_mean" in oracle and "1.running_var" in oracle  # buffers are covered


def test_shadow_is_a_frozen_independent_copy() -> None:
    model = _net()
    ema = EMA(model, decay=0.5)
    assert all(not p.requires_grad for p in ema.shadow.parameters())
    assert not ema.shadow.training
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert not torch.equal(ema.shadow[0].weight, model[0].weight)


def test_state_dict_round_trip() -> None:
    model = _net()
    ema = EMA(model, decay=0.99)
    for k in range(4):
        _step(model, k)
        ema.update(model)
    other = EMA(_net(), decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.num_updates == 4 and other.decay == 0.99
    for a, b in zip(other.shadow.state_dict().values(), ema.shadow.state_dict().values()):
        assert torch.equal(a, b)


def test_update_rejects_another_model() -> None:
    ema = EMA(_net(), decay=0.9)
    with pytest.raises(ValueError, match="same parameters"):
        ema.update(nn.Linear(3, 2))


def test_ema_decay_at_warmup_rule() -> None:
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(90, 0.999) == pytest.approx(91 / 100)
    assert ema_decay_at(10**6, 0.999) == 0.999
    assert ema_decay_at(0, 0.999, warmup=False) == 0.999
    # the cap is below the target decay until (1 + n) / (10 + n) reaches it: n = (10 d - 1) / (1 - d)
    n = math.ceil((10 * 0.999 - 1) / (1 - 0.999))
    assert ema_decay_at(n - 1, 0.999) < 0.999 and ema_decay_at(n, 0.999) == 0.999


def test_half_life() -> None:
    for d in (0.9, 0.99, 0.999, 0.9999):
        assert d ** decay_half_life(d) == pytest.approx(0.5)
    assert round(decay_half_life(0.999)) == 693


@pytest.mark.parametrize("bad", [-0.1, 1.1, float("nan")])
def test_bad_decay_raises(bad: float) -> None:
    with pytest.raises(ValueError, match="decay"):
        EMA(_net(), decay=bad)


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="decay"):
        decay_half_life(1.0)
    with pytest.raises(ValueError, match="step"):
        ema_decay_at(-1, 0.9)
