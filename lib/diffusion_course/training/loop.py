"""One training loop for every model of the course, chapters 1 and 4-11 (Ho et al. 2020, Algorithm 1, plus the
engineering around it):
device from the model, bf16 autocast on CUDA, gradient clipping, EMA, LR warm-up and schedule, a progress bar,
atomic periodic checkpoints, exact resume, a NaN/inf guard, and several processes under torchrun (:mod:`.distributed`)."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from .._internal.progress import progress_bar
from .._internal.validate import check_choice, check_positive_int, check_range
from ..maths.losses import ConditionalLossFn, LossFn, conditional_simple_loss, conditional_simple_loss_fn, null_label, simple_loss, simple_loss_fn
from ..maths.schedules import NoiseSchedule
from .checkpoints import CheckpointError, architecture_of, atomic_save, load_checkpoint
from .distributed import BatchSplit, batch_split
from .ema import EMA

__all__ = ["TrainConfig", "TrainResult", "train", "training_loop", "StepHook"]

# on_step(step, model) after each optimiser step; step counts from 1.
StepHook = Callable[[int, nn.Module], None]


@dataclass(kw_only=True)
class TrainConfig:
    """Settings of :func:`train`. Defaults follow Ho et al. 2020 where a short course run allows (said where not)."""

    steps: int = 2000  # optimiser steps (the paper trains 800k; the course runs far shorter)
    batch_size: int = 128  # examples per step (paper: 128)
    lr: float = 2e-4  # Adam learning rate (paper: 2e-4 for CIFAR-10)
    warmup_steps: int = 0  # linear LR warm-up (paper: 5000; short runs use fewer)
    lr_schedule: str = "constant"  # "constant" or "cosine" decay to 0 after warm-up
    grad_clip: float | None = 1.0  # max global gradient norm (paper: 1.0); None disables
    ema_decay: float | None = 0.999  # EMA decay cap (paper: 0.9999 for 800k steps); None disables. The warm-up
    # min(d, (1 + n) / (10 + n)) keeps the decay used below the cap for (10 d - 1) / (1 - d) steps (8,991 for 0.999):
    # after 4,000 steps it is 0.9978 (half-life 308 steps), so short runs average over about a ninth of their steps
    amp: str = "auto"  # "auto": bf16 on CUDA cards that have it, fp16 + GradScaler on older ones, off on the CPU; or "bf16", "fp16", "off"
    compile: bool = False  # torch.compile the model for the loop (CPU: the bare step gains ~7% after ~2 min of compiling, the whole loop ~0%)
    snr_gamma: float | None = None  # min-SNR-gamma loss weighting (Hang et al. 2023) for the default loss; None: plain L_simple
    label_dropout: float = 0.1  # with labels: chance each label becomes "no label" (classifier-free guidance; Ho & Salimans 2022)
    lr_multipliers: dict[str, float] | None = None  # parameter-name prefix -> LR multiplier, e.g. {"label_embed": 10.0} lets a
    # part new to a fine-tuned model learn faster than the weights it starts from; None: one LR for all
    log_every: int = 50  # steps between reads of the losses from the device: the progress bar's loss and the NaN/inf guard
    seed: int = 0  # seeds the loop's generator: batches, timesteps and noise
    checkpoint_path: str | None = None  # where to write checkpoints; resume from it if present
    checkpoint_every: int = 0  # steps between checkpoints (0: only at the end, when a path is given)
    progress: bool = True  # show a tqdm progress bar

    def __post_init__(self) -> None:
        check_positive_int(self.steps, "steps", 1)
        check_positive_int(self.batch_size, "batch_size", 1)
        check_range(self.lr, "lr", 0.0, 1.0, open_low=True)
        check_positive_int(self.warmup_steps, "warmup_steps", 0)
        check_choice(self.lr_schedule, ("constant", "cosine"), "lr_schedule")
        if self.grad_clip is not None:
            check_range(self.grad_clip, "grad_clip", 0.0, float("inf"), open_low=True)
        if self.ema_decay is not None:
            check_range(self.ema_decay, "ema_decay", 0.0, 1.0)
        check_choice(self.amp, ("auto", "bf16", "fp16", "off"), "amp")
        if self.snr_gamma is not None:
            check_range(self.snr_gamma, "snr_gamma", 0.0, float("inf"), open_low=True)
        check_range(self.label_dropout, "label_dropout", 0.0, 1.0)
        if self.lr_multipliers is not None:
            if not isinstance(self.lr_multipliers, dict) or not self.lr_multipliers:
                raise ValueError(f"lr_multipliers must be a non-empty dict of parameter-name prefix -> multiplier; got {self.lr_multipliers!r}")
            for prefix, mult in self.lr_multipliers.items():
                if not isinstance(prefix, str) or not prefix:
                    raise ValueError(f"lr_multipliers keys must be parameter-name prefixes (non-empty strings); got {prefix!r}")
                check_range(mult, f"lr_multipliers[{prefix!r}]", 0.0, float("inf"), open_low=True)
        check_positive_int(self.log_every, "log_every", 1)
        check_positive_int(self.checkpoint_every, "checkpoint_every", 0)


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    losses: list[float]  # loss of every step, from step 1 (including steps done before a resume)
    seconds: float  # wall-clock of this call
    ema: EMA | None  # the EMA shadow (use ``result.ema.shadow`` for sampling), or None
    resumed_from: int = 0  # step the run resumed from (0 for a fresh run)
    processes: int = 1  # how many processes trained together (torchrun), each on batch_size / processes of every batch
    config: dict = field(default_factory=dict)


def _lr_factor(step: int, cfg: TrainConfig) -> float:
    """Multiplier of the base LR at 0-based step ``step``: linear warm-up, then constant or cosine decay."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "cosine":
        done = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, done)))
    return 1.0


