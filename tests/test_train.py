"""The training loop: exact resume after a crash, the NaN/inf guard, reproducibility, the LR schedule, config checks."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from diffusion_course.data.sets import digits
from diffusion_course.maths.losses import simple_loss
from diffusion_course.maths.schedules import NoiseSchedule
from diffusion_course.models.mlp import MLPConfig, MLPDenoiser
from diffusion_course.models.unet import UNet, UNetConfig
from diffusion_course.training.checkpoints import CheckpointError, load_checkpoint
from diffusion_course.training.loop import TrainConfig, _lr_factor, train

SCHEDULE = NoiseSchedule.linear(100)
X8 = digits()[0][:256]  # (256, 1, 8, 8)


def _unet(seed: int = 0) -> UNet:
    """A tiny U-Net WITH dropout, so exact resume also needs the global RNG restored."""
    torch.manual_seed(seed)
    return UNet(UNetConfig(base_channels=8, norm_groups=4, channel_mults=(1, 2), attention_levels=(1,), num_res_blocks=1, dropout=0.2))


def _cfg(**kw) -> TrainConfig:
    base = dict(steps=12, batch_size=16, lr=3e-3, warmup_steps=3, lr_schedule="cosine", ema_decay=0.9, progress=False, seed=7)
    return TrainConfig(**{**base, **kw})


class Crash(RuntimeError):
    pass


def _crash_after(calls: int):
    """L_simple that raises on call number ``calls + 1``: a power cut in the middle of a run."""
    count = {"n": 0}

    def loss_fn(model, x0, g):
        count["n"] += 1
        if count["n"] > calls:
            raise Crash("simulated crash")
        return simple_loss(model, SCHEDULE, x0, generator=g)

    return loss_fn


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_resume_after_crash_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    full_model = _unet()
    full = train(full_model, X8, _cfg(), schedule=SCHEDULE)

    ckpt = str(tmp_path / "run.pt")
    crashed = _unet()
    with pytest.raises(Crash):
        train(crashed, X8, _cfg(checkpoint_path=ckpt, checkpoint_every=4), loss_fn=_crash_after(9))  # dies in step 10
    assert load_checkpoint(ckpt)["step"] == 8  # the last checkpoint before the crash

    resumed_model = _unet(seed=123)  # a fresh process: other initial weights, other global RNG
    torch.manual_seed(999)
    resumed = train(resumed_model, X8, _cfg(checkpoint_path=ckpt, checkpoint_every=4), schedule=SCHEDULE)
    assert resumed.resumed_from == 8
    assert resumed.losses == full.losses  # bit-identical, dropout included
    assert _same_weights(resumed_model, full_model)
    assert _same_weights(resumed.ema.shadow, full.ema.shadow)
    assert resumed.ema.num_updates == full.ema.num_updates == 12


def test_half_then_half_equals_one_go(tmp_path: Path) -> None:
    """N steps in one go vs N/2, then a new model + loop resuming from the checkpoint (constant LR, so the first half
    is a complete run of its own)."""
    one_go_model = _unet()
    one_go = train(one_go_model, X8, _cfg(steps=10, lr_schedule="constant"), schedule=SCHEDULE)
    ckpt = str(tmp_path / "half.pt")
    train(_unet(), X8, _cfg(steps=5, lr_schedule="constant", checkpoint_path=ckpt), schedule=SCHEDULE)
    second_model = _unet(seed=5)
    second = train(second_model, X8, _cfg(steps=10, lr_schedule="constant", checkpoint_path=ckpt), schedule=SCHEDULE)
    assert second.resumed_from == 5
    assert second.losses == one_go.losses
    assert _same_weights(second_model, one_go_model)


def test_same_seed_same_run_and_global_rng_untouched() -> None:
    model = _unet()
    state = torch.get_rng_state()
    a = train(model, X8, _cfg(steps=5), schedule=SCHEDULE).losses
    assert torch.equal(torch.get_rng_state(), state)  # the loop forks the global RNG
    b = train(_unet(), X8, _cfg(steps=5), schedule=SCHEDULE).losses
    c = train(_unet(), X8, _cfg(steps=5, seed=8), schedule=SCHEDULE).losses
    assert a == b and a != c


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_guard_stops_at_the_exact_step(bad: float) -> None:
    k = 6

    def loss_fn(model, x0, g):
        loss = simple_loss(model, SCHEDULE, x0, generator=g)
        loss_fn.calls += 1
        return loss * bad if loss_fn.calls == k else loss

    loss_fn.calls = 0
    model = _unet()
    with pytest.raises(FloatingPointError, match=f"loss became {bad} at step {k} "):
        train(model, X8, _cfg(log_every=k - 1), loss_fn=loss_fn)  # the losses are read after step k - 1, then after 2 (k - 1)
    # the weights are those after step k - 1, the last step read: compare with a run of k - 1 steps of the same schedule
    reference = _unet()
    ref_loss = _crash_after(k - 1)
    with pytest.raises(Crash):
        train(reference, X8, _cfg(), loss_fn=ref_loss)
    assert _same_weights(model, reference)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def _nan_at(k: int):
    """L_simple that turns NaN on call number ``k`` and stays finite otherwise; counts its calls."""

    def loss_fn(model, x0, g):
        loss_fn.calls += 1
        return simple_loss(model, SCHEDULE, x0, generator=g) * (float("nan") if loss_fn.calls == k else 1.0)

    loss_fn.calls = 0
    return loss_fn


@pytest.mark.parametrize("log_every, k", [(1, 6), (4, 6), (4, 8), (5, 11), (50, 6)])
def test_nan_guard_catches_a_bad_loss_within_log_every_steps(log_every: int, k: int) -> None:
    """The losses are read from the device every log_every steps (and at the end), so a NaN at step k stops the run
    at the first read after it, less than log_every steps later, naming step k and the steps read; the model is left
    with the weights of the last read that found every loss finite, not with NaN."""
    good = (k - 1) // log_every * log_every  # the last step read before step k
    read_at = min(good + log_every, 12)  # the read that finds the NaN (steps = 12)
    loss_fn = _nan_at(k)
    model = _unet()
    with pytest.raises(FloatingPointError, match=rf"loss became nan at step {k} .*steps {good + 1}-{read_at} .*after step {good}\b"):
        train(model, X8, _cfg(log_every=log_every), loss_fn=loss_fn)
    assert loss_fn.calls == read_at and read_at - k < log_every  # stopped within the window
    assert all(torch.isfinite(v).all() for v in model.state_dict().values())
    reference = _unet()
    with pytest.raises(Crash):
        train(reference, X8, _cfg(), loss_fn=_crash_after(good))
    assert _same_weights(model, reference)


def test_a_checkpoint_is_written_only_after_its_losses_were_read(tmp_path: Path) -> None:
    """A checkpoint is a read too: one never holds weights after a NaN, even when log_every is longer."""
    early = tmp_path / "early.pt"
    with pytest.raises(FloatingPointError, match="loss became nan at step 3 "):
        train(_unet(), X8, _cfg(log_every=50, checkpoint_path=str(early), checkpoint_every=4), loss_fn=_nan_at(3))
    assert not early.exists()  # the read at step 4 found the NaN before writing
    later = tmp_path / "later.pt"
    with pytest.raises(FloatingPointError, match=r"loss became nan at step 6 .*last good checkpoint is .*later\.pt \(step 4\)"):
        train(_unet(), X8, _cfg(log_every=50, checkpoint_path=str(later), checkpoint_every=4), loss_fn=_nan_at(6))
    state = load_checkpoint(later)
    assert state["step"] == 4 and len(state["losses"]) == 4 and all(torch.isfinite(v).all() for v in state["model"].values())


class _NoHostRead(torch.Tensor):
    """A loss that refuses to be read to the host: float(loss) or loss.item() in the loop would wait for the GPU."""

    def __float__(self) -> float:
        raise AssertionError("the loop read one step's loss to the host")

    def item(self) -> float:
        raise AssertionError("the loop read one step's loss to the host")


def test_the_loop_reads_the_losses_every_log_every_steps_not_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """No float(loss) per step: the losses stay on the device and are read in one go every log_every steps, before
    each checkpoint and at the end; the history still holds one float per step, the same for every log_every."""
    from diffusion_course.training import loop

    read_after: list[int] = []
    original = loop._LossLog.read

    def spy(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        read_after.append(len(self.losses))
        return out

    monkeypatch.setattr(loop._LossLog, "read", spy)
    runs = {}
    for log_every in (1, 5, 50):
        read_after.clear()
        model = _unet()
        result = train(model, X8, _cfg(log_every=log_every), loss_fn=lambda m, x, g: simple_loss(m, SCHEDULE, x, generator=g).as_subclass(_NoHostRead))
        runs[log_every] = (result.losses, model)
        assert read_after == ([*range(1, 13)] if log_every == 1 else [5, 10, 12] if log_every == 5 else [12])
        assert len(result.losses) == 12 and all(type(v) is float and math.isfinite(v) for v in result.losses)
    assert runs[1][0] == runs[5][0] == runs[50][0]
    assert _same_weights(runs[1][1], runs[50][1])


def test_inf_gradient_guard() -> None:
    """A finite loss whose gradient is not finite (d sqrt(x)/dx at 0) stops the run before the update."""

    def loss_fn(model, x0, g):
        p = next(model.parameters())
        return simple_loss(model, SCHEDULE, x0, generator=g) + (p - p.detach()).abs().sum().sqrt()

    model = MLPDenoiser(MLPConfig(hidden=16, depth=1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FloatingPointError, match="gradient norm became .* at step 1 "):
        train(model, torch.randn(64, 2), _cfg(grad_clip=None), loss_fn=loss_fn)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_nan_message_names_the_last_checkpoint(tmp_path: Path) -> None:
    def loss_fn(model, x0, g):
        loss_fn.calls += 1
        return simple_loss(model, SCHEDULE, x0, generator=g) * (float("nan") if loss_fn.calls == 7 else 1.0)

    loss_fn.calls = 0
    ckpt = tmp_path / "g.pt"
    with pytest.raises(FloatingPointError, match=r"last good checkpoint is .*g\.pt \(step 4\)"):
        train(_unet(), X8, _cfg(checkpoint_path=str(ckpt), checkpoint_every=4), loss_fn=loss_fn)


def test_resume_with_other_settings_is_refused(tmp_path: Path) -> None:
    ckpt = str(tmp_path / "r.pt")
    train(_unet(), X8, _cfg(steps=4, checkpoint_path=ckpt), schedule=SCHEDULE)
    with pytest.raises(CheckpointError, match="batch_size: checkpoint 16 vs config 32"):
        train(_unet(), X8, _cfg(steps=8, batch_size=32, checkpoint_path=ckpt), schedule=SCHEDULE)
    with pytest.raises(ValueError, match="beyond config.steps"):
        train(_unet(), X8, _cfg(steps=2, checkpoint_path=ckpt), schedule=SCHEDULE)


def test_resume_into_another_architecture_is_refused(tmp_path: Path) -> None:
    ckpt = str(tmp_path / "a.pt")
    train(_unet(), X8, _cfg(steps=2, checkpoint_path=ckpt), schedule=SCHEDULE)
    torch.manual_seed(0)
    wider = UNet(UNetConfig(base_channels=16, norm_groups=4, channel_mults=(1, 2), attention_levels=(1,), num_res_blocks=1))
    with pytest.raises(CheckpointError, match="another architecture"):
        train(wider, X8, _cfg(steps=4, checkpoint_path=ckpt), schedule=SCHEDULE)


def test_lr_schedule() -> None:
    cfg = _cfg(steps=100, warmup_steps=10, lr_schedule="cosine")
    assert [_lr_factor(s, cfg) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert _lr_factor(10, cfg) == pytest.approx(1.0)
    assert _lr_factor(55, cfg) == pytest.approx(0.5)
    assert _lr_factor(99, cfg) < 0.001
    const = _cfg(steps=100, warmup_steps=0, lr_schedule="constant")
    assert {_lr_factor(s, const) for s in range(100)} == {1.0}


def test_loss_history_and_ema_returned() -> None:
    result = train(_unet(), X8, _cfg(steps=6, ema_decay=None), schedule=SCHEDULE)
    assert len(result.losses) == 6 and result.ema is None and result.resumed_from == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(steps=0), "steps"),
        (dict(lr=0.0), "lr"),
        (dict(lr_schedule="linear"), "lr_schedule"),
        (dict(ema_decay=1.5), "ema_decay"),
        (dict(amp="fp8"), "amp"),
        (dict(grad_clip=0.0), "grad_clip"),
    ],
)
def test_bad_config(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _cfg(**kwargs)


def test_bad_calls() -> None:
    with pytest.raises(ValueError, match="schedule is required"):
        train(_unet(), X8, _cfg())
    with pytest.raises(ValueError, match="data must have shape"):
        train(_unet(), torch.zeros(5), _cfg(), schedule=SCHEDULE)
    with pytest.raises(ValueError, match="scalar"):
        train(_unet(), X8, _cfg(), loss_fn=lambda m, x, g: m(x, torch.zeros(x.shape[0], dtype=torch.long)).mean(dim=(1, 2, 3)))


def test_on_step_sees_every_step_and_can_run_extra_emas() -> None:
    from diffusion_course.training.ema import EMA

    model = _unet()
    seen, extra = [], EMA(model, 0.9)
    result = train(model, X8, _cfg(steps=5), schedule=SCHEDULE, on_step=lambda step, m: (seen.append(step), extra.update(m)))
    assert seen == [1, 2, 3, 4, 5]
    # an EMA updated by the hook with the loop's decay is the loop's own EMA
    assert _same_weights(extra.shadow, result.ema.shadow)


def test_hot_loop_loss_is_l_simple_exactly() -> None:
    """The loop's unchecked L_simple draws t and eps in the same order and computes the same numbers as simple_loss."""
    from diffusion_course.maths.losses import simple_loss_fn

    model = _unet().eval()
    for gamma in (None, 5.0):
        fast = simple_loss_fn(SCHEDULE, gamma)
        a = fast(model, X8[:16], torch.Generator().manual_seed(3))
        b = simple_loss(model, SCHEDULE, X8[:16], generator=torch.Generator().manual_seed(3), snr_gamma=gamma)
        assert torch.equal(a, b)


