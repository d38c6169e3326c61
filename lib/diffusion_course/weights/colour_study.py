"""Chapter 10's colour U-Nets (fixed and augmented crops, measured at several lengths) and its copying study.

Data: each 427x640 photo is shrunk by average pooling, split into a training region (the left part) and a held-out
region (the right strip, never trained on), and cut into small RGB crops. Pixel values stay in [0, 255] until
:func:`scale_per_channel` maps each channel to [-1, 1] with the training region's per-channel range.

Training and measuring memorisation (the one documented command; CPU, a few minutes at one thread)::

    python -m diffusion_course.weights.make train-colour   # writes data/colour_unet_ema.safetensors and its card

It trains the course's :class:`~diffusion_course.models.unet.UNet` twice with :func:`~diffusion_course.training.loop.train`:
on a fixed small set of crops, and with augmentation (each batch takes fresh random crops and horizontal flips of the
training region), stops at several training lengths, samples with DDIM and records the median distance of samples to
their nearest training crop beside the same distance for held-out crops. The card keeps that table.

The copying study (``train-colour --part copying``; about 40 minutes at one thread, resumable) trains the same U-Net
on nested sets of 4 to 64 crops drawn at random positions of the whole photos (:func:`~diffusion_course.data.photos.random_crop_sets`)
and measures, at several lengths, how near its samples sit to their nearest training crop beside held-out crops drawn
the same way (:func:`~diffusion_course.scoring.memorisation.copying_row`): when the samples become copies. Its card
holds the table and its samples file every cell's samples.
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
from ..data.locations import find_shipped
from ..data.photos import PHOTO_NAMES, channel_range, dense_reference, load_photos, make_crops, random_crop_sets, scale_per_channel
from ..maths.losses import LossFn
from ..maths.samplers import ddim_sample
from ..maths.schedules import NoiseSchedule, make_betas
from ..models.unet import UNet, UNetConfig
from ..scoring.memorisation import copying_row, memorisation_row
from ..training.augmented import augmented_loss
from ..training.checkpoints import read_card, replace_atomically, save_weights
from ..training.loop import TrainConfig, train
from .provenance import git_state
from .shipped import COLOUR_FIXED_FILE, COLOUR_MADE_BY, COLOUR_TINY_SAMPLES_FILE, COLOUR_UNET_CONFIG, COLOUR_UNET_FILE, TINY_UNET_CONFIG

__all__ = ["StudySettings", "memorisation_study", "train_colour_cmd", "COPYING_FILE", "CopyingSettings", "copying_study", "load_copying_study"]


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


COPYING_FILE = "colour_copying_samples.safetensors"  # chapter 10's copying study: samples of every cell (float16) + its card


@dataclass(kw_only=True)
class CopyingSettings:
    """Sizes of :func:`copying_study`: how many training crops it takes for samples to become copies, and when."""

    set_sizes: tuple[int, ...] = (4, 8, 16, 32, 64)  # nested training sets: the first k crops of one random draw
    milestones: tuple[int, ...] = (250, 500, 1000, 2000, 4000)  # training lengths (steps) at which samples are measured
    size: int = 16  # crop side in pixels
    downscale: int = 2  # photos shrunk this many times first (427 x 640 -> 213 x 320: room for 128 crops that touch no other)
    n_heldout: int = 64  # held-out crops, drawn like the training crops
    batch_size: int = 32
    lr: float = 2e-3  # constant after warm-up, so a shorter length is the longer run's prefix
    warmup_steps: int = 50
    ema_decay: float = 0.999
    samples: int = 64  # DDIM samples per cell
    ddim_steps: int = 50
    base_channels: int = 16
    draws: int = 2000  # bootstrap draws of the ratio's interval
    seed: int = 0  # weights and training loop of every run
    crop_seed: int = 0  # positions of the crops
    sample_seed: int = 1  # x_T of the samplers (the same noise in every cell)
    second_seed: int | None = 1  # also train the largest set from this seed up to second_steps: same x_T, other weights
    second_steps: int = 1000  # one of the milestones

    def __post_init__(self) -> None:
        self.set_sizes, self.milestones = tuple(self.set_sizes), tuple(self.milestones)
        for name, v in (("set_sizes", self.set_sizes), ("milestones", self.milestones)):
            if not v or any(b <= a for a, b in zip(v, v[1:])) or any(int(x) < 1 for x in v):
                raise ValueError(f"{name} must be increasing positive integers; got {v}")
        for name in ("n_heldout", "batch_size", "samples", "draws"):
            check_positive_int(getattr(self, name), name, 1)
        check_positive_int(self.size, "size", 4, 64)
        check_positive_int(self.downscale, "downscale", 1, 8)
        check_positive_int(self.warmup_steps, "warmup_steps", 0)
        check_positive_int(self.ddim_steps, "ddim_steps", 1, 1000)
        check_positive_int(self.base_channels, "base_channels", 8)
        check_range(self.lr, "lr", 0.0, 1.0, open_low=True)
        check_range(self.ema_decay, "ema_decay", 0.0, 1.0, open_high=True)
        if self.second_steps not in self.milestones:
            raise ValueError(f"second_steps must be one of the milestones {self.milestones}; got {self.second_steps}")


def _cell(name: str, model: nn.Module, data: torch.Tensor, m: int, s: CopyingSettings, schedule: NoiseSchedule,
          workdir: Path, progress: bool) -> tuple[float, float, torch.Tensor]:
    """Train run ``name`` up to step ``m`` (resuming its checkpoint) and sample; cached in ``workdir`` so a stopped
    study resumes where it was. Returns (seconds of this stretch of training, seconds of sampling, samples)."""
    cache = workdir / f"{name}_{m}.pt"
    if cache.exists():
        got = torch.load(cache)
        return got["seconds"], got.get("sample_seconds", 0.0), got["samples"]
    cfg = TrainConfig(steps=m, batch_size=s.batch_size, lr=s.lr, warmup_steps=s.warmup_steps, grad_clip=1.0, ema_decay=s.ema_decay,
                      seed=int(name.rsplit("seed", 1)[1]), checkpoint_path=str(workdir / f"{name}.pt"), checkpoint_every=250,
                      progress=progress)
    result = train(model, data, cfg, schedule=schedule)
    t0 = time.perf_counter()
    g = torch.Generator().manual_seed(s.sample_seed)
    x = ddim_sample(result.ema.shadow, schedule, (s.samples, 3, s.size, s.size), steps=s.ddim_steps, eta=0.0, clip_x0=1.0,
                    generator=g).cpu()
    dt = time.perf_counter() - t0
    torch.save({"seconds": result.seconds, "sample_seconds": dt, "samples": x}, cache)
    return result.seconds, dt, x


def copying_study(s: CopyingSettings, *, device: torch.device | str = "cpu", workdir: str | Path = "build/colour_copying",
                  progress: bool = True) -> dict[str, Any]:
    """Train the U-Net on each nested training set (and the largest from ``s.second_seed``), measure each at every
    milestone with :func:`~diffusion_course.scoring.memorisation.copying_row` against held-out crops drawn the same way.
    The near-copy threshold, fixed before any training, is the median distance between a training crop and its own
    half-pixel-shifted twin. Returns {"settings", "data", "rows", "samples" (name -> tensor), "seconds"}."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    crops = random_crop_sets(max(s.set_sizes), s.n_heldout, s.size, downscale=s.downscale, seed=s.crop_seed)
    lo, hi = channel_range(torch.stack(list(load_photos(s.downscale).values())))
    train_x, held_x = scale_per_channel(crops.train, lo, hi), scale_per_channel(crops.heldout, lo, hi)
    threshold = float((train_x - scale_per_channel(crops.train_shifted, lo, hi)).flatten(1).norm(dim=1).median())
    schedule = _schedule()
    runs = [(k, s.seed, s.milestones) for k in s.set_sizes]
    if s.second_seed is not None:
        runs.append((max(s.set_sizes), s.second_seed, tuple(m for m in s.milestones if m <= s.second_steps)))
    rows, samples = [], {}
    for k, seed, milestones in runs:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = UNet(replace(COLOUR_UNET_CONFIG, base_channels=s.base_channels)).to(device)
        name, seconds = f"n{k}_seed{seed}", 0.0
        for m in milestones:
            dt, ds, x = _cell(name, model, train_x[:k].to(device), m, s, schedule, workdir, progress)
            seconds += dt
            row = {"set_size": k, "seed": seed, "steps": m, "train_seconds": round(seconds, 1), "sample_seconds": round(ds, 1),
                   **copying_row(x, held_x, train_x[:k], threshold, draws=s.draws)}
            rows.append(row)
            samples[f"{name}_steps{m}"] = x
            print(f"  {k:3d} crops, seed {seed}, {m:5d} steps: median distance samples / held-out {row['samples']['median']:.3f} / "
                  f"{row['heldout']['median']:.3f} = {row['ratio']:.3f} [{row['ratio_lo']:.3f}, {row['ratio_hi']:.3f}], "
                  f"near-copies {row['near_copies']:.2f}", flush=True)
    data = {"photos": list(PHOTO_NAMES), "source": "sklearn.datasets.load_sample_images()", "size": s.size, "downscale": s.downscale,
            "lo": lo.tolist(), "hi": hi.tolist(), "threshold": round(threshold, 4),
            "threshold_rule": "median over the training crops of the distance to the same crop moved half a pixel right",
            "train_at": crops.train_at.tolist(), "heldout_at": crops.heldout_at.tolist(),
            "draw": "random_crop_sets: uniform photo and position, no crop touching another, then a random split; "
                    "the k-crop training set is the first k training crops"}
    return {"settings": asdict(s), "data": data, "rows": rows, "samples": samples}