def _autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a run. "auto" on the CPU is fp32: measured on a 2-core CPU with the shipped U-Net, bf16
    autocast ran 10x slower than fp32 (benchmarks/RESULTS.md). On CUDA, "auto" is bf16 where the card supports it
    (Ampere and newer) and fp16 with a GradScaler on older cards (a T4 emulates bf16 slowly)."""
    if cfg.amp == "off" or (cfg.amp == "auto" and device.type != "cuda"):
        return None
    if cfg.amp == "fp16":
        return torch.float16
    if cfg.amp == "auto" and not torch.cuda.is_bf16_supported(including_emulation=False):
        return torch.float16
    return torch.bfloat16


def _param_groups(model: nn.Module, config: TrainConfig) -> list[dict]:
    """The optimiser's parameter groups: one per ``config.lr_multipliers`` prefix that names parameters (the longest
    matching prefix wins), and the rest at multiplier 1. A prefix that names no parameter raises ValueError."""
    mults = config.lr_multipliers or {}
    groups: dict[str, list] = {prefix: [] for prefix in mults}
    rest = []
    for name, p in model.named_parameters():
        match = max((pre for pre in mults if name == pre or name.startswith(pre + ".")), key=len, default=None)
        (groups[match] if match is not None else rest).append(p)
    empty = [pre for pre, ps in groups.items() if not ps]
    if empty:
        raise ValueError(f"lr_multipliers names parameters the model does not have: {empty} (e.g. {next(iter(dict(model.named_parameters())), '')!r})")
    out = [{"params": rest, "lr_multiplier": 1.0}] if rest else []
    return out + [{"params": ps, "lr_multiplier": float(mults[pre])} for pre, ps in groups.items()]


# Settings that must match for a resumed run to continue the same run (steps may grow under a constant LR: training is extended).
_RESUME_MUST_MATCH = ("batch_size", "lr", "warmup_steps", "lr_schedule", "grad_clip", "ema_decay", "seed", "snr_gamma", "label_dropout", "lr_multipliers")


def _check_resume_config(saved: dict, config: TrainConfig, path: Path) -> None:
    """Raise CheckpointError when the checkpoint was written by a run with other settings (it would not resume exactly).
    ``steps`` may grow (training is extended) only under a constant LR: a cosine decay is laid out over ``steps``, so
    another ``steps`` changes the LR of the steps still to come and the run would not be the one that was started."""
    mine = asdict(config)
    keys = _RESUME_MUST_MATCH + (("steps",) if config.lr_schedule == "cosine" else ())
    differ = [k for k in keys if k in saved and str(saved[k]) != str(mine[k] if mine[k] is not None else "None")]
    if differ:
        pairs = ", ".join(f"{k}: checkpoint {saved[k]} vs config {mine[k]}" for k in differ)
        raise CheckpointError(
            f"{path} was written by a run with other settings ({pairs}); resuming would not continue that run. "
            f"Use the same settings, or another checkpoint_path to start afresh."
        )


def train(
    model: nn.Module,
    data: torch.Tensor,
    config: TrainConfig,
    *,
    schedule: NoiseSchedule | None = None,
    loss_fn: LossFn | ConditionalLossFn | None = None,
    on_step: StepHook | None = None,
    labels: torch.Tensor | None = None,
) -> TrainResult:
    """Train ``model`` on ``data`` (N, ...) for ``config.steps`` steps, minimising L_simple (Ho et al. 2020, Algorithm 1)
    unless ``loss_fn`` is given. The device is the model's. With ``config.checkpoint_path`` set and a checkpoint there,
    the run resumes exactly (model, EMA, optimiser, step, both RNGs and the loss history) and produces the same losses
    and weights as an uninterrupted run.

    Randomness: batches, timesteps and noise come from a CPU generator seeded with ``config.seed``; anything inside the
    model that uses torch's global RNG (dropout) runs on a forked global RNG seeded from ``config.seed`` too, so the
    caller's global RNG is left untouched and a run is reproducible from its config alone.

    ``on_step(step, model)`` is called after every optimiser step (1-based step count), e.g. to update extra EMAs of
    other decays or to record a weight; it must not change the model.

    NaN/inf guard: the losses and gradient norms are read from the device every ``config.log_every`` steps, before each
    checkpoint and at the end. A non-finite one stops the run at that read with a FloatingPointError naming its step,
    and the model is set back to the weights of the last read that found all finite (``on_step`` saw the steps between).

    With ``labels`` (N,) the model is class-conditional (chapter 11): each batch takes the labels of its images, and the
    default loss is :func:`guidance.conditional_simple_loss` with ``config.label_dropout``; a custom ``loss_fn`` is then
    called as ``loss_fn(model, x0, y, generator)``.
    Under ``torchrun --nproc_per_node=N`` the N processes train as one, each on 1/N of every batch (:mod:`.distributed`).
    """
    if data.ndim < 2 or data.shape[0] < 1:
        raise ValueError(f"data must have shape (N, ...) with N >= 1; got {tuple(data.shape)}")
    params = list(model.parameters())
    if not params:
        raise ValueError("model has no parameters to train")
    device = params[0].device
    if labels is not None:
        if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.shape != data.shape[:1]:
            raise ValueError(f"labels must be an integer tensor of shape (N,) = ({data.shape[0]},); got "
                             f"{getattr(labels, 'dtype', type(labels).__name__)} {tuple(getattr(labels, 'shape', ()))}")
        labels = labels.long().to(device)
        if loss_fn is None:
            if schedule is None:
                raise ValueError("schedule is required when loss_fn is not given (the default loss is L_simple)")
            if config.snr_gamma is not None:
                raise ValueError("snr_gamma applies to the unconditional default loss only")
            null = null_label(model)  # raises for an unconditional model
            labels_ok = (int(labels.min()) >= 0 and int(labels.max()) < null) if labels.numel() else True
            if not labels_ok:
                raise ValueError(f"labels must hold class labels in [0, {null - 1}]; got values in [{int(labels.min())}, {int(labels.max())}]")
            was_training = model.training
            model.eval()
            with torch.no_grad():
                conditional_simple_loss(model, schedule.to(device), data[:1].to(device), labels[:1], p_uncond=config.label_dropout,
                                        generator=torch.Generator().manual_seed(0))
            model.train(was_training)
            loss_fn = conditional_simple_loss_fn(schedule.to(device), config.label_dropout, null)
        elif config.snr_gamma is not None:
            raise ValueError("snr_gamma applies to the default loss only; weight your own loss_fn instead")
    elif loss_fn is None:
        if schedule is None:
            raise ValueError("schedule is required when loss_fn is not given (the default loss is L_simple)")
        # check once, with the checked loss, what the unchecked hot-loop version then assumes (shapes, timesteps)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            simple_loss(model, schedule.to(device), data[:1].to(device), generator=torch.Generator().manual_seed(0), snr_gamma=config.snr_gamma)
        model.train(was_training)
        loss_fn = simple_loss_fn(schedule.to(device), config.snr_gamma)
    elif config.snr_gamma is not None:
        raise ValueError("snr_gamma applies to the default loss only; weight your own loss_fn instead")
    cuda_devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        return training_loop(model, data.to(device), config, loss_fn, device, on_step, labels)


def _resume(ckpt: Path, config: TrainConfig, model: nn.Module, opt: torch.optim.Optimizer, ema: EMA | None, gen: torch.Generator,
            device: torch.device, split: BatchSplit) -> tuple[int, list[float], dict | None]:
    """Load the checkpoint at ``ckpt`` into the model, optimiser, EMA and both RNGs; return (its step, the losses of
    the steps before it, the fp16 loss scaler's state or None)."""
    state = load_checkpoint(ckpt, model)
    start = int(state["step"])
    if start > config.steps:
        raise ValueError(f"checkpoint {ckpt} is at step {start}, beyond config.steps = {config.steps}")
    _check_resume_config(state.get("config", {}), config, ckpt)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    if ema is not None:
        if state.get("ema") is None:
            raise CheckpointError(f"{ckpt} holds no EMA weights but config.ema_decay = {config.ema_decay}")
        ema.load_state_dict(state["ema"])
    gen.set_state(state["rng"])
    if "torch_rng" in state:
        torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and state.get("cuda_rng") is not None:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    split.restore_rng(state)  # several processes: each its own dropout stream (nothing in one process)
    saved_device = state.get("device")
    if saved_device is not None and saved_device != device.type:
        warnings.warn(f"{ckpt} was written on {saved_device} and resumes on {device.type}: the run continues, but not bit for bit "
                      "(kernels differ between devices)", stacklevel=4)
    return start, [float(v) for v in state["losses"]], state.get("scaler")


def _save(ckpt: Path, step: int, losses: list[float], model: nn.Module, opt: torch.optim.Optimizer, ema: EMA | None, gen: torch.Generator,
          scaler: torch.amp.GradScaler | None, device: torch.device, config: TrainConfig, split: BatchSplit) -> None:
    """Write everything an exact resume needs, atomically (a crash mid-write leaves the previous checkpoint); process 0 writes."""
    split.save_on_main(
        atomic_save,
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "ema": ema.state_dict() if ema is not None else None,
            "rng": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "step": step,
            "losses": torch.tensor(losses, dtype=torch.float64),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "device": device.type,
            "architecture": architecture_of(model),
            "config": {k: (v if v is not None else "None") for k, v in asdict(config).items()},
        },
        ckpt,
    )