def test_snr_gamma_trains_and_is_checked() -> None:
    result = train(_unet(), X8, _cfg(steps=4, snr_gamma=5.0), schedule=SCHEDULE)
    assert len(result.losses) == 4 and all(math.isfinite(v) for v in result.losses)
    with pytest.raises(ValueError, match="snr_gamma"):
        _cfg(snr_gamma=0.0)
    with pytest.raises(ValueError, match="snr_gamma applies to the default loss only"):
        train(_unet(), X8, _cfg(snr_gamma=5.0), loss_fn=lambda m, x, g: simple_loss(m, SCHEDULE, x, generator=g))


def test_bf16_autocast_on_the_cpu_trains_like_fp32() -> None:
    """amp="bf16" works on the CPU (measured slower there, so "auto" keeps fp32) and reaches the same loss."""
    from diffusion_course.training.loop import _autocast_dtype

    assert _autocast_dtype(_cfg(), torch.device("cpu")) is None
    assert _autocast_dtype(_cfg(amp="bf16"), torch.device("cpu")) == torch.bfloat16
    fp32 = train(_unet(), X8, _cfg(steps=30, ema_decay=None), schedule=SCHEDULE)
    bf16 = train(_unet(), X8, _cfg(steps=30, ema_decay=None, amp="bf16"), schedule=SCHEDULE)
    a, b = sum(fp32.losses[-10:]) / 10, sum(bf16.losses[-10:]) / 10
    assert b == pytest.approx(a, rel=0.15), (a, b)
    assert bf16.losses != fp32.losses  # it really ran in another precision


