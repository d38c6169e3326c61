"""Devices (every chapter): one rule picks the device, and no float64 tensor is ever made from the model's tensors, so
the samplers, the training loop, the solvers and the explorers' compute paths run on Apple's MPS (which has no float64).

This CPU has no MPS, so the guard below stands in for it: inside a guarded call it fails on any torch operation that
takes a floating tensor of another dtype (a model-side tensor) and returns a float64 one, and on any float64 tensor
handed to the model. Host-side float64 (a schedule derived in float64 before it is stored float32, a grid of sigmas
read out as Python floats) passes: it never meets a model tensor."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

from diffusion_course import (
    EMA,
    FlowTime,
    NoiseSchedule,
    TrainConfig,
    UNet,
    UNetConfig,
    ddim_invert,
    ddim_sample,
    ddim_view,
    ddpm_sample,
    ddpm_sample_respaced,
    dpm_solver_sample,
    euler_sample,
    flow_matching_loss_fn,
    flow_sample,
    guided_sample,
    heun_sample,
    make_betas,
    train,
)
from diffusion_course._internal.devices import pick_device
from diffusion_course.teaching import profiles


class NoFloat64FromModelTensors(TorchFunctionMode):
    """Records every torch call that turns a non-float64 floating tensor into a float64 one (or mixes the two)."""

    def __init__(self) -> None:
        super().__init__()
        self.offences: list[str] = []
        self.host: set[int] = set()  # tensors brought to the host with an explicit .cpu(): on MPS those are CPU copies

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", str(func))
        if name == "cpu" and isinstance(out, torch.Tensor):
            self.host.add(id(out))
        ins = [a for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor) and a.is_floating_point() and id(a) not in self.host]
        outs = [o for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)]
        if any(o.dtype == torch.float64 for o in outs) and any(a.dtype != torch.float64 for a in ins):
            self.offences.append(f"{name}: {[a.dtype for a in ins]} -> float64")
        return out


class Float64Sentinel(torch.nn.Module):
    """Wraps a network and fails when it is handed float64 inputs (MPS would refuse them)."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x, t, *rest):
        assert x.dtype != torch.float64 and not (t.is_floating_point() and t.dtype == torch.float64), (x.dtype, t.dtype)
        return self.net(x, t, *rest)


TINY = UNetConfig(in_channels=1, base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_levels=(1,), norm_groups=4, dropout=0.0)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    schedule = NoiseSchedule.from_betas(make_betas("linear", 50, 1e-4, 0.02))  # built outside the guard: host float64 is fine
    return UNet(TINY).eval(), schedule


def _guarded(fn):
    with NoFloat64FromModelTensors() as guard:
        out = fn()
    assert not guard.offences, guard.offences[:5]
    return out


SAMPLERS = {
    "ddpm": lambda m, s, g: ddpm_sample(m, s, (2, 1, 8, 8), generator=g, clip_x0=1.0),
    "ddpm_respaced": lambda m, s, g: ddpm_sample_respaced(m, s, (2, 1, 8, 8), steps=5, generator=g),
    "ddim_eta0": lambda m, s, g: ddim_sample(m, s, (2, 1, 8, 8), steps=5, generator=g),
    "ddim_eta1": lambda m, s, g: ddim_sample(m, s, (2, 1, 8, 8), steps=5, eta=1.0, generator=g, return_trajectory=True)[0],
    "ddim_invert": lambda m, s, g: ddim_invert(m, s, torch.rand(2, 1, 8, 8, generator=g) * 2 - 1, steps=5),
    "dpm_solver_1": lambda m, s, g: dpm_solver_sample(m, s, (2, 1, 8, 8), steps=4, order=1, generator=g),
    "dpm_solver_2": lambda m, s, g: dpm_solver_sample(m, s, (2, 1, 8, 8), steps=4, order=2, generator=g),
    "dpm_solver_3": lambda m, s, g: dpm_solver_sample(m, s, (2, 1, 8, 8), steps=5, order=3, clip_x0=1.0, generator=g),
    "heun": lambda m, s, g: heun_sample(m, s, (2, 1, 8, 8), steps=4, generator=g),
    "heun_churn": lambda m, s, g: heun_sample(m, s, (2, 1, 8, 8), steps=4, s_churn=10.0, generator=g),
    "euler": lambda m, s, g: euler_sample(m, s, (2, 1, 8, 8), steps=4, generator=g),
}


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_samplers_make_no_float64_from_model_tensors(tiny, name) -> None:
    model, schedule = tiny
    x = _guarded(lambda: SAMPLERS[name](Float64Sentinel(model), schedule, torch.Generator().manual_seed(0)))
    assert x.dtype == torch.float32 and torch.isfinite(x).all()