def load_copying_study(*, directory: str | Path | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The shipped copying study of chapter 10: its samples (model space, name "n{k}_seed{seed}_steps{m}") and its card."""
    from safetensors.torch import load_file

    path = find_shipped(COPYING_FILE, directory, made_by=COLOUR_MADE_BY)
    return {k: v.float() for k, v in load_file(str(path)).items()}, read_card(path)


def _copying_cmd(args: argparse.Namespace, device: torch.device, provenance: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    s = CopyingSettings(set_sizes=tuple(int(v) for v in args.set_sizes.split(",")),
                        milestones=tuple(int(v) for v in args.copy_milestones.split(",")), seed=args.seed)
    t0 = time.perf_counter()
    study = copying_study(s, device=device, workdir=args.workdir, progress=not args.quiet)
    seconds = time.perf_counter() - t0
    samples = {k: v.half().contiguous() for k, v in study["samples"].items()}
    path = Path(args.out) / COPYING_FILE
    card = {"what": "chapter 10's copying study: DDIM samples (model space, per-channel [-1, 1], float16) of the colour U-Net trained "
                    f"on {min(s.set_sizes)} to {max(s.set_sizes)} photo crops, measured against held-out crops drawn like the training crops",
            "unet_config": asdict(replace(COLOUR_UNET_CONFIG, base_channels=s.base_channels)),
            "schedule": {"kind": "linear", "T": 1000, "beta_1": 1e-4, "beta_T": 0.02},
            "sampler": {"sampler": "ddim", "steps": s.ddim_steps, "eta": 0.0, "clip_x0": 1.0, "seed": s.sample_seed},
            "settings": study["settings"], "data": study["data"],
            "measure": "nearest-training-crop pixel L2 distance in model space (3 x size x size values); ratio = median over samples / "
                       "median over held-out crops, percentile bootstrap interval (both sets resampled); near-copy: distance below threshold",
            "rows": study["rows"], **provenance, "seconds_total": round(seconds, 1),
            "seconds_note": "seconds_total: this invocation (a resumed one reuses the cells finished in --workdir); seconds_all_cells: "
                            "every cell's training and sampling, summed",
            "seconds_all_cells": round(sum(r["sample_seconds"] for r in study["rows"])
                                       + sum(max(r["train_seconds"] for r in study["rows"] if (r["set_size"], r["seed"]) == key)
                                             for key in {(r["set_size"], r["seed"]) for r in study["rows"]}), 1)}
    replace_atomically(lambda tmp: save_file(samples, str(tmp)), path)
    replace_atomically(lambda tmp: tmp.write_text(json.dumps(card, indent=1) + "\n"), path.with_suffix(".json"))
    print(f"copying study done in {seconds:.0f} s -> {path}")


def train_colour_cmd(args: argparse.Namespace) -> None:
    from safetensors.torch import save_file

    torch.set_num_threads(args.threads)
    device = torch.device("cpu") if args.cpu else pick_device()
    repo = git_state()
    cpu = platform.processor() or platform.machine()
    provenance = {
        "command": "python -m diffusion_course.weights.make " + " ".join(shlex.quote(a) for a in sys.argv[1:]), **repo,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu} CPU, {torch.get_num_threads()} thread(s)",
        "torch": torch.__version__, "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if args.part in ("copying", "all"):
        _copying_cmd(args, device, provenance)
    if args.part == "copying":
        return
    s = StudySettings(size=args.size, downscale=args.downscale, milestones=tuple(int(v) for v in args.milestones.split(",")),
                      batch_size=args.batch_size, samples=args.samples, base_channels=args.base_channels, tiny=not args.no_tiny,
                      seed=args.seed)
    t0 = time.perf_counter()
    study = memorisation_study(s, device=device, progress=not args.quiet)
    seconds = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    provenance = {**provenance, "seconds_total": round(seconds, 1)}
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