def test_more_steps_under_a_cosine_lr_is_refused_but_allowed_under_a_constant_lr(tmp_path: Path) -> None:
    ckpt = str(tmp_path / "c.pt")
    train(_unet(), X8, _cfg(steps=4, checkpoint_path=ckpt), schedule=SCHEDULE)
    # the cosine decay was laid out over 4 steps: resuming with 8 would not continue the run that was started
    with pytest.raises(CheckpointError, match="steps: checkpoint 4 vs config 8"):
        train(_unet(), X8, _cfg(steps=8, checkpoint_path=ckpt), schedule=SCHEDULE)
    const = str(tmp_path / "k.pt")
    train(_unet(), X8, _cfg(steps=4, lr_schedule="constant", checkpoint_path=const), schedule=SCHEDULE)
    assert train(_unet(), X8, _cfg(steps=8, lr_schedule="constant", checkpoint_path=const), schedule=SCHEDULE).resumed_from == 4


def test_fp16_resume_is_exact_because_the_loss_scale_is_saved(tmp_path: Path, monkeypatch) -> None:
    """fp16 autocast with a GradScaler: the loss scale (and its growth counter) is part of the run's state. With a
    growth interval of 1 the scale doubles after every finite step, so a resume that forgot it would end on another scale."""
    real = torch.amp.GradScaler
    monkeypatch.setattr(torch.amp, "GradScaler", lambda device: real(device, growth_interval=1))
    cfg = dict(lr_schedule="constant", amp="fp16", ema_decay=None)
    one_go = _unet()
    whole_ckpt = str(tmp_path / "whole.pt")
    whole = train(one_go, X8, _cfg(steps=6, checkpoint_path=whole_ckpt, **cfg), schedule=SCHEDULE)
    ckpt = str(tmp_path / "h.pt")
    train(_unet(), X8, _cfg(steps=3, checkpoint_path=ckpt, **cfg), schedule=SCHEDULE)
    state = load_checkpoint(ckpt)
    assert state["scaler"] is not None and state["device"] == "cpu"
    resumed = _unet()
    rest = train(resumed, X8, _cfg(steps=6, checkpoint_path=ckpt, **cfg), schedule=SCHEDULE)
    assert rest.resumed_from == 3 and rest.losses == whole.losses and _same_weights(one_go, resumed)
    end_whole, end_resumed = load_checkpoint(whole_ckpt)["scaler"], load_checkpoint(ckpt)["scaler"]
    assert end_resumed["scale"] == end_whole["scale"] > state["scaler"]["scale"]