class _LossLog:
    """The NaN/inf guard and the loss history, read from the device in one go. ``float(loss)`` at every step would make
    the CPU wait for the GPU at every step; instead each step's loss (and gradient norm) stays on the device until
    :meth:`read`, every ``log_every`` steps, before each checkpoint and at the end. A read that finds every value finite
    keeps a copy of the weights; one that finds a NaN or inf puts that copy back, so a stopped run leaves finite weights."""

    def __init__(self, model: nn.Module, losses: list[float], step: int) -> None:
        self.model, self.losses = model, losses  # losses: one float per step read so far, from step 1
        self.new_losses: list[torch.Tensor] = []  # per step since the last read, still on the device
        self.new_norms: list[torch.Tensor] = []
        self._keep_weights(step)

    def _keep_weights(self, step: int) -> None:
        self.good_step = step  # the weights after this step are finite: a stopped run falls back to them
        self.good_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor | None) -> None:
        self.new_losses.append(loss.detach().reshape(()))
        if grad_norm is not None:
            self.new_norms.append(grad_norm.detach().reshape(()))

    def read(self, keep_weights: bool = True) -> tuple[int, str] | None:
        """Move the new losses into ``losses`` (one read from the device). Return (1-based step, what happened) for the
        first non-finite loss or gradient norm among them, or None when all are finite."""
        first = len(self.losses) + 1
        values = torch.stack(self.new_losses).tolist() if self.new_losses else []
        norms = torch.stack(self.new_norms).tolist() if self.new_norms else []
        self.new_losses, self.new_norms = [], []
        for i, value in enumerate(values):
            if not math.isfinite(value):
                return first + i, f"loss became {value}"
            if i < len(norms) and not math.isfinite(norms[i]):  # a finite loss can still give inf gradients
                return first + i, f"gradient norm became {norms[i]}"
        self.losses.extend(values)
        if keep_weights:
            self._keep_weights(len(self.losses))
        return None

    def stop(self, bad_step: int, what: str, read_up_to: int, lr: float, checkpoint: str) -> FloatingPointError:
        """Put the last finite weights back and say what happened where (the error :func:`train` raises)."""
        self.model.load_state_dict(self.good_weights)
        self.model.eval()
        return FloatingPointError(
            f"{what} at step {bad_step} (lr {lr:.3g}), found when the losses of steps {self.good_step + 1}-{read_up_to} were read "
            f"(every log_every steps); training stopped there and the weights were set back to those after step {self.good_step}, "
            f"which are finite.{checkpoint} Try a lower lr or a grad_clip."
        )