def test_flow_sampling_and_guidance_make_no_float64(tiny) -> None:
    model, schedule = tiny
    for method in ("euler", "heun"):
        x = _guarded(lambda: flow_sample(Float64Sentinel(FlowTime(model)), (2, 1, 8, 8), steps=3, method=method, shift=3.0,
                                         generator=torch.Generator().manual_seed(0)))
        assert x.dtype == torch.float32
    cond = UNet(UNetConfig(**{**TINY.__dict__, "num_classes": 10})).eval()
    x = _guarded(lambda: guided_sample(cond, schedule, torch.tensor([3, 7]), w=2.0, item_shape=(1, 8, 8), steps=4))
    assert x.dtype == torch.float32


def test_training_loop_makes_no_float64_from_model_tensors(tiny, tmp_path) -> None:
    """train() with the default loss, with min-SNR weighting, with labels, with EMA and a checkpoint, and with the
    flow-matching loss: nothing float64 is made from the model's tensors (the loss history is kept on the host)."""
    _, schedule = tiny
    data = torch.rand(16, 1, 8, 8) * 2 - 1
    cfg = dict(steps=3, batch_size=4, progress=False, log_every=1)
    runs = [
        lambda: train(UNet(TINY), data, TrainConfig(**cfg, checkpoint_path=str(tmp_path / "a.pt"), checkpoint_every=2), schedule=schedule),
        lambda: train(UNet(TINY), data, TrainConfig(**cfg, snr_gamma=5.0), schedule=schedule),
        lambda: train(UNet(UNetConfig(**{**TINY.__dict__, "num_classes": 10})), data, TrainConfig(**cfg), schedule=schedule,
                      labels=torch.arange(16) % 10),
        lambda: train(FlowTime(UNet(TINY)), data, TrainConfig(**cfg), loss_fn=flow_matching_loss_fn(t_sampling="logit_normal")),
    ]
    for run in runs:
        result = _guarded(run)
        assert isinstance(result.ema, EMA) and len(result.losses) == 3


def test_the_ddim_explorers_compute_path_makes_no_float64(tiny) -> None:
    model, schedule = tiny
    view = _guarded(lambda: ddim_view(model, schedule, steps=4, eta=0.5, n=2, item_shape=(1, 8, 8)))
    assert view["samples"].dtype == torch.float32


def test_one_rule_picks_the_device(monkeypatch) -> None:
    """COURSE_DEVICE wins; otherwise CUDA, then MPS, then the CPU; a device asked for but absent is named in the error."""
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert pick_device().type == expected
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert pick_device() == torch.device("cpu")
    monkeypatch.setenv("COURSE_PROFILE", "gpu")
    assert profiles.device() == torch.device("cpu")  # the override applies to every profile
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="COURSE_DEVICE must be one of cpu, cuda, cuda:N, mps; got 'tpu'"):
        pick_device()
    if not torch.backends.mps.is_available():
        monkeypatch.setenv("COURSE_DEVICE", "mps")
        with pytest.raises(ValueError, match="'mps'"):
            pick_device()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            pick_device("cuda:0")
    monkeypatch.delenv("COURSE_DEVICE")
    monkeypatch.setenv("COURSE_PROFILE", "cpu")
    assert profiles.device() == torch.device("cpu")  # the cpu profile's sizes are for the CPU


def test_the_guard_catches_float64_on_the_model_side() -> None:
    """The guard is not vacuous: a float32 tensor turned float64, or mixed with a float64 schedule table, is caught."""
    x = torch.ones(3)
    with NoFloat64FromModelTensors() as guard:
        _ = x.double()
        _ = x * torch.ones(3, dtype=torch.float64)
        _ = torch.linspace(0, 1, 5, dtype=torch.float64) * 2  # host-only float64: allowed
        _ = x.detach().cpu().double()  # an explicit copy to the host first: allowed
    assert len(guard.offences) == 2, guard.offences
    with pytest.raises(AssertionError):
        Float64Sentinel(lambda x, t: x)(torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.long))
