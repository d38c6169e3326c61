"""Chapters 4 and 5's exercise checkers (training step, sampling loop, residual block): each accepts a reference written
the way a learner would, reports "not written yet" for the stub without raising, and names each catalogued mistake for
a deliberately wrong implementation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from diffusion_course.maths.schedules import extract
from diffusion_course.models.unet import ResBlock
from diffusion_course.teaching.exercises.resblock import check_resblock
from diffusion_course.teaching.exercises.sampling_loop import check_sampling_loop
from diffusion_course.teaching.exercises.training_step import check_training_step


# ------------------------------------------------------------------------------------------------- training step
def _train_step(model, schedule, x0, generator, *, low=0, one_t=False, eps_first=False, xt="right", target="eps",
                reduce="mean", detach=False):
    B = x0.shape[0]
    if eps_first:
        eps = torch.randn(x0.shape, generator=generator)
    if one_t:
        t = torch.randint(low, schedule.T + low, (1,), generator=generator).expand(B)
    else:
        t = torch.randint(low, schedule.T + low, (B,), generator=generator)
    if not eps_first:
        eps = torch.randn(x0.shape, generator=generator)
    ti = t - low
    ab, a = extract(schedule.alpha_bar, ti, x0), extract(schedule.alpha, ti, x0)
    if xt == "right":
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    elif xt == "alpha":
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    elif xt == "no_sqrt":
        x_t = ab * x0 + (1 - ab) * eps
    eps_hat = model(x_t, t)
    err = (eps_hat - (eps if target == "eps" else x0)) ** 2
    loss = err.mean() if reduce == "mean" else err.sum()
    return loss.detach() if detach else loss


def _stub_train(model, schedule, x0, generator):
    raise NotImplementedError


def test_training_step_reference_passes():
    result = check_training_step(_train_step, quiet=True)
    assert result.passed, result.message


def test_training_step_stub_is_not_written_yet():
    assert check_training_step(_stub_train, quiet=True).status == "not written yet"
    assert check_training_step(lambda m, s, x0, g: None, quiet=True).status == "not written yet"


@pytest.mark.parametrize("kwargs, key", [
    ({"low": 1}, "t_from_one"),
    ({"one_t": True}, "one_t_for_batch"),
    ({"eps_first": True}, "draw_order"),
    ({"xt": "alpha"}, "alpha_for_alpha_bar"),
    ({"xt": "no_sqrt"}, "missing_sqrt"),
    ({"target": "x0"}, "predicts_x0"),
    ({"reduce": "sum"}, "sum_for_mean"),
    ({"detach": True}, "no_grad"),
])
def test_training_step_names_each_mistake(kwargs, key):
    result = check_training_step(lambda m, s, x0, g: _train_step(m, s, x0, g, **kwargs), quiet=True)
    assert not result.passed
    assert key in result.mistakes, result.message


def test_training_step_paper_indexing_that_fails_is_explained():
    # t drawn from 1..T and used as a table index: the steep T = 10 case reaches t = T and fails; the hint says why
    def fn(model, schedule, x0, generator):
        t = torch.randint(1, schedule.T + 1, (x0.shape[0],), generator=generator)
        eps = torch.randn(x0.shape, generator=generator)
        ab = schedule.alpha_bar[t].reshape(-1, *[1] * (x0.ndim - 1))
        return ((model(ab.sqrt() * x0 + (1 - ab).sqrt() * eps, t) - eps) ** 2).mean()

    result = check_training_step(fn, quiet=True)
    assert "t_from_one" in result.mistakes, result.message


# ------------------------------------------------------------------------------------------------- sampling loop
@torch.no_grad()
def _sample(model, schedule, shape, generator, *, order="down", start=None, stop=None, noise_at_0=False,
            sigma="std", draw=True):
    x = torch.randn(shape, generator=generator)
    T = schedule.T
    ts = list(range(T - 1, -1, -1)) if order == "down" else list(range(T))
    if start is not None:
        ts = list(range(start, -1, -1))
    if stop is not None:
        ts = [i for i in ts if i >= stop]
    for i in ts:
        t = torch.full((shape[0],), i, dtype=torch.long)
        eps_hat = model(x, t)
        b, a, ab = (extract(v, t, x) for v in (schedule.beta, schedule.alpha, schedule.alpha_bar))
        mean = (x - b / (1 - ab).sqrt() * eps_hat) / a.sqrt()
        if (i > 0 or noise_at_0) and draw:
            z = torch.randn(shape, generator=generator)
            x = mean + (b.sqrt() if sigma == "std" else b) * z
        else:
            x = mean
    return x


def test_sampling_loop_reference_passes():
    result = check_sampling_loop(_sample, quiet=True)
    assert result.passed, result.message


def test_sampling_loop_stub_is_not_written_yet():
    def stub(model, schedule, shape, generator):
        raise NotImplementedError

    assert check_sampling_loop(stub, quiet=True).status == "not written yet"


@pytest.mark.parametrize("kwargs, key", [
    ({"noise_at_0": True}, "noise_at_t0"),
    ({"order": "up"}, "loop_order"),
    ({"stop": 1}, "off_by_one"),
    ({"start": None, "stop": None, "sigma": "var"}, "variance_for_std"),
    ({"draw": False}, "no_noise"),
])
def test_sampling_loop_names_each_mistake(kwargs, key):
    result = check_sampling_loop(lambda m, s, shape, g: _sample(m, s, shape, g, **kwargs), quiet=True)
    assert not result.passed
    assert key in result.mistakes, result.message


def test_sampling_loop_paper_timesteps_are_off_by_one():
    # calling the model with t = T..1 and indexing the tables with t - 1: the model sees the paper's numbering
    @torch.no_grad()
    def fn(model, schedule, shape, generator):
        x = torch.randn(shape, generator=generator)
        for i in range(schedule.T, 0, -1):
            t = torch.full((shape[0],), i, dtype=torch.long)
            eps_hat = model(x, t)
            b, a, ab = (extract(v, t - 1, x) for v in (schedule.beta, schedule.alpha, schedule.alpha_bar))
            z = torch.randn(shape, generator=generator) if i > 1 else torch.zeros(shape)
            x = (x - b / (1 - ab).sqrt() * eps_hat) / a.sqrt() + b.sqrt() * z
        return x

    result = check_sampling_loop(fn, quiet=True)
    assert "off_by_one" in result.mistakes, result.message


def test_sampling_loop_noise_without_generator_is_explained():
    @torch.no_grad()
    def fn(model, schedule, shape, generator):
        x = torch.randn(shape, generator=generator)
        for i in reversed(range(schedule.T)):
            t = torch.full((shape[0],), i, dtype=torch.long)
            b, a, ab = (extract(v, t, x) for v in (schedule.beta, schedule.alpha, schedule.alpha_bar))
            x = (x - b / (1 - ab).sqrt() * model(x, t)) / a.sqrt() + (b.sqrt() * torch.randn(shape) if i > 0 else 0)
        return x

    result = check_sampling_loop(fn, quiet=True)
    assert "noise_draw" in result.mistakes, result.message


# ---------------------------------------------------------------------------------------------- residual block
class MLPBlock(nn.Module):
    """The exercise's __init__ (the lib ResBlock's layers and names, time added); forward picks a variant."""

    variant = "right"

    def __init__(self, in_ch, out_ch, temb_dim, groups=8, dropout=0.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.time_proj = nn.Linear(temb_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x, temb):
        v = self.variant
        if v == "stub":
            raise NotImplementedError
        time = self.time_proj(self.act(temb))
        time = time if v == "no_broadcast" else time[:, :, None, None]
        if v == "act_first":
            h = self.conv1(self.norm1(self.act(x)))
        else:
            h = self.conv1(self.act(self.norm1(x)))
        if v == "time_after_norm":
            h = self.act(self.norm2(h) + time)
        else:
            h = self.act(self.norm2(h + time))
        h = self.conv2(self.dropout(h))
        if v == "no_skip":
            return h
        if v == "identity_skip":
            return x + h
        return self.skip(x) + h


def _variant(name):
    return type(f"Block_{name}", (MLPBlock,), {"variant": name})


def test_resblock_reference_passes():
    result = check_resblock(MLPBlock, quiet=True)
    assert result.passed, result.message


def test_resblock_reference_matches_lib_resblock_with_dropout_in_eval():
    # the exercise's layers are the lib's: loading weights both ways gives the same outputs
    ours, lib = MLPBlock(16, 32, 8), ResBlock(16, 32, 8, groups=8, dropout=0.0, time_conditioning="add")
    for p in lib.parameters():
        nn.init.normal_(p, std=0.2)
    ours.load_state_dict(lib.state_dict())
    x, temb = torch.randn(2, 16, 4, 4), torch.randn(2, 8)
    torch.testing.assert_close(ours(x, temb), lib(x, temb))


def test_resblock_stub_is_not_written_yet():
    assert check_resblock(_variant("stub"), quiet=True).status == "not written yet"


@pytest.mark.parametrize("variant, key", [
    ("no_broadcast", "temb_not_broadcast"),
    ("no_skip", "no_skip"),
    ("identity_skip", "skip_without_projection"),
    ("act_first", "norm_act_order"),
    ("time_after_norm", "time_after_norm"),
])
def test_resblock_names_each_mistake(variant, key):
    result = check_resblock(_variant(variant), quiet=True)
    assert not result.passed
    assert key in result.mistakes, result.message