def test_lr_multipliers_make_parameter_groups_and_resume_exactly(tmp_path: Path) -> None:
    from diffusion_course.training.loop import _param_groups

    model = _unet()
    groups = _param_groups(model, _cfg(lr_multipliers={"conv_in": 10.0, "up": 3.0}))
    by_mult = {g["lr_multiplier"]: g["params"] for g in groups}
    assert set(by_mult) == {1.0, 10.0, 3.0}
    assert [id(p) for p in by_mult[10.0]] == [id(model.conv_in.weight), id(model.conv_in.bias)]
    assert sum(len(ps) for ps in by_mult.values()) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="names parameters the model does not have"):
        _param_groups(model, _cfg(lr_multipliers={"label_embed": 10.0}))
    with pytest.raises(ValueError, match=r"lr_multipliers\['up'\] must lie in"):
        _cfg(lr_multipliers={"up": 0.0})
    # a faster group moves further in the same steps
    fast, slow = _unet(), _unet()
    train(fast, X8, _cfg(steps=6, ema_decay=None, lr_multipliers={"conv_in": 20.0}), schedule=SCHEDULE)
    train(slow, X8, _cfg(steps=6, ema_decay=None), schedule=SCHEDULE)
    start = _unet().conv_in.weight
    assert (fast.conv_in.weight - start).norm() > 5 * (slow.conv_in.weight - start).norm()
    # resume is exact with groups too
    cfg = dict(lr_multipliers={"conv_in": 5.0}, lr_schedule="constant")
    one_go = _unet()
    whole = train(one_go, X8, _cfg(steps=6, **cfg), schedule=SCHEDULE)
    ckpt = str(tmp_path / "m.pt")
    train(_unet(), X8, _cfg(steps=3, checkpoint_path=ckpt, **cfg), schedule=SCHEDULE)
    resumed = _unet()
    assert train(resumed, X8, _cfg(steps=6, checkpoint_path=ckpt, **cfg), schedule=SCHEDULE).losses == whole.losses
    assert _same_weights(one_go, resumed)


@pytest.mark.parametrize("bf16_ok, want", [(True, torch.bfloat16), (False, torch.float16)])
def test_amp_auto_on_cuda_follows_the_card(monkeypatch, bf16_ok: bool, want: torch.dtype) -> None:
    """amp="auto" on a CUDA device: bf16 where the card has it natively (Ampere and newer), else fp16 (with a GradScaler),
    e.g. a T4; the CPU stays fp32. Only the device's type and the card's answer matter, so no GPU is needed."""
    from diffusion_course.training.loop import _autocast_dtype

    asked = []
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: asked.append(including_emulation) or bf16_ok)
    assert _autocast_dtype(_cfg(amp="auto"), torch.device("cuda")) == want
    assert asked == [False], "emulated bf16 (a T4's) must not count"
    assert _autocast_dtype(_cfg(amp="auto"), torch.device("cpu")) is None
