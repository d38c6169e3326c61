"""Chapter 10's memorisation study: the colour U-Net trained on photo crops, fixed and augmented, measured at several lengths.

Data: each 427x640 photo is shrunk by average pooling, split into a training region (the left part) and a held-out
region (the right strip, never trained on), and cut into small RGB crops. Pixel values stay in [0, 255] until
:func:`scale_per_channel` maps each channel to [-1, 1] with the training region's per-channel range.

Training and measuring memorisation (the one documented command; CPU, a few minutes at one thread)::

    python -m diffusion_course.weights.make train-colour   # writes data/colour_unet_ema.safetensors and its card

It trains the course's :class:`~diffusion_course.models.unet.UNet` twice with :func:`~diffusion_course.training.loop.train`:
on a fixed small set of crops, and with augmentation (each batch takes fresh random crops and horizontal flips of the
training region), stops at several training lengths, samples with DDIM and records the median distance of samples to
their nearest training crop beside the same distance for held-out crops. The card keeps that table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._internal.devices import pick_device
from .._internal.validate import check_positive_int, check_range
from ..data.photos import PHOTO_NAMES, channel_range, dense_reference, make_crops, scale_per_channel
from ..maths.losses import LossFn
from ..maths.samplers import ddim_sample
from ..maths.schedules import NoiseSchedule, make_betas
from ..models.unet import UNet, UNetConfig
from ..scoring.memorisation import memorisation_row
from ..training.augmented import augmented_loss
from ..training.checkpoints import replace_atomically, save_weights
from ..training.loop import TrainConfig, train
from .provenance import git_state
from .shipped import COLOUR_FIXED_FILE, COLOUR_TINY_SAMPLES_FILE, COLOUR_UNET_CONFIG, COLOUR_UNET_FILE, TINY_UNET_CONFIG

__all__ = ["StudySettings", "memorisation_study", "train_colour_cmd"]


@dataclass(kw_only=True)
class StudySettings:
    """Sizes of :func:`memorisation_study`. The defaults are the shipped CPU run (a few minutes at one thread)."""

    size: int = 32  # crop side in pixels
    downscale: int = 4  # photos shrunk this many times first (427 x 640 -> 106 x 160)
    milestones: tuple[int, ...] = (100, 200, 400, 800)  # training lengths (steps) at which samples are measured
    batch_size: int = 32  # crops per step
    lr: float = 2e-3  # Adam learning rate (constant after warm-up, so a run stopped early is the longer run's prefix)
    warmup_steps: int = 50  # linear LR warm-up
    ema_decay: float = 0.999  # EMA cap (with the course's warm-up; the shipped weights are the EMA)
    samples: int = 64  # DDIM samples measured per milestone
    ddim_steps: int = 50  # DDIM steps (eta = 0, x0 clipped to [-1, 1])
    reference_stride: int = 2  # grid step of the augmented run's reference set (every crop of the region, and flips)
    base_channels: int = 16  # U-Net width (COLOUR_UNET_CONFIG at 16)
    tiny: bool = True  # also train TINY_UNET_CONFIG with augmentation and keep its samples (colour artefacts)
    seed: int = 0  # seeds the weights and the training loop
    sample_seed: int = 1  # seeds the samplers' noise

    def __post_init__(self) -> None:
        self.milestones = tuple(self.milestones)
        if not self.milestones or any(b <= a for a, b in zip(self.milestones, self.milestones[1:])):
            raise ValueError(f"milestones must be increasing step counts; got {self.milestones}")
        for m in self.milestones:
            check_positive_int(m, "milestones entries", 1)
        check_positive_int(self.size, "size", 4)
        check_positive_int(self.downscale, "downscale", 1)
        check_positive_int(self.batch_size, "batch_size", 1)
        check_range(self.lr, "lr", 0.0, 1.0, open_low=True)
        check_positive_int(self.warmup_steps, "warmup_steps", 0)
        check_range(self.ema_decay, "ema_decay", 0.0, 1.0, open_high=True)
        check_positive_int(self.reference_stride, "reference_stride", 1)
        check_positive_int(self.samples, "samples", 1)
        check_positive_int(self.ddim_steps, "ddim_steps", 1, 1000)
        check_positive_int(self.base_channels, "base_channels", 8)

    def unet_config(self) -> UNetConfig:
        """The U-Net of the study: COLOUR_UNET_CONFIG at ``base_channels``."""
        return replace(COLOUR_UNET_CONFIG, base_channels=self.base_channels)


def _schedule() -> NoiseSchedule:
    return NoiseSchedule.from_betas(make_betas("linear", 1000, 1e-4, 0.02))  # Ho et al. 2020: T = 1000, 1e-4 .. 0.02


def _sample(model: nn.Module, schedule: NoiseSchedule, n: int, size: int, s: StudySettings, *,
            return_trajectory: bool = False) -> Any:
    g = torch.Generator().manual_seed(s.sample_seed)  # CPU generator: the same x_T on every device
    return ddim_sample(model, schedule, (n, 3, size, size), steps=s.ddim_steps, eta=0.0, clip_x0=1.0, generator=g,
                       return_trajectory=return_trajectory)


def _run(name: str, model: nn.Module, data: torch.Tensor, schedule: NoiseSchedule, s: StudySettings, loss_fn: LossFn | None,
         heldout: torch.Tensor, reference: torch.Tensor, workdir: Path, progress: bool) -> dict[str, Any]:
    """Train one run up to each milestone in turn (resuming from its checkpoint, so the milestones are points of one
    run), sample and measure at each; returns the rows, the losses and the final EMA model."""
    rows, seconds, result = [], 0.0, None
    base = TrainConfig(steps=s.milestones[0], batch_size=s.batch_size, lr=s.lr, warmup_steps=s.warmup_steps, lr_schedule="constant",
                       grad_clip=1.0, ema_decay=s.ema_decay, seed=s.seed, checkpoint_path=str(workdir / f"{name}.pt"), progress=progress)
    for m in s.milestones:
        result = train(model, data, replace(base, steps=m), schedule=schedule, loss_fn=loss_fn)
        seconds += result.seconds
        t0 = time.perf_counter()
        x = _sample(result.ema.shadow, schedule, s.samples, s.size, s).cpu()
        row = {"steps": m, "train_seconds": round(seconds, 1), **memorisation_row(x, heldout, reference),
               "sample_seconds": round(time.perf_counter() - t0, 1)}
        rows.append(row)
        print(f"  {name:9s} {m:6d} steps: sample/held-out median distance {row['samples']['median']:.2f} / "
              f"{row['heldout']['median']:.2f} = {row['ratio']:.2f}  ({seconds:.0f} s training)", flush=True)
    return {"rows": rows, "losses": result.losses, "ema": result.ema.shadow, "seconds": seconds, "last_samples": x}


def memorisation_study(s: StudySettings, *, device: torch.device | str = "cpu", workdir: str | Path | None = None,
                       progress: bool = True) -> dict[str, Any]:
    """Train the fixed-crop run and the augmented run (and the tiny-width run if ``s.tiny``) and measure memorisation at
    each milestone. Returns {"settings", "data", "fixed", "augmented", ["tiny"]}; each run holds "rows" (one per
    milestone), "losses", "seconds", the final EMA model "ema" and its last "last_samples" (model space)."""
    import tempfile

    device = torch.device(device)
    crops = make_crops(s.size, downscale=s.downscale)
    lo, hi = channel_range(crops.regions)
    schedule = _schedule()
    train_x = scale_per_channel(crops.train, lo, hi)
    held_x = scale_per_channel(crops.heldout, lo, hi)
    regions_x = scale_per_channel(crops.regions, lo, hi)
    dense_x = dense_reference(regions_x, s.size, s.reference_stride)
    out: dict[str, Any] = {"settings": asdict(s), "data": {"lo": lo.tolist(), "hi": hi.tolist(), "train": len(train_x),
                                                          "heldout": len(held_x), "augmented_reference": len(dense_x)}}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        runs = [("fixed", s.unet_config(), train_x, None, train_x), ("augmented", s.unet_config(), regions_x,
                augmented_loss(schedule, s.size), dense_x)]
        if s.tiny:
            runs.append(("tiny", replace(TINY_UNET_CONFIG), regions_x, augmented_loss(schedule, s.size), dense_x))
        for name, cfg, data, loss_fn, reference in runs:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(s.seed)
                model = UNet(cfg).to(device)
            study = s if name != "tiny" else replace(s, milestones=s.milestones[-1:])
            out[name] = _run(name, model, data.to(device), schedule, study, loss_fn, held_x, reference, Path(tmp), progress)
            out[name]["unet_config"] = asdict(cfg)
            out[name]["params"] = sum(p.numel() for p in model.parameters())
    out["lo"], out["hi"] = lo, hi
    return out


def train_colour_cmd(args: argparse.Namespace) -> None:
    from safetensors.torch import save_file

    torch.set_num_threads(args.threads)
    device = torch.device("cpu") if args.cpu else pick_device()
    repo = git_state()
    s = StudySettings(size=args.size, downscale=args.downscale, milestones=tuple(int(v) for v in args.milestones.split(",")),
                      batch_size=args.batch_size, samples=args.samples, base_channels=args.base_channels, tiny=not args.no_tiny,
                      seed=args.seed)
    t0 = time.perf_counter()
    study = memorisation_study(s, device=device, progress=not args.quiet)
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cpu = platform.processor() or platform.machine()
    provenance = {
        "command": "python -m diffusion_course.weights.make " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        **repo,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu} CPU, {torch.get_num_threads()} thread(s)",
        "torch": torch.__version__,
        "seconds_total": round(seconds, 1),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    table = {name: study[name]["rows"] for name in ("fixed", "augmented", "tiny") if name in study}
    data = {"photos": list(PHOTO_NAMES), "source": "sklearn.datasets.load_sample_images()", "size": s.size, "downscale": s.downscale,
            **study["data"], "heldout_region": "the right 30% of each photo's width"}
    schedule = {"kind": "linear", "T": 1000, "beta_1": 1e-4, "beta_T": 0.02}
    sampler = {"sampler": "ddim", "steps": s.ddim_steps, "eta": 0.0, "clip_x0": 1.0, "seed": s.sample_seed}
    measure = ("nearest-training-crop pixel L2 distance in model space (per-channel [-1, 1], 3 x size x size values); "
               "fixed run: against its fixed training crops; augmented and tiny runs: against every crop of the training "
               "region at stride reference_stride and their mirror images; held-out crops measured against the same set")
    for name, file in (("augmented", COLOUR_UNET_FILE), ("fixed", COLOUR_FIXED_FILE)):
        r = study[name]
        card = {"what": f"EMA weights of the {name} run of chapter 10 (few-image colour diffusion)",
                "unet_config": r["unet_config"], "params": r["params"], "schedule": schedule, "data": data,
                "training": {**{k: v for k, v in asdict(s).items() if k not in ("samples", "ddim_steps", "sample_seed", "tiny")},
                             "steps": s.milestones[-1], "seconds": round(r["seconds"], 1),
                             "augmentation": "random crops + horizontal flips of the training region" if name == "augmented" else None,
                             "loss_first_50": round(sum(r["losses"][:50]) / min(50, len(r["losses"])), 4),
                             "loss_last_50": round(sum(r["losses"][-50:]) / min(50, len(r["losses"])), 4)},
                "sampler": sampler, "memorisation": {"measure": measure, "runs": table}, **provenance}
        save_weights(r["ema"].cpu(), out / file, card)
    if "tiny" in study:
        tiny = study["tiny"]
        samples = tiny["last_samples"].half()
        path = out / COLOUR_TINY_SAMPLES_FILE
        replace_atomically(lambda tmp: save_file({"samples": samples}, str(tmp)), path)
        card = {"what": "DDIM samples (model space, per-channel [-1, 1], float16) of a too-narrow colour U-Net trained like the shipped one",
                "unet_config": tiny["unet_config"], "params": tiny["params"], "steps": s.milestones[-1], "seconds": round(tiny["seconds"], 1),
                "sampler": sampler, "n": len(samples), "memorisation": tiny["rows"][-1], **provenance}
        replace_atomically(lambda tmp: tmp.write_text(json.dumps(card, indent=2) + "\n"), path.with_suffix(".json"))
    print(f"done in {seconds:.0f} s -> {out / COLOUR_UNET_FILE} (+ {COLOUR_FIXED_FILE}, {COLOUR_TINY_SAMPLES_FILE})")
