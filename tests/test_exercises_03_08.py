"""The checkers of chapter 7 (EMA update) and chapter 8 (DDIM timestep list): each accepts a reference solution,
says "not written yet" for a stub, and names every mistake in its catalogue."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusion_course.maths.samplers import DDIM_SPACINGS, ddim_timesteps
from diffusion_course.teaching import exercises as ex
from diffusion_course.training.ema import ema_decay_at


# ------------------------------------------------------------------------------------------------------------- EMA
def _ema_right(shadow, model, decay, num_updates, *, rule=None, swap=False, params_only=False, live=False, grad=False):
    d = rule(decay, num_updates) if rule else min(decay, (1 + num_updates) / (10 + num_updates))
    ctx = torch.enable_grad() if grad else torch.no_grad()
    with ctx:
        if params_only or grad:
            for s, p in zip(shadow.parameters(), model.parameters()):
                a, b = (1 - d, d) if swap else (d, 1 - d)
                if grad:
                    s.mul_(a).add_(b * p)  # p requires grad: s now tracks it
                else:
                    s.mul_(a).add_(p.detach(), alpha=b)
            return
        src = model.state_dict()
        for name, s in shadow.state_dict().items():
            v = src[name]
            if live and s.dtype.is_floating_point:
                v.mul_(d).add_(s, alpha=1 - d)  # writes into the live model
            elif s.dtype.is_floating_point:
                a, b = (1 - d, d) if swap else (d, 1 - d)
                s.mul_(a).add_(v, alpha=b)
            else:
                s.copy_(v)


@torch.no_grad()
def _ema_learner_style(shadow, model, decay, num_updates):
    d = min(decay, (1 + num_updates) / (10 + num_updates))
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    for name, s in shadow.named_parameters():
        s.copy_(d * s + (1 - d) * params[name])
    for name, b in shadow.named_buffers():
        if b.dtype.is_floating_point:
            b.copy_(d * b + (1 - d) * buffers[name])
        else:
            b.copy_(buffers[name])


def test_ema_checker_accepts_the_reference_and_a_learner_style_solution(capsys):
    r = ex.check_ema_update(_ema_right)
    assert r and r.status == "correct" and r.cases_run == 24
    assert "correct" in capsys.readouterr().out
    assert ex.check_ema_update(_ema_learner_style, quiet=True)


def test_ema_checker_stub_is_not_written_yet():
    def stub(shadow, model, decay, num_updates):
        raise NotImplementedError

    assert ex.check_ema_update(stub, quiet=True).status == "not written yet"
    assert ex.check_ema_update(lambda s, m, d, n: None, quiet=True).status == "not written yet"


@pytest.mark.parametrize(
    "kwargs, key, words",
    [
        ({"swap": True}, "swapped", "swapped"),
        ({"rule": lambda decay, n: decay}, "no_warmup", "warm-up is missing"),
        ({"rule": lambda decay, n: ema_decay_at(n + 1, decay)}, "warmup_off_by_one", "one update late"),
        ({"params_only": True}, "buffers_not_copied", "buffers"),
        ({"params_only": True, "rule": lambda decay, n: decay}, "buffers_not_copied", "buffers"),
        ({"live": True}, "live_model", "live model"),
        ({"grad": True}, "grad_tracked", "no_grad"),
    ],
)
def test_ema_checker_names_each_mistake(kwargs, key, words):
    r = ex.check_ema_update(lambda s, m, d, n: _ema_right(s, m, d, n, **kwargs), quiet=True)
    assert not r and r.mistake == key, r.message
    assert words in r.message


def test_ema_checker_leaf_in_place_error_is_explained_and_errors_are_reported():
    def on_grad_leaf(shadow, model, decay, num_updates):
        for p in shadow.parameters():
            p.requires_grad_(True)
        with torch.enable_grad():
            for s in shadow.parameters():
                s.mul_(decay)

    r = ex.check_ema_update(on_grad_leaf, quiet=True)
    assert r.mistake == "grad_tracked" and "no_grad" in r.message
    r = ex.check_ema_update(lambda s, m, d, n: 1 / 0, quiet=True)
    assert r.status == "error" and "ZeroDivisionError" in r.message
    assert ex.check_ema_update("not a function", quiet=True).mistake == "not_callable"


def test_ema_checker_unknown_mistake_gives_the_first_difference():
    r = ex.check_ema_update(lambda s, m, d, n: _ema_right(s, m, d, n, rule=lambda decay, k: 0.7), quiet=True)
    assert not r and r.mistakes == () and "First difference" in r.message and "expected" in r.message


# ------------------------------------------------------------------------------------------------ DDIM timesteps
def _ts_right(T, S, spacing):
    """The four rules written out independently of the lib (the checker compares with the lib)."""
    if spacing == "uniform":
        ts = np.floor(np.linspace(0, T - 1, S)) if S > 1 else np.array([T - 1])
    elif spacing == "leading":
        ts = np.arange(S) * (T // S)
    elif spacing == "trailing":
        ts = np.round(T - np.arange(S) * T / S)[::-1] - 1
    else:
        ts = np.floor(np.linspace(0, np.sqrt(0.8 * T), S) ** 2)
        for i in range(1, S):
            ts[i] = max(ts[i], ts[i - 1] + 1)
    return torch.from_numpy(ts.astype(np.int64))


def test_ddim_timesteps_reference_matches_the_lib_and_passes(capsys):
    for spacing in DDIM_SPACINGS:
        for T, S in [(1000, 50), (1000, 61), (10, 10), (100, 1), (250, 7)]:
            assert torch.equal(_ts_right(T, S, spacing), ddim_timesteps(T, S, spacing)), (T, S, spacing)
    r = ex.check_ddim_timesteps(_ts_right)
    assert r and r.cases_run > 100
    assert "correct" in capsys.readouterr().out
    assert ex.check_ddim_timesteps(lambda T, S, sp: ddim_timesteps(T, S, sp).tolist(), quiet=True)  # a list of ints is fine


def test_ddim_timesteps_stub_is_not_written_yet():
    def stub(T, S, spacing):
        raise NotImplementedError

    assert ex.check_ddim_timesteps(stub, quiet=True).status == "not written yet"
    assert ex.check_ddim_timesteps(lambda T, S, sp: None, quiet=True).status == "not written yet"


def _with(spacing, wrong):
    return lambda T, S, sp: wrong(T, S) if sp == spacing else _ts_right(T, S, sp)


@pytest.mark.parametrize(
    "fn, key, words",
    [
        (_with("uniform", lambda T, S: np.floor(np.linspace(1, T, S)).astype(np.int64)), "off_by_one", "paper's indices"),
        (_with("uniform", lambda T, S: np.floor(np.linspace(0, T, S)).astype(np.int64)), "off_by_one", "one past"),
        (_with("uniform", lambda T, S: np.round(np.linspace(0, T - 1, S)).astype(np.int64)), "round_not_floor", "floor"),
        (_with("trailing", lambda T, S: np.round(T - np.arange(S) * T / S)[::-1].astype(np.int64)), "off_by_one", "subtract 1"),
        (_with("trailing", lambda T, S: (np.round(np.arange(T, 0, -T / S)) - 1)[::-1].astype(np.int64)), "wrong_length", "S + 1"),
        (_with("leading", lambda T, S: np.arange(S) * (T // S) + 1), "off_by_one", "steps_offset"),
        (_with("leading", lambda T, S: np.floor(np.arange(S) * T / S).astype(np.int64)), "float_stride", "T // S"),
        (_with("quadratic", lambda T, S: np.floor(np.linspace(0, np.sqrt(0.8 * T), S) ** 2).astype(np.int64)), "duplicates",
         "repeat"),
        (lambda T, S, sp: _ts_right(T, S, sp).double(), "float", "integers"),
        (lambda T, S, sp: _ts_right(T, S, sp).flip(0), "descending", "descending"),
        (lambda T, S, sp: _ts_right(T, S, sp)[:-1] if S > 2 else _ts_right(T, S, sp), "wrong_length", "expected"),
        (_with("uniform", lambda T, S: np.concatenate([_ts_right(T, S, "uniform")[:-1].numpy(), [T - 2]])), "off_by_one",
         "first and last"),
    ],
)
def test_ddim_timesteps_names_each_mistake(fn, key, words):
    r = ex.check_ddim_timesteps(fn, quiet=True)
    assert not r and key in r.mistakes, r.message
    assert words in r.message


def test_ddim_timesteps_quadratic_range_and_errors():
    def full(T, S):
        ts = np.floor(np.linspace(0, np.sqrt(T), S) ** 2).astype(np.int64)
        for i in range(1, S):
            ts[i] = max(ts[i], ts[i - 1] + 1)
        return ts

    r = ex.check_ddim_timesteps(_with("quadratic", full), quiet=True)
    assert r.mistake == "quadratic_range" and "0.8 T" in r.message
    r = ex.check_ddim_timesteps(lambda T, S, sp: [0] * S, quiet=True)
    assert not r and "duplicates" in r.mistakes
    r = ex.check_ddim_timesteps(lambda T, S, sp: {}["x"], quiet=True)
    assert r.status == "error" and "KeyError" in r.message
    assert ex.check_ddim_timesteps(3, quiet=True).mistake == "not_callable"
