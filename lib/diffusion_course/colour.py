"""Chapter 10: few-image diffusion in colour on scikit-learn's two bundled photographs (china.jpg, flower.jpg).

Data: each 427x640 photo is shrunk by average pooling, split into a training region (the left part) and a held-out
region (the right strip, never trained on), and cut into small RGB crops. Pixel values stay in [0, 255] until
:func:`scale_per_channel` maps each channel to [-1, 1] with the training region's per-channel range.

Training and measuring memorisation (the one documented command; CPU, a few minutes at one thread)::

    python -m diffusion_course.colour train          # writes data/colour_unet_ema.safetensors and its card

It trains the course's :class:`~diffusion_course.models.unet.UNet` twice with :func:`~diffusion_course.train.train`:
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
import torch.nn.functional as F
from torch import nn

from ._validate import check_choice, check_positive_int, check_range
from .checkpoints import CheckpointError, load_weights, read_card, save_weights
from .data import DATA_DIR
from .losses import simple_loss
from .metrics import nearest_train_distances
from .models.unet import UNet, UNetConfig
from .samplers import ddim_sample
from .schedules import NoiseSchedule, make_betas
from .train import LossFn, TrainConfig, train

__all__ = [
    "PHOTO_NAMES",
    "COLOUR_UNET_FILE",
    "COLOUR_FIXED_FILE",
    "COLOUR_TINY_SAMPLES_FILE",
    "COLOUR_UNET_CONFIG",
    "TINY_UNET_CONFIG",
    "CropSet",
    "load_photos",
    "grid_crops",
    "make_crops",
    "channel_stats",
    "channel_range",
    "scale_per_channel",
    "unscale_per_channel",
    "to_display",
    "crop_and_flip",
    "random_crops",
    "augmented_loss",
    "dense_reference",
    "distance_summary",
    "memorisation_row",
    "StudySettings",
    "memorisation_study",
    "load_colour_unet",
    "load_tiny_samples",
    "main",
]

PHOTO_NAMES = ("china", "flower")  # scikit-learn's bundled photographs, 427 x 640 RGB each
COLOUR_UNET_FILE = "colour_unet_ema.safetensors"  # EMA weights of the augmented run (the chapter's shipped model)
COLOUR_FIXED_FILE = "colour_unet_fixed_ema.safetensors"  # EMA weights of the fixed-crop run (to show memorisation)
COLOUR_TINY_SAMPLES_FILE = "colour_tiny_samples.safetensors"  # samples of a too-narrow U-Net (colour artefacts)

# The shipped colour U-Net: 32x32 (16 ch) -> 16x16 (32 ch) -> 8x8 (32 ch, self-attention), about 0.3 M parameters.
COLOUR_UNET_CONFIG = UNetConfig(
    in_channels=3,
    base_channels=16,
    channel_mults=(1, 2, 2),
    num_res_blocks=1,
    attention_levels=(2,),  # self-attention at the lowest level only (8x8 = 64 positions), plus the middle
    norm_groups=8,
    time_conditioning="scale_shift",
    dropout=0.0,
)
# A deliberately narrow version (widths 4, 8, 8) for the colour-artefact comparison.
TINY_UNET_CONFIG = replace(COLOUR_UNET_CONFIG, base_channels=4, norm_groups=4)


# ------------------------------------------------------------------------------------------------------------ data
def load_photos(downscale: int = 4) -> dict[str, torch.Tensor]:
    """scikit-learn's two sample photographs as float tensors (3, H, W) with values in [0, 255], shrunk ``downscale``
    times by average pooling (427 x 640 -> 106 x 160 for 4). No network: the JPEGs ship inside scikit-learn."""
    check_positive_int(downscale, "downscale", 1, 8)
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    out = {}
    for path, image in zip(bunch.filenames, bunch.images):
        name = Path(path).stem
        x = torch.from_numpy(image.copy()).permute(2, 0, 1).float()  # (3, 427, 640), uint8 values as floats
        out[name] = F.avg_pool2d(x[None], downscale)[0] if downscale > 1 else x
    return {n: out[n] for n in PHOTO_NAMES}


def grid_crops(image: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """All ``size`` x ``size`` crops of ``image`` (C, H, W) whose top-left corners lie on a grid of step ``stride``,
    row by row: shape (n_rows * n_cols, C, size, size)."""
    if image.ndim != 3:
        raise ValueError(f"image must have shape (C, H, W); got {tuple(image.shape)}")
    H, W = image.shape[-2:]
    check_positive_int(size, "size", 1, min(H, W))
    check_positive_int(stride, "stride", 1)
    patches = image.unfold(1, size, stride).unfold(2, size, stride)  # (C, n_rows, n_cols, size, size)
    return patches.permute(1, 2, 0, 3, 4).reshape(-1, image.shape[0], size, size).contiguous()


@dataclass(frozen=True)
class CropSet:
    """The chapter's data: training crops, held-out crops and the training regions they come from (values in [0, 255])."""

    train: torch.Tensor  # (N_train, 3, size, size): a fixed grid of crops of the training regions
    heldout: torch.Tensor  # (N_heldout, 3, size, size): crops of the held-out strips, never trained on
    regions: torch.Tensor  # (n_photos, 3, H, W_train): the training regions (augmentation crops from these)
    heldout_regions: torch.Tensor  # (n_photos, 3, H, W_heldout)
    train_photo: torch.Tensor  # (N_train,) index into PHOTO_NAMES of each training crop
    heldout_photo: torch.Tensor  # (N_heldout,)
    size: int  # crop side in pixels
    downscale: int  # how many times the photos were shrunk
    train_stride: int  # grid step of the training crops
    heldout_stride: int  # grid step of the held-out crops