def training_loop(
    model: nn.Module, data: torch.Tensor, config: TrainConfig, loss_fn: LossFn, device: torch.device, on_step: StepHook | None,
    labels: torch.Tensor | None = None,
) -> TrainResult:
    """The loop of :func:`train` (chapter 6 prints it): its arguments already checked, run inside a forked global RNG.
    Call :func:`train`, which checks the arguments, picks the loss and calls this."""
    split = batch_split(model, config.batch_size)  # under torchrun: this process's share of each batch, and process 0's weights
    gen = torch.Generator().manual_seed(config.seed)  # CPU generator: same stream on every device (and every process)
    torch.manual_seed(config.seed + 1 + split.seed_offset)  # global RNG (dropout); forked by train(), so the caller's state is kept
    opt = torch.optim.Adam(_param_groups(model, config), lr=config.lr)
    ema = EMA(model, config.ema_decay) if config.ema_decay is not None else None
    ckpt = Path(config.checkpoint_path) if config.checkpoint_path else None
    start, losses, resumed_scaler = _resume(ckpt, config, model, opt, ema, gen, device, split) if ckpt is not None and ckpt.exists() else (0, [], None)
    split.same_start(start)
    last_saved = start if ckpt is not None and start > 0 else None
    amp_dtype = _autocast_dtype(config, device)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None
    if scaler is not None and resumed_scaler is not None:
        scaler.load_state_dict(resumed_scaler)  # the fp16 loss scale and its growth counter: exact resume under fp16
    forward = split.shard(torch.compile(model) if config.compile else model)  # shares the parameters; under torchrun: this process's rows
    log = _LossLog(model, losses, start)
    model.train()
    t0 = time.perf_counter()
    bar = progress_bar(range(start, config.steps), desc="training", disable=not config.progress or split.rank > 0, initial=start, total=config.steps)
    for step in bar:  # 0-based; the loss of step k is losses[k]
        for group in opt.param_groups:
            group["lr"] = config.lr * group["lr_multiplier"] * _lr_factor(step, config)
        idx = torch.randint(0, data.shape[0], (config.batch_size,), generator=gen).to(device)
        x0 = data[idx]
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            loss = loss_fn(forward, x0, gen) if labels is None else loss_fn(forward, x0, labels[idx], gen)
        if loss.numel() != 1:
            bar.close()
            raise ValueError(f"loss_fn must return a scalar tensor; got shape {tuple(loss.shape)}")
        opt.zero_grad(set_to_none=True)
        (scaler.scale(loss) if scaler is not None else loss).backward()
        split.sum_gradients(model)  # several processes: add up their gradients, as DDP does (nothing in one process)
        if scaler is not None:
            scaler.unscale_(opt)
        # The global gradient norm, clipped to grad_clip; the guard checks it with the loss (see _LossLog).
        norm = nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip if config.grad_clip is not None else float("inf"))
        if scaler is not None:
            scaler.step(opt)  # skips the step itself when fp16 gradients overflowed
            scaler.update()
        else:
            opt.step()
        if ema is not None:
            ema.update(model)
        log.add(loss, norm if scaler is None else None)  # no float(loss) here: that would wait for the GPU every step
        if on_step is not None:
            on_step(step + 1, model)
        save_now = ckpt is not None and config.checkpoint_every and (step + 1) % config.checkpoint_every == 0
        if save_now or (step + 1) % config.log_every == 0 or step + 1 == config.steps:
            problem = log.read(keep_weights=step + 1 < config.steps)  # the NaN/inf guard, every log_every steps
            if problem is not None:
                bar.close()
                bad, what = problem
                lr = config.lr * opt.param_groups[0]["lr_multiplier"] * _lr_factor(bad - 1, config)
                where = f" The last good checkpoint is {ckpt} (step {last_saved})." if last_saved is not None else ""
                raise log.stop(bad, what, step + 1, lr, where)
            if config.progress:
                recent = losses[-config.log_every :]
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}")
        if save_now:
            _save(ckpt, step + 1, losses, model, opt, ema, gen, scaler, device, config, split)
            last_saved = step + 1
    bar.close()
    if ckpt is not None and last_saved != config.steps:
        _save(ckpt, config.steps, losses, model, opt, ema, gen, scaler, device, config, split)
    seconds = time.perf_counter() - t0
    model.eval()
    return TrainResult(losses=losses, seconds=seconds, ema=ema, resumed_from=start, processes=split.world, config=asdict(config))