def make_crops(size: int = 32, *, downscale: int = 4, heldout_fraction: float = 0.3, train_stride: int | None = None,
               heldout_stride: int | None = None) -> CropSet:
    """Cut both photos into crops: the right ``heldout_fraction`` of each photo's width is held out; the rest is the
    training region. Training crops sit on a grid of step ``train_stride`` (default size // 2), held-out crops on a
    finer grid of step ``heldout_stride`` (default size // 4) so both sets have a similar size."""
    check_positive_int(size, "size", 4, 128)
    check_range(heldout_fraction, "heldout_fraction", 0.0, 0.5, open_low=True)
    train_stride = size // 2 if train_stride is None else train_stride
    heldout_stride = max(1, size // 4) if heldout_stride is None else heldout_stride
    check_positive_int(train_stride, "train_stride", 1)
    check_positive_int(heldout_stride, "heldout_stride", 1)
    photos = load_photos(downscale)
    H, W = next(iter(photos.values())).shape[-2:]
    w_held = round(W * heldout_fraction)
    if size > H or size > w_held or size > W - w_held:
        raise ValueError(f"size must fit in the held-out strip ({H} x {w_held} px) and the training region ({H} x {W - w_held} px) "
                         f"at downscale {downscale}; got size={size}")
    regions = torch.stack([p[:, :, : W - w_held] for p in photos.values()])
    held = torch.stack([p[:, :, W - w_held :] for p in photos.values()])
    train_c = [grid_crops(r, size, train_stride) for r in regions]
    held_c = [grid_crops(r, size, heldout_stride) for r in held]
    return CropSet(
        train=torch.cat(train_c), heldout=torch.cat(held_c), regions=regions, heldout_regions=held,
        train_photo=torch.cat([torch.full((len(c),), i) for i, c in enumerate(train_c)]),
        heldout_photo=torch.cat([torch.full((len(c),), i) for i, c in enumerate(held_c)]),
        size=size, downscale=downscale, train_stride=train_stride, heldout_stride=heldout_stride,
    )


def _check_images(x: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must be a tensor of RGB images (N, 3, H, W); got {tuple(getattr(x, 'shape', ()))}")


def channel_stats(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-channel mean, standard deviation, minimum and maximum of (N, 3, H, W) images: each a (3,) tensor (R, G, B)."""
    _check_images(images, "images")
    flat = images.transpose(0, 1).reshape(3, -1).double()
    return {"mean": flat.mean(1), "std": flat.std(1), "min": flat.amin(1), "max": flat.amax(1)}


def channel_range(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi): the per-channel minimum and maximum of (N, 3, H, W) images, each of shape (3,), as float32."""
    s = channel_stats(images)
    lo, hi = s["min"].float(), s["max"].float()
    if not bool((hi > lo).all()):
        raise ValueError(f"images must vary in every channel to be scaled; got per-channel ranges lo={lo.tolist()}, hi={hi.tolist()}")
    return lo, hi


def _check_range_args(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    _check_images(x, "x")
    lo, hi = torch.as_tensor(lo, dtype=x.dtype, device=x.device), torch.as_tensor(hi, dtype=x.dtype, device=x.device)
    if lo.shape != (3,) or hi.shape != (3,):
        raise ValueError(f"lo and hi must have shape (3,), one value per channel; got {tuple(lo.shape)} and {tuple(hi.shape)}")
    if not bool((hi > lo).all()):
        raise ValueError(f"hi must exceed lo in every channel; got lo={lo.tolist()}, hi={hi.tolist()}")
    return lo.reshape(1, 3, 1, 1), hi.reshape(1, 3, 1, 1)


def scale_per_channel(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Map each channel c of (N, 3, H, W) images linearly from [lo_c, hi_c] to [-1, 1]: y = 2 (x - lo_c) / (hi_c - lo_c) - 1."""
    lo, hi = _check_range_args(x, lo, hi)
    return 2 * (x - lo) / (hi - lo) - 1


def unscale_per_channel(y: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`scale_per_channel`: x = lo_c + (y + 1) / 2 (hi_c - lo_c), back in pixel units."""
    lo, hi = _check_range_args(y, lo, hi)
    return lo + (y + 1) / 2 * (hi - lo)


def to_display(y: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Model-space images (per-channel [-1, 1]) as the [-1, 1] RGB that :func:`viz.show_images` draws (0..255 -> -1..1)."""
    return (unscale_per_channel(y, lo, hi) / 127.5 - 1).clamp(-1, 1)


# ---------------------------------------------------------------------------------------------------- augmentation
def crop_and_flip(regions: torch.Tensor, size: int, generator: torch.Generator, *, flip: bool = True,
                  return_positions: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One random ``size`` x ``size`` crop of each region (B, C, H, W), mirrored left-right with probability 1/2 when
    ``flip``. Positions and flips are drawn from ``generator`` (CPU). With ``return_positions`` also returns the (B, 2)
    top-left corners (row, column) and the (B,) flip flags."""
    if regions.ndim != 4:
        raise ValueError(f"regions must have shape (B, C, H, W); got {tuple(regions.shape)}")
    B, _, H, W = regions.shape
    check_positive_int(size, "size", 1, min(H, W))
    rows = torch.randint(0, H - size + 1, (B,), generator=generator)
    cols = torch.randint(0, W - size + 1, (B,), generator=generator)
    flips = torch.rand(B, generator=generator) < 0.5 if flip else torch.zeros(B, dtype=torch.bool)
    crops = torch.stack([regions[b, :, r : r + size, c : c + size] for b, (r, c) in enumerate(zip(rows.tolist(), cols.tolist()))])
    crops = torch.where(flips.to(crops.device).reshape(B, 1, 1, 1), crops.flip(-1), crops)  # (B, C, size, size)
    if return_positions:
        return crops, torch.stack([rows, cols], 1), flips
    return crops


def random_crops(regions: torch.Tensor, n: int, size: int, generator: torch.Generator, *, flip: bool = True) -> torch.Tensor:
    """``n`` random crops (with random flips) from regions (P, C, H, W), each from a region picked uniformly."""
    check_positive_int(n, "n", 1)
    idx = torch.randint(0, regions.shape[0], (n,), generator=generator)
    return crop_and_flip(regions[idx.to(regions.device)], size, generator, flip=flip)


def augmented_loss(schedule: NoiseSchedule, size: int, *, flip: bool = True) -> LossFn:
    """A loss for :func:`train` whose ``data`` are whole training regions (P, 3, H, W): each batch is cut into fresh
    random crops (and flips), then L_simple (Ho et al. 2020, eq. 14) is taken on them. Crops, flips, t and noise all
    come from the loop's generator, so a run is reproducible and resumes exactly."""
    check_positive_int(size, "size", 1)

    def loss_fn(model: nn.Module, regions: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        crops = crop_and_flip(regions, size, generator, flip=flip)
        return simple_loss(model, schedule.to(crops.device), crops, generator=generator)

    return loss_fn


def dense_reference(regions: torch.Tensor, size: int, stride: int = 2, *, flip: bool = True) -> torch.Tensor:
    """Every crop of the regions on a grid of step ``stride``, and (with ``flip``) their mirror images: the training set
    an augmented run draws from, as a finite set to measure nearest distances against."""
    crops = torch.cat([grid_crops(r, size, stride) for r in regions])
    return torch.cat([crops, crops.flip(-1)]) if flip else crops


# ------------------------------------------------------------------------------------------------------ measuring
def distance_summary(d: torch.Tensor) -> dict[str, float]:
    """Median and quartiles of a 1-D tensor of distances, with its size."""
    if d.ndim != 1 or d.numel() < 1:
        raise ValueError(f"d must be a non-empty 1-D tensor of distances; got shape {tuple(d.shape)}")
    q = torch.quantile(d.double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    return {"median": round(float(q[1]), 3), "q25": round(float(q[0]), 3), "q75": round(float(q[2]), 3), "n": int(d.numel())}


def memorisation_row(samples: torch.Tensor, heldout: torch.Tensor, reference: torch.Tensor) -> dict[str, Any]:
    """Nearest-training-crop distances (pixel L2 in model space) of samples and of held-out crops against the same
    ``reference``: their medians and quartiles, the ratio of medians (near 1: samples are as far from the training
    data as new real crops; well below 1: samples sit on training crops), and the share of samples nearer to a
    training crop than any held-out crop is."""
    d_s = nearest_train_distances(samples, reference)
    d_h = nearest_train_distances(heldout, reference)
    s, h = distance_summary(d_s), distance_summary(d_h)
    return {"samples": s, "heldout": h, "ratio": round(s["median"] / h["median"], 3),
            "closer_than_any_heldout": round(float((d_s < d_h.min()).float().mean()), 3)}


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


# ------------------------------------------------------------------------------------------------------- shipping
def _find(name: str, directory: str | Path | None) -> Path:
    from .pretrained import _find as find_shipped

    return find_shipped(name, directory, made_by="`python -m diffusion_course.colour train`")


def load_colour_unet(which: str = "augmented", *, directory: str | Path | None = None) -> tuple[UNet, dict[str, Any]]:
    """A shipped colour U-Net (``which`` = "augmented", the chapter's model, or "fixed", the fixed-crop run) in eval mode
    on the CPU, and its card (with the data's per-channel range "lo"/"hi" and the memorisation table)."""
    check_choice(which, ("augmented", "fixed"), "which")
    path = _find(COLOUR_UNET_FILE if which == "augmented" else COLOUR_FIXED_FILE, directory)
    card = read_card(path)
    if "unet_config" not in card:
        raise CheckpointError(f"{path.with_suffix('.json')} is missing or holds no 'unet_config'; run `python -m diffusion_course.colour train`")
    model = UNet(UNetConfig(**card["unet_config"]))
    load_weights(model, path)
    return model.eval(), card


def load_tiny_samples(*, directory: str | Path | None = None) -> tuple[torch.Tensor, dict[str, Any]]:
    """The shipped samples (model space, per-channel [-1, 1]) of the too-narrow U-Net, and their card."""
    from safetensors.torch import load_file

    path = _find(COLOUR_TINY_SAMPLES_FILE, directory)
    return load_file(str(path))["samples"].float(), read_card(path)


def _git_state() -> dict[str, Any]:
    from ._provenance import git_state

    return git_state()


def _train_cmd(args: argparse.Namespace) -> None:
    from safetensors.torch import save_file

    from .checkpoints import _replace_atomically

    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    git_state = _git_state()
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
        "command": "python -m diffusion_course.colour " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        **git_state,
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
        _replace_atomically(lambda tmp: save_file({"samples": samples}, str(tmp)), path)
        card = {"what": "DDIM samples (model space, per-channel [-1, 1], float16) of a too-narrow colour U-Net trained like the shipped one",
                "unet_config": tiny["unet_config"], "params": tiny["params"], "steps": s.milestones[-1], "seconds": round(tiny["seconds"], 1),
                "sampler": sampler, "n": len(samples), "memorisation": tiny["rows"][-1], **provenance}
        _replace_atomically(lambda tmp: tmp.write_text(json.dumps(card, indent=2) + "\n"), path.with_suffix(".json"))
    print(f"done in {seconds:.0f} s -> {out / COLOUR_UNET_FILE} (+ {COLOUR_FIXED_FILE}, {COLOUR_TINY_SAMPLES_FILE})")


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m diffusion_course.colour train [options]``."""
    parser = argparse.ArgumentParser(prog="python -m diffusion_course.colour", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train the fixed and augmented runs, measure memorisation, write the weights and cards")
    d = StudySettings()
    p.add_argument("--size", type=int, default=d.size, help="crop side in pixels")
    p.add_argument("--downscale", type=int, default=d.downscale, help="shrink the photos this many times first")
    p.add_argument("--milestones", default=",".join(map(str, d.milestones)), help="comma-separated training lengths to measure at")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--samples", type=int, default=d.samples, help="samples measured per milestone")
    p.add_argument("--base-channels", type=int, default=d.base_channels)
    p.add_argument("--no-tiny", action="store_true", help="skip the too-narrow U-Net")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (the card's timings are for 1)")
    p.add_argument("--cpu", action="store_true", help="use the CPU even when CUDA is present")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", default=str(DATA_DIR), help="folder for the weights and cards")
    args = parser.parse_args(argv)
    if args.command == "train":
        _train_cmd(args)


if __name__ == "__main__":
    main()
